"""The perf gate's decision rule on real timing samples (np.sort of a fixed array, timed here)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bench.gate import compare as cmp


@pytest.fixture(scope="module")
def real_rounds() -> list[np.ndarray]:
    """Three rounds of 60 real timings each of the same computation."""
    data = np.random.default_rng(0).random(20_000)
    rounds = []
    for _ in range(3):
        samples = []
        for _ in range(60):
            start = time.perf_counter()
            np.sort(data)
            samples.append(time.perf_counter() - start)
        rounds.append(np.array(samples))
    return rounds


def side(samples: dict[str, list[np.ndarray]], **info) -> cmp.SideRun:
    return cmp.SideRun(samples, {name: dict(info.get(name, {})) for name in samples})


def scaled(rounds, *factors):
    return [r * f for r, f in zip(rounds, factors)]


def by_name(comparisons):
    return {c.name: c for c in comparisons}


def test_identical_sides_pass(real_rounds):
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": real_rounds}), paired=True)
    assert c.verdict == "ok" and c.ratio == pytest.approx(1.0) and c.ratio_low <= 1.0


def test_slowdown_beyond_threshold_regresses(real_rounds):
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": scaled(real_rounds, 1.25, 1.25, 1.25)}), paired=True)
    assert c.verdict == "REGRESSED" and c.failed
    assert c.ratio == pytest.approx(1.25) and 1.0 < c.ratio_low < 1.25


def test_slowdown_within_threshold_passes(real_rounds):
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": scaled(real_rounds, 1.05, 1.05, 1.05)}), paired=True)
    assert c.verdict == "ok" and c.ratio == pytest.approx(1.05)


def test_per_benchmark_threshold_overrides_default(real_rounds):
    cand = side({"x": scaled(real_rounds, 1.25, 1.25, 1.25)}, x={"threshold": 0.30})
    [c] = cmp.compare(side({"x": real_rounds}), cand, paired=True, default_threshold=0.10)
    assert c.threshold == 0.30 and c.verdict == "ok"


def test_one_noisy_round_cannot_fail_the_gate(real_rounds):
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": scaled(real_rounds, 2.0, 1.0, 1.0)}), paired=True)
    assert c.ratio == pytest.approx(1.0) and c.verdict == "ok"


def test_inconsistent_rounds_are_not_significant(real_rounds):
    # the median ratio is 1.3, but one round says faster: the lower bound stays below 1
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": scaled(real_rounds, 1.3, 1.3, 0.8)}), paired=True)
    assert c.ratio == pytest.approx(1.3) and c.ratio_low < 1.0 and c.verdict == "ok"


def test_faster_is_reported_not_failed(real_rounds):
    [c] = cmp.compare(side({"x": real_rounds}), side({"x": scaled(real_rounds, 0.7, 0.7, 0.7)}), paired=True)
    assert c.verdict == "faster" and not c.failed


def test_calibration_is_never_gated(real_rounds):
    base = side({cmp.CALIBRATION: real_rounds})
    [c] = cmp.compare(base, side({cmp.CALIBRATION: scaled(real_rounds, 2, 2, 2)}), paired=True)
    assert c.verdict == "ok" and c.ratio == pytest.approx(2.0)


def test_stored_baseline_normalises_machine_speed(real_rounds):
    base = side({cmp.CALIBRATION: real_rounds, "x": real_rounds, "y": real_rounds})
    # the whole machine is 1.3x slower, and y also got 25% slower
    cand = side({cmp.CALIBRATION: scaled(real_rounds, 1.3, 1.3, 1.3), "x": scaled(real_rounds, 1.3, 1.3, 1.3),
                 "y": scaled(real_rounds, 1.3 * 1.25, 1.3 * 1.25, 1.3 * 1.25)})
    result = by_name(cmp.compare(base, cand, paired=False, normalise_by=cmp.CALIBRATION))
    assert result["x"].verdict == "ok" and result["x"].ratio == pytest.approx(1.0)
    assert result["y"].verdict == "REGRESSED" and result["y"].ratio == pytest.approx(1.25)
    # without normalisation the slower machine alone would fail x
    raw = by_name(cmp.compare(base, cand, paired=False))
    assert raw["x"].verdict == "REGRESSED"


def test_stored_baseline_without_calibration_is_an_error(real_rounds):
    with pytest.raises(ValueError, match="calibration_matmul.*missing from the baseline"):
        cmp.compare(side({"x": real_rounds}), side({"x": real_rounds, cmp.CALIBRATION: real_rounds}),
                    paired=False, normalise_by=cmp.CALIBRATION)


def test_paired_needs_equal_round_counts(real_rounds):
    with pytest.raises(ValueError, match="as many baseline rounds"):
        cmp.compare(side({"x": real_rounds}), side({"x": real_rounds[:2]}), paired=True)


def test_new_and_missing_benchmarks_are_reported_not_failed(real_rounds):
    result = by_name(cmp.compare(side({"old": real_rounds}), side({"new": real_rounds}), paired=True))
    assert result["new"].verdict == "new" and result["old"].verdict == "missing"
    assert not any(c.failed for c in result.values())


def test_changed_model_is_incomparable(real_rounds):
    result = cmp.compare(side({"x": real_rounds}, x={"model": "resnet18"}),
                         side({"x": real_rounds}, x={"model": "googlenet"}), paired=True)
    assert result[0].verdict == "incomparable" and "model differs" in result[0].note


def test_read_benchmark_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="do not exist"):
        cmp.read_benchmark_json(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"machine_info": {}}))
    with pytest.raises(ValueError, match="not a pytest-benchmark --benchmark-json file"):
        cmp.read_benchmark_json(bad)
