"""Scaling efficiency: throughput with N replicas / (N x throughput with one replica).

    python -m bench distribute scaling --out results/distribute            # measure, write CSV + md
    python -m bench distribute scaling measure --strategy mirrored --cpu-devices 2 --row row.json

Weak scaling: the per-replica batch is fixed, so N replicas process N x the images per step.
Two set-ups on one host: `logical_devices` (MirroredStrategy over 1 or 2 logical CPU devices in
one process) and `local_workers` (MultiWorkerMirroredStrategy over 1 or 2 processes on 127.0.0.1,
started by the launcher). Each measurement is a fresh process (logical devices are fixed at TF
start-up); repeats are interleaved so a change in machine load hits every configuration alike, and
the median is reported. The measured step is Keras' own `train_step` run by `strategy.run` on the
next batch of the distributed real-MNIST dataset, gradients all-reduced, the loss fetched so the
step has finished when the clock stops; warm-up steps (tracing) are excluded.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SETUPS = {"logical_devices": (1, 2), "local_workers": (1, 2)}
COLUMNS = ["setup", "replicas", "intra_op_threads", "model", "per_replica_batch", "global_batch", "steps", "repeats",
           "images_per_sec", "images_per_sec_runs", "step_ms_p50", "step_ms_p90", "scaling_efficiency",
           "cpu_count", "load_avg_1m_start", "load_avg_1m_end", "tensorflow"]


def efficiency(images_per_sec_n: float, images_per_sec_1: float, replicas: int) -> float:
    """1.0 = perfect linear scaling; 0.5 on 2 replicas = no gain at all."""
    if images_per_sec_1 <= 0 or replicas < 1:
        raise ValueError(f"need a positive one-replica throughput and replicas >= 1, got "
                         f"{images_per_sec_1}, {replicas}")
    return images_per_sec_n / (replicas * images_per_sec_1)


def measure_here(args: argparse.Namespace) -> dict | None:
    """Time the distributed train step in this process; the row (chief only) or None."""
    import tensorflow as tf

    from bench.distribute.strategy import make_strategy, topology

    if args.intra_op_threads:  # threads per process, like the devices: fixed before TF starts
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices)
    import keras

    from bench.distribute.step import distributed_train_step
    from bench.distribute.worker import SEED, build_model, train_dataset
    from bench.measure.timing import summarize, time_calls

    replicas = strategy.num_replicas_in_sync
    global_batch = args.per_replica_batch * replicas
    ds, data = train_dataset(args.dataset, global_batch, global_batch * 8)  # 8 batches, repeated
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = build_model(args.model, tuple(data.image_shape), data.num_classes)
        model.compile(optimizer=keras.optimizers.SGD(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    step = distributed_train_step(strategy, model, ds)
    # Fixed step counts: every worker must run exactly as many collectives as the others.
    timing = time_calls(lambda _: step(), None, warmup=args.warmup, repeats=args.steps)
    if not topology(strategy).is_chief:
        return None
    summary = summarize(timing.samples_ns, global_batch)
    return {"replicas": replicas, "global_batch": global_batch, "images_per_sec": summary["images_per_sec"],
            "step_ms_p50": summary["latency_ms_p50"], "step_ms_p90": summary["latency_ms_p90"]}


def _measure_command(args, strategy: str, cpu_devices: int | None, threads: int, row: str) -> list[str]:
    cmd = [sys.executable, "-m", "bench.harness.scaling", "measure", "--strategy", strategy,
           "--model", args.model, "--dataset", args.dataset, "--per-replica-batch", str(args.per_replica_batch),
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--intra-op-threads", str(threads),
           "--row", row]
    return cmd + (["--cpu-devices", str(cpu_devices)] if cpu_devices else [])


def run_one(args, setup: str, replicas: int, threads: int, scratch: str) -> dict:
    from bench.distribute.launch import launch

    row = os.path.join(scratch, f"{setup}-{replicas}-t{threads}.json")
    if os.path.exists(row):
        os.remove(row)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if setup == "logical_devices":
        proc = subprocess.run(_measure_command(args, "mirrored", replicas, threads, row), env=env, capture_output=True,
                              text=True, timeout=args.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{setup} x{replicas} failed:\n{proc.stderr[-3000:]}")
    else:
        job = launch(_measure_command(args, "multiworker", None, threads, row), replicas, timeout_s=args.timeout,
                     log_dir=os.path.join(scratch, f"logs-{setup}-{replicas}-t{threads}"))
        if not job.ok:
            raise RuntimeError(f"{setup} x{replicas} failed:\n{job.message}")
    with open(row) as f:
        return json.load(f)


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def measure_all(args) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="imgcls-scaling-") as scratch:  # rows and logs of single runs
        return _measure_all(args, scratch)


def _measure_all(args, scratch: str) -> list[dict]:
    import tensorflow as tf  # only for the version string; the measurements run in subprocesses

    configs = [(s, n, t) for t in args.intra_op_threads for s in args.setups for n in SETUPS[s]]
    runs: dict[tuple[str, int, int], list[dict]] = {c: [] for c in configs}
    start_load = load_avg()
    for rep in range(args.repeats):
        for setup, n, t in configs:  # interleaved: load drift hits every configuration alike
            row = run_one(args, setup, n, t, scratch)
            runs[(setup, n, t)].append(row)
            print(f"repeat {rep + 1}/{args.repeats} {setup} x{n} threads {t or 'default'}: "
                  f"{row['images_per_sec']:.0f} images/s (load {load_avg()})", flush=True)
    end_load = load_avg()
    rows = []
    for setup, n, t in configs:
        got = runs[(setup, n, t)]
        ips = statistics.median(r["images_per_sec"] for r in got)
        one = statistics.median(r["images_per_sec"] for r in runs[(setup, 1, t)])
        rows.append({
            "setup": setup, "replicas": n, "intra_op_threads": t or "default", "model": args.model, "per_replica_batch": args.per_replica_batch,
            "global_batch": got[0]["global_batch"], "steps": args.steps, "repeats": args.repeats,
            "images_per_sec": round(ips, 1),
            "images_per_sec_runs": " ".join(f"{r['images_per_sec']:.1f}" for r in got),
            "step_ms_p50": round(statistics.median(r["step_ms_p50"] for r in got), 2),
            "step_ms_p90": round(statistics.median(r["step_ms_p90"] for r in got), 2),
            "scaling_efficiency": round(efficiency(ips, one, n), 3),
            "cpu_count": os.cpu_count(), "load_avg_1m_start": start_load, "load_avg_1m_end": end_load,
            "tensorflow": tf.__version__,
        })
    return rows


def write_results(rows: list[dict], out: str) -> tuple[str, str]:
    os.makedirs(out, exist_ok=True)
    csv_path, md_path = os.path.join(out, "scaling.csv"), os.path.join(out, "scaling.md")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    r0 = rows[0]
    lines = [
        "# Scaling efficiency on one host",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node() or 'this host'}: "
        f"{r0['cpu_count']} CPU cores, no GPU, TensorFlow {r0['tensorflow']}, model `{r0['model']}` on real MNIST, "
        f"{r0['per_replica_batch']} images per replica per step, median of {r0['repeats']} interleaved runs of "
        f"{r0['steps']} timed steps. Load average (1 min) {r0['load_avg_1m_start']} at the start, "
        f"{r0['load_avg_1m_end']} at the end.",
        "",
        "| setup | replicas | intra-op threads per process | global batch | images/s | step ms p50 | step ms p90 "
        "| scaling efficiency | runs (images/s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['replicas']} | {r['intra_op_threads']} | {r['global_batch']} | "
                     f"{r['images_per_sec']:.0f} | "
                     f"{r['step_ms_p50']:.1f} | {r['step_ms_p90']:.1f} | {r['scaling_efficiency']:.2f} | "
                     f"{r['images_per_sec_runs']} |")
    lines += [
        "",
        "Scaling efficiency = images/s with N replicas / (N x images/s with 1), same set-up, same per-replica batch.",
        "",
        "Read these numbers for what they are: **2 logical CPU devices on 2 cores share the same cores**, and",
        "so do 2 worker processes on one host. TensorFlow already spreads one replica's ops over both cores,",
        "so a second replica adds no compute; what the table shows is the price of the distributed path",
        "(splitting the batch, all-reducing the gradients, and for workers the gRPC collectives through",
        "127.0.0.1 and two processes competing for two cores). Real scaling needs one replica per GPU or",
        "per host; measure it there with the same command (docs/distributed.md).",
        "",
        "Intra-op threads per process: `default` lets every process use all cores (2 processes on 2",
        "cores then compete for them); `1` gives each process one thread, so one replica uses one core",
        "and a second replica (logical device or worker) can use the second core: that is the closest",
        "this host comes to adding hardware, and its efficiency is measured against one replica on one",
        "thread, not against the multi-threaded baseline.",
    ]
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return csv_path, md_path


def parse_args(argv: list[str]) -> argparse.Namespace:
    measure = bool(argv) and argv[0] == "measure"
    p = argparse.ArgumentParser(prog="python -m bench distribute scaling" + (" measure" if measure else ""),
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny_cnn", help="zoo model name (default tiny_cnn)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--per-replica-batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (the first one traces)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per run")
    if measure:
        p.add_argument("--strategy", required=True, choices=("default", "mirrored", "multiworker"))
        p.add_argument("--cpu-devices", type=int, default=None)
        p.add_argument("--row", required=True, help="JSON file the chief writes its row to")
        p.add_argument("--intra-op-threads", type=int, default=0, help="threads per process (0: TF default)")
    else:
        p.add_argument("--out", default="out/distribute",
                       help="default out/distribute (untracked); results/distribute holds the committed figures")
        p.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--intra-op-threads", type=int, nargs="+", default=[0],
                       help="threads per process to measure, 0 = TensorFlow's default (all cores)")
        p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = p.parse_args(argv[1:] if measure else argv)
    args.command = "measure" if measure else "all"
    if args.per_replica_batch < 1 or args.steps < 1 or args.warmup < 1:
        p.error("--per-replica-batch, --steps and --warmup must be >= 1 (warm-up traces the step)")
    if not measure and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "measure":
        row = measure_here(args)
        if row is not None:
            from bench.plumbing.files import atomic_write_text

            atomic_write_text(args.row, json.dumps(row))
        return 0
    try:
        rows = measure_all(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in write_results(rows, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
