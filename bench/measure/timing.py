"""The timing loop: warm-up calls first (never timed), then timed calls until a repeat count or a
time budget is reached; latency reported as percentiles, not a mean alone.

The callable must return only when its result is ready (engines return numpy arrays), so the
clock never stops before the work is done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass
class Timing:
    """Latencies of the timed calls only, in nanoseconds, and how many warm-up calls preceded them."""

    samples_ns: np.ndarray
    warmup: int

    @property
    def repeats(self) -> int:
        return int(self.samples_ns.size)

    def summary(self, batch_size: int) -> dict[str, float]:
        return summarize(self.samples_ns, batch_size)


def summarize(samples_ns: np.ndarray | list[int], batch_size: int) -> dict[str, float]:
    """latency_ms_p50/p90/p99/mean/std/min and images_per_sec (batch / mean latency)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no timed samples: increase repeats or the time budget")
    row = {f"latency_ms_p{p}": float(np.percentile(ms, p)) for p in PERCENTILES}
    row["latency_ms_mean"] = float(ms.mean())
    # ddof=1: the spread of a sample of calls, not of a whole population.
    row["latency_ms_std"] = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    row["latency_ms_min"] = float(ms.min())
    row["images_per_sec"] = float(batch_size * 1e3 / row["latency_ms_mean"])
    return row


def time_calls(
    fn: Callable[[Any], Any],
    arg: Any,
    *,
    warmup: int = 5,
    repeats: int | None = None,
    time_budget_s: float | None = 2.0,
    min_repeats: int = 10,
    max_repeats: int = 100_000,
    on_warmed_up: Callable[[], None] | None = None,
) -> Timing:
    """Call `fn(arg)` `warmup` times untimed, then time each call.

    With `repeats`, exactly that many timed calls. Otherwise timed calls go on until
    `time_budget_s` has passed, but at least `min_repeats` and at most `max_repeats`.
    `on_warmed_up` runs between the two phases, untimed (e.g. to read a tracing counter).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeats is None and time_budget_s is None:
        raise ValueError("give repeats or time_budget_s")
    if repeats is not None and repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn(arg)
    if on_warmed_up is not None:
        on_warmed_up()
    clock = time.perf_counter_ns
    samples: list[int] = []
    if repeats is not None:
        for _ in range(repeats):
            t0 = clock()
            fn(arg)
            samples.append(clock() - t0)
    else:
        deadline = clock() + int(time_budget_s * 1e9)
        while len(samples) < max_repeats:
            t0 = clock()
            fn(arg)
            t1 = clock()
            samples.append(t1 - t0)
            if t1 >= deadline and len(samples) >= min_repeats:
                break
    return Timing(np.asarray(samples, dtype=np.int64), warmup)


def bare_loop_ns(fn: Callable[[Any], Any], arg: Any, n: int) -> float:
    """Mean ns per call of a bare perf_counter loop: the reference for the harness-overhead check."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter_ns() - t0) / n
