"""Fine-tuning versus training from scratch, for the same wall time, with a scratch baseline that
is tuned rather than handicapped.

Trains the fine-tuning recipe (pretrained backbone, frozen, new head, optional phase 2), then the
same architecture from random weights on the same images, each scratch candidate with a training-time
budget equal to the fine-tuning run's training time (both `train_time_s`: the same clock, which
excludes data set-up and evaluation). The scratch baseline gets its own tuning, as a practitioner
would give it: its own learning rate and one-cycle schedule, and its input size (a network from random
weights trains many more epochs per second at CIFAR's own 32x32 than upscaled to 224, where the
pretrained one needs 224). The candidate with the best *validation* top-1 is the baseline; every
candidate's test top-1 is reported too. Both learning curves (validation top-1 against training
seconds) go into one plot.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.train.callbacks import read_history
from bench.train.fit import train
from bench.train.recipes import get_recipe

# the scratch baseline's own tuning: (tag, recipe overrides); chosen on validation top-1
SCRATCH_CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("224px_lr3e-3", {"image_size": (224, 224), "lr": 3e-3, "schedule": "one_cycle"}),
    ("64px_lr3e-3", {"image_size": (64, 64), "lr": 3e-3, "schedule": "one_cycle"}),
    ("32px_lr3e-3", {"image_size": (32, 32), "lr": 3e-3, "schedule": "one_cycle"}),
    ("32px_lr1e-2", {"image_size": (32, 32), "lr": 1e-2, "schedule": "one_cycle"}),
]


def _row(record: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
    return {"recipe": record["recipe"]["name"], "tuning": tag, "test_top1": record["test_top1"],
            "best_val_top1": record.get("best_val_top1"), "lr": record["recipe"]["lr"],
            "schedule": record["recipe"]["schedule"], "train_time_s": record["train_time_s"],
            "epochs_done": record["epochs_done"], "status": record.get("status"),
            "weights": (record["recipe"]["finetune"] or {}).get("weights", "imagenet"),
            "data_sizes": record["data_sizes"], "input_shape": record["input_shape"]}


def _top1(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def curve(run_dir: Path) -> tuple[list[float], list[float]]:
    """(cumulative training seconds, validation top-1) per epoch of a run's history.csv."""
    history = read_history(run_dir / "history.csv")
    seconds, total = [], 0.0
    for r in history:
        total = r.get("train_time_s", total + r.get("epoch_time_s", 0.0))
        seconds.append(total)
    return seconds, [r.get("val_top1", float("nan")) for r in history]


def plot_curves_together(runs: dict[str, Path], chosen: str, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plumbing.files import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, run_dir in runs.items():
        x, y = curve(run_dir)
        bold = label.startswith("fine-tuned") or label == chosen
        ax.plot(x, [100 * v for v in y], "-o" if bold else "--.", lw=2 if bold else 1, alpha=1 if bold else 0.6,
                label=label + (" (chosen scratch baseline)" if label == chosen else ""))
    ax.axhline(50, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xlabel("training seconds (same clock for every run)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def finetune_vs_scratch(runs_dir: Path | str, results: Path | str, *, seed: int = 0,
                        finetune: str = "catdog_efficientnet_lite0_finetune",
                        scratch: str = "catdog_efficientnet_lite0_scratch",
                        candidates: list[tuple[str, dict[str, Any]]] | None = None,
                        **overrides: Any) -> dict[str, Any]:
    """`overrides` (e.g. images_per_class=100) apply to every run; `candidates` (default
    SCRATCH_CANDIDATES) are the scratch baseline's tunings."""
    runs = Path(runs_dir)
    ft = train(get_recipe(finetune).replace(**overrides), runs / "finetune", seed=seed)
    budget = float(ft["train_time_s"])
    tried = []
    for tag, tuning in candidates or SCRATCH_CANDIDATES:
        record = train(get_recipe(scratch).replace(time_budget_s=budget, **{**tuning, **overrides}),
                       runs / f"scratch_{tag}", seed=seed)
        tried.append((tag, record))
    tag, sc = max(tried, key=lambda t: (t[1].get("best_val_top1") or 0.0))

    summary = {"task": f"{' vs '.join(ft['class_names'])}, {ft['data_sizes']['train']} training images",
               "seed": seed, "budget_s": budget, "finetune": _row(ft), "scratch": _row(sc, tag),
               "scratch_candidates": [_row(r, t) for t, r in tried],
               "margin_top1": round(ft["test_top1"] - sc["test_top1"], 5),
               "environment": ft["environment"], "machine_speed": ft.get("machine_speed")}
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=2) + "\n")
    curves = {"fine-tuned (ImageNet)": runs / "finetune", **{f"scratch {t}": runs / f"scratch_{t}" for t, _ in tried}}
    plot_path = results.with_name(results.stem + "_curves.png")
    plot_curves_together(curves, f"scratch {tag}", plot_path, f"{summary['task']}: {budget:.0f} s of training each")
    write_markdown(summary, results.with_suffix(".md"), plot_path.name)
    return summary


def write_markdown(summary: dict[str, Any], path: Path, plot_name: str) -> None:
    """The comparison as a table (from the summary JSON alone, so it can be rewritten from it)."""
    tag = summary["scratch"]["tuning"]
    lines = ["| run | weights | tuning | input | lr | test top-1 | best val top-1 | training s | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in [("finetune", summary["finetune"])] + [("scratch", r) for r in summary["scratch_candidates"]]:
        mark = " (chosen on validation)" if name == "scratch" and r["tuning"] == tag else ""
        lines.append(f"| {r['recipe']}{mark} | {r['weights']} | {r['tuning'] or '-'} | {r['input_shape'][0]} | "
                     f"{r['lr']:g} | {r['test_top1']:.4f} | {_top1(r['best_val_top1'])} | {r['train_time_s']:.0f} | "
                     f"{r['epochs_done']:g} |")
    speed = (summary.get("machine_speed") or {}).get("matmul_gflops")
    env = summary["environment"]
    path.write_text(
        f"# Fine-tuning vs from scratch: {summary['task']}\n\n"
        f"Every scratch run had the fine-tuning run's training time as its budget ({summary['budget_s']:.1f} s); the "
        f"baseline is the scratch candidate with the best validation top-1 (scratch {tag}). Curves: "
        f"`{plot_name}`.\n\n" + "\n".join(lines)
        + f"\n\nFine-tuned minus the chosen scratch baseline: {100 * summary['margin_top1']:.2f} points of test top-1."
        + f"\n\nTest images: {summary['finetune']['data_sizes']['test']}; CPU: {env['cpu']} x "
          f"{env['cpu_count']}, float32 matmul {speed} GFLOP/s.\n")
