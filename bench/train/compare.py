"""Fine-tuning versus training from scratch, for the same wall time.

Trains the fine-tuning recipe (pretrained backbone, frozen, new head, optional phase 2), then
the same architecture from random weights on the same images with a time budget equal to the
fine-tuning run's training time, and writes both results side by side (JSON + Markdown).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.train.fit import train
from bench.train.recipes import get_recipe


def finetune_vs_scratch(runs_dir: Path | str, results: Path | str, *, seed: int = 0,
                        finetune: str = "catdog_efficientnet_lite0_finetune",
                        scratch: str = "catdog_efficientnet_lite0_scratch",
                        **overrides: Any) -> dict[str, Any]:
    """`overrides` (e.g. images_per_class=100, image_size=(96, 96)) apply to both recipes."""
    runs = Path(runs_dir)
    ft = train(get_recipe(finetune).replace(**overrides), runs / "finetune", seed=seed)
    budget = float(ft["train_time_s"])
    sc = train(get_recipe(scratch).replace(time_budget_s=budget, **overrides), runs / "scratch", seed=seed)

    def row(record: dict[str, Any]) -> dict[str, Any]:
        return {"recipe": record["recipe"]["name"], "test_top1": record["test_top1"],
                "train_time_s": record["train_time_s"], "epochs_done": record["epochs_done"],
                "weights": (record["recipe"]["finetune"] or {}).get("weights", "imagenet"),
                "data_sizes": record["data_sizes"], "input_shape": record["input_shape"]}

    summary = {"task": f"{' vs '.join(ft['class_names'])}, "
                       f"{ft['data_sizes']['train']} training images",
               "seed": seed, "finetune": row(ft), "scratch": row(sc),
               "margin_top1": round(ft["test_top1"] - sc["test_top1"], 5),
               "environment": ft["environment"]}
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["| run | weights | test top-1 | training time (s) | epochs |", "|---|---|---|---|---|"]
    for name in ("finetune", "scratch"):
        r = summary[name]
        lines.append(f"| {r['recipe']} | {r['weights']} | {r['test_top1']:.4f} | {r['train_time_s']:.0f} "
                     f"| {r['epochs_done']} |")
    results.with_suffix(".md").write_text(
        f"# Fine-tuning vs from scratch: {summary['task']}\n\n" + "\n".join(lines)
        + f"\n\nTest images: {ft['data_sizes']['test']}; input {ft['input_shape']}; "
          f"CPU: {ft['environment']['cpu']} x {ft['environment']['cpu_count']}.\n")
    return summary
