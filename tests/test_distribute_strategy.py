"""bench.distribute.strategy and backup in-process: names, cluster config, topology, batch/LR
scaling, sharding, chief-only paths, atomic chief-only BackupAndRestore. No device splitting here:
logical CPUs must be set before TF starts, so those runs live in subprocesses (test_distribute_training)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.distribute import backup
from bench.distribute.strategy import (
    Topology, chief_only_path, cluster_resolver, is_chief, make_strategy, parse_tf_config,
    scale_batch_and_lr, shard_dataset, topology,
)


def resolver(jobs: dict, task_type: str, task_id: int):
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task_type, task_id=task_id)


def test_global_batch_and_learning_rate_follow_the_replicas():
    assert scale_batch_and_lr(64, 0.1, 4) == (256, pytest.approx(0.4))
    assert scale_batch_and_lr(64, 0.1, 4, rule="sqrt") == (256, pytest.approx(0.2))
    assert scale_batch_and_lr(64, 0.1, 4, rule="none") == (256, pytest.approx(0.1))
    # recipe LR quoted at batch 256 (Goyal et al.: 0.1 per 256 images)
    assert scale_batch_and_lr(32, 0.1, 2, base_batch=256) == (64, pytest.approx(0.025))
    with pytest.raises(ValueError, match="unknown LR scaling rule 'cubic'"):
        scale_batch_and_lr(32, 0.1, 2, rule="cubic")
    with pytest.raises(ValueError, match="must be >= 1"):
        scale_batch_and_lr(0, 0.1, 2)


def test_strategy_names_and_misuse_are_reported():
    assert make_strategy("default").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="unknown strategy 'horovod'; valid: default, mirrored, multiworker"):
        make_strategy("horovod")
    with pytest.raises(ValueError, match="cpu_devices only applies to --strategy mirrored"):
        make_strategy("multiworker", cpu_devices=2)


@pytest.mark.parametrize("text, message", [
    ("", "TF_CONFIG is not set"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'needs a non-empty "cluster"'),
    ('{"cluster": {"worker": ["h:1"]}}', 'needs "task"'),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "task type 'ps' is not a job"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "index 2 is out of range"),
])
def test_bad_tf_config_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_tf_config(text)


def test_tf_config_cluster_gives_the_topology(monkeypatch):
    config = {"cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    monkeypatch.delenv("SLURM_STEP_NODELIST", raising=False)
    found = cluster_resolver("auto")
    assert isinstance(found, tf.distribute.cluster_resolver.TFConfigClusterResolver)
    assert topology(found) == Topology(num_workers=2, worker_index=1, is_chief=False)


def test_slurm_job_step_gives_one_worker_per_task(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, value in {"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "node[07-08]",
                        "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}.items():
        monkeypatch.setenv(name, value)
    found = cluster_resolver("auto")
    assert found.cluster_spec().as_dict() == {
        "worker": ["node07:8888", "node07:8889", "node08:8888", "node08:8889"]}
    assert (found.task_type, found.task_id) == ("worker", 2)
    assert found.num_accelerators() == {}  # CPU nodes: no placeholder GPUs leak into the strategy
    assert topology(found) == Topology(4, 2, False)


def test_slurm_outside_a_job_step_is_a_clear_error(monkeypatch):
    for name in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="needs the SLURM job-step environment .*start the workers with srun"):
        cluster_resolver("slurm")


def test_chief_is_the_chief_task_or_worker_zero(tmp_path):
    assert topology() == Topology(1, 0, True)  # no cluster: the single process is the chief
    assert is_chief(resolver({"worker": ["a:1", "b:1"]}, "worker", 0))
    assert not is_chief(resolver({"worker": ["a:1", "b:1"]}, "worker", 1))
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert topology(resolver(with_chief, "chief", 0)) == Topology(3, 0, True)
    assert topology(resolver(with_chief, "worker", 0)) == Topology(3, 1, False)
    assert topology(resolver({**with_chief, "evaluator": ["e:1"]}, "evaluator", 0)).worker_index == -1

    target = str(tmp_path / "model.weights.h5")
    assert chief_only_path(target, Topology(2, 0, True)) == target
    scratch = chief_only_path(target, Topology(2, 1, False))
    assert scratch != target and scratch.endswith("model.weights.h5")
    assert not scratch.startswith(str(tmp_path)) and os.path.isdir(os.path.dirname(scratch))


def test_explicit_sharding_splits_the_examples_between_workers():
    ds = tf.data.Dataset.range(10)
    parts = [list(shard_dataset(ds, Topology(2, i, i == 0), policy="explicit").as_numpy_iterator())
             for i in (0, 1)]
    assert parts == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    Policy = tf.data.experimental.AutoShardPolicy
    policy = lambda d: d.options().experimental_distribute.auto_shard_policy
    assert policy(shard_dataset(ds, policy="data")) == Policy.DATA
    assert policy(shard_dataset(ds, Topology(2, 1, False), policy="explicit")) == Policy.OFF  # not twice
    with pytest.raises(ValueError, match="unknown shard policy 'file'"):
        shard_dataset(ds, policy="file")


def test_cpu_devices_after_tensorflow_started_is_a_clear_error():
    code = ("import tensorflow as tf; tf.constant(1.0)\n"
            "from bench.distribute.strategy import make_strategy\n"
            "make_strategy('mirrored', cpu_devices=2)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode != 0
    assert "cannot split the CPU into 2 logical devices: TensorFlow is already initialised with 1" in proc.stderr


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def test_backup_is_switched_atomically_and_resumes_at_the_saved_epoch(tmp_path):
    x, y = np.random.default_rng(0).random((8, 4), "float32"), np.zeros((8, 3), "float32")
    root = str(tmp_path / "backup")

    class Stop(keras.callbacks.Callback):  # an interruption after epoch 1's backup
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    model = _tiny_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=4, verbose=0,
                  callbacks=[backup.ChiefBackupAndRestore(root), Stop()])
    saved = backup.latest_backup(root)
    assert saved["epoch"] == 2 and saved["dir"] == "epoch-0002-step-00000004"
    assert sorted(os.listdir(root)) == ["checkpoint", saved["dir"]]  # epoch 1's backup is gone
    weights_at_2 = [w.numpy().copy() for w in model.weights]

    # A save killed half-way leaves a .partial directory and a torn file; the pointer ignores it.
    torn = tmp_path / "backup" / "epoch-0003-step-00000006.partial"
    torn.mkdir()
    (torn / "latest.weights.h5").write_bytes(b"\x89HDF\r\n half a file")
    assert backup.latest_backup(root)["dir"] == saved["dir"]

    resumed = _tiny_model()
    assert not np.allclose(resumed.weights[0].numpy(), weights_at_2[0])
    seen = []
    probe = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    restore = backup.ChiefBackupAndRestore(root, delete_checkpoint=False)
    history = resumed.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[restore, probe])
    assert seen == [2] and len(history.history["loss"]) == 1  # restored epoch, then finished
    assert int(resumed.optimizer.iterations.numpy()) == 6
    assert backup.latest_backup(root)["dir"] == "epoch-0003-step-00000006"
    assert sorted(os.listdir(root)) == ["checkpoint", "epoch-0003-step-00000006"]  # torn one cleaned


def test_timed_distributed_step_is_the_fit_step():
    from bench.distribute.step import distributed_train_step

    rng = np.random.default_rng(1)
    x, y = rng.random((16, 4), "float32"), rng.random((16, 3), "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    by_fit, by_step = _tiny_model(), _tiny_model()
    by_fit.fit(ds, epochs=1, verbose=0, shuffle=False)
    step = distributed_train_step(tf.distribute.get_strategy(), by_step, ds)
    losses = [step(), step()]
    assert all(np.isfinite(losses))
    assert int(by_step.optimizer.iterations.numpy()) == 2
    for a, b in zip(by_fit.weights, by_step.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_mirrored_fit_validates_on_a_batch_split_unevenly_between_replicas():
    # 51 validation images at global batch 128 on 2 replicas: 26 + 25 (Keras' build step used to fail)
    code = '''
import numpy as np
from bench.distribute.strategy import make_strategy
s = make_strategy("mirrored", cpu_devices=2)
import keras, tensorflow as tf
rng = np.random.default_rng(0)
x, y = rng.random((307, 8), "float32"), rng.integers(0, 3, 307)
train = tf.data.Dataset.from_tensor_slices((x[:256], y[:256])).batch(128)
val = tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(128)
with s.scope():
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    m.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
m.fit(train, validation_data=val, epochs=1, verbose=0, shuffle=False)
predicted = np.argmax(m.predict(x[256:], verbose=0), -1)
print("ACC", m.evaluate(val, verbose=0)[1], float(np.mean(predicted == y[256:])))
'''
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated, direct = map(float, proc.stdout.split("ACC")[1].split())
    assert evaluated == pytest.approx(direct, abs=1e-6)  # all 51 images counted, none twice
