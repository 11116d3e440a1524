"""Throughput at batch 1 as a server gets it: one request on every core, or one worker per core.

    python -m bench streams artifacts/catdog_efficientnet_lite0_finetune --out results/streams/catdog

A latency benchmark runs one request at a time. A server answering single images can instead run
one worker per core, each with one thread, and a small model often gains more that way, because
its layers are too small to split well over cores (int8 ones even less than float32). This measures
both on the files of one verified export artifact (its manifest's status must be `passed`, so every
format was checked against the Keras model before it is timed here), in these layouts:

- `1x all`: one worker, one request at a time, every core (the latency benchmark's setting);
- `1x1`: one worker, one thread (the per-core cost);
- `Nx1`: N worker processes, each pinned to its own core with one thread, all started together.

Workers are processes, not threads: no engine then waits on Python's GIL, and each one's runtime
sees one core (`os.sched_setaffinity`), as in a server with a worker per core. Throughput is every
worker's finished calls over the common measuring window; latencies are per call (p50, p90).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure.engines import ENGINES

# engine -> precision -> the export format whose file it runs: the benchmark's own CPU artifact engines
FORMATS = {name: dict(ENGINES[name].formats) for name in ("onnxruntime", "openvino", "litert")}


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int      # per worker; 0 = every core the worker may use

    @property
    def name(self) -> str:
        return f"{self.workers}x{self.threads or 'all'}"


def layouts(cores: int) -> list[Layout]:
    out = [Layout(1, 0), Layout(1, 1)]
    return out + ([Layout(cores, 1)] if cores > 1 else [])


def verified_manifest(artifact: Path) -> dict[str, Any]:
    path = Path(artifact) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a directory written by `python -m export`")
    manifest = json.loads(path.read_text())
    if manifest.get("status") != "passed":
        raise ValueError(f"{artifact} is not a verified artifact (manifest status {manifest.get('status')!r}): "
                         "only files that passed export's checks are timed")
    return manifest


def _worker(path: str, engine: str, precision: str, threads: int, core: int | None, x_path: str,
            warmup: int, seconds: float, barrier, results) -> None:
    """Opens the file, warms up, waits for the other workers, then times calls for `seconds` with
    the benchmark's one timer (bench.measure.timing)."""
    from bench.measure.timing import time_calls

    started: list[int] = []

    def start_together():  # between warm-up and the first timed call, outside the timed region
        barrier.wait(timeout=600)
        started.append(time.perf_counter_ns())

    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        from export.runtimes import STATIC_SHAPES, open_session

        extra = {"batch": 1} if engine in STATIC_SHAPES else {}
        session = open_session(path, engine, precision, threads, **extra)
        timing = time_calls(session.main, np.load(x_path), warmup=warmup, time_budget_s=seconds, min_repeats=1,
                            on_warmed_up=start_together)
    except Exception as exc:  # reported by the parent as this layout's reason; the others stop waiting
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        return
    samples = timing.samples_ns.tolist()
    # the calls follow each other: each one ends where the sum of those before it ends
    results.put({"start_ns": started[0], "end_ns": started[0] + int(sum(samples)), "samples_ns": samples,
                 "threads_used": session.threads})


def measure(path: Path, engine: str, precision: str, layout: Layout, x: np.ndarray, workdir: Path, *,
            warmup: int = 20, seconds: float = 5.0) -> dict[str, Any]:
    """One layout of one engine and precision: `layout.workers` processes, started together."""
    cores = sorted(os.sched_getaffinity(0))
    if layout.workers > len(cores):
        raise ValueError(f"{layout.workers} workers need {layout.workers} cores; this process may use {len(cores)}")
    x_path = workdir / "input.npy"
    np.save(x_path, np.ascontiguousarray(x, dtype=np.float32))
    ctx = mp.get_context("spawn")   # no fork of a process that holds runtime thread pools
    barrier, results = ctx.Barrier(layout.workers), ctx.Queue()
    pinned = layout.workers > 1 or layout.threads == 1
    procs = [ctx.Process(target=_worker, args=(str(path), engine, precision, layout.threads,
                                               cores[i] if pinned else None, str(x_path), warmup, seconds,
                                               barrier, results))
             for i in range(layout.workers)]
    for p in procs:
        p.start()
    got: list[dict[str, Any]] = []
    try:
        while len(got) < len(procs):
            try:
                got.append(results.get(timeout=5))
            except queue.Empty:  # a worker killed outright (out of memory, a crash) reports nothing
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process died (exit code {dead[0]}) before reporting") from None
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = [g["error"] for g in got if "error" in g]
    if errors:
        raise RuntimeError(errors[0])
    # the window every worker was measuring in: from the last start to the first end
    first, last = max(g["start_ns"] for g in got), min(g["end_ns"] for g in got)
    window_ns = last - first
    ends = [g["start_ns"] + np.cumsum(np.asarray(g["samples_ns"], dtype=np.int64)) for g in got]
    calls = int(sum(np.count_nonzero((e > first) & (e <= last)) for e in ends))
    ms = np.concatenate([np.asarray(g["samples_ns"], dtype=np.float64) for g in got]) / 1e6
    return {"engine": engine, "precision": precision, "layout": layout.name, "workers": layout.workers,
            "threads_per_worker": got[0]["threads_used"], "batch_size": int(x.shape[0]),
            "images_per_sec": round(calls * x.shape[0] / (window_ns / 1e9), 1),
            "latency_ms_p50": round(float(np.percentile(ms, 50)), 4),
            "latency_ms_p90": round(float(np.percentile(ms, 90)), 4),
            "calls": int(sum(len(g["samples_ns"]) for g in got)), "window_s": round(window_ns / 1e9, 3)}


