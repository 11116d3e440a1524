"""The perf gate's statistics: is the candidate slower than the baseline by more than a threshold?

Input is, per benchmark and per side, one array of timed samples (seconds per call) for each
round, a round being one pytest-benchmark subprocess. The estimate is a ratio of medians
(candidate / baseline, > 1 means slower):

- interleaved rounds (paired): the median over rounds of each round's
  median(candidate) / median(baseline). Both sides of a round ran back to back, so load that
  comes and goes between rounds cancels inside each ratio.
- stored baseline (unpaired): median of the candidate's round medians over the baseline's,
  divided by the same ratio of the calibration benchmark, so a machine that is uniformly
  1.3x slower than the one that recorded the baseline does not look like a regression.

Decision rule: a benchmark REGRESSED when the estimate exceeds 1 + threshold AND the one-sided
lower confidence bound of the ratio exceeds 1. The bound comes from a two-level bootstrap that
resamples rounds and, inside each round, the timed samples, so it widens both with noisy calls
and with rounds that disagree. One noisy round cannot fail the gate alone.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION = "calibration_matmul"
DEFAULT_THRESHOLD = 0.15  # benchmarks carry their own (perf_suite/conftest.py)
CONFIDENCE = 0.95
BOOTSTRAP = 1000

# name -> rounds -> samples (seconds per call)
Rounds = dict[str, list[np.ndarray]]


@dataclass(frozen=True)
class Comparison:
    name: str
    verdict: str  # ok | REGRESSED | faster | new | missing | incomparable
    ratio: float  # candidate time / baseline time; nan when not compared
    ratio_low: float  # one-sided lower confidence bound of ratio
    threshold: float
    base_ms: float  # median over rounds of the round medians
    candidate_ms: float
    rounds: int
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == "REGRESSED"


@dataclass
class SideRun:
    """What one side measured over all its rounds."""

    samples: Rounds
    info: dict[str, dict]  # name -> extra_info of the last round (threshold, model_source, ...)


def read_benchmark_json(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """One pytest-benchmark --benchmark-json file -> ({name: samples_s}, {name: extra_info})."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        benchmarks = data["benchmarks"]
    except FileNotFoundError:
        raise FileNotFoundError(f"benchmark results {path} do not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a pytest-benchmark --benchmark-json file ({exc})") from None
    samples, info = {}, {}
    for bench in benchmarks:
        name = bench["name"].removeprefix("test_")
        data_s = bench["stats"].get("data")
        if not data_s:
            raise ValueError(f"{path}: {name} has no per-round data; run pytest-benchmark with --benchmark-json")
        samples[name] = np.asarray(data_s, dtype=np.float64)
        info[name] = dict(bench.get("extra_info") or {})
    return samples, info


def collect_rounds(paths: list[str | Path]) -> SideRun:
    """Merge the JSON files of one side's rounds (in round order)."""
    run = SideRun(samples={}, info={})
    for path in paths:
        samples, info = read_benchmark_json(path)
        for name, s in samples.items():
            run.samples.setdefault(name, []).append(s)
            run.info[name] = info[name]
    return run


def _boot_round_medians(rounds: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, R) bootstrap medians of each round, resampling calls within the round."""
    out = np.empty((n, len(rounds)))
    for j, s in enumerate(rounds):
        out[:, j] = np.median(s[rng.integers(0, s.size, (n, s.size))], axis=1)
    return out


def _pick_rounds(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample rounds (columns) with replacement, per bootstrap replicate (row)."""
    n, r = values.shape
    return np.take_along_axis(values, rng.integers(0, r, (n, r)), axis=1)


def ratio_paired(base: list[np.ndarray], cand: list[np.ndarray], rng, n: int = BOOTSTRAP):
    """Interleaved rounds: (estimate, bootstrap replicates) of median over rounds of per-round ratios."""
    if len(base) != len(cand):
        raise ValueError(f"paired comparison needs as many baseline rounds as candidate rounds "
                         f"({len(base)} != {len(cand)})")
    per_round = np.array([np.median(c) / np.median(b) for b, c in zip(base, cand)])
    boot = _boot_round_medians(cand, rng, n) / _boot_round_medians(base, rng, n)
    return float(np.median(per_round)), np.median(_pick_rounds(boot, rng), axis=1)


