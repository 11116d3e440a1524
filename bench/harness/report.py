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


def fastest_engines(infer: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset, precision and batch size: the engine with the lowest p50 and its speed-up
    over keras_predict (p50 ratio)."""
    rows = []
    for (model, dataset, precision, bs), g in infer.groupby(["model", "dataset", "precision", "batch_size"]):
        best = g.loc[g["latency_ms_p50"].idxmin()]
        base = g.loc[g["engine"] == "keras_predict", "latency_ms_p50"]
        ratio = float(base.iloc[0] / best["latency_ms_p50"]) if len(base) else float("nan")
        rows.append({"model": model, "dataset": dataset, "precision": precision, "batch_size": bs,
                     "fastest": best["engine"], "p50_ms": best["latency_ms_p50"],
                     "keras_predict_p50_ms": float(base.iloc[0]) if len(base) else float("nan"),
                     "speedup_vs_keras_predict": ratio})
    return pd.DataFrame(rows)


def pipeline_ratios(train: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "dataset", "precision", "xla", "batch_size"]
    wide = train.pivot_table(index=keys, columns="pipeline", values="images_per_sec").reset_index()
    if not {"synthetic", "real"} <= set(wide.columns):
        return pd.DataFrame()
    wide["real_over_synthetic"] = wide["real"] / wide["synthetic"]
    wide["meets_90pct"] = np.where(wide["real_over_synthetic"] >= PIPELINE_TARGET, "yes", "no")
    return wide[keys + ["synthetic", "real", "real_over_synthetic", "meets_90pct"]]


def _plot_lines(df: pd.DataFrame, value: str, ylabel: str, path: Path, logy: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(df.groupby(["model", "dataset", "precision"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, ((model, dataset, precision), g) in zip(axes[0], groups):
        for engine, e in g.groupby("engine"):
            e = e.sort_values("batch_size")
            ax.plot(e["batch_size"], e[value], marker="o", label=engine)
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"{model} / {dataset} / {precision}", fontsize=9)
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_accuracy_vs_latency(acc: pd.DataFrame, infer: pd.DataFrame, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if acc.empty or infer.empty:
        return False
    bs = infer["batch_size"].min()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    plotted = False
    for (model, dataset), a in acc.groupby(["model", "dataset"]):
        top1 = a["top1"].max()
        lat = infer[(infer["model"] == model) & (infer["dataset"] == dataset) & (infer["batch_size"] == bs)]
        for row in lat.itertuples():
            ax.scatter(row.latency_ms_p50, top1, label=f"{model} {row.engine}")
            plotted = True
    if not plotted:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel(f"latency p50 at batch {bs} (ms)")
    ax.set_ylabel("top-1 on test split")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_training(train: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = train.assign(cell=train["model"] + " " + train["precision"] + " xla=" + train["xla"].map({True: "on", False: "off"})
                         + " bs=" + train["batch_size"].astype(str))
    wide = train.pivot_table(index="cell", columns="pipeline", values="images_per_sec")
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.7 * len(wide)))
    wide.plot.barh(ax=ax)
    ax.set_xlabel("training images/sec")
    ax.set_ylabel("")
    ax.set_title("training throughput: synthetic (in memory) vs real tf.data pipeline", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    lines += _inference(infer, out) + _training(train, out) + _accuracy(acc, infer, out) + [COLUMNS_NOTE, ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _machine(env: dict) -> list[str]:
    versions = env.get("versions", {})
    gpus = ", ".join(f"{g.get('name')} (driver {g.get('driver', '?')})" for g in env.get("gpus", [])) or "none"
    lines = ["## Machine", "",
             f"- host `{env.get('hostname')}`, CPU {env.get('cpu_model')}, {env.get('cpu_count')} cores "
             f"(load average at start {env.get('load_average')}), GPU: {gpus}",
             f"- TensorFlow {versions.get('tensorflow')}, Keras {versions.get('keras')}, onnxruntime "
             f"{versions.get('onnxruntime') or versions.get('onnxruntime-gpu')}, onnx {versions.get('onnx')}, "
             f"tf2onnx {versions.get('tf2onnx')}; commit {(env.get('git') or {}).get('commit')}",
             f"- command: `{' '.join(env.get('command', []))}`; started {env.get('started')}, "
             f"finished {env.get('finished')}", ""]
    peaks = env.get("peak_matmul_flops_per_sec") or {}
    if peaks:
        lines += [f"Peak float32 matmul rate ({env.get('matmul_n')}x{env.get('matmul_n')}), the roof for "
                  "`peak_fraction`: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in sorted(peaks.items())), ""]
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


def _inference(infer: pd.DataFrame, out: Path) -> list[str]:
    if infer.empty:
        return []
    lines = ["## Inference: fastest engine per model and batch size", "",
             frame_table(fastest_engines(infer)), "",
             "## Inference latency", "",
             frame_table(infer.sort_values(["model", "dataset", "precision", "batch_size", "engine"])[
                 ["model", "dataset", "precision", "batch_size", "engine", "latency_ms_p50", "latency_ms_p90",
                  "latency_ms_p99", "latency_ms_mean", "latency_ms_std", "repeats", "images_per_sec",
                  "peak_fraction", "peak_memory_mb"]]), "",
             "![latency vs batch size](latency_vs_batch.png)", "",
             "![throughput vs batch size](throughput_vs_batch.png)", ""]
    converted = infer.dropna(subset=["conversion_s"]) if "conversion_s" in infer else infer.iloc[:0]
    if len(converted):
        conv = (converted.groupby(["model", "dataset", "precision", "input_shape", "engine"], as_index=False)
                ["conversion_s"].first())
        lines += ["## Export and conversion time", "",
                  "Seconds to export the Keras model (SavedModel) or convert it with tf2onnx (ONNX), once per "
                  "model and engine, outside every timed loop.", "", frame_table(conv), ""]
    _plot_lines(infer, "latency_ms_p50", "latency p50 (ms)", out / "latency_vs_batch.png", logy=True)
    _plot_lines(infer, "images_per_sec", "images/sec", out / "throughput_vs_batch.png", logy=True)
    return lines


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
    _plot_training(train, out / "train_synthetic_vs_real.png")
    return lines


def _accuracy(acc: pd.DataFrame, infer: pd.DataFrame, out: Path) -> list[str]:
    if acc.empty:
        return []
    lines = ["## Accuracy", "", frame_table(acc[["model", "dataset", "engine", "top1", "top5", "examples",
                                                "checkpoint", "images_per_sec"]], floats="{:.4f}"), ""]
    if _plot_accuracy_vs_latency(acc, infer, out / "accuracy_vs_latency.png"):
        lines += ["![accuracy vs latency](accuracy_vs_latency.png)", ""]
    return lines


COLUMNS_NOTE = (
    "Columns and units: latencies in ms per batch (p50/p90/p99 over the timed calls, warm-up excluded); "
    "`images_per_sec` = batch / mean latency; `peak_fraction` = achieved FLOP/s / the same engine "
    "family's large-matmul rate; training FLOPs count 3x the forward pass; `peak_memory_mb` is the "
    "peak RSS of the whole benchmark process sampled during the cell (the first cell of an engine and model "
    "also holds its export/conversion). The roof is one measured n x n matmul, not the hardware's "
    "peak, and the profiler's FLOPs include cheap elementwise work (BatchNorm, ReLU, adds), so a "
    "`peak_fraction` slightly above 1 is possible on a quiet machine; on a busy one the roof itself "
    "may have been measured low.")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="imgcls report", description="Re-render report.md and the plots of a "
                                "results folder written by `imgcls run`.")
    p.add_argument("dirs", nargs="+", type=Path, help="results folder(s) holding results.csv")
    args = p.parse_args(argv)
    try:
        for out in args.dirs:
            print(f"report: {write(out)}")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
