"""Harness overhead: the timing loop against a bare perf_counter loop, on a model of about 1 ms.

Both loops call the same system under test (a tf_function engine) the same number of times; rounds
alternate harness/bare so machine noise hits both alike, and the median of the per-round ratios
is reported. Target: under 2%.
"""
from __future__ import annotations

import numpy as np

from bench.measure.engines import TfFunction
from bench.measure.timing import bare_loop_ns, time_calls


def reference_cnn(input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax"):
    """A small CNN whose batch-1 forward pass takes about a millisecond on a CPU core at 32x32x3.
    Also usable in a matrix as `bench.measure.overhead:reference_cnn`."""
    import keras
    from keras import layers

    inputs = keras.Input(tuple(input_shape))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation)(x)
    return keras.Model(inputs, outputs, name="reference_cnn")


def harness_overhead(device: str = "cpu", calls: int = 100, rounds: int = 10) -> dict[str, float]:
    """Two figures: (1) the timing loop's own cost per call, measured on a no-op so machine noise
    cannot hide it, as a share of the model's latency; (2) the harness's reported mean latency
    against a bare loop over the same engine, best round of each (interleaved rounds)."""
    engine = TfFunction(device)
    batch = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    engine.prepare(reference_cnn(), batch.shape)
    for _ in range(10):
        engine(batch)
    harness_ms, bare_ms = [], []
    for _ in range(rounds):
        harness_ms.append(time_calls(engine, batch, warmup=0, repeats=calls, time_budget_s=None).samples_ns.mean() / 1e6)
        bare_ms.append(bare_loop_ns(engine, batch, calls) / 1e6)
    noop = lambda _: None  # noqa: E731
    n = 20_000
    loop_cost_ns = (time_calls(noop, None, warmup=0, repeats=n, time_budget_s=None).samples_ns.sum()
                    - bare_loop_ns(noop, None, n) * n) / n
    timed_overhead_ns = time_calls(noop, None, warmup=0, repeats=n, time_budget_s=None).samples_ns.mean()
    model_ms = float(np.min(bare_ms))
    return {"model": "reference_cnn (32x32x3, batch 1, tf_function)", "calls_per_round": calls, "rounds": rounds,
            "bare_ms_per_call": model_ms, "harness_ms_per_call": float(np.min(harness_ms)),
            "overhead_pct": float((np.min(harness_ms) / model_ms - 1.0) * 100),
            "timer_cost_ns_per_call": float(timed_overhead_ns),
            "timer_cost_pct": float(timed_overhead_ns / (model_ms * 1e6) * 100),
            "loop_bookkeeping_ns_per_call": float(loop_cost_ns), "target_pct": 2.0}
