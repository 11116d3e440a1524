"""Real distributed training on real MNIST (bench.distribute.worker), each run a fresh process:
2 logical CPU devices under MirroredStrategy, 2 workers on 127.0.0.1 under
MultiWorkerMirroredStrategy, and a worker killed mid-run that is resumed from the chief's backup.
Same global batch (64), same seed, same data order, plain SGD: every configuration must land on
the single-device weights after the same 20 steps."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

from bench.distribute.backup import latest_backup
from bench.distribute.launch import launch

RUN = ["--epochs", "4", "--steps-per-epoch", "5", "--global-batch", "64", "--save-all-workers"]
WORKER = [sys.executable, "-m", "bench.distribute.worker"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
ATOL = 1e-5  # float32 sums in a different order; an off-by-one-step error is ~1e-2


def run_worker(out, *args):
    proc = subprocess.run([*WORKER, *RUN, "--out", str(out), *args], env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


def weights(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def assert_close(a, b, atol=ATOL):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    result = run_worker(out)
    assert result["replicas"] == 1 and result["final_step"] == 20
    return result, weights(out / "worker-0.weights.npz")


def test_mirrored_on_two_logical_cpus_matches_one_device(single, tmp_path):
    result = run_worker(tmp_path, "--strategy", "mirrored", "--cpu-devices", "2")
    assert result["replicas"] == 2 and result["num_workers"] == 1 and result["final_step"] == 20
    assert_close(weights(tmp_path / "worker-0.weights.npz"), single[1])
    np.testing.assert_allclose(result["history"]["loss"], single[0]["history"]["loss"], rtol=1e-5)
    assert single[0]["history"]["loss"][-1] < single[0]["history"]["loss"][0] - 0.5  # it did learn


def test_two_local_workers_stay_in_sync_and_match_one_device(single, tmp_path):
    job = launch([*WORKER, *RUN, "--strategy", "multiworker", "--out", str(tmp_path)], 2,
                 log_dir=str(tmp_path / "logs"), timeout_s=600)
    assert job.ok, job.message
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["num_workers"] == 2 and result["replicas"] == 2 and result["final_step"] == 20
    w0, w1 = weights(tmp_path / "worker-0.weights.npz"), weights(tmp_path / "worker-1.weights.npz")
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)  # all-reduce hands both workers the same update
    assert_close(w0, single[1])
    np.testing.assert_allclose(result["history"]["loss"], single[0]["history"]["loss"], rtol=1e-5)
    assert not (tmp_path / "backup").exists()  # the chief removes its backup after a finished run


@pytest.mark.slow  # a long real run: make test-all
def test_killed_chief_stops_the_job_and_the_restart_resumes_from_its_backup(single, tmp_path):
    command = [*WORKER, *RUN, "--strategy", "multiworker", "--out", str(tmp_path)]
    # The chief dies (SIGKILL) two steps into epoch 2, after writing the epoch-2 backup.
    crashed = launch([*command, "--kill-at-step", "12", "--kill-worker", "0"], 2,
                     log_dir=str(tmp_path / "crash-logs"), timeout_s=600, grace_s=120)
    assert not crashed.ok and crashed.failed_worker == 0
    assert "worker 0 failed first (killed by signal SIGKILL); worker 1: exit code 3" in crashed.message
    survivor = open(crashed.log_paths[1]).read()  # it stopped by itself, not by the launcher
    assert "error: worker 1 lost its peers (UnavailableError" in survivor
    assert "restart the whole job to resume" in survivor

    saved = latest_backup(str(tmp_path / "backup"))
    assert saved["epoch"] == 2 and saved["dir"] == "epoch-0002-step-00000010"
    with h5py.File(tmp_path / "backup" / saved["dir"] / "latest.weights.h5", "r") as f:  # whole, readable
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    assert len(arrays) >= 4 and all(np.isfinite(a).all() for a in arrays)
    assert not (tmp_path / "result.json").exists()

    resumed = launch(command, 2, log_dir=str(tmp_path / "resume-logs"), timeout_s=600)
    assert resumed.ok, resumed.message
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["initial_epoch"] == 2 and result["epochs_run"] == [2, 3] and result["final_step"] == 20
    assert_close(weights(tmp_path / "worker-0.weights.npz"), single[1])  # as if never interrupted
    assert_close(weights(tmp_path / "worker-1.weights.npz"), single[1])


@pytest.mark.slow  # a long real run: make test-all
def test_frozen_worker_is_detected_by_heartbeat_not_waited_for_forever(tmp_path):
    # SIGSTOP: the process hangs with its sockets open, like an unreachable host. The survivor must
    # not wait for the 600 s collective timeout: the coordination service's heartbeats catch it.
    command = [*WORKER, "--epochs", "1", "--steps-per-epoch", "5", "--strategy", "multiworker",
               "--out", str(tmp_path), "--collective-timeout", "600", "--kill-at-step", "2", "--fault", "freeze"]
    job = launch(command, 2, log_dir=str(tmp_path / "logs"), timeout_s=400, grace_s=5)
    assert not job.ok and job.failed_worker == 0
    assert "worker 0 failed first (exit code 3)" in job.message
    assert job.returncodes[1] != 0  # the frozen one was stopped, it did not finish
    survivor = open(job.log_paths[0]).read()
    assert "error: worker 0 lost its peers (UnavailableError" in survivor
    assert "stopped sending heartbeats" in survivor


def consecutive_free_ports(count: int) -> int:
    """A base port with `count` free ports after it on 127.0.0.1 (SLURM's resolver counts up)."""
    for _ in range(50):
        base = random.randint(20000, 60000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no consecutive free ports found on 127.0.0.1")


@pytest.mark.slow  # a long real run: make test-all
def test_slurm_job_step_on_localhost_trains_like_one_device(single, tmp_path):
    # What srun gives each task of a 2-task step on one node; no TF_CONFIG at all.
    base = consecutive_free_ports(2)
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    env.update(SLURM_STEP_NUM_TASKS="2", SLURM_STEP_NODELIST="127.0.0.1", SLURM_STEP_TASKS_PER_NODE="2")
    command = [*WORKER, *RUN, "--strategy", "multiworker", "--cluster", "auto", "--slurm-port-base", str(base),
               "--out", str(tmp_path)]
    procs = [subprocess.Popen(command, env={**env, "SLURM_PROCID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "worker 1/2 chief=False" in outputs[1]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["num_workers"] == 2 and result["final_step"] == 20
    assert_close(weights(tmp_path / "worker-1.weights.npz"), single[1])
