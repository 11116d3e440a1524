"""Build a tf.distribute strategy by name and answer "who am I in the cluster".

    strategy = make_strategy("mirrored", cpu_devices=2)      # 2 replicas on one host
    strategy = make_strategy("multiworker")                  # cluster from TF_CONFIG or SLURM
    global_batch, lr = scale_batch_and_lr(64, 0.1, strategy.num_replicas_in_sync)
    with strategy.scope():
        model = ...; model.compile(...)
    model.fit(shard_dataset(ds.batch(global_batch), strategy), ...)
    if is_chief(strategy): write results

Device and cluster set-up must happen before TensorFlow initialises its runtime (the first op or
device query), so call `make_strategy` first thing in a fresh process.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import NamedTuple

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
CLUSTERS = ("auto", "tf_config", "slurm")
# Collective ops (all-reduce) wait this long for peers before failing instead of hanging forever.
# Generous because the first step also traces and compiles the train function on every worker.
DEFAULT_COLLECTIVE_TIMEOUT_S = 300.0
SLURM_PORT_BASE = 8888


def configure_cpu_devices(count: int) -> list[str]:
    """Split the host CPU into `count` logical devices, so MirroredStrategy has replicas to mirror.

    The logical devices share the same physical cores: this tests the distributed code path and
    its numerics, it does not add compute. Must run before TensorFlow initialises.
    """
    if count < 1:
        raise ValueError(f"cpu_devices must be >= 1, got {count}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as exc:
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) != count:
            raise RuntimeError(
                f"cannot split the CPU into {count} logical devices: TensorFlow is already "
                f"initialised with {len(existing)}. Create the strategy (or pass --cpu-devices) "
                "before any TensorFlow op runs, i.e. first thing in a fresh process."
            ) from exc
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def parse_tf_config(text: str | None = None) -> dict:
    """Read and check TF_CONFIG (`{"cluster": {...}, "task": {"type": ..., "index": ...}}`)."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise ValueError(
            "TF_CONFIG is not set: multiworker needs each process to know the cluster, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (see docs/distributed.md), '
            "or run under SLURM with --cluster slurm, or start local workers with "
            "python -m bench.distribute.launch"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc}): {text[:200]!r}") from exc
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f'TF_CONFIG needs a non-empty "cluster" mapping of job -> addresses: {text[:200]!r}')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f'TF_CONFIG needs "task": {{"type": ..., "index": ...}}: {text[:200]!r}')
    job, index = task["type"], task["index"]
    if job not in cluster:
        raise ValueError(f"TF_CONFIG task type {job!r} is not a job of the cluster {sorted(cluster)}")
    if not isinstance(index, int) or not 0 <= index < len(cluster[job]):
        raise ValueError(
            f"TF_CONFIG task index {index!r} is out of range for job {job!r} with {len(cluster[job])} tasks"
        )
    if not {"chief", "worker"} & set(cluster):
        raise ValueError('TF_CONFIG cluster needs a "worker" (and optionally one "chief") job')
    return config


def slurm_resolver(port_base: int = SLURM_PORT_BASE) -> tf.distribute.cluster_resolver.ClusterResolver:
    """Cluster from the SLURM job step (SLURM_PROCID, SLURM_STEP_NODELIST, ...), one worker per task.

    TensorFlow's SlurmClusterResolver places tasks by GPU and finds none on CPU-only nodes (and
    calls nvidia-smi), so on CPU hosts it is asked for a placeholder GPU count and its result is
    re-wrapped with the real accelerator count.
    """
    missing = [v for v in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST") if v not in os.environ]
    if missing:
        raise ValueError(
            f"--cluster slurm needs the SLURM job-step environment ({', '.join(missing)} missing): "
            "start the workers with srun inside an allocation (see docs/distributed.md)"
        )
    gpus = len(tf.config.list_physical_devices("GPU"))
    Slurm = tf.distribute.cluster_resolver.SlurmClusterResolver
    if gpus:
        return Slurm(port_base=port_base)
    slurm = Slurm(port_base=port_base, gpus_per_node=1024, gpus_per_task=1, auto_set_gpu=False)
    spec = slurm.cluster_spec()
    task_type, task_id = slurm.get_task_info()
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, task_type=task_type, task_id=task_id, num_accelerators={}, rpc_layer="grpc"
    )


