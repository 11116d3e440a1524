"""Harness overhead: the timing loop against a bare perf_counter loop, on the zoo's reference_cnn.

Both loops call the same system under test (a tf_function engine) the same number of times; rounds
alternate harness/bare so machine noise hits both alike, and the median of the per-round ratios
is reported. Target: under 2%.
"""
from __future__ import annotations

import numpy as np

import zoo

from bench.measure.engines import TfFunction
from bench.measure.timing import bare_loop_ns, time_calls


def harness_overhead(device: str = "cpu", calls: int = 25, rounds: int = 40) -> dict[str, float]:
    """Two figures: (1) the harness's reported mean latency against a bare loop over the same
    engine, as the median of per-round ratios over many short, paired rounds (order alternating)
    so a busy machine's drift hits both sides of a pair alike; (2) the timing loop's own cost per
    call, measured on a no-op so machine noise cannot hide it, as a share of the model's latency."""
    engine = TfFunction(device)
    batch = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    engine.prepare(zoo.build("reference_cnn", input_shape=(32, 32, 3), num_classes=10), batch.shape)
    for _ in range(20):
        engine(batch)

    def harness() -> float:
        return time_calls(engine, batch, warmup=0, repeats=calls, time_budget_s=None).samples_ns.mean()

    def bare() -> float:
        return bare_loop_ns(engine, batch, calls)

    ratios, harness_ns, bare_ns = [], [], []
    for i in range(rounds):
        if i % 2:
            b, h = bare(), harness()
        else:
            h, b = harness(), bare()
        ratios.append(h / b)
        harness_ns.append(h)
        bare_ns.append(b)
    noop = lambda _: None  # noqa: E731
    timer_ns = float(time_calls(noop, None, warmup=0, repeats=20_000, time_budget_s=None).samples_ns.mean())
    model_ms = float(np.median(bare_ns) / 1e6)
    q25, q75 = np.percentile(ratios, [25, 75])
    return {"model": "reference_cnn (32x32x3, batch 1, tf_function)", "calls_per_round": calls, "rounds": rounds,
            "bare_ms_per_call": model_ms, "harness_ms_per_call": float(np.median(harness_ns) / 1e6),
            "overhead_pct": float((np.median(ratios) - 1.0) * 100),
            "overhead_pct_iqr": [float((q25 - 1) * 100), float((q75 - 1) * 100)],
            "timer_cost_ns_per_call": timer_ns, "timer_cost_pct": timer_ns / (model_ms * 1e6) * 100,
            "target_pct": 2.0}
