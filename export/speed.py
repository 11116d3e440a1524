"""How fast an exported model runs: warm-up and timed runs kept explicit, percentiles reported."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def latency(run: Callable[[np.ndarray], object], batch: np.ndarray, warmup: int = 3, runs: int = 10) -> dict:
    """Times `run(batch)`; one flat row (ms per batch percentiles, images per second)."""
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {
        "batch_size": int(len(batch)),
        "runs": runs,
        "latency_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "latency_ms_p90": round(float(np.percentile(ms, 90)), 3),
        "images_per_sec": round(float(len(batch) / np.median(times)), 1),
    }
