"""Proof that the CI accuracy gate catches real bugs and passes unchanged code.

`python -m bench accuracy-proof --out results/gate/accuracy_proof` runs the gate that CI runs
(`make accuracy-gate`: train the CI recipe fresh, then `accuracy-check --strict` against its bounds in
results/baselines/accuracy.toml) once on unchanged code and once per injected bug. Each bug is a
patch to the project's own code, applied in a temporary git worktree of HEAD, so the gate sees
exactly what a commit with that bug would give it. The verdicts, top-1s and times go to
accuracy_proof.{json,md}; the command exits 1 when a bug passes or unchanged code fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.plumbing.tables import render

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = "mnist_tiny"   # the CI recipe: about 300 steps, step-bounded (no wall-clock budget)
# The gate's bounds are [min - margin, max + margin] of the recipe's 5-seed spread. CI trains seed 0 on
# whatever machine it gets, and another CPU's floating point makes that run another draw from the
# spread, not seed 0's exact number; this margin (several standard deviations of the spread) keeps such
# a draw from failing while the bugs below, which cost far more, still fail.
GATE_MARGIN = 0.01


@dataclass(frozen=True)
class Bug:
    name: str
    what: str
    path: str    # file in the repository
    old: str     # must occur exactly once
    new: str
    probe: bool = False   # a probe of the gate's resolution: reported, not required to be caught


BUGS = [
    Bug("labels_misaligned", "training labels shifted by one image against their images (np.roll)",
        "bench/train/splits.py",
        "    x_fit, y_fit = x_train[train_idx], y_train[train_idx]\n",
        "    x_fit, y_fit = x_train[train_idx], np.roll(y_train[train_idx], 1)\n"),
    Bug("test_scaled_differently", "test images scaled to [0, 0.5] while training sees [0, 1] "
        "(uint8 halved before the shared preprocessing)",
        "bench/train/splits.py",
        "    test = pipeline(x_test, y_test, training=False)\n",
        "    test = pipeline(x_test // 2, y_test, training=False)\n"),
    Bug("labels_noisy_10pct", "one training label in ten replaced by a random class (a subtler data bug)",
        "bench/train/splits.py",
        "    x_fit, y_fit = x_train[train_idx], y_train[train_idx]\n",
        "    x_fit, y_fit = x_train[train_idx], y_train[train_idx].copy()\n"
        "    noisy = np.random.default_rng(seed).random(len(y_fit)) < 0.1\n"
        "    y_fit[noisy] = np.random.default_rng(seed + 1).integers(0, y_fit.max() + 1, noisy.sum())\n",
        probe=True),
]


@dataclass
class Trial:
    case: str
    what: str
    expected: str          # pass | fail | probe (a resolution probe: either verdict is reported)
    gate_exit: int
    verdict: str           # the accuracy-check verdict (ok, BELOW, ABOVE, ERROR)
    test_top1: float
    bounds: str
    seconds: float

    @property
    def correct(self) -> bool:
        return self.expected == "probe" or (self.gate_exit == 0) == (self.expected == "pass")

    @property
    def outcome(self) -> str:
        if self.expected == "pass":
            return "passed" if self.gate_exit == 0 else "FALSE ALARM"
        caught = "caught" if self.gate_exit != 0 else "missed"
        return caught if self.expected == "probe" or caught == "caught" else "MISSED"


def apply(bug: Bug, tree: Path) -> None:
    target = tree / bug.path
    text = target.read_text()
    if text.count(bug.old) != 1:
        raise RuntimeError(f"bug {bug.name}: the line it patches occurs {text.count(bug.old)} times in "
                           f"{bug.path} (expected once); update BUGS in {__file__} to the current code")
    target.write_text(text.replace(bug.old, bug.new))


def run_gate(tree: Path, seed: int, run_dir: Path) -> tuple[int, str, float, str]:
    """Train the CI recipe in `tree`'s code and check it: (exit, verdict, top-1, bounds)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}   # the worktree's code, not the installed checkout
    where = subprocess.run([sys.executable, "-c", "import bench; print(bench.__file__)"], cwd=tree, env=env,
                           capture_output=True, text=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the gate would run {where}, not the worktree {tree}: the proof would test the wrong code")
    train = subprocess.run([sys.executable, "-m", "bench", "train", "--recipe", RECIPE, "--out", str(run_dir),
                            "--seed", str(seed), "--quiet"], cwd=tree, env=env, capture_output=True, text=True)
    if train.returncode != 0:
        return train.returncode, "ERROR", float("nan"), train.stderr.strip().splitlines()[-1:][0] if train.stderr else ""
    check = subprocess.run([sys.executable, "-m", "bench", "accuracy-check", "--strict", "--only", RECIPE,
                            "--run", f"{RECIPE}={run_dir}"], cwd=tree, env=env, capture_output=True, text=True)
    row = re.search(rf"^\s*{RECIPE}: (\w+)(?: top-1 ([0-9.]+))?", check.stdout, re.M)
    bounds = re.search(rf"\|\s*{RECIPE}\s*\|\s*[-0-9.]+\s*\|\s*([0-9.]+)\s*\|\s*([0-9.]+)", check.stdout)
    return (check.returncode, row.group(1) if row else "ERROR",
            float(row.group(2)) if row and row.group(2) else float("nan"),
            f"[{bounds.group(1)}, {bounds.group(2)}]" if bounds else "")


def trial(case: str, what: str, bug: Bug | None, seed: int, scratch: Path) -> Trial:
    tree = scratch / case
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), "HEAD"], cwd=REPO_ROOT, check=True)
    try:
        if bug is not None:
            apply(bug, tree)
        start = time.perf_counter()
        code, verdict, top1, bounds = run_gate(tree, seed, scratch / f"{case}-run")
        expected = "pass" if bug is None else "probe" if bug.probe else "fail"
        return Trial(case, what, expected, code, verdict, top1, bounds,
                     round(time.perf_counter() - start, 1))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench accuracy-proof", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for accuracy_proof.json and .md")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds of the unchanged runs "
                                                 "(default 0, the seed CI trains)")
    p.add_argument("--only", nargs="+", choices=[b.name for b in BUGS], help="only these bugs")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from bench.plumbing.files import check_output_dir
    check_output_dir(args.out)
    bugs = [b for b in BUGS if not args.only or b.name in args.only]
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="accuracy-proof-") as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            trials.append(trial(f"unchanged_seed{seed}", f"HEAD as committed, training seed {seed}", None, seed, Path(tmp)))
            print(f"  {trials[-1].case}: exit {trials[-1].gate_exit}, {trials[-1].verdict} {trials[-1].test_top1}", flush=True)
        for bug in bugs:
            trials.append(trial(bug.name, bug.what, bug, 0, Path(tmp)))
            print(f"  {bug.name}: exit {trials[-1].gate_exit}, {trials[-1].verdict} {trials[-1].test_top1}", flush=True)
    from bench.plumbing.environment import collect
    record = {"recipe": RECIPE, "head": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, text=True,
                                                        capture_output=True).stdout.strip(),
              "environment": collect(), "trials": [asdict(t) | {"correct": t.correct, "outcome": t.outcome} for t in trials]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_proof.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    table = render(["case", "what", "expected", "gate exit", "verdict", "test top-1", "bounds", "seconds", "outcome"],
                   [[t.case, t.what, t.expected, t.gate_exit, t.verdict, f"{t.test_top1:.4f}", t.bounds, t.seconds,
                     t.outcome] for t in trials])
    (args.out / "accuracy_proof.md").write_text(
        f"# The CI accuracy gate on unchanged code and injected bugs\n\nRecipe `{RECIPE}`, bounds from "
        f"results/baselines/accuracy.toml; written by `python -m bench accuracy-proof`. `expected` fail: a bug the "
        f"gate must catch; probe: a subtler bug that measures the gate's resolution, reported either way.\n\n{table}\n")
    print(table)
    wrong = [t.case for t in trials if not t.correct]
    print("accuracy-proof: " + (f"WRONG verdicts: {', '.join(wrong)}" if wrong else "every verdict as expected"))
    return 1 if wrong else 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
