"""A recipe over several seeds: one run directory per seed, and the spread they give.

    python -m bench train --recipe mnist_airbench94 --seeds 3 --results results/train/mnist_airbench94
    make train RECIPE=mnist_airbench94 SEEDS=3          # seeds 0, 1, 2 (or SEEDS=0,4,7: those seeds)

Seed 0 runs in the run directory itself (runs/NAME: where single-seed runs, `make artifacts`, the
benchmark profiles and the accuracy gate look), seed S > 0 in runs/NAME/seedS. With `--results`,
each run's record is copied beside (seed 0) or below (seedS/) it, and `spread.json` + `spread.md`
summarise them: test top-1 mean / min / max / standard deviation, training times, epochs, the
time-target verdicts and whether the mean meets the accuracy target.

Accuracy bounds for results/baselines/accuracy.toml come from a spread
(`python -m bench train propose-bounds results/train/NAME/spread.json`): [min - margin, max + margin],
margin 0.2 pp by default (a fresh seed lands outside the seeds' own range about 2/(n+1) of the
time; the margin keeps that from failing the gate while a real regression of more than the
margin still does). The upper bound is capped at 1.
"""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.plumbing.files import atomic_write_json

RECORD_FILES = ("recipe.json", "history.csv", "steps.csv", "curves.png")
DEFAULT_MARGIN = 0.002


def parse_seeds(text: str) -> list[int]:
    """'3' -> [0, 1, 2] (a count: that many seeds from 0); '0,1,2' or '5,7' -> those seeds.
    Anything else -> ValueError saying what to write (checked before TensorFlow loads)."""
    parts = [p.strip() for p in str(text).split(",")]
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if not str(text).strip() or bad:
        raise ValueError(f"--seeds takes a number of seeds (3: seeds 0,1,2) or comma-separated integer seeds "
                         f"such as 0,1,2; got {text!r}"
                         + (f" ({', '.join(repr(b) for b in bad)} is not an integer)" if bad and str(text).strip() else ""))
    seeds = [int(p) for p in parts]
    if len(seeds) == 1:  # a count
        if seeds[0] < 1:
            raise ValueError(f"--seeds {text!r}: a number of seeds must be >= 1 (or list the seeds: 0,1,2)")
        return list(range(seeds[0]))
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must be >= 0 (they seed NumPy and TensorFlow); got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {text!r}; each seed is one run")
    return seeds


def seed_dir(base: Path | str, seed: int) -> Path:
    """runs/NAME for seed 0, runs/NAME/seedS otherwise."""
    base = Path(base)
    return base if seed == 0 else base / f"seed{seed}"


def copy_record(run_dir: Path, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, results_dir / name)


def train_seeds(train_one: Callable[[int, Path], dict[str, Any]], seeds: Sequence[int], base: Path | str,
                results: Path | str | None = None) -> dict[str, Any]:
    """Runs `train_one(seed, run_dir)` for each seed (one after the other), copies the records and
    writes the spread into `results` (or `base`). Returns the spread."""
    base = Path(base)
    records = []
    for seed in seeds:
        run_dir = seed_dir(base, seed)
        record = train_one(seed, run_dir)
        records.append(record)
        if results:
            copy_record(run_dir, seed_dir(Path(results), seed))
    spread = summarize(records)
    write_spread(spread, Path(results) if results else base)
    return spread


