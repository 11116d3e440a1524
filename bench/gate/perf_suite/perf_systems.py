"""Systems under test for the perf gate, kept apart from the code that times them.

Each `make_*` function does its setup (build, trace, convert) once and returns a zero-argument
callable doing exactly one unit of the measured work, through the toolkit's own code paths:
`zoo.build`, the bench harness' engines and train step, `export.convert.to_onnx`, the one
onnxruntime session factory. The gate runs this file from the candidate checkout against the code
of both revisions (each revision's root comes first on `sys.path`), so the toolkit is imported
lazily, nothing from `bench.gate` is used, and where a base revision from before a restructuring
lacks a module, `toolkit()` says which older path provides the same code.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

SLOWDOWN_ENV = "IMGCLS_PERF_INJECT_SLOWDOWN"
SEED_ENV = "IMGCLS_PERF_SEED"  # the inputs' seed; the gate's proof varies it from trial to trial

# Small zoo models at CIFAR size; resnet18 with the ImageNet stem keeps a batch of 32 at ~1 GFLOP.
MODELS: dict[str, dict[str, Any]] = {
    "resnet18": {"zoo_name": "resnet18", "input_shape": (32, 32, 3), "options": {"small_input": False}},
    "googlenet": {"zoo_name": "googlenet", "input_shape": (32, 32, 3), "options": {}},
}
NUM_CLASSES = 10
THREADS = 0  # intra-op threads of TF and onnxruntime; 0: the library default (set by conftest)


def build_model(key: str):
    import zoo

    entry = MODELS[key]
    return zoo.build(entry["zoo_name"], input_shape=entry["input_shape"], num_classes=NUM_CLASSES,
                     **entry["options"])


def perf_gate_cnn():
    """The export benchmark's own network, frozen here (not in the zoo) so that its workload is the
    same in every revision the gate compares: every zoo architecture takes 2-3 s of tf2onnx per
    conversion, too long to repeat in a one-minute gate; three conv blocks convert in ~0.1 s of CPU."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = inputs
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="perf_gate_cnn")


def code_root() -> str:
    """Which checkout's toolkit this process measures (the gate checks it is the intended one)."""
    import zoo

    return str(Path(zoo.__file__).resolve().parents[1])


def random_images(batch: int, input_shape: tuple[int, ...], seed: int | None = None) -> np.ndarray:
    seed = int(os.environ.get(SEED_ENV, "0")) if seed is None else seed
    return np.random.default_rng(seed).random((batch, *input_shape), dtype=np.float32)


def make_tf_infer(model, batch: int) -> Callable[[], Any]:
    """The bench harness' 'tf_function' engine: a graph function with a fixed input signature."""
    from bench.measure.engines import ENGINES

    engine = ENGINES["tf_function"](device="cpu")
    shape = (batch, *model.input_shape[1:])
    engine.prepare(model, shape)
    x = random_images(batch, shape[1:])
    engine(x)  # traces outside the timed region
    return lambda: engine(x)


def onnx_file(model, key: str, cache_dir: Path) -> Path:
    """The model converted by `export.convert.to_onnx`, once per code tree (cached by the gate
    across the rounds of one side: conversion is setup here, its time is the export benchmark)."""
    from export.convert import to_onnx

    path = cache_dir / f"{key}.onnx"
    if not path.exists():
        tmp = path.with_suffix(".partial.onnx")
        to_onnx(model, tmp, opset=17)
        tmp.replace(path)
    return path


def ort_session(onnx_path: Path):
    """The toolkit's one onnxruntime session factory. A base revision from before it existed
    (perf-check --base OLD) made its sessions with these same options inline."""
    try:
        from export.runtimes import onnxruntime_session
    except ImportError:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return onnxruntime_session(onnx_path, threads=THREADS)


