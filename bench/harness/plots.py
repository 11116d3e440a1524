"""The report's PNG plots: latency and throughput against batch size, training throughput, and the
accuracy-vs-latency Pareto front of the engines and precisions of each trained model."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lines(df: pd.DataFrame, value: str, ylabel: str, path: Path, logy: bool) -> None:
    """One panel per model and dataset; one line per engine and precision (all cores)."""
    plt = _pyplot()
    df = df[df["threads"].fillna(0) == 0] if "threads" in df else df
    groups = list(df.groupby(["model", "dataset"]))
    cols = min(len(groups), 4)
    rows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows), squeeze=False)
    for ax, ((model, dataset), g) in zip(axes.flat, groups):
        for (engine, precision), e in g.groupby(["engine", "precision"]):
            e = e.sort_values("batch_size")
            ax.plot(e["batch_size"], e[value], marker="o", label=f"{engine} {precision}")
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"{model} / {dataset}", fontsize=9)
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training(train: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    train = train.assign(cell=train["model"] + " " + train["precision"] + " xla="
                         + train["xla"].map({True: "on", False: "off"}) + " bs=" + train["batch_size"].astype(str))
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


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The rows no other row beats on both latency (lower) and top-1 (higher)."""
    ordered = points.sort_values(["latency_ms_p50", "top1"], ascending=[True, False])
    front, best = [], -1.0
    for row in ordered.itertuples():
        if row.top1 > best:
            front.append(row.Index)
            best = row.top1
    return points.loc[front]


def accuracy_vs_latency(points: pd.DataFrame, path: Path, batch_size: int = 1) -> bool:
    """`points`: per trained model, engine and precision, top1 and latency_ms_p50 (at `batch_size`).
    One panel per model: every choice, the Pareto front joined."""
    if points.empty:
        return False
    plt = _pyplot()
    groups = list(points.groupby("model"))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), squeeze=False)
    for ax, (model, g) in zip(axes[0], groups):
        for row in g.itertuples():
            ax.scatter(row.latency_ms_p50, row.top1 * 100, s=28)
            ax.annotate(f"{row.engine} {row.precision}", (row.latency_ms_p50, row.top1 * 100), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        front = pareto_front(g)
        ax.plot(front["latency_ms_p50"], front["top1"] * 100, "-", color="black", alpha=0.5, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(f"latency p50 at batch {batch_size} (ms)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(model, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
