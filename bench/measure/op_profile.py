"""Where onnxruntime spends a call, per kind of operator: the float32 and int8 ONNX files of one
verified export artifact, side by side, from onnxruntime's own profiler.

    python -m bench op-profile artifacts/catdog_efficientnet_lite0_finetune --out results/op-profile/catdog

A reduced precision gains only where its kernels are faster. This says which layers keep a model's
int8 from gaining more: per kind (depthwise convolutions apart from the others, since their int8
and float32 kernels differ most), the kernel time per call in each file, its share, and how much
faster int8 runs it. One worker, one thread, pinned to one core (the per-core cost, as the streams
benchmark's `1x1` layout), on the artifact's first test image; warm-up calls are excluded.
onnxruntime's profiler adds a little time to every kernel, so compare the kinds' shares and
ratios, and take absolute times from `python -m bench streams`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# the precisions compared, and the export format whose onnxruntime file each one runs
FILES = {"float32": "onnx", "int8": "onnx_int8"}
CONVOLUTIONS = ("Conv", "FusedConv", "QLinearConv", "ConvInteger")
DEPTHWISE = "depthwise convolution"


def kinds_of(optimized) -> dict[str, str]:
    """node name -> its kind in the graph onnxruntime runs: a convolution with one input channel per
    group is depthwise, any other convolution is a convolution, the rest go by operator type."""
    out = {}
    for node in optimized.graph.node:
        kind = node.op_type
        if node.op_type in CONVOLUTIONS:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            kind = DEPTHWISE if group > 1 else "convolution"
        out[node.name] = kind
    return out


def kernel_times(events: list[dict[str, Any]], warmup: int) -> tuple[dict[str, float], int]:
    """{node name: microseconds per call} over the calls after the first `warmup`, from a profile's
    events (`model_run` spans and each node's `_kernel_time`), and the number of calls kept."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[warmup:]
    if not runs:
        raise ValueError(f"the profile holds no call after the {warmup} warm-up calls")
    spans = np.array([(r["ts"], r["ts"] + r["dur"]) for r in runs])
    total: dict[str, float] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = np.searchsorted(spans[:, 0], e["ts"], side="right") - 1
        if i >= 0 and e["ts"] <= spans[i, 1]:
            name = e["name"][: -len("_kernel_time")]
            total[name] = total.get(name, 0.0) + e["dur"]
    return {k: v / len(runs) for k, v in total.items()}, len(runs)


def profile(path: Path, x: np.ndarray, calls: int, warmup: int) -> dict[str, Any]:
    """One pinned single-thread session of `path`: microseconds per call by kind."""
    import onnx
    import onnxruntime as ort

    from export.runtimes import onnxruntime_session

    with tempfile.TemporaryDirectory(prefix="op-profile-") as tmp:
        optimized = os.path.join(tmp, "optimized.onnx")
        session = onnxruntime_session(str(path), threads=1, optimized_model=optimized, profile=os.path.join(tmp, "p"))
        feed = {session.get_inputs()[0].name: x}
        for _ in range(warmup + calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        kinds = kinds_of(onnx.load(optimized))
    per_node, kept = kernel_times(events, warmup)
    by_kind: dict[str, dict[str, float]] = {}
    for name, us in per_node.items():
        kind = by_kind.setdefault(kinds.get(name, "other"), {"us": 0.0, "nodes": 0})
        kind["us"] += us
        kind["nodes"] += 1
    return {"onnxruntime": ort.__version__, "calls": kept, "kinds": by_kind,
            "total_us": sum(k["us"] for k in by_kind.values())}


def run(artifact: Path, out: Path, calls: int = 200, warmup: int = 30) -> dict[str, Any]:
    from bench.measure.streams import test_image, verified_manifest
    from bench.plumbing.environment import collect, machine_speed
    from bench.plumbing.files import atomic_write_json

    manifest = verified_manifest(artifact)
    missing = [fmt for fmt in FILES.values() if fmt not in manifest["formats"]]
    if missing:
        raise ValueError(f"{artifact} holds no {', '.join(missing)} file: export it with --formats onnx,onnx_int8")
    x = test_image(manifest)
    core = sorted(os.sched_getaffinity(0))[0]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        files = {p: profile(Path(artifact) / manifest["formats"][fmt]["file"], x, calls, warmup)
                 for p, fmt in FILES.items()}
    finally:
        os.sched_setaffinity(0, before)
    result = {"artifact": str(artifact), "model": manifest.get("model"), "recipe": manifest.get("recipe"),
              "environment": {**collect(), "machine_speed": machine_speed()}, "threads": 1, "core": core,
              "precisions": files}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "op_profile.json", result, indent=2)
    (out / "op_profile.md").write_text(report_md(result))
    return result


def report_md(result: dict[str, Any]) -> str:
    f32, i8 = result["precisions"]["float32"], result["precisions"]["int8"]
    speed = result["environment"].get("machine_speed") or {}
    lines = [f"# Kernel time per call by operator kind: {result.get('recipe') or result.get('model')} "
             f"({result['artifact']})", "",
             f"onnxruntime {f32['onnxruntime']}, one thread pinned to core {result['core']}, batch 1, "
             f"{f32['calls']} profiled calls per file after warm-up; CPU {result['environment'].get('cpu_model')}, "
             f"float32 matmul {speed.get('matmul_gflops')} GFLOP/s. Times include the profiler's own overhead: "
             "compare shares and ratios.", "",
             "| kind | float32 us | float32 share | int8 us | int8 share | float32 / int8 |",
             "|---|---:|---:|---:|---:|---:|"]
    kinds = sorted(set(f32["kinds"]) | set(i8["kinds"]),
                   key=lambda k: -(f32["kinds"].get(k, {}).get("us", 0) + i8["kinds"].get(k, {}).get("us", 0)))
    for kind in kinds:
        a, b = f32["kinds"].get(kind, {}).get("us"), i8["kinds"].get(kind, {}).get("us")
        cell = lambda us, tot: (f"{us:.0f} | {100 * us / tot:.1f}%" if us is not None else "- | -")  # noqa: E731
        ratio = f"{a / b:.2f}x" if a and b else "-"
        lines.append(f"| {kind} | {cell(a, f32['total_us'])} | {cell(b, i8['total_us'])} | {ratio} |")
    lines.append(f"| all kernels | {f32['total_us']:.0f} | 100% | {i8['total_us']:.0f} | 100% | "
                 f"{f32['total_us'] / i8['total_us']:.2f}x |")
    dw32, dw8 = (p["kinds"].get(DEPTHWISE, {}).get("us", 0.0) for p in (f32, i8))
    if dw32 and dw8:
        rest32, rest8 = f32["total_us"] - dw32, i8["total_us"] - dw8
        lines += ["", f"Depthwise convolutions run {dw32 / dw8:.2f}x faster in int8, everything else {rest32 / rest8:.2f}x."]
        room = f32["total_us"] / 2 - dw8
        lines.append(f"For int8 to take half float32's kernel time, everything else would have to run "
                     + (f"{rest32 / room:.2f}x faster than in float32." if room > 0 else
                        "in no time at all: the depthwise convolutions alone take more than half."))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m bench op-profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path, help="a directory written by `python -m export` with onnx and onnx_int8")
    p.add_argument("--out", type=Path, required=True, help="folder for op_profile.json and op_profile.md")
    p.add_argument("--calls", type=int, default=200, help="profiled calls per file (default %(default)s)")
    p.add_argument("--warmup", type=int, default=30, help="unprofiled calls first (default %(default)s)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.calls < 1 or args.warmup < 0:
        p.error(f"--calls must be >= 1 and --warmup >= 0, got {args.calls} and {args.warmup}")
    try:
        run(args.artifact, args.out, args.calls, args.warmup)
    except (FileNotFoundError, ValueError) as exc:
        p.error(str(exc))
    print((args.out / "op_profile.md").read_text())
    return 0