def test_image(manifest: dict[str, Any]) -> np.ndarray:
    """The first test image of the artifact's dataset, prepared as export's predict prepares one."""
    from bench.data import load_dataset
    from export.predict import prepare

    pre = manifest["preprocessing"]
    x = load_dataset(manifest["dataset"]).numpy("test")[0][0].astype("float32") * np.float32(pre["scale"])
    return prepare(x, pre)[None]


def run(artifact: Path, out: Path, engines: list[str] | None = None, seconds: float = 5.0,
        warmup: int = 20) -> list[dict[str, Any]]:
    """Every engine and precision whose file the artifact holds, in every layout; rows are written
    to out/streams.json after each one (an interrupted run keeps them), then out/streams.md."""
    from bench.plumbing.environment import collect, machine_speed
    from bench.plumbing.files import atomic_write_json
    from export.runtimes import PrecisionUnavailable, RuntimeUnavailable

    manifest = verified_manifest(artifact)
    x = test_image(manifest)
    out.mkdir(parents=True, exist_ok=True)
    env = {**collect(), "machine_speed": machine_speed()}
    cores = len(os.sched_getaffinity(0))
    rows: list[dict[str, Any]] = []
    for engine, precisions in FORMATS.items():
        if engines and engine not in engines:
            continue
        for precision, fmt in precisions.items():
            if fmt not in manifest["formats"]:
                continue
            path = Path(artifact) / manifest["formats"][fmt]["file"]
            for layout in layouts(cores):
                try:
                    row = measure(path, engine, precision, layout, x, out, warmup=warmup, seconds=seconds)
                    row["status"], row["reason"] = "ok", ""
                except (PrecisionUnavailable, RuntimeUnavailable, RuntimeError, ValueError) as exc:
                    row = {"engine": engine, "precision": precision, "layout": layout.name, "status": "skipped",
                           "reason": str(exc)[:300]}
                row["format"] = fmt
                rows.append(row)
                print(f"{engine} {precision} {layout.name}: " + (f"{row['images_per_sec']} images/s, p50 "
                      f"{row['latency_ms_p50']} ms" if row["status"] == "ok" else row["reason"]), flush=True)
                atomic_write_json(out / "streams.json", {"artifact": str(artifact), "model": manifest.get("model"),
                                                        "recipe": manifest.get("recipe"), "environment": env,
                                                        "rows": rows}, indent=2)
    (out / "streams.md").write_text(report_md(rows, manifest, env, artifact))
    (out / "input.npy").unlink(missing_ok=True)
    return rows


def report_md(rows: list[dict[str, Any]], manifest: dict[str, Any], env: dict[str, Any], artifact: Path) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    ref = {r["layout"]: r["images_per_sec"] for r in ok if r["engine"] == "onnxruntime" and r["precision"] == "float32"}
    best_ref = max(ref.values()) if ref else None
    speed = env.get("machine_speed") or {}
    lines = [f"# Throughput at batch 1: {manifest.get('recipe') or manifest.get('model')} ({artifact})", "",
             f"CPU: {env.get('cpu_model')}, {len(os.sched_getaffinity(0))} cores, float32 matmul "
             f"{speed.get('matmul_gflops')} GFLOP/s. Layouts: `1xall` one worker on every core, `1x1` one worker "
             "with one thread, `Nx1` N workers each pinned to its own core. Every file passed export's checks "
             "(manifest status `passed`). `vs_ort_fp32_same_layout`: throughput over float32 onnxruntime's in the "
             "same layout; `vs_best_ort_fp32`: over float32 onnxruntime's best layout.", "",
             "| engine | precision | layout | images/s | p50 ms | p90 ms | vs_ort_fp32_same_layout | vs_best_ort_fp32 | calls |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['engine']} | {r['precision']} | {r['layout']} | {r['status']}: {r['reason']} | | | | | |")
            continue
        same = r["images_per_sec"] / ref[r["layout"]] if r["layout"] in ref else float("nan")
        best = r["images_per_sec"] / best_ref if best_ref else float("nan")
        lines.append(f"| {r['engine']} | {r['precision']} | {r['layout']} | {r['images_per_sec']:.1f} | "
                     f"{r['latency_ms_p50']:.3f} | {r['latency_ms_p90']:.3f} | {same:.2f} | {best:.2f} | {r['calls']} |")
    if ok:
        top = max(ok, key=lambda r: r["images_per_sec"])
        lines += ["", f"Highest throughput: {top['engine']} {top['precision']} in layout {top['layout']}, "
                  f"{top['images_per_sec']:.1f} images/s" + (f", {top['images_per_sec'] / best_ref:.2f}x float32 "
                                                            f"onnxruntime in its best layout" if best_ref else "") + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m bench streams", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path, help="a directory written by `python -m export` (manifest status passed)")
    p.add_argument("--out", type=Path, required=True, help="folder for streams.json and streams.md")
    p.add_argument("--engines", default=",".join(FORMATS), help="comma-separated, of: " + ", ".join(FORMATS))
    p.add_argument("--seconds", type=float, default=5.0, help="measuring window per layout (default %(default)s)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per worker (default %(default)s)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(engines) - set(FORMATS))
    if unknown:
        p.error(f"unknown engine(s) {unknown}; valid: {', '.join(FORMATS)}")
    if not args.seconds > 0:
        p.error(f"--seconds must be > 0, got {args.seconds}")
    try:
        verified_manifest(args.artifact)
    except (FileNotFoundError, ValueError) as exc:
        p.error(str(exc))
    run(args.artifact, args.out, engines, args.seconds, args.warmup)
    print((args.out / "streams.md").read_text())
    return 0
