"""The timing loop, the systems under test and the small measurements, on real small models."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measure import accuracy, memory
from bench.measure.engines import ENGINES, OnnxRuntimeCuda, TfFunction
from bench.measure.timing import summarize, time_calls


@pytest.fixture(scope="module")
def small_model():
    import zoo

    return zoo.build("reference_cnn", input_shape=(28, 28, 1), num_classes=10)


class CountingSUT:
    """A real engine wrapped so the test sees every call: the first `slow_calls` calls also burn
    `slow_s` seconds of CPU, as a first trace/compile would."""

    def __init__(self, engine, slow_calls: int, slow_s: float = 0.05):
        self.engine, self.slow_calls, self.slow_s = engine, slow_calls, slow_s
        self.calls = 0

    def __call__(self, batch):
        import time

        self.calls += 1
        if self.calls <= self.slow_calls:
            end = time.perf_counter() + self.slow_s
            while time.perf_counter() < end:
                pass
        return self.engine(batch)


def test_warmup_calls_are_not_timed(small_model):
    batch = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    engine = TfFunction()
    engine.prepare(small_model, batch.shape)
    sut = CountingSUT(engine, slow_calls=3, slow_s=0.05)
    traces_after_warmup = []
    timing = time_calls(sut, batch, warmup=3, repeats=12, time_budget_s=None,
                        on_warmed_up=lambda: traces_after_warmup.append(engine.tracing_count()))
    assert sut.calls == 3 + 12
    assert timing.repeats == 12 and timing.warmup == 3
    # The three slow calls (>= 50 ms each) and the first trace all happened in the warm-up.
    assert timing.samples_ns.max() < 0.05e9
    assert traces_after_warmup == [1] and engine.tracing_count() == 1


def test_without_warmup_the_slow_first_calls_are_in_the_samples(small_model):
    batch = np.zeros((1, 28, 28, 1), np.float32)
    engine = TfFunction()
    engine.prepare(small_model, batch.shape)
    sut = CountingSUT(engine, slow_calls=2, slow_s=0.05)
    timing = time_calls(sut, batch, warmup=0, repeats=5, time_budget_s=None)
    assert (timing.samples_ns[:2] >= 0.05e9).all()


def test_time_budget_runs_at_least_min_repeats_and_stops():
    timing = time_calls(lambda _: None, None, warmup=1, time_budget_s=0.0, min_repeats=7)
    assert timing.repeats == 7
    timing = time_calls(lambda _: sum(range(1000)), None, warmup=0, time_budget_s=0.05, min_repeats=1,
                        max_repeats=1_000_000)
    assert timing.samples_ns.sum() >= 0.04e9 and timing.repeats > 10


def test_percentiles_match_numpy_on_known_samples():
    samples_ns = np.array([5, 1, 4, 2, 3, 100, 7, 8, 9, 6], dtype=np.int64) * 1_000_000
    row = summarize(samples_ns, batch_size=4)
    ms = samples_ns / 1e6
    for p in (50, 90, 99):
        assert row[f"latency_ms_p{p}"] == pytest.approx(np.percentile(ms, p))
    assert row["latency_ms_p50"] == pytest.approx(5.5)
    assert row["latency_ms_mean"] == pytest.approx(14.5)
    assert row["latency_ms_std"] == pytest.approx(np.std(ms, ddof=1))
    assert row["latency_ms_min"] == 1.0
    assert row["images_per_sec"] == pytest.approx(4 / 0.0145)


def test_percentiles_through_a_real_timing():
    timing = time_calls(lambda _: None, None, warmup=0, repeats=50, time_budget_s=None)
    row = timing.summary(1)
    assert row["latency_ms_p99"] == pytest.approx(np.percentile(timing.samples_ns / 1e6, 99))
    assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]


def test_bad_timing_arguments_are_rejected():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_calls(lambda _: None, None, repeats=0)
    with pytest.raises(ValueError, match="give repeats or time_budget_s"):
        time_calls(lambda _: None, None, repeats=None, time_budget_s=None)
    with pytest.raises(ValueError, match="no timed samples"):
        summarize([], 1)


@pytest.mark.parametrize("name", ["keras_predict", "tf_function", "xla", "savedmodel", "onnxruntime", "openvino",
                                  "litert"])
def test_every_engine_returns_the_models_output_as_numpy(name, small_model, tmp_path):
    batch = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    engine = ENGINES[name]("cpu", tmp_path)
    engine.prepare(small_model, batch.shape)
    out = engine(batch)
    assert isinstance(out, np.ndarray) and out.shape == (3, 10)
    np.testing.assert_allclose(out, small_model(batch, training=False).numpy(), atol=1e-5)


def test_cuda_provider_without_gpu_says_why():
    import onnxruntime as ort

    available, reason = OnnxRuntimeCuda.availability("cpu")
    assert available == ("CUDAExecutionProvider" in ort.get_available_providers())
    if not available:
        assert "CUDAExecutionProvider" in reason and "onnxruntime-gpu" in reason


def test_top_k_counts():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert accuracy.top_k_correct(scores, labels, 1) == 1
    assert accuracy.top_k_correct(scores, labels, 2) == 2
    result = accuracy.evaluate(lambda x: x, [(scores, labels)], num_classes=3)
    assert result["top1"] == pytest.approx(1 / 3) and np.isnan(result["top5"])


def test_peak_rss_sees_an_allocation_inside_the_block():
    before = memory.current_rss_bytes()
    with memory.PeakRSS() as peak:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        del block
    assert peak.peak_bytes - before > 150 * 2**20


def test_precision_policy_is_reset_even_after_an_error():
    import keras

    import zoo
    from bench.plumbing.precision import dtype_policy

    with dtype_policy("mixed_float16"):
        model = zoo.build("reference_cnn", input_shape=(28, 28, 1), num_classes=10)
    assert model.layers[1].compute_dtype == "float16" and model.layers[1].variable_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with dtype_policy("mixed_bfloat16"):
            raise RuntimeError("a failing cell")
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match="valid: float32, mixed_float16, mixed_bfloat16"):
        with dtype_policy("fp8"):
            pass
    with pytest.raises(ValueError, match="'fp32' .this toolkit writes 'float32'"):
        with dtype_policy("fp32"):
            pass


@pytest.mark.parametrize("xla", [False, True])
def test_compiled_train_step_steady_state(xla):
    import keras

    import zoo
    from bench.measure.train_step import compile_for_training, compiled_train_step, measure_training

    model = zoo.build("reference_cnn", input_shape=(28, 28, 1), num_classes=10)
    compile_for_training(model, jit_compile=xla)
    step = compiled_train_step(model, 8, (28, 28, 1), jit_compile=xla)
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 8)
    before = [v.numpy().copy() for v in model.trainable_variables]
    timing, retraces = measure_training(step, lambda: (x, y), warmup_steps=2, steps=4, time_budget_s=None)
    assert timing.repeats == 4 and timing.warmup == 2 and retraces == 0
    assert step.experimental_get_tracing_count() == 1
    assert int(model.optimizer.iterations.numpy()) == 6  # every warm-up and timed step really trained
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_variables))
    assert isinstance(model.optimizer, keras.optimizers.SGD)
