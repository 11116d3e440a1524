"""The local launcher with small real Python workers (no TensorFlow): TF_CONFIG per worker on
127.0.0.1, exit codes, a failed worker stopping the job with a clear error, the job timeout;
and the worker entry refusing to start without a cluster."""
from __future__ import annotations

import json
import os
import subprocess
import sys


from bench.distribute.launch import launch, main

PRINT_CONFIG = "import os; print(os.environ['TF_CONFIG'])"


def test_each_worker_gets_its_task_in_one_local_cluster(tmp_path):
    result = launch([sys.executable, "-c", PRINT_CONFIG], 3, log_dir=str(tmp_path), timeout_s=60)
    assert result.ok and result.returncodes == [0, 0, 0]
    configs = [json.loads(open(p).read()) for p in result.log_paths]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["cluster"]["worker"] for c in configs] == [addresses] * 3
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]


def test_a_dead_worker_stops_the_others_with_a_clear_error(tmp_path):
    # worker 1 dies at once; worker 0 would wait forever for it (like a collective without timeout)
    code = ("import json, os, sys, time\n"
            "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "if i == 1:\n    print('worker 1: out of memory', flush=True); sys.exit(3)\n"
            "time.sleep(600)\n")
    result = launch([sys.executable, "-c", code], 2, log_dir=str(tmp_path), timeout_s=120, grace_s=1)
    assert not result.ok
    assert result.failed_worker == 1
    assert result.returncodes[1] == 3 and result.returncodes[0] == -15  # SIGTERM from the launcher
    assert "error: worker 1 failed first (exit code 3); worker 0: killed by signal SIGTERM" in result.message
    assert "worker 1: out of memory" in result.message  # the end of the failed worker's log
    assert "resume from the last checkpoint" in result.message


def test_a_job_that_never_finishes_is_stopped_at_the_timeout(tmp_path):
    result = launch([sys.executable, "-c", "import time; time.sleep(600)"], 2, log_dir=str(tmp_path),
                    timeout_s=1, grace_s=1)
    assert not result.ok and result.timed_out
    assert "did not finish within --timeout 1s" in result.message
    assert all(code is not None and code != 0 for code in result.returncodes)


def test_cli_needs_a_command_and_reports_failure(tmp_path, capsys):
    assert main(["--workers", "2"]) == 2
    assert "no worker command" in capsys.readouterr().err
    assert main(["--workers", "0", "--log-dir", str(tmp_path), "--", sys.executable, "-c", "pass"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert main(["--workers", "2", "--log-dir", str(tmp_path), "--", sys.executable, "-c",
                 "import sys; sys.exit(5)"]) == 1
    assert "failed first (exit code 5)" in capsys.readouterr().err


def test_worker_without_a_cluster_says_how_to_give_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("SLURM_")}
    proc = subprocess.run([sys.executable, "-m", "bench.distribute.worker", "--strategy", "multiworker",
                           "--out", str(tmp_path)], env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: TF_CONFIG is not set" in proc.stderr and "bench.distribute.launch" in proc.stderr