def _stats(values: list[float], digits: int) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits),
            "std": round(statistics.stdev(values), digits) if len(values) > 1 else 0.0}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The spread of several runs of one recipe (their recipe.json records)."""
    if not records:
        raise ValueError("no runs to summarise")
    names = {r["recipe"]["name"] for r in records}
    if len(names) != 1:
        raise ValueError(f"the runs are of different recipes: {sorted(names)}")
    recipe = records[0]["recipe"]
    top1 = [float(r["test_top1"]) for r in records]
    times = [float(r["train_time_s"]) for r in records]
    runs = []
    for r in records:
        verdict = r.get("time_target") or {}
        runs.append({"seed": r["seed"], "test_top1": r["test_top1"], "test_top1_tta": r.get("test_top1_tta"),
                     "train_time_s": r["train_time_s"], "wall_time_s": r.get("wall_time_s"),
                     "epochs_done": r.get("epochs_done"), "epochs_planned": r.get("epochs_planned"),
                     "status": r.get("status"), "precision": r.get("precision"),
                     "matmul_gflops": (r.get("machine_speed") or {}).get("matmul_gflops"),
                     "load_avg_1m": (r.get("environment") or {}).get("load_avg_1m"),
                     "target_s_here": verdict.get("target_s_here"), "within_time_target": verdict.get("within")})
    spread: dict[str, Any] = {"recipe": recipe["name"], "model": recipe["model"], "dataset": recipe["dataset"],
                              "seeds": [r["seed"] for r in records], "n": len(records),
                              "test_top1": _stats(top1, 5), "train_time_s": _stats(times, 1), "runs": runs}
    if recipe.get("accuracy_target") is not None:
        target = float(recipe["accuracy_target"])
        spread["accuracy_target"] = {"target": target, "mean_met": spread["test_top1"]["mean"] >= target,
                                     "runs_met": sum(t >= target for t in top1)}
    if recipe.get("time_target_s"):
        within = [r["within_time_target"] for r in runs]
        spread["time_target"] = {
            "target_s_reference": recipe["time_target_s"],
            "runs_within_target_for_their_speed": sum(bool(w) for w in within),
            "verdict": ("within target for its speed in every run" if all(within) else
                        f"over target for its speed in {sum(not w for w in within)} of {len(within)} runs")}
    early = [r["seed"] for r in records if (r.get("plan") or {}).get("stopped_early")]
    if early:
        spread["stopped_early_seeds"] = early
    return spread


def write_spread(spread: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "spread.json", spread, indent=2)
    t, s = spread["test_top1"], spread["train_time_s"]
    lines = [f"# {spread['recipe']}: {spread['n']} seeds ({', '.join(map(str, spread['seeds']))})", "",
             f"Test top-1: mean **{100 * t['mean']:.2f}%**, min {100 * t['min']:.2f}%, max {100 * t['max']:.2f}%, "
             f"std {100 * t['std']:.2f} pp. Training time: mean {s['mean']:.0f} s, min {s['min']:.0f} s, "
             f"max {s['max']:.0f} s.", ""]
    if "accuracy_target" in spread:
        a = spread["accuracy_target"]
        lines.append(f"Accuracy target {100 * a['target']:.1f}% (mean): {'met' if a['mean_met'] else 'NOT met'} "
                     f"({a['runs_met']} of {spread['n']} runs at or above it).")
    if "time_target" in spread:
        lines.append(f"Time target {spread['time_target']['target_s_reference']:.0f} s on a 450 GFLOP/s machine, "
                     f"scaled by each run's measured matmul rate: {spread['time_target']['verdict']}.")
    if spread.get("stopped_early_seeds"):
        lines.append(f"Stopped early by the time budget: seeds {spread['stopped_early_seeds']}.")
    lines += ["", "| seed | test top-1 | training s | epochs done / planned | status | matmul GFLOP/s | load | "
                  "target s here | within |", "|---|---|---|---|---|---|---|---|---|"]
    for r in spread["runs"]:
        lines.append(f"| {r['seed']} | {100 * r['test_top1']:.2f}% | {r['train_time_s']:.0f} | "
                     f"{r['epochs_done']} / {r['epochs_planned']} | {r['status']} | {r['matmul_gflops']} | "
                     f"{r['load_avg_1m']} | {r['target_s_here'] if r['target_s_here'] is not None else '-'} | "
                     f"{'-' if r['within_time_target'] is None else ('yes' if r['within_time_target'] else 'no')} |")
    (folder / "spread.md").write_text("\n".join(lines) + "\n")
    return folder / "spread.json"


def propose_bounds(spread: dict[str, Any], margin: float = DEFAULT_MARGIN) -> tuple[float, float]:
    """[min - margin, max + margin] of the spread's test top-1 (fractions), upper bound at most 1."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    t = spread["test_top1"]
    return round(max(t["min"] - margin, 0.0), 4), round(min(t["max"] + margin, 1.0), 4)


def bounds_toml(spread: dict[str, Any], margin: float = DEFAULT_MARGIN, run: str | None = None) -> str:
    """The accuracy.toml table for the spread's recipe (to paste into results/baselines/accuracy.toml)."""
    lo, hi = propose_bounds(spread, margin)
    t = spread["test_top1"]
    name = spread["recipe"]
    lines = [f"# {name}: {spread['n']} seeds {spread['seeds']}, test top-1 min {t['min']:.4f} mean {t['mean']:.4f} "
             f"max {t['max']:.4f}; bounds = [min - {margin}, max + {margin}]",
             f"[checkpoints.{name}]", f"top1 = [{lo:.4f}, {hi:.4f}]"]
    if run:
        lines.append(f'run = "{run}"')
    lines.append(f'produce = "make train RECIPE={name}"')
    return "\n".join(lines) + "\n"


def load_spread(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "spread.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the recipe over several seeds first "
                                "(python -m bench train --recipe NAME --seeds 0,1,2 --results results/train/NAME)")
    return json.loads(path.read_text())