def cluster_resolver(cluster: str = "auto", slurm_port_base: int = SLURM_PORT_BASE):
    """TF_CONFIG if set, else SLURM if inside a SLURM job step, else a clear error."""
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown cluster {cluster!r}; valid: {', '.join(CLUSTERS)}")
    if cluster == "auto":
        cluster = "tf_config" if os.environ.get("TF_CONFIG") or "SLURM_STEP_NODELIST" not in os.environ else "slurm"
    if cluster == "slurm":
        return slurm_resolver(slurm_port_base)
    parse_tf_config()  # fail early with a readable message instead of a gRPC error later
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def make_strategy(
    name: str = "default",
    *,
    cpu_devices: int | None = None,
    cluster: str = "auto",
    collective_timeout_s: float | None = DEFAULT_COLLECTIVE_TIMEOUT_S,
    slurm_port_base: int = SLURM_PORT_BASE,
) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, or `cpu_devices` logical CPUs) or
    `multiworker` (MultiWorkerMirroredStrategy over the TF_CONFIG / SLURM cluster)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if cpu_devices is not None and name != "mirrored":
        raise ValueError(
            f"cpu_devices only applies to --strategy mirrored (got {name!r}); "
            "multiworker uses one CPU device (or all GPUs) per worker"
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_devices is not None:
            return _MirroredStrategy(configure_cpu_devices(cpu_devices))
        return _MirroredStrategy()  # all visible GPUs, else the one CPU
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout_s)
    return _MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver(cluster, slurm_port_base), communication_options=options
    )


