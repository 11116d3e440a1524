"""Minimal self-contained distributed training on real MNIST: the proof bench for bench.distribute.

    python -m bench.distribute.worker --strategy mirrored --cpu-devices 2 --out runs/dist/m2
    python -m bench.distribute.launch --workers 2 -- \
        python -m bench.distribute.worker --strategy multiworker --out runs/dist/w2

Keras `model.fit` under the strategy, global batch fixed (per-replica = global / replicas), no
shuffling (same data order in every configuration), data sharded per worker, `BackupAndRestore`
written by the chief only. The chief writes `result.json` and `model.weights.h5` to --out;
`--save-all-workers` also makes every worker write its own weights (`worker-N.weights.npz`) so a
test can check that the replicas hold the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

SEED = 1234


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.distribute.worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"))
    p.add_argument("--cpu-devices", type=int, default=None, help="logical CPU devices for --strategy mirrored")
    p.add_argument("--cluster", default="auto", choices=("auto", "tf_config", "slurm"))
    p.add_argument("--slurm-port-base", type=int, default=8888, help="first port per node with --cluster slurm")
    p.add_argument("--collective-timeout", type=float, default=300.0, help="seconds a collective waits for peers")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="tiny_mlp", help="zoo model name (default tiny_mlp; tiny_cnn)")
    p.add_argument("--global-batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate at --global-batch (no momentum)")
    p.add_argument("--steps-per-epoch", type=int, default=10)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", required=True, help="directory for result.json and weights (chief only)")
    p.add_argument("--backup-dir", default=None, help="BackupAndRestore directory (default OUT/backup)")
    p.add_argument("--keep-backup", action="store_true", help="keep the backup after a finished run")
    p.add_argument("--save-all-workers", action="store_true", help="every worker writes worker-N.weights.npz")
    p.add_argument("--kill-at-step", type=int, default=None,
                   help="fault injection: stop one worker before global step N (see --fault)")
    p.add_argument("--kill-worker", type=int, default=1, help="which worker --kill-at-step stops")
    p.add_argument("--fault", default="kill", choices=("kill", "freeze"),
                   help="kill: SIGKILL (a crashed process, connections closed); freeze: SIGSTOP "
                        "(a hung or unreachable host, connections left open)")
    args = p.parse_args(argv)
    if args.global_batch < 1 or args.steps_per_epoch < 1 or args.epochs < 1:
        p.error("--global-batch, --steps-per-epoch and --epochs must be >= 1")
    return args


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int):
    """The zoo network `name`, returning logits (the loss takes from_logits=True)."""
    import zoo

    return zoo.build(name, input_shape=tuple(input_shape), num_classes=num_classes, classifier_activation=None)


def train_dataset(name: str, global_batch: int, num_examples: int):
    """First `num_examples` training images in file order, batched with the global batch."""
    import tensorflow as tf
    from bench.data import load_dataset

    data = load_dataset(name)
    x, y = data.numpy("train")
    if len(x) < num_examples:
        raise ValueError(f"{name} has {len(x)} training images, the run needs {num_examples}")
    x = x[:num_examples].astype("float32") / 255.0
    ds = tf.data.Dataset.from_tensor_slices((x, y[:num_examples].astype("int64")))
    return ds.batch(global_batch, drop_remainder=True).repeat(), data


def fault_at_step(step: int, fault: str):
    """A callback that, just before global step `step`, SIGKILLs this process (a crashed node: no
    clean-up, no Python handlers) or SIGSTOPs it (a hung node: its sockets stay open, it never answers)."""
    import keras

    sig = {"kill": signal.SIGKILL, "freeze": signal.SIGSTOP}[fault]

    class FaultAtStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= step:
                print(f"fault injection: {sig.name} to this worker (pid {os.getpid()}) at step {step}, "
                      f"unix time {time.time():.1f}", flush=True)
                os.kill(os.getpid(), sig)

    return FaultAtStep()


def peer_error(exc: Exception) -> str:
    """The line of a TensorFlow error that says what happened to the peer."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for key in ("aborted by", "unhealthy", "timed out", "deadline", "connection", "socket"):
        for line in lines:
            if key in line.lower():
                return line
    return lines[0] if lines else "no message"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.distribute.strategy import make_strategy, topology

    # The strategy first: logical devices and the cluster must be set before TF initialises.
    try:
        strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices, cluster=args.cluster,
                                 collective_timeout_s=args.collective_timeout, slurm_port_base=args.slurm_port_base)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import keras
    import numpy as np
    import tensorflow as tf

    # What a collective raises when a peer dies (connection reset) or times out.
    PEER_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                 tf.errors.AbortedError, tf.errors.CancelledError)

    from bench.distribute.backup import ChiefBackupAndRestore
    from bench.plumbing.files import atomic_path, atomic_write_text
    from bench.distribute.strategy import shard_dataset

    top = topology(strategy)
    replicas = strategy.num_replicas_in_sync
    if args.global_batch % replicas:
        print(f"error: --global-batch {args.global_batch} is not divisible by {replicas} replicas", file=sys.stderr)
        return 2
    print(f"worker {top.worker_index}/{top.num_workers} chief={top.is_chief} replicas={replicas} "
          f"strategy={args.strategy}", flush=True)

    examples = args.global_batch * args.steps_per_epoch  # every epoch sees the same images
    ds, data = train_dataset(args.dataset, args.global_batch, examples)
    ds = shard_dataset(ds, strategy, policy="data")

    keras.utils.set_random_seed(SEED)  # same initial weights in every configuration
    with strategy.scope():
        model = build_model(args.model, tuple(data.image_shape), data.num_classes)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=args.lr),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])

    epochs_run: list[int] = []

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_run.append(epoch)
            print(f"epoch {epoch} begins at step {int(self.model.optimizer.iterations.numpy())}", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch} ends: " + " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()), flush=True)

    backup_dir = args.backup_dir or os.path.join(args.out, "backup")
    callbacks = [ChiefBackupAndRestore(backup_dir, delete_checkpoint=not args.keep_backup), Progress()]
    if args.kill_at_step is not None and top.worker_index == args.kill_worker:
        callbacks.append(fault_at_step(args.kill_at_step, args.fault))

    start = time.perf_counter()
    try:
        history = model.fit(ds, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                            callbacks=callbacks, verbose=0, shuffle=False)
    except PEER_LOST as exc:
        print(f"error: worker {top.worker_index} lost its peers ({type(exc).__name__}: {peer_error(exc)}) "
              f"at unix time {time.time():.1f}. The collectives are aborted and this worker stops; restart "
              f"the whole job to resume from the last backup in {backup_dir}.", file=sys.stderr, flush=True)
        return 3
    seconds = time.perf_counter() - start

    os.makedirs(args.out, exist_ok=True)
    if args.save_all_workers:
        with atomic_path(os.path.join(args.out, f"worker-{top.worker_index}.weights.npz")) as tmp:
            np.savez(tmp, *[w.numpy() for w in model.weights])
    if top.is_chief:
        with atomic_path(os.path.join(args.out, "model.weights.h5")) as tmp:  # keeps the .weights.h5 suffix Keras wants
            model.save_weights(tmp)
        result = {
            "strategy": args.strategy, "num_workers": top.num_workers, "replicas": replicas,
            "global_batch": args.global_batch, "lr": args.lr, "model": args.model,
            "epochs_run": epochs_run, "initial_epoch": epochs_run[0] if epochs_run else args.epochs,
            "final_step": int(model.optimizer.iterations.numpy()),
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "fit_seconds": seconds,
        }
        atomic_write_text(os.path.join(args.out, "result.json"), json.dumps(result, indent=2))
    print(f"worker {top.worker_index} done in {seconds:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
