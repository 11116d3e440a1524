"""The perf gate end to end: a real short interleaved run (base revision in a git worktree, each
side a pytest-benchmark subprocess), the decision rule on its JSON files, stored baselines,
the slowdown switch, and clear errors for bad input."""
from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from bench.gate import compare as cmp
from bench.gate import perf
from bench.gate.interleave import SUITE_DIR, REPO_ROOT, SLOWDOWN_ENV, GateError, SuiteOptions

SELECT = "calibration or googlenet-b1"
TARGET = "tf_infer[googlenet-b1]"


def load_perf_systems():
    spec = importlib.util.spec_from_file_location("perf_systems", SUITE_DIR / "perf_systems.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One interleaved round of two benchmarks: HEAD in a worktree vs this working tree, with the
    slowdown switch on for the candidate."""
    out = tmp_path_factory.mktemp("perf")
    code = perf.main(["--base", "HEAD", "--rounds", "1", "--seconds", "0.05", "-k", SELECT,
                      "--inject-slowdown", f"{TARGET}:0.5", "--out", str(out)])
    return code, out


def test_short_run_writes_real_results_and_a_consistent_verdict(short_run):
    code, out = short_run
    with open(out / "comparison.csv") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"calibration_matmul", TARGET}
    assert code == (1 if any(row["verdict"] == "REGRESSED" for row in rows.values()) else 0)
    assert "| benchmark" in (out / "comparison.md").read_text()


def test_each_side_measured_its_own_tree_and_only_the_candidate_was_slowed(short_run):
    _, out = short_run
    base = json.loads(next((out / "base").glob("*.json")).read_text())
    cand = json.loads(next((out / "candidate").glob("*.json")).read_text())
    info = {side: {b["name"]: b["extra_info"] for b in data["benchmarks"]}
            for side, data in (("base", base), ("candidate", cand))}
    target = f"test_{TARGET}"
    assert info["base"][target]["code_root"] != str(REPO_ROOT)  # the temporary worktree
    assert info["candidate"][target]["code_root"] == str(REPO_ROOT)
    assert info["base"][target]["injected_slowdown"] == 0.0
    assert info["candidate"][target]["injected_slowdown"] == 0.5


def test_decision_rule_on_the_real_json(short_run):
    _, out = short_run
    base = cmp.collect_rounds(sorted((out / "base").glob("*.json")))
    assert all(len(r) == 1 and r[0].size >= 5 for r in base.samples.values())
    same = cmp.compare(base, base, paired=True)
    assert all(c.verdict == "ok" and c.ratio == pytest.approx(1.0) for c in same)
    # 25% slower, or more where the round's own spread is wider: its slowest call must stay faster than
    # every call of the slowed copy, or the bootstrap bound of a noisy 5-call round can dip below 1
    # (CI: 25% on a busy machine was, correctly, not significant)
    slower = cmp.SideRun({k: [r * max(1.25, 1.01 * r.max() / r.min()) for r in v] for k, v in base.samples.items()},
                         base.info)
    verdicts = {c.name: c.verdict for c in cmp.compare(base, slower, paired=True)}
    assert verdicts == {"calibration_matmul": "ok", TARGET: "REGRESSED"}


def test_stored_baseline_round_trip(short_run, tmp_path):
    _, out = short_run
    run = cmp.collect_rounds(sorted((out / "candidate").glob("*.json")))
    path = tmp_path / "perf.json"
    perf.write_baseline(path, run, machine={"cpu": {"count": 2}}, commit="abc", options=perf.suite(seconds=0.05))
    stored = perf.load_baseline(path)
    assert set(stored.samples) == set(run.samples) and "code_root" not in stored.info[TARGET]
    result = {c.name: c for c in cmp.compare(stored, run, paired=False, normalise_by=cmp.CALIBRATION)}
    assert result[TARGET].verdict == "ok" and result[TARGET].ratio == pytest.approx(1.0, abs=2e-3)


def test_unknown_base_revision(capsys):
    assert perf.main(["--base", "no-such-revision-7"]) == 2
    err = capsys.readouterr().err
    assert "unknown git revision 'no-such-revision-7'" in err and "--baseline FILE" in err


def test_missing_baseline_file(tmp_path, capsys):
    assert perf.main(["--baseline", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert "absent.json does not exist" in err and "--save-baseline" in err and "--base HEAD~1" in err


def test_malformed_baseline_file(tmp_path, capsys):
    path = tmp_path / "perf.json"
    path.write_text(json.dumps({"format": "something else"}))
    assert perf.main(["--baseline", str(path)]) == 2
    assert "is not a perf baseline" in capsys.readouterr().err


def test_pinning_to_a_cpu_this_process_cannot_use_is_an_error():
    with pytest.raises(GateError, match="cannot pin benchmarks to CPU 4096"):
        SuiteOptions(("benchmarks",), cpu=4096)


def test_bad_numbers_are_usage_errors():
    with pytest.raises(SystemExit) as exc:
        perf.main(["--rounds", "0"])
    assert exc.value.code == 2


def test_slowdown_switch_parsing():
    ps = load_perf_systems()
    assert ps.SLOWDOWN_ENV == SLOWDOWN_ENV
    spec = "tf_infer[resnet18-b32]:0.25, export_onnx:0.1"
    assert ps.injected_fraction("tf_infer[resnet18-b32]", spec) == 0.25
    assert ps.injected_fraction("export_onnx", spec) == 0.1
    assert ps.injected_fraction("train_step[resnet18-b32]", spec) == 0.0
    for bad in ("export_onnx", "export_onnx:x", ":0.2", "export_onnx:-1"):
        with pytest.raises(ValueError, match=f"{SLOWDOWN_ENV}: bad entry"):
            ps.injected_fraction("export_onnx", bad)


def test_slowdown_adds_work_and_keeps_the_result():
    ps = load_perf_systems()
    data = np.random.default_rng(0).random(50_000)
    work = lambda: np.sort(data)  # noqa: E731
    assert ps.with_slowdown(work, 0.0) is work
    slowed = ps.with_slowdown(work, 0.25)
    assert slowed.extra_units >= 1
    np.testing.assert_array_equal(slowed(), work())


def test_report_only_never_fails_the_caller(capsys):
    # CI runs the quick gate report-only until its false-alarm rate is proven: a gate that cannot
    # run (here: a revision that does not exist) says so, but exits 0.
    assert perf.main(["--base", "no-such-revision-xyz", "--quick"]) == 2
    assert perf.main(["--base", "no-such-revision-xyz", "--quick", "--report-only"]) == 0
    assert "report only" in capsys.readouterr().err


# The last revision before the restructuring into plumbing/harness/perf_suite: benchmarks/ at the
# top, no export.runtimes, zoo loading every family on import.
BEFORE_RESTRUCTURING = "b3fcdb6"


@pytest.mark.slow  # a long real run: make test-all
def test_the_candidate_suite_measures_a_base_from_before_the_restructuring(tmp_path):
    import subprocess

    known = subprocess.run(["git", "-C", str(REPO_ROOT), "cat-file", "-e", f"{BEFORE_RESTRUCTURING}^{{commit}}"])
    assert known.returncode == 0, f"{BEFORE_RESTRUCTURING} is not in this clone; fetch the full history"
    code = perf.main(["--base", BEFORE_RESTRUCTURING, "--rounds", "1", "--seconds", "0.05",
                      "-k", "calibration or resnet18-b1", "--out", str(tmp_path)])
    assert code in (0, 1)  # measured on both sides; 2 would mean a side could not run the suite
    with open(tmp_path / "comparison.csv") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"calibration_matmul", "tf_infer[resnet18-b1]", "ort_infer[resnet18-b1]"}
    assert all(row["verdict"] in ("ok", "faster", "REGRESSED") for row in rows.values())