class _MirroredStrategy(tf.distribute.MirroredStrategy):
    """MirroredStrategy that lets Keras 3 build on a batch split unevenly between replicas.

    `fit`/`evaluate` reduce their first data batch across replicas only to learn its shapes
    (`_maybe_symbolic_build`); a batch smaller than the global batch (a validation set of 51
    images at global batch 128: 26 + 25) fails there with "Inputs to operation AddN ... must have
    the same size and shape". For values whose replicas differ in shape, which no reduction could
    combine, the first replica's value is returned.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def one(v):
            parts = getattr(v, "values", None)
            if parts and len({tuple(p.shape) for p in parts}) > 1 and axis is None:
                return parts[0]
            return parent.reduce(reduce_op, v, axis)

        return tf.nest.map_structure(one, value)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with the two `reduce` calls Keras 3's `fit` makes fixed.

    Keras 3 (checked with 3.15) and MultiWorkerMirroredStrategy disagree in two places
    (keras-team/keras#20585, tensorflow/tensorflow#72388):
    - `_maybe_symbolic_build` reduces a whole `(x, y)` batch; MWMS wants one value per call
      ("Attempt to convert a value (PerReplica...)"): reduce leaf by leaf.
    - the step's scalar logs (loss, metrics) are reduced with `axis=0`, which a scalar has not
      ("Invalid reduction dimension 0 for input with 0 dimensions"): for scalars the mean
      across replicas (`axis=None`) is what Keras computes under MirroredStrategy.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def one(v):
            parts = getattr(v, "values", (v,))
            scalar = all(getattr(p, "shape", None) is not None and p.shape.rank == 0 for p in parts)
            return parent.reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(one, value)


class Topology(NamedTuple):
    num_workers: int
    worker_index: int  # 0 is the chief; -1 for tasks outside the synchronous group
    is_chief: bool


# Anything that knows the cluster: a strategy, a cluster resolver, or an already computed Topology.
Where = tf.distribute.Strategy | tf.distribute.cluster_resolver.ClusterResolver | Topology | None


def topology(where: Where = None) -> Topology:
    """Where this process sits among the workers, from a strategy, a cluster resolver or a Topology.

    Without a cluster (default or mirrored strategy) a process is worker 0 of 1, the chief.
    The chief is the "chief" task if the cluster has one, else worker 0 (TensorFlow's convention).
    """
    if isinstance(where, Topology):
        return where
    if where is None or isinstance(where, tf.distribute.Strategy):
        where = getattr(where or tf.distribute.get_strategy(), "cluster_resolver", None)
    spec = where.cluster_spec().as_dict() if where is not None else {}
    if not spec:
        return Topology(1, 0, True)
    chiefs, workers = len(spec.get("chief", [])), len(spec.get("worker", []))
    task_type, task_id = where.task_type, where.task_id
    if task_type not in ("chief", "worker"):  # evaluator, ps: outside the synchronous group
        return Topology(chiefs + workers, -1, False)
    index = task_id if task_type == "chief" else chiefs + task_id
    return Topology(chiefs + workers, index, index == 0)


def is_chief(where: Where = None) -> bool:
    """The one worker that writes checkpoints, logs and results."""
    return topology(where).is_chief


def chief_only_path(path: str | os.PathLike, where: Where = None) -> str:
    """`path` on the chief; a private scratch path on other workers.

    For saves every worker must take part in (e.g. a SavedModel export under MultiWorkerMirrored):
    non-chief workers write to the scratch path and delete it, so they never race the chief.
    """
    path = os.fspath(path)
    top = topology(where)
    if top.is_chief:
        return path
    scratch = os.path.join(tempfile.gettempdir(), f"imgcls-worker{top.worker_index}-{os.getpid()}")
    os.makedirs(scratch, exist_ok=True)
    return os.path.join(scratch, os.path.basename(path.rstrip(os.sep)))


class Scaled(NamedTuple):
    global_batch: int
    learning_rate: float


def scale_batch_and_lr(
    per_replica_batch: int,
    base_lr: float,
    num_replicas: int,
    *,
    base_batch: int | None = None,
    rule: str = "linear",
) -> Scaled:
    """Global batch = per-replica batch x replicas; the LR follows the batch.

    `base_lr` is the recipe's LR at `base_batch` (default: the per-replica batch, i.e. the LR tuned
    on one device). `linear` is Goyal et al.'s rule (lr x k for batch x k), `sqrt` the square-root
    rule used for adaptive optimisers, `none` keeps the LR.
    """
    if per_replica_batch < 1 or num_replicas < 1:
        raise ValueError(f"per_replica_batch and num_replicas must be >= 1, got {per_replica_batch}, {num_replicas}")
    global_batch = per_replica_batch * num_replicas
    ratio = global_batch / (base_batch or per_replica_batch)
    factors = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}
    if rule not in factors:
        raise ValueError(f"unknown LR scaling rule {rule!r}; valid: {', '.join(factors)}")
    return Scaled(global_batch, base_lr * factors[rule])


SHARD_POLICIES = ("data", "explicit", "off")


def shard_dataset(
    dataset: tf.data.Dataset,
    where: Where = None,
    *,
    policy: str = "data",
) -> tf.data.Dataset:
    """Give each worker its part of the data.

    - `data`: pass the dataset batched with the GLOBAL batch; `model.fit` (via
      `experimental_distribute_dataset`) splits every global batch into per-replica batches and each
      worker keeps its own, so the global batch is the same as on one device. Works for any source.
    - `explicit`: `dataset.shard(num_workers, worker_index)` here; pass it UNBATCHED and batch
      it with the per-worker batch afterwards (global batch / num_workers). Auto-sharding is then off.
    - `off`: every worker reads everything (only for data that is already split per worker).
    """
    if policy not in SHARD_POLICIES:
        raise ValueError(f"unknown shard policy {policy!r}; valid: {', '.join(SHARD_POLICIES)}")
    options = tf.data.Options()
    Policy = tf.data.experimental.AutoShardPolicy
    if policy == "data":
        options.experimental_distribute.auto_shard_policy = Policy.DATA
        return dataset.with_options(options)
    options.experimental_distribute.auto_shard_policy = Policy.OFF
    if policy == "explicit":
        top = topology(where)
        dataset = dataset.shard(top.num_workers, top.worker_index)
    return dataset.with_options(options)
