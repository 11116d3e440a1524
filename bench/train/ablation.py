"""What each airbench94 technique is worth on CIFAR-10: the recipe with one technique taken out.

    python -m bench train ablations --results results/train/cifar10_airbench94_ablations

Each variant is `cifar10_airbench94` with one change (below), trained once (seed 0) in
runs/ablations/VARIANT; test-time augmentation needs no training run, since every record of the
full recipe already scores its model at each TTA level (`test_top1_tta`). The table compares each
variant with the full recipe's mean over its seeds (`--base`, the directory of its 3-seed spread)
and says how far that mean spreads, so a difference smaller than the seeds' own spread reads as one.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from bench.plumbing.files import atomic_write_json
from bench.train.recipes import Recipe, get_recipe

BASE = "cifar10_airbench94"

# variant -> (what it changes, recipe fields it replaces); model_options are merged into the base's
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "no_whitening": ("an ordinary trainable 2x2 stem (PyTorch-default init) instead of the frozen "
                     "whitening stem from training patches",
                     {"model_options": {"whiten": False}, "whiten_bias_epochs": None}),
    "no_lookahead": ("no lookahead (EMA of the weights every 5 steps)", {"lookahead": False}),
    "no_label_smoothing": ("label smoothing 0 instead of 0.2", {"label_smoothing": 0.0}),
    "keras_batchnorm": ("Keras' BatchNorm defaults (momentum 0.99, epsilon 1e-3, trainable scale) instead "
                        "of airbench's (0.6, 1e-12, no scale)",
                        {"model_options": {"bn_momentum": 0.99, "bn_epsilon": 1e-3, "bn_scale": True}}),
}


def variant_recipe(variant: str, base: Recipe | None = None) -> Recipe:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ablation {variant!r}; valid: {', '.join(VARIANTS)}")
    base = base or get_recipe(BASE)
    what, fields = VARIANTS[variant]
    fields = dict(fields)
    if "model_options" in fields:
        fields["model_options"] = {**base.model_options, **fields["model_options"]}
    # dataclasses.replace, not Recipe.replace: that one drops None, and None is a change here
    return dataclasses.replace(base, name=f"{base.name}_{variant}", expect=f"ablation of {base.name}: {what}",
                               **fields)


def _records(base_dir: Path) -> list[dict[str, Any]]:
    """The full recipe's records: recipe.json of seed 0 and seedS/recipe.json of the others."""
    paths = [base_dir / "recipe.json", *sorted(base_dir.glob("seed*/recipe.json"))]
    records = [json.loads(p.read_text()) for p in paths if p.exists()]
    if not records:
        raise FileNotFoundError(f"{base_dir} holds no recipe.json of {BASE}: run "
                                f"`make train RECIPE={BASE} SEEDS=3 RESULTS={base_dir}` first")
    return records


def rows(base_dir: Path, variants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The full recipe (mean, min, max over its seeds), its TTA levels, then each variant's run."""
    base = _records(base_dir)
    top1 = [r["test_top1"] for r in base]
    full = statistics.fmean(top1)
    speed = [(r.get("machine_speed") or {}).get("matmul_gflops") for r in base]
    out = [{"variant": "full recipe", "change": f"{len(base)} seeds (min {100 * min(top1):.2f}%, max "
            f"{100 * max(top1):.2f}%)", "test_top1": round(full, 5), "delta_points": 0.0,
            "train_time_s": round(statistics.fmean([r["train_time_s"] for r in base]), 1),
            "epochs_done": base[0]["epochs_done"], "matmul_gflops": speed[0], "record": str(base_dir)}]
    for level, change in (("level1", "test-time augmentation: flip only (no 1-px translations)"),
                          ("level0", "no test-time augmentation")):
        scores = [r["test_top1_tta"][level] for r in base if level in (r.get("test_top1_tta") or {})]
        if scores:
            out.append({"variant": f"tta_{level}", "change": change + f" (the same {len(scores)} models)",
                        "test_top1": round(statistics.fmean(scores), 5),
                        "delta_points": round(100 * (statistics.fmean(scores) - full), 2),
                        "train_time_s": None, "epochs_done": None, "matmul_gflops": speed[0],
                        "record": str(base_dir)})
    for variant, record in variants.items():
        out.append({"variant": variant, "change": VARIANTS[variant][0] + " (seed 0)",
                    "test_top1": record["test_top1"],
                    "delta_points": round(100 * (record["test_top1"] - full), 2),
                    "train_time_s": record["train_time_s"], "epochs_done": record["epochs_done"],
                    "matmul_gflops": (record.get("machine_speed") or {}).get("matmul_gflops"),
                    "record": record.get("_record", "")})
    return out


def table_md(table: list[dict[str, Any]], spread_points: float) -> str:
    lines = [f"# {BASE}: what each technique is worth (CIFAR-10 test top-1, 10,000 images)", "",
             "Each variant takes one technique out of the full recipe; a difference within the full "
             f"recipe's own spread over seeds ({spread_points:.2f} points from min to max) is not a measured effect.",
             "", "| variant | change | test top-1 | vs full recipe (points) | training s | epochs | matmul GFLOP/s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in table:
        t = "-" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}"
        e = "-" if r["epochs_done"] is None else f"{r['epochs_done']:g}"
        lines.append(f"| {r['variant']} | {r['change']} | {100 * r['test_top1']:.2f}% | {r['delta_points']:+.2f} | "
                     f"{t} | {e} | {r['matmul_gflops']} |")
    return "\n".join(lines) + "\n"


def ablations(base_dir: Path, runs: Path, results: Path, only: list[str] | None = None,
              seed: int = 0, **overrides: Any) -> list[dict[str, Any]]:
    """Trains the variants not yet finished in `runs` (an interrupted table resumes), copies each
    record to `results/VARIANT`, and writes ablations.json and ablations.md there after every run."""
    from bench.train.fit import train
    from bench.train.seeds import copy_record

    base = _records(base_dir)   # fail before hours of training, not after
    top1 = [r["test_top1"] for r in base]
    done: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        if only and variant not in only:
            continue
        out = runs / variant
        record_path = out / "recipe.json"
        if record_path.exists() and json.loads(record_path.read_text()).get("test_top1") is not None:
            record = json.loads(record_path.read_text())
        else:
            recipe = variant_recipe(variant).replace(**overrides)
            record = train(recipe, out, seed=seed, resume=(out / "last.keras").exists())
        copy_record(out, results / variant)
        done[variant] = {**record, "_record": str(results / variant / "recipe.json")}
        table = rows(base_dir, done)
        atomic_write_json(results / "ablations.json", {"base": str(base_dir), "rows": table}, indent=2)
        (results / "ablations.md").write_text(table_md(table, 100 * (max(top1) - min(top1))))
    return rows(base_dir, done)
