"""A user's runs go to the untracked out/ by default; the committed results/ change only when asked."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _make_n(*args: str) -> str:
    """The commands `make` would run (nothing is run)."""
    proc = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
@pytest.mark.parametrize("args, wanted, unwanted", [
    (["bench"], "-m bench run --profile quick --out out/quick --fresh", "results/"),
    (["bench", "PROFILE=cpu-full"], "--out out/cpu-full", "results/"),
    (["bench", "OUT=results/quick"], "--out results/quick --fresh", None),
    (["train"], "-m bench train --recipe mnist_cnn --out runs/mnist_cnn --resume --quiet", "--results"),
    (["train", "RESULTS=results/train/mnist_cnn"], "--results results/train/mnist_cnn", None),
    (["preview"], "--out out/preview/mnist.png", "results/"),
    (["distribute-scaling"], "scaling --out out/distribute", "results/"),
    (["distribute-scaling", "OUT=results/distribute"], "scaling --out results/distribute", None),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_make_targets_write_to_out_unless_asked(args, wanted, unwanted):
    commands = _make_n(*args)
    assert wanted in commands
    if unwanted:
        assert unwanted not in commands


def test_out_is_untracked():
    proc = subprocess.run(["git", "check-ignore", "-q", "out/quick/results.csv"], cwd=REPO, timeout=30)
    assert proc.returncode == 0


def test_bench_run_defaults_to_out(capsys):
    from bench.harness import run

    assert run.main(["--dry-run", "--no-overhead-check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("results would go to out/quick")


@pytest.mark.parametrize("argv, default", [
    (["distribute", "scaling", "--help"], "default out/distribute"),
    (["train", "augment-preview", "--help"], "out/train/augment_preview.png"),
    (["train", "finetune-vs-scratch", "--help"], "out/train/finetune_vs_scratch.json"),
])
def test_other_outputs_default_to_out(argv, default):
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert default in " ".join(proc.stdout.split())
