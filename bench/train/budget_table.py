"""The seed's architectures on CIFAR-10 under one wall-clock budget each.

    python -m bench train budget-table --budget 900 --results results/train/equal_budget

Every architecture gets the same recipe (Adam 1e-3 with warm-up + cosine, flip + pad-4 crop, batch
128, bfloat16 compute where the CPU has it, BatchNorm momentum 0.9; GoogLeNet with its two auxiliary
losses at 0.3; VGG-11, the one network without BatchNorm, at Adam 1e-4, because at 1e-3 its loss never
leaves ln 10), its smallest allowed input size (CIFAR-10's
32x32 where the architecture accepts it, else resized up), and the same training-time budget: the
run plans its whole schedule into the epochs that fit after its first steps, so a slow architecture
gets a complete, shorter schedule, and a budget below one epoch trains a fraction of one (the table
says how many epochs each did). Checkpoints stay in runs/equal_budget/ARCH (`make artifacts` exports
them; the benchmark's accuracy task measures each precision's cost on them); the table (test top-1,
training images/s, epochs done), the records and the learning curves go to --results.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.plumbing.files import atomic_write_json
from bench.train.recipes import CIFAR_AUG, Recipe

# (architecture, input side, model options): the smallest input each accepts that CIFAR-10 can give
ARCHITECTURES: list[tuple[str, int, dict[str, Any]]] = [
    ("alexnet", 67, {}),             # 11x11/4 conv and three 3x3/2 pools: 67 is its smallest side
    ("vgg11", 32, {}),
    ("googlenet", 32, {"aux_outputs": True}),
    ("inception_v2", 32, {}),
    ("inception_v3", 75, {}),         # three valid stride-2 stages
    ("resnet18", 32, {}),             # the CIFAR stem below 64 pixels
    ("resnet50", 32, {}),
]

# Where one architecture cannot share the recipe. VGG-11 has no BatchNorm: at Adam 1e-3 its loss
# stayed at ln 10 (2.3027) for 1.8 epochs and it tested at 10.00%; at 1e-4 it learns.
OWN_SETTINGS: dict[str, dict[str, Any]] = {"vgg11": {"lr": 1e-4}}


def budget_recipe(arch: str, size: int, options: dict[str, Any], budget_s: float) -> Recipe:
    return Recipe(name=f"cifar10_{arch}_budget", model=arch, dataset="cifar10",
                  image_size=None if size == 32 else (size, size), model_options=dict(options),
                  aux_loss_weight=0.3,
                  epochs=40, batch_size=128, val_fraction=0.02, optimizer="adam", lr=1e-3,
                  schedule="warmup_cosine", warmup_epochs=0.2, weight_decay=5e-4, augment=dict(CIFAR_AUG),
                  # 1.2x to 1.5x the float32 training speed here (AMX); float32 where the CPU has no bfloat16
                  precision="mixed_bfloat16",
                  # Keras' 0.99 averages over ~100 steps: the deep networks do a few hundred steps in
                  # the budget, their weights move far, and the stale averages made ResNet-18 (46%
                  # training top-1) test at 15% and ResNet-50 at chance; 0.9 follows within ~10 steps
                  bn_momentum=0.9,
                  time_budget_s=float(budget_s), min_epochs=0.05,
                  expect=f"the equal-budget table: {budget_s:.0f} s of training on 2 cores",
                  ).replace(**OWN_SETTINGS.get(arch, {}))


def row(record: dict[str, Any]) -> dict[str, Any]:
    return {"architecture": record["recipe"]["model"], "input": record["input_shape"][0],
            "test_top1": record["test_top1"], "train_time_s": record["train_time_s"],
            "images_per_s": record.get("images_per_s"),
            "epochs_done": record["epochs_done"], "epochs_planned": record.get("epochs_planned"),
            "status": record.get("status"), "parameters": record.get("parameters"),
            "matmul_gflops": (record.get("machine_speed") or {}).get("matmul_gflops")}


def table_md(rows: list[dict[str, Any]], budget_s: float) -> str:
    lines = [f"# CIFAR-10, every seed architecture, {budget_s:.0f} s of training each (2 CPU cores)", "",
             "| architecture | input | test top-1 | training s | images/s | epochs done / planned | matmul GFLOP/s |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['architecture']} | {r['input']} | {100 * r['test_top1']:.2f}% | {r['train_time_s']:.0f} | "
                     f"{r['images_per_s']} | {r['epochs_done']:g} / {r['epochs_planned']} | {r['matmul_gflops']} |")
    return "\n".join(lines) + "\n"


def budget_table(budget_s: float, runs: Path, results: Path, only: list[str] | None = None,
                 seed: int = 0, **overrides: Any) -> list[dict[str, Any]]:
    """`overrides` (e.g. limit_train=2000 for a short check) apply to every architecture's recipe."""
    from bench.train.fit import train
    from bench.train.seeds import copy_record

    rows = []
    for arch, size, options in ARCHITECTURES:
        if only and arch not in only:
            continue
        out = runs / arch
        done = out / "recipe.json"
        if done.exists() and json.loads(done.read_text()).get("test_top1") is not None:
            record = json.loads(done.read_text())      # finished earlier: an interrupted table resumes here
        else:
            recipe = budget_recipe(arch, size, options, budget_s).replace(**overrides)
            record = train(recipe, out, seed=seed, resume=(out / "last.keras").exists())
        copy_record(out, results / arch)
        rows.append(row(record))
        atomic_write_json(results / "equal_budget.json", {"budget_s": budget_s, "rows": rows}, indent=2)
        (results / "equal_budget.md").write_text(table_md(rows, budget_s))
    return rows
