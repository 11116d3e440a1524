"""`python -m bench accuracy-check`: each trained checkpoint's test top-1 within its stored bounds.

Bounds live in results/baselines/accuracy.toml, one table per checkpoint:

    [checkpoints.mnist_cnn]
    top1 = [0.994, 0.9985]                  # [min, max] on the test split
    run = "runs/mnist_cnn"                  # optional: default runs/NAME
    produce = "python -m bench train --recipe mnist_cnn"

A run directory written by `bench train` holds `model.keras` (the inference model) and
`recipe.json`; the test split is rebuilt from that recipe exactly as training evaluated it
(same class subset, image size, resize method, channels). A max bound catches the too-good
result of a test set leaking into training. A missing checkpoint is skipped with the command
that produces it, or fails under --strict. Exit status: 0 pass, 1 out of bounds (or missing
under --strict), 2 bad input.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.plumbing.tables import render

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BOUNDS = REPO_ROOT / "results" / "baselines" / "accuracy.toml"


class BoundsError(ValueError):
    """The bounds file is missing or malformed: the message says where and how to fix it."""


@dataclass(frozen=True)
class Bound:
    name: str
    top1_min: float
    top1_max: float
    run: Path
    produce: str


@dataclass
class Check:
    name: str
    verdict: str  # ok | BELOW | ABOVE | missing | ERROR
    top1: float
    top1_min: float
    top1_max: float
    recorded_top1: float  # what training wrote in recipe.json, for reference
    test_examples: int
    note: str

    @property
    def failed(self) -> bool:
        return self.verdict in ("BELOW", "ABOVE", "ERROR")


def load_bounds(path: Path, root: Path = REPO_ROOT) -> list[Bound]:
    if not path.exists():
        raise BoundsError(f"accuracy bounds file {path} does not exist; create it with one "
                          f"[checkpoints.NAME] table per trained run (see `python -m bench accuracy-check --help`)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BoundsError(f"{path} is not valid TOML: {exc}") from None
    tables = data.get("checkpoints")
    if not isinstance(tables, dict) or not tables:
        raise BoundsError(f"{path}: no [checkpoints.NAME] tables; each needs top1 = [min, max]")
    bounds = []
    for name, entry in tables.items():
        where = f"{path}: [checkpoints.{name}]"
        if not isinstance(entry, dict):
            raise BoundsError(f"{where} must be a table with top1 = [min, max]")
        unknown = sorted(set(entry) - {"top1", "run", "produce"})
        if unknown:
            raise BoundsError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: top1, run, produce")
        top1 = entry.get("top1")
        if (not isinstance(top1, list) or len(top1) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in top1)):
            raise BoundsError(f"{where}: top1 must be a list [min, max] of two numbers, got {top1!r}")
        lo, hi = float(top1[0]), float(top1[1])
        if not 0.0 <= lo <= hi <= 1.0:
            raise BoundsError(f"{where}: top1 = [{lo}, {hi}] must satisfy 0 <= min <= max <= 1 "
                              f"(fractions, not percent)")
        run = Path(entry.get("run", f"runs/{name}"))
        bounds.append(Bound(name, lo, hi, run if run.is_absolute() else root / run,
                            str(entry.get("produce", f"python -m bench train --recipe {name} --out runs/{name}"))))
    return bounds


def override_runs(bounds: list[Bound], runs: list[str]) -> list[Bound]:
    """Bounds with the run directories of `NAME=DIR` overrides."""
    by_name = {b.name: b for b in bounds}
    for item in runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise BoundsError(f"--run {item!r} must be NAME=DIR, for example --run mnist_tiny=out/gate/mnist_tiny")
        if name not in by_name:
            raise BoundsError(f"--run {item!r}: no bounds for {name!r}; known: {', '.join(by_name)}")
        by_name[name] = replace(by_name[name], run=Path(folder).resolve())
    return [by_name[b.name] for b in bounds]


def evaluate_top1(run_dir: Path) -> tuple[float, int, float]:
    """(top-1, test examples, recorded top-1) of run_dir/model.keras on its recipe's test split."""
    import zoo
    from bench.data import load_dataset
    from bench.train.fit import top1
    from bench.train.recipes import Recipe
    from bench.train.splits import make_splits

    record = json.loads((run_dir / "recipe.json").read_text())
    recipe = Recipe.from_dict(record["recipe"])
    splits = make_splits(load_dataset(recipe.dataset), recipe, seed=int(record.get("seed", 0)), augmentation=None)
    model = zoo.load_model(run_dir / "model.keras")
    return top1(model, splits.test), splits.sizes["test"], float(record.get("test_top1", math.nan))


