"""Timing harness for the perf-gate benchmarks: explicit warm-up, then a time budget per benchmark.

Run by `python -m bench perf-check` (which adds --benchmark-enable --benchmark-json=... and a
cache directory per code tree), or by hand:
    .venv/bin/python -m pytest benchmarks --benchmark-enable
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

import perf_systems

# Slower than the baseline by more than this fails the gate, unless a benchmark sets its own.
# 15%: measured per-round ratios of identical code stay within about +-12% on this shared machine
# (results/gate/proof.md), and a 25% regression must still clear it.
DEFAULT_THRESHOLD = 0.15
WARMUP_CALLS = 3
# Calls shorter than this are grouped (pytest-benchmark "iterations") so one sample is >= 1 ms.
MIN_SAMPLE_S = 0.001


def pytest_addoption(parser):
    group = parser.getgroup("perf gate")
    group.addoption("--perf-seconds", type=float, default=0.5,
                    help="timed seconds per benchmark in one run (default 0.5)")
    group.addoption("--perf-min-rounds", type=int, default=5,
                    help="at least this many timed samples per benchmark (default 5)")
    group.addoption("--perf-cache", default=None,
                    help="directory for setup artifacts (ONNX files) reused across runs of one code tree")
    group.addoption("--perf-threads", type=int, default=1,
                    help="intra-op threads of TensorFlow and onnxruntime (default 1, see pytest_configure)")


def pytest_configure(config):
    # One thread per engine by default: on a shared machine, a multi-threaded op waits for its
    # slowest, descheduled thread and its timings scatter by 2-4x; one thread gets a fair share
    # of a core, and a regression in the code costs the same extra work either way.
    threads = config.getoption("--perf-threads")
    if threads > 0:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    perf_systems.THREADS = threads


def benchmark_id(node_name: str) -> str:
    """'test_tf_infer[resnet18-b1]' -> 'tf_infer[resnet18-b1]', the name the gate reports."""
    return node_name.removeprefix("test_")


@pytest.fixture(scope="session")
def perf_cache(request, tmp_path_factory) -> Path:
    option = request.config.getoption("--perf-cache")
    path = Path(option) if option else tmp_path_factory.mktemp("perf-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def measure(benchmark, request):
    """measure(fn, threshold=..., **info): warm fn up, then time it with pytest-benchmark."""
    seconds = request.config.getoption("--perf-seconds")
    min_rounds = request.config.getoption("--perf-min-rounds")
    name = benchmark_id(request.node.name)

    def run(fn, *, threshold: float = DEFAULT_THRESHOLD, **info):
        fraction = perf_systems.injected_fraction(name)
        fn = perf_systems.with_slowdown(fn, fraction)
        warm = []
        for _ in range(WARMUP_CALLS):
            start = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - start)
        per_call = max(float(np.median(warm)), 1e-9)
        iterations = max(1, math.ceil(MIN_SAMPLE_S / per_call))
        rounds = max(min_rounds, round(seconds / (per_call * iterations)))
        benchmark.extra_info.update(threshold=threshold, injected_slowdown=fraction,
                                    threads=perf_systems.THREADS, cpus=sorted(os.sched_getaffinity(0)), **info)
        return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)

    return run