def ratio_unpaired(base: list[np.ndarray], cand: list[np.ndarray], rng, n: int = BOOTSTRAP):
    """Stored baseline: ratio of the median round medians, rounds of each side resampled apart."""
    estimate = np.median([np.median(c) for c in cand]) / np.median([np.median(b) for b in base])
    boot_c = np.median(_pick_rounds(_boot_round_medians(cand, rng, n), rng), axis=1)
    boot_b = np.median(_pick_rounds(_boot_round_medians(base, rng, n), rng), axis=1)
    return float(estimate), boot_c / boot_b


def _median_ms(rounds: list[np.ndarray]) -> float:
    return float(np.median([np.median(s) for s in rounds]) * 1e3)


def compare(
    base: SideRun,
    cand: SideRun,
    *,
    paired: bool,
    default_threshold: float = DEFAULT_THRESHOLD,
    normalise_by: str | None = None,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> list[Comparison]:
    """Compare every benchmark of either side. `normalise_by` names the calibration benchmark
    whose ratio divides all others (stored baselines only)."""
    rng = np.random.default_rng(seed)
    ratio_fn = ratio_paired if paired else ratio_unpaired
    calib = None
    if normalise_by is not None:
        if normalise_by not in base.samples or normalise_by not in cand.samples:
            raise ValueError(f"cannot normalise for machine speed: benchmark {normalise_by!r} is "
                             f"missing from the {'baseline' if normalise_by not in base.samples else 'candidate'}")
        calib = ratio_fn(base.samples[normalise_by], cand.samples[normalise_by], rng)

    out = []
    for name in sorted(set(base.samples) | set(cand.samples)):
        info = cand.info.get(name) or base.info.get(name) or {}
        threshold = float(info.get("threshold", default_threshold))
        if name not in base.samples or name not in cand.samples:
            present = cand if name in cand.samples else base
            out.append(Comparison(
                name, "new" if name in cand.samples else "missing", float("nan"), float("nan"), threshold,
                _median_ms(base.samples[name]) if name in base.samples else float("nan"),
                _median_ms(cand.samples[name]) if name in cand.samples else float("nan"),
                len(present.samples[name]),
                "no baseline to compare with" if name in cand.samples else "not run by the candidate",
            ))
            continue
        b, c = base.samples[name], cand.samples[name]
        changed = [key for key in ("model", "batch")
                   if key in base.info.get(name, {}) and key in cand.info.get(name, {})
                   and base.info[name][key] != cand.info[name][key]]
        if changed:  # a stored baseline recorded by another version of the suite
            out.append(Comparison(name, "incomparable", float("nan"), float("nan"), threshold,
                                  _median_ms(b), _median_ms(c), len(c),
                                  "; ".join(f"{key} differs: baseline {base.info[name][key]}, "
                                            f"candidate {cand.info[name][key]}" for key in changed)))
            continue
        estimate, boot = ratio_fn(b, c, rng)
        note = ""
        if calib is not None and name != normalise_by:  # the yardstick itself stays raw
            estimate, boot = estimate / calib[0], boot / calib[1]
            note = f"normalised by {normalise_by} x{calib[0]:.3f}"
        low = float(np.quantile(boot, 1.0 - confidence))
        high = float(np.quantile(boot, confidence))
        if name == CALIBRATION or info.get("role") == "calibration":
            verdict, note = "ok", "machine-speed yardstick, not gated"
        elif estimate > 1.0 + threshold and low > 1.0:
            verdict = "REGRESSED"
        elif estimate < 1.0 / (1.0 + threshold) and high < 1.0:
            verdict = "faster"
        else:
            verdict = "ok"
        out.append(Comparison(name, verdict, estimate, low, threshold, _median_ms(b), _median_ms(c),
                              min(len(b), len(c)), note))
    return out


def as_rows(comparisons: list[Comparison]) -> list[dict]:
    return [asdict(c) for c in comparisons]


def perf_table(comparisons: list[Comparison]) -> str:
    """One row per benchmark: medians, slowdown, its confidence bound, threshold, verdict."""
    from bench.plumbing.tables import percent, render

    headers = ["benchmark", "base_ms", "candidate_ms", "slowdown", "slowdown_low95", "threshold",
               "rounds", "verdict", "note"]
    rows = [[c.name, c.base_ms, c.candidate_ms, percent(c.ratio - 1), percent(c.ratio_low - 1),
             f"+{c.threshold * 100:.0f}%", c.rounds, c.verdict, c.note] for c in comparisons]
    return render(headers, rows)