def check(bound: Bound, strict: bool = False) -> Check:
    model, recipe = bound.run / "model.keras", bound.run / "recipe.json"
    if not model.exists() or not recipe.exists():
        missing = model if not model.exists() else recipe
        return Check(bound.name, "ERROR" if strict else "missing", math.nan, bound.top1_min, bound.top1_max,
                     math.nan, 0, f"{missing} not found; produce it with: {bound.produce}")
    try:
        top1, n, recorded = evaluate_top1(bound.run)
    except Exception as exc:  # a broken run directory must not hide the other checkpoints' verdicts
        return Check(bound.name, "ERROR", math.nan, bound.top1_min, bound.top1_max, math.nan, 0,
                     f"cannot evaluate {bound.run}: {type(exc).__name__}: {exc}")
    verdict = "BELOW" if top1 < bound.top1_min else "ABOVE" if top1 > bound.top1_max else "ok"
    return Check(bound.name, verdict, top1, bound.top1_min, bound.top1_max, recorded, n, "")


def _fraction(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def accuracy_table(checks: list[Check]) -> str:
    return render(["checkpoint", "test_top1", "min", "max", "recorded_top1", "test_examples", "verdict", "note"],
                  [[c.name, *(_fraction(v) for v in (c.top1, c.top1_min, c.top1_max, c.recorded_top1)),
                    c.test_examples, c.verdict, c.note]
                   for c in checks])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench accuracy-check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bounds", type=Path, default=DEFAULT_BOUNDS, help="bounds TOML (default %(default)s)")
    p.add_argument("--strict", action="store_true", help="a missing checkpoint fails instead of being skipped")
    p.add_argument("--only", nargs="+", metavar="NAME", help="check only these checkpoints")
    p.add_argument("--out", type=Path, help="also write accuracy.csv and accuracy.md here")
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                   help="check NAME's bounds against the run in DIR instead of its stored run directory "
                        "(the CI gate trains a fresh run elsewhere)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        bounds = load_bounds(args.bounds)
    except BoundsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.only:
        unknown = sorted(set(args.only) - {b.name for b in bounds})
        if unknown:
            print(f"error: no bounds for {', '.join(unknown)} in {args.bounds}; known: "
                  f"{', '.join(b.name for b in bounds)}", file=sys.stderr)
            return 2
        bounds = [b for b in bounds if b.name in args.only]
    try:
        bounds = override_runs(bounds, args.run)
    except BoundsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checks = []
    for bound in bounds:
        checks.append(check(bound, args.strict))
        c = checks[-1]
        print(f"  {c.name}: {c.verdict}" + (f" top-1 {c.top1:.4f}" if not math.isnan(c.top1) else ""), flush=True)
    table = accuracy_table(checks)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "accuracy.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(asdict(checks[0])))
            writer.writeheader()
            writer.writerows(asdict(c) for c in checks)
        (args.out / "accuracy.md").write_text(table + "\n")
    failed = [c for c in checks if c.failed]
    skipped = [c for c in checks if c.verdict == "missing"]
    if failed:
        print(f"accuracy-check FAILED: {', '.join(f'{c.name} {c.verdict}' for c in failed)}")
        return 1
    print(f"accuracy-check PASSED: {len(checks) - len(skipped)} checked"
          + (f", {len(skipped)} skipped (no checkpoint; see the note column)" if skipped else ""))
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