def make_ort_infer(onnx_path: Path, batch: int, input_shape: tuple[int, ...]) -> Callable[[], Any]:
    """An onnxruntime CPU session with full graph optimisation, as the bench harness runs it."""
    session = ort_session(onnx_path)
    feed = {session.get_inputs()[0].name: random_images(batch, input_shape)}
    outputs = [session.get_outputs()[0].name]
    session.run(outputs, feed)
    return lambda: session.run(outputs, feed)[0]


def make_train_step(model, batch: int) -> Callable[[], Any]:
    """One step of Keras' train_step (forward, loss, backward, SGD-momentum update) in a tf.function."""
    import tensorflow as tf
    from bench.measure.train_step import compile_for_training, compiled_train_step

    input_shape = tuple(model.input_shape[1:])
    compile_for_training(model, jit_compile=False)
    step = compiled_train_step(model, batch, input_shape, jit_compile=False)
    x = tf.constant(random_images(batch, input_shape))
    y = tf.constant(np.random.default_rng(1).integers(0, NUM_CLASSES, size=batch, dtype=np.int64))
    step(x, y).numpy()  # traces outside the timed region
    return lambda: step(x, y).numpy()


def make_export(model, out_dir: Path) -> Callable[[], Any]:
    from export.convert import to_onnx

    counter = iter(range(1_000_000))
    return lambda: to_onnx(model, out_dir / f"model_{next(counter)}.onnx", opset=17)


def make_calibration_matmul(n: int = 512) -> Callable[[], Any]:
    """A fixed float32 matmul in a tf.function: the machine-speed yardstick for stored baselines,
    run by the same TensorFlow thread pools as the measured models."""
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(2).random((n, n), dtype=np.float32))
    matmul = tf.function(lambda x: tf.linalg.matmul(x, x))
    matmul(a)
    return lambda: matmul(a).numpy()


# --- deliberate slowdown, to prove the gate catches a real regression ----------------------

def injected_fraction(name: str, spec: str | None = None) -> float:
    """Extra work asked for `name` by IMGCLS_PERF_INJECT_SLOWDOWN="name:0.25[,name2:0.1]"."""
    spec = os.environ.get(SLOWDOWN_ENV, "") if spec is None else spec
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, sep, fraction = item.rpartition(":")
        try:
            value = float(fraction)
        except ValueError:
            value = -1.0
        if not sep or not target or value < 0:
            raise ValueError(
                f"{SLOWDOWN_ENV}: bad entry {item!r}; expected BENCHMARK:FRACTION, "
                f"e.g. 'tf_infer[resnet18-b32]:0.25'"
            )
        if target == name:
            return value
    return 0.0


_BUSY_VALUES = np.random.default_rng(3).random(4096)


def _busy_unit() -> None:
    # A single-threaded sort: no BLAS thread pool whose spinning would distort a loaded machine.
    np.sort(_BUSY_VALUES)


def _median_cpu_seconds(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def with_slowdown(fn: Callable[[], Any], fraction: float, probes: int = 7) -> Callable[[], Any]:
    """Wrap `fn` so each call also does `fraction` x its own cost of extra compute.

    The extra work is a fixed count of sorts: real CPU work that costs what the measured work
    costs, on a quiet or a loaded machine, not a sleep. The count is sized from fn's median CPU
    time, then corrected once from the measured cost of fn plus the sorts (a sort right after
    fn runs on a colder cache than a sort alone).
    """
    if fraction <= 0:
        return fn
    fn()
    fn_seconds = _median_cpu_seconds(fn, probes)
    units = max(1, round(fraction * fn_seconds / _median_cpu_seconds(_busy_unit, 200)))

    def slowed_by(n: int) -> Callable[[], Any]:
        def slowed():
            result = fn()
            for _ in range(n):
                _busy_unit()
            return result
        return slowed

    extra_seconds = _median_cpu_seconds(slowed_by(units), probes) - _median_cpu_seconds(fn, probes)
    if extra_seconds > 0:
        units = max(1, round(units * fraction * fn_seconds / extra_seconds))
    slowed = slowed_by(units)
    slowed.extra_units = units  # type: ignore[attr-defined]
    return slowed
