"""The perf-gate proof on code regressions: its edits apply to today's code, each lands as a real
commit in a throwaway worktree, the false-alarm interval is the exact binomial one, and the
summary counts catches and false alarms from the trial files."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from bench.gate.code_proof import BENCH_FIELDS, TRIAL_FIELDS, clopper_pearson, schedule, summarise
from bench.gate.interleave import REPO_ROOT, GateError
from bench.gate.regressions import REGRESSIONS, Regression, apply, regressed_tree


@pytest.mark.parametrize("regression", REGRESSIONS, ids=lambda r: r.name)
def test_every_regression_still_applies_to_the_code(regression):
    text = (REPO_ROOT / regression.path).read_text()
    assert text.count(regression.old) == 1, f"update bench/gate/regressions.py: {regression.name} no longer applies"
    assert regression.hits


def test_a_regression_that_no_longer_applies_says_so(tmp_path):
    (tmp_path / "code.py").write_text("x = 1\n")
    stale = Regression("stale", "-", "code.py", "x = 2", "x = 3", ("export_onnx",))
    with pytest.raises(GateError, match="does not apply.*0 times"):
        apply(tmp_path, stale)


def test_regressed_tree_is_the_revision_plus_one_commit():
    regression = REGRESSIONS[0]
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with regressed_tree(REPO_ROOT, "HEAD", regression) as tree:
        parent = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD~1"], capture_output=True, text=True).stdout.strip()
        assert parent == head
        changed = subprocess.run(["git", "-C", str(tree), "diff", "--name-only", "HEAD~1"], capture_output=True,
                                 text=True).stdout.split()
        assert changed == [regression.path]
        assert regression.new in (tree / regression.path).read_text()
    assert not tree.exists()


def test_clopper_pearson_matches_the_exact_interval():
    low, high = clopper_pearson(0, 40)
    assert low == 0.0 and high == pytest.approx(0.0881, abs=2e-4)
    low, high = clopper_pearson(1, 40)
    assert low == pytest.approx(0.00063, abs=2e-5) and high == pytest.approx(0.1316, abs=2e-4)
    assert clopper_pearson(5, 5)[1] == 1.0


def test_schedule_alternates_identity_and_regressions():
    order = schedule(3, 2, ["a", "b"])
    assert order == ["", "a", "", "b", "", "a", "b"]


def _write(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_summary_counts_catches_and_false_alarms(tmp_path):
    ort = REGRESSIONS[0]
    base = {"revision": "abc", "cpu": "cpu x2", "gate_seconds": 60, "load_1min": 0.5, "seed": 1, "matmul_gflops": 300.0}
    trials = [
        {**base, "trial": 0, "kind": "identity", "regression": "", "machine": "m1", "started_utc": "t0",
         "flagged": "", "caught": "", "false_alarm": False, "false_flags": ""},
        {**base, "trial": 1, "kind": "regression", "regression": ort.name, "machine": "m1", "started_utc": "t1",
         "flagged": ort.hits[0], "caught": True, "false_alarm": False, "false_flags": ""},
        {**base, "trial": 2, "kind": "identity", "regression": "", "machine": "m2", "started_utc": "t2",
         "flagged": "tf_infer[googlenet-b1]", "caught": "", "false_alarm": True, "false_flags": "tf_infer[googlenet-b1]"},
    ]
    benches = [
        {"trial": 1, "kind": "regression", "regression": ort.name, "machine": "m1", "benchmark": ort.hits[0],
         "on_edited_code": True, "ratio": 1.8, "ratio_low": 1.7, "threshold": 0.15, "verdict": "REGRESSED"},
        {"trial": 2, "kind": "identity", "regression": "", "machine": "m2", "benchmark": "tf_infer[googlenet-b1]",
         "on_edited_code": False, "ratio": 1.3, "ratio_low": 1.1, "threshold": 0.15, "verdict": "REGRESSED"},
        {"trial": 0, "kind": "identity", "regression": "", "machine": "m1", "benchmark": "tf_infer[googlenet-b1]",
         "on_edited_code": False, "ratio": 1.0, "ratio_low": 0.9, "threshold": 0.15, "verdict": "ok"},
    ]
    _write(tmp_path / "trials.csv", TRIAL_FIELDS, trials)
    _write(tmp_path / "benchmarks.csv", BENCH_FIELDS, benches)
    text = summarise(tmp_path)
    assert "**1 false alarm(s) in 2 identity runs**" in text and "on 2 machine(s)" in text
    assert "**not met**" in text  # 2 runs are far from the 40 required
    assert f"| {ort.name}" in text and "1 / 1" in text
    assert "tf_infer[googlenet-b1]" in text.split("## Every benchmark ever flagged falsely")[1]
