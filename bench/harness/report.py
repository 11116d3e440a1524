"""report.md and PNG plots from results.csv + environment.json: tables, the fastest engine per model
and batch size, harness overhead, training real-pipeline/synthetic ratio, accuracy vs latency."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.plumbing.files import atomic_write_text
from bench.plumbing.tables import frame_table

OVERHEAD_TARGET_PCT = 2.0
PIPELINE_TARGET = 0.90


def load(out: str | Path) -> pd.DataFrame:
    from bench.harness.results import COLUMNS

    dtypes = {c: ("string" if t is str else "boolean" if t is bool else "float64") for c, t in COLUMNS.items()}
    dtypes["batch_size"] = "int64"
    df = pd.read_csv(Path(out) / "results.csv", dtype={c: d for c, d in dtypes.items() if d != "boolean"},
                     keep_default_na=False, na_values=[""])
    df["xla"] = df["xla"].astype(str).str.lower() == "true"
    return df


REFERENCE = ("keras_predict", "float32")    # the seed's model.predict: the baseline a user starts from
ONNX_FP32 = ("onnxruntime", "float32")


def _p50(g: pd.DataFrame, engine: str, precision: str) -> float:
    hit = g[(g["engine"] == engine) & (g["precision"] == precision)]
    return float(hit["latency_ms_p50"].min()) if len(hit) else float("nan")


def fastest_engines(infer: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset and batch size (all cores): the fastest engine and precision whose check
    passed (every ok row passed its check), with its speed-up over keras_predict and over float32
    onnxruntime (p50 ratios) and how it was checked."""
    rows = []
    infer = infer[infer["threads"].fillna(0) == 0]
    for (model, dataset, bs), g in infer.groupby(["model", "dataset", "batch_size"]):
        best = g.loc[g["latency_ms_p50"].idxmin()]
        base, ort = _p50(g, *REFERENCE), _p50(g, *ONNX_FP32)
        rows.append({"model": model, "dataset": dataset, "batch_size": bs, "fastest": best["engine"],
                     "precision": best["precision"], "p50_ms": best["latency_ms_p50"],
                     "keras_predict_p50_ms": base, "speedup_vs_keras_predict": base / best["latency_ms_p50"],
                     "speedup_vs_onnxruntime_fp32": ort / best["latency_ms_p50"], "verified": best["verified"]})
    return pd.DataFrame(rows)


def accuracy_costs(acc: pd.DataFrame) -> pd.DataFrame:
    """Per trained model (and its architecture), engine and precision: top-1 and the points it
    loses against the same model's float32 top-1 (through any float32 engine)."""
    if acc.empty:
        return pd.DataFrame()
    rows = []
    for (model, dataset), g in acc.groupby(["model", "dataset"]):
        base = g.loc[g["precision"] == "float32", "top1"]
        if base.empty:
            continue
        ref = float(base.median())
        for row in g.itertuples():
            rows.append({"model": model, "architecture": row.architecture, "dataset": dataset, "engine": row.engine,
                         "precision": row.precision, "top1": row.top1, "top1_float32": ref,
                         "cost_points": (ref - row.top1) * 100, "examples": row.examples,
                         "input_shape": row.input_shape})
    return pd.DataFrame(rows)


def all_costs(acc: pd.DataFrame, env: dict) -> pd.DataFrame:
    """The costs measured by this run's accuracy cells and those read from exports."""
    borrowed = pd.DataFrame((env.get("accuracy_evidence") or {}).get("rows") or [])
    frames = [c for c in (accuracy_costs(acc), borrowed) if len(c)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def chance_top1(dataset: str) -> float | None:
    """Top-1 of guessing on a known dataset's balanced test set (None for an image folder)."""
    from bench.data.sources import INFO

    info = INFO.get(str(dataset))
    return 1.0 / len(info.class_names) if info and info.class_names else None


# A checkpoint stands in for its architecture's accuracy cost only if it learned: below twice the
# chance top-1 (an equal-budget ResNet-50 stuck at 10% on CIFAR-10) it loses nothing to any
# precision because it knows nothing, which says nothing about the architecture.
LEARNED_OVER_CHANCE = 2.0


def ship_table(infer: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Per model and batch size: the fastest choice whose accuracy cost is known and at most 1 point:
    float32 rows (parity), reduced-precision rows judged by the accuracy rule on this trained model,
    or reduced-precision rows of an untrained model whose engine and precision cost at most 1 point
    on a trained checkpoint of the same architecture (its name is given)."""
    rows = []
    infer = infer[infer["threads"].fillna(0) == 0]
    for (model, dataset, bs), g in infer.groupby(["model", "dataset", "batch_size"]):
        base, ort = _p50(g, *REFERENCE), _p50(g, *ONNX_FP32)
        options = []
        for row in g.itertuples():
            cost, where = _cost_of(row, costs)
            if cost is not None and cost <= 1.0:
                options.append((row.latency_ms_p50, row, cost, where))
        if not options:
            continue
        p50, row, cost, where = min(options, key=lambda o: o[0])
        rows.append({"model": model, "batch_size": bs, "ship": row.engine, "precision": row.precision,
                     "p50_ms": p50, "speedup_vs_keras_predict": base / p50, "speedup_vs_onnxruntime_fp32": ort / p50,
                     "accuracy_cost_points": cost, "cost_measured_on": where})
    return pd.DataFrame(rows)


def _cost_of(row, costs: pd.DataFrame) -> tuple[float | None, str]:
    if row.precision == "float32":
        return 0.0, "parity with the float32 model"
    if costs.empty:
        return None, ""
    same = costs[(costs["engine"] == row.engine) & (costs["precision"] == row.precision)]
    own = same[same["model"] == row.model]
    if row.verified == "accuracy" and len(own):
        return float(own["cost_points"].iloc[0]), f"{row.model} (this model)"
    other = same[(same["architecture"] == row.architecture) & (same["model"] != row.model)]
    learned = [r for r in other.itertuples()
               if (chance := chance_top1(r.dataset)) is None or r.top1_float32 >= LEARNED_OVER_CHANCE * chance]
    if learned:
        worst = max(learned, key=lambda r: r.cost_points)
        return float(worst.cost_points), (f"{worst.model} ({row.architecture} trained on {worst.dataset} at "
                                          f"{worst.input_shape}, float32 top-1 {worst.top1_float32:.2%})")
    return None, ""


def pipeline_ratios(train: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "dataset", "precision", "xla", "batch_size"]
    wide = train.pivot_table(index=keys, columns="pipeline", values="images_per_sec").reset_index()
    if not {"synthetic", "real"} <= set(wide.columns):
        return pd.DataFrame()
    wide["real_over_synthetic"] = wide["real"] / wide["synthetic"]
    wide["meets_90pct"] = np.where(wide["real_over_synthetic"] >= PIPELINE_TARGET, "yes", "no")
    return wide[keys + ["synthetic", "real", "real_over_synthetic", "meets_90pct"]]


def write(out: str | Path) -> Path:
    """report.md (and its plots) in `out` from results.csv and environment.json."""
    out = Path(out)
    if not (out / "results.csv").exists():
        raise FileNotFoundError(f"no results.csv in {out}: run `python -m bench run --out {out}` first")
    df = load(out)
    # `package.module:function` models are shown by their function name
    df["model"] = df["model"].str.split(":").str[-1]
    env_path = out / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    ok = df[df["status"] == "ok"]
    infer, train, acc = (ok[ok["task"] == t] for t in ("infer", "train", "accuracy"))
    lines = [f"# Benchmark report: {env.get('profile', out.name)}", ""]
    lines += _machine(env) + _overhead(env) + _cells(df)
    lines += _inference(infer, acc, out, env) + _threads(infer) + _training(train, out) + _accuracy(acc, infer, out)
    lines += [COLUMNS_NOTE, ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _machine(env: dict) -> list[str]:
    versions = env.get("versions", {})
    gpus = ", ".join(f"{g.get('name')} (driver {g.get('driver', '?')})" for g in env.get("gpus", [])) or "none"
    flags = " ".join(env.get("cpu_flags") or []) or "none of AVX2/AVX-512/VNNI/BF16/AMX"
    lines = ["## Machine", "",
             f"- host `{env.get('hostname')}`, CPU {env.get('cpu_model')}, {env.get('cpu_count')} cores "
             f"(load average at start {env.get('load_average')}), GPU: {gpus}",
             f"- instruction sets that decide these results: {flags}",
             f"- TensorFlow {versions.get('tensorflow')}, Keras {versions.get('keras')}, onnxruntime "
             f"{versions.get('onnxruntime') or versions.get('onnxruntime-gpu')}, onnx {versions.get('onnx')}, "
             f"tf2onnx {versions.get('tf2onnx')}, OpenVINO {versions.get('openvino')}, ai-edge-litert "
             f"{versions.get('ai-edge-litert')}; commit {(env.get('git') or {}).get('commit')}",
             f"- command: `{' '.join(env.get('command', []))}`; started {env.get('started')}, "
             f"finished {env.get('finished')}", ""]
    peaks = env.get("peak_matmul_flops_per_sec") or {}
    if peaks:
        n = env.get("matmul_n")
        table = pd.DataFrame([{"engine_family": k.split(":")[0], "precision": k.split(":")[1],
                               "threads": int(k.split(":")[2]), "gops_per_sec": v / 1e9}
                              for k, v in sorted(peaks.items()) if k.count(":") == 2])
        if len(table):
            lines += [f"Roofs of `peak_fraction`: an {n}x{n} matmul on each engine in each precision and thread "
                      f"count (operations/s, a multiply-add counts 2):", "", frame_table(table), ""]
    return lines


def _overhead(env: dict) -> list[str]:
    overhead = env.get("harness_overhead")
    if not overhead:
        return []
    verdict = "meets" if overhead["overhead_pct"] < OVERHEAD_TARGET_PCT else "MISSES"
    iqr = overhead.get("overhead_pct_iqr")
    spread = f", interquartile range {iqr[0]:+.2f}% .. {iqr[1]:+.2f}%" if iqr else ""
    lines = ["## Harness overhead", "",
             f"{overhead['model']}: bare perf_counter loop {overhead['bare_ms_per_call']:.3f} ms/call, "
             f"harness {overhead['harness_ms_per_call']:.3f} ms/call -> overhead "
             f"**{overhead['overhead_pct']:+.2f}%** (median of {overhead['rounds']} paired rounds of "
             f"{overhead['calls_per_round']} calls{spread}; target < {OVERHEAD_TARGET_PCT}%: {verdict}).", ""]
    if "timer_cost_ns_per_call" in overhead:
        lines += [f"Noise-free view: the timing loop adds {overhead['timer_cost_ns_per_call']:.0f} ns to each "
                  f"measured call (measured on a no-op), {overhead['timer_cost_pct']:.3f}% of this model's "
                  f"latency.", ""]
    return lines


def _cells(df: pd.DataFrame) -> list[str]:
    counts = df["status"].value_counts().to_dict()
    lines = ["## Cells", "", f"{len(df)} rows: " + ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
    bad = df[df["status"] != "ok"]
    if len(bad):
        lines += [frame_table(bad[["task", "model", "dataset", "engine", "precision", "batch_size", "pipeline",
                                   "status", "reason"]]), ""]
    return lines


def _inference(infer: pd.DataFrame, acc: pd.DataFrame, out: Path, env: dict) -> list[str]:
    from bench.harness import plots

    if infer.empty:
        return []
    lines = ["## Inference: the fastest verified engine per model and batch size", "",
             "Every engine was checked against the float32 Keras model on real test images before it was timed "
             "(`verified`: parity within export's tolerance; accuracy: the top-1 drop of a trained model not shown "
             "above 1 point; agreement: an untrained model in reduced precision, top-1 agreement recorded, not "
             "judged). All cores.", "", frame_table(fastest_engines(infer)), ""]
    ship = ship_table(infer, all_costs(acc, env))
    if len(ship):
        lines += ["## What to ship", "",
                  "The fastest engine and precision per model and batch size whose accuracy cost is measured and at "
                  "most 1 point: on the model itself (float32 parity, or the accuracy rule on a trained model), or, "
                  "for a model timed with untrained weights, on a trained checkpoint of the same architecture.", "",
                  frame_table(ship), ""]
    evidence = env.get("accuracy_evidence") or {}
    if evidence.get("rows"):
        borrowed = pd.DataFrame(evidence["rows"])
        lines += ["Accuracy costs read from exports (each precision's top-1 on the whole test split, measured "
                  "by `export` against the same checkpoint in float32; an export the accuracy rule or float32 parity "
                  "refused (`export_status` failed) measured them all the same; a checkpoint counts for its "
                  f"architecture only at or above {LEARNED_OVER_CHANCE:g}x the chance top-1):", "",
                  # reindex: a results folder written before export_status was recorded has no such column
                  frame_table(borrowed.reindex(columns=["model", "architecture", "dataset", "input_shape", "engine",
                                                        "precision", "top1", "top1_float32", "cost_points", "examples",
                                                        "export_status", "source"]),
                              floats="{:.4g}"), ""]
    lines += [f"Not read: {note}" for note in evidence.get("missing") or []] + ([""] if evidence.get("missing") else [])
    lines += ["## Inference latency", "",
              frame_table(infer.sort_values(["model", "dataset", "batch_size", "engine", "precision", "threads"])[
                  ["model", "dataset", "batch_size", "engine", "precision", "threads_used", "latency_ms_p50",
                   "latency_ms_p90", "latency_ms_p99", "latency_ms_std", "repeats", "images_per_sec",
                   "peak_fraction", "verified", "executed_precision", "peak_memory_mb"]]), "",
              "![latency vs batch size](latency_vs_batch.png)", "",
              "![throughput vs batch size](throughput_vs_batch.png)", ""]
    checks = infer.drop_duplicates(["model", "dataset", "engine", "precision"])
    lines += ["## Checks", "", "What each engine and precision was checked on before it was timed.", "",
              frame_table(checks[["model", "dataset", "engine", "precision", "verified", "check"]]), ""]
    converted = infer.dropna(subset=["conversion_s"]) if "conversion_s" in infer else infer.iloc[:0]
    if len(converted):
        conv = (converted.groupby(["model", "dataset", "input_shape", "engine", "artifact_format"], as_index=False,
                                  dropna=False)["conversion_s"].first())
        lines += ["## Export and conversion time", "",
                  "Seconds to make each file with export's converters (SavedModel, tf2onnx, OpenVINO IR, the TFLite "
                  "converter, int8 calibration), once per model and format, outside every timed loop.", "",
                  frame_table(conv), ""]
    plots.lines(infer, "latency_ms_p50", "latency p50 (ms)", out / "latency_vs_batch.png", logy=True)
    plots.lines(infer, "images_per_sec", "images/sec", out / "throughput_vs_batch.png", logy=True)
    return lines


def _threads(infer: pd.DataFrame) -> list[str]:
    """One thread against every core, where a model was measured both ways."""
    if infer.empty or infer["threads"].fillna(0).nunique() < 2:
        return []
    keys = ["model", "dataset", "batch_size", "engine", "precision"]
    wide = infer.pivot_table(index=keys, columns="threads_used", values="latency_ms_p50").reset_index()
    counts = sorted(c for c in wide.columns if c not in keys)
    if len(counts) < 2:
        return []
    wide = wide.rename(columns={c: f"p50_ms_{int(c)}_threads" for c in counts})
    wide["speedup_all_vs_1"] = wide[f"p50_ms_{int(counts[0])}_threads"] / wide[f"p50_ms_{int(counts[-1])}_threads"]
    # a small model spreads over cores worse in int8 than in float32, so its gain over float32
    # onnxruntime depends on the thread count: one thread is a server running one request per core
    ort = wide[(wide["engine"] == "onnxruntime") & (wide["precision"] == "float32")]
    ort = ort[["model", "dataset", "batch_size", *[f"p50_ms_{int(c)}_threads" for c in counts]]]
    wide = wide.merge(ort, on=["model", "dataset", "batch_size"], how="left", suffixes=("", "_ort"))
    for c in counts:
        col = f"p50_ms_{int(c)}_threads"
        wide[f"vs_onnxruntime_fp32_{int(c)}_threads"] = wide[f"{col}_ort"] / wide[col]
    wide = wide.drop(columns=[f"p50_ms_{int(c)}_threads_ort" for c in counts])
    return ["## Threads", "", "p50 latency with one thread and with every core, per engine and precision, and the "
            "speed-up over float32 onnxruntime at the same thread count.", "",
            frame_table(wide.dropna(subset=[f"p50_ms_{int(c)}_threads" for c in counts])), ""]


def _training(train: pd.DataFrame, out: Path) -> list[str]:
    if train.empty:
        return []
    ratios = pipeline_ratios(train)
    lines = ["## Training throughput", "",
             frame_table(train[["model", "dataset", "precision", "xla", "batch_size", "pipeline", "images_per_sec",
                                "latency_ms_p50", "repeats", "peak_fraction", "peak_memory_mb"]]), ""]
    if len(ratios):
        lines += ["Real input pipeline against synthetic in-memory batches (target: real >= 90% of synthetic "
                  "for ResNet-18 on CIFAR-10 on CPU, in cpu-full):", "", frame_table(ratios), ""]
    lines += ["![training synthetic vs real](train_synthetic_vs_real.png)", ""]
    from bench.harness import plots

    plots.training(train, out / "train_synthetic_vs_real.png")
    return lines


def _accuracy(acc: pd.DataFrame, infer: pd.DataFrame, out: Path) -> list[str]:
    from bench.harness import plots

    if acc.empty:
        return []
    lines = ["## Accuracy: what each precision costs", "",
             "Top-1 on the test split through each engine in each precision; `cost_points` is the top-1 lost against "
             "the same model in float32.", "",
             frame_table(accuracy_costs(acc), floats="{:.4g}"), ""]
    points = []
    smallest = int(infer["batch_size"].min()) if len(infer) else 1  # latency: the smallest batch measured
    for (model, dataset), a in acc.groupby(["model", "dataset"]):
        lat = infer[(infer["model"] == model) & (infer["dataset"] == dataset) & (infer["batch_size"] == smallest)
                    & (infer["threads"].fillna(0) == 0)]
        for row in a.itertuples():
            hit = lat[(lat["engine"] == row.engine) & (lat["precision"] == row.precision)]
            if len(hit):
                points.append({"model": model, "engine": row.engine, "precision": row.precision, "top1": row.top1,
                               "latency_ms_p50": float(hit["latency_ms_p50"].min())})
    if plots.accuracy_vs_latency(pd.DataFrame(points), out / "accuracy_vs_latency.png", smallest):
        front = pd.concat([plots.pareto_front(g) for _, g in pd.DataFrame(points).groupby("model")])
        lines += [f"The choices a user has, per trained model: test top-1 against batch-{smallest} latency; the Pareto front "
                  "(no other choice is both faster and more accurate):", "", frame_table(front, floats="{:.4g}"), "",
                  "![accuracy vs latency](accuracy_vs_latency.png)", ""]
    return lines


COLUMNS_NOTE = (
    "Columns and units: latencies in ms per batch (p50/p90/p99 over the timed calls, warm-up excluded); "
    "`images_per_sec` = batch / mean latency; `peak_fraction` = achieved operations/s over the roof of the "
    "same engine, precision and threads (an int8 row against an int8 matmul); training FLOPs count 3x the "
    "forward pass; `precision` is what the engine computes in, set explicitly (`executed_precision`: what "
    "OpenVINO reports its convolutions and matrix multiplies ran in); `threads` as asked (0 = every core), "
    "`threads_used` as run; `peak_memory_mb` is the "
    "peak RSS of the whole benchmark process sampled during the cell (the first cell of an engine and model "
    "also holds its export/conversion). The roof is one measured n x n matmul, not the hardware's "
    "peak, and the profiler's FLOPs include cheap elementwise work (BatchNorm, ReLU, adds), so a "
    "`peak_fraction` slightly above 1 is possible on a quiet machine; on a busy one the roof itself "
    "may have been measured low.")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from bench.harness import compare
    from bench.plumbing.files import OutputPathError

    p = argparse.ArgumentParser(prog="imgcls report", description="One results folder written by `imgcls run`: "
                                "re-render its report.md and plots. Several folders (or --out): merge them by "
                                "environment id into one comparison of the same cells across machines "
                                "(comparison.md) and a CSV in timm's benchmark column names (timm_benchmark.csv).")
    p.add_argument("dirs", nargs="+", type=Path, help="results folder(s) holding results.csv and environment.json")
    p.add_argument("--out", type=Path, help="where the comparison of several folders goes (default out/machines)")
    args = p.parse_args(argv)
    try:
        if len(args.dirs) == 1 and args.out is None:
            print(f"report: {write(args.dirs[0])}")
            return 0
        md, csv_path = compare.write(args.dirs, args.out or Path("out") / "machines")
        print(f"comparison: {md}\ntimm columns: {csv_path}")
    except (FileNotFoundError, compare.CompareError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
