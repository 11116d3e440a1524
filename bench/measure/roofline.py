"""Roofs of `peak_fraction`: a large n x n matrix multiply (2 n^3 operations) on the same engine,
in the same precision and with the same threads as the row it is the roof of.

An int8 or bfloat16 row is measured against an int8 or bfloat16 matmul, not the float32 one: on a
CPU with AVX-512 VNNI the int8 roof is about 4x the float32 one, and a row at 30% of the float32
roof may be at 8% of what the CPU does in its own precision. The best repeat over interleaved
rounds is the peak: a roof is an upper bound, not a typical value.

Families: tf and xla (TensorFlow graph / XLA: float32, and the float16 / bfloat16 matmuls of the
mixed policies), onnxruntime (MatMul, its float16 model, a QDQ int8 model that onnxruntime fuses to
QLinearMatMul), openvino (a constant-weight MatMul that its CPU plugin runs as FullyConnected, with
the bf16 hint, and the QDQ int8 model), litert (a Dense layer converted by the TFLite converter,
float32 and full-integer int8).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bench.measure.timing import time_calls

MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class RoofUnavailable(RuntimeError):
    """This engine cannot compute a matmul in that precision here (the message says why)."""


def roof_key(family: str, precision: str, threads: int) -> str:
    return f"{family}:{precision}:{threads}"


def _tf_matmul(n: int, device: str, jit: bool, precision: str) -> Callable[[], object]:
    import tensorflow as tf

    from bench.measure.engines import tf_device_name

    dtype = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}[MIXED.get(precision, precision)]
    rng = np.random.default_rng(0)
    with tf.device(tf_device_name(device)):
        a = tf.cast(tf.constant(rng.random((n, n), dtype=np.float32)), dtype)
        b = tf.cast(tf.constant(rng.random((n, n), dtype=np.float32)), dtype)

    @tf.function(jit_compile=jit)
    def matmul(x, y):
        return tf.matmul(x, y)

    def run():
        with tf.device(tf_device_name(device)):
            return matmul(a, b).numpy()

    return run


def _onnx_matmul(n: int, precision: str) -> bytes:
    """A MatMul of a runtime input by a constant weight (what a model's layers are), as ONNX bytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = rng.standard_normal((n, n)).astype(np.float32)
    if precision == "int8":  # the static-quantization pattern export's int8 models use
        sb = float(np.abs(b).max() / 127)
        inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "sa"),
                 numpy_helper.from_array(np.array(0, np.uint8), "za"),
                 numpy_helper.from_array(np.clip(np.round(b / sb), -127, 127).astype(np.int8), "bq"),
                 numpy_helper.from_array(np.array(sb, np.float32), "sb"),
                 numpy_helper.from_array(np.array(0, np.int8), "zb"),
                 numpy_helper.from_array(np.array(n / 4 / 255 * 2, np.float32), "sc"),
                 numpy_helper.from_array(np.array(128, np.uint8), "zc")]
        nodes = [helper.make_node("QuantizeLinear", ["a", "sa", "za"], ["aq"]),
                 helper.make_node("DequantizeLinear", ["aq", "sa", "za"], ["adq"]),
                 helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bdq"]),
                 helper.make_node("MatMul", ["adq", "bdq"], ["cf"]),
                 helper.make_node("QuantizeLinear", ["cf", "sc", "zc"], ["cq"]),
                 helper.make_node("DequantizeLinear", ["cq", "sc", "zc"], ["c"])]
        elem = TensorProto.FLOAT
    else:
        elem = TensorProto.FLOAT16 if precision == "float16" else TensorProto.FLOAT
        weight = b.astype(np.float16 if precision == "float16" else np.float32)
        inits = [numpy_helper.from_array(weight, "b")]
        nodes = [helper.make_node("MatMul", ["a", "b"], ["c"])]
    graph = helper.make_graph(nodes, "roof", [helper.make_tensor_value_info("a", elem, [n, n])],
                              [helper.make_tensor_value_info("c", elem, [n, n])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime 1.2x/1.3x accepts
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _input(n: int, precision: str) -> np.ndarray:
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    return a.astype(np.float16) if precision == "float16" else a


def _ort_matmul(n: int, precision: str, threads: int, provider: str) -> Callable[[], object]:
    from export.runtimes import onnxruntime_session

    session = onnxruntime_session(_onnx_matmul(n, precision), threads=threads, provider=provider)
    feed = {"a": _input(n, precision)}
    return lambda: session.run(None, feed)[0]


def _openvino_matmul(n: int, precision: str, threads: int, workdir) -> Callable[[], object]:
    from export.runtimes import OpenVinoSession, PrecisionUnavailable

    path = workdir / f"roof-{precision}-{n}.onnx"
    path.write_bytes(_onnx_matmul(n, "int8" if precision == "int8" else "float32"))
    try:
        session = OpenVinoSession(path, precision, threads)
    except PrecisionUnavailable as exc:
        raise RoofUnavailable(str(exc)) from None
    a = _input(n, "float32")
    return lambda: session.main(a)


def _litert_matmul(n: int, precision: str, threads: int, workdir) -> Callable[[], object]:
    """A Dense(n) layer on n rows: n^3 multiply-adds, converted by export's own TFLite converter."""
    import keras

    from export.runtimes import LiteRTSession

    inputs = keras.Input((n,))
    model = keras.Model(inputs, keras.layers.Dense(n, use_bias=False)(inputs))
    path = workdir / f"roof-{precision}-{n}.tflite"
    calibration = [_input(16, "float32")[:, :1].repeat(n, axis=1) * np.linspace(0, 1, n, dtype=np.float32)]
    _litert_convert(model, path, calibration if precision == "int8" else None)
    session = LiteRTSession(path, precision, threads, batch=n)
    a = _input(n, "float32")
    return lambda: session.main(a)


def _litert_convert(model, path, calibration) -> None:
    """export.convert.to_litert takes image models; a Dense roof has (rows, n) inputs."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, model.inputs[0].shape[1]), tf.float32)

    @tf.function(input_signature=[spec])
    def serve(x):
        return model(x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([b[i:i + 1]] for b in calibration for i in range(len(b)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


def matmul_fn(family: str, precision: str, device: str, n: int, threads: int, workdir) -> Callable[[], object]:
    if family in ("tf", "xla"):
        return _tf_matmul(n, device, family == "xla", precision)
    if family == "onnxruntime":
        return _ort_matmul(n, precision, threads, "CPUExecutionProvider")
    if family == "onnxruntime_cuda":
        return _ort_matmul(n, precision, threads, "CUDAExecutionProvider")
    if family == "openvino":
        return _openvino_matmul(n, precision, threads, workdir)
    if family == "litert":
        return _litert_matmul(n, precision, threads, workdir)
    raise ValueError(f"unknown matmul family {family!r}")


def peak_rates(roofs: list[tuple[str, str, int]], device: str = "cpu", n: int = 1024, rounds: int = 3,
               time_budget_s: float = 0.3, workdir=None) -> tuple[dict[str, float], dict[str, str]]:
    """Best operations/s of an n x n matmul per (family, precision, threads). Roofs are measured in
    interleaved rounds and the best repeat of all rounds is kept. Returns the rates by `roof_key` and,
    apart, the roofs that could not be measured with the reason."""
    import tempfile
    from pathlib import Path

    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-roofs-"))
    fns, missing = {}, {}
    for family, precision, threads in roofs:
        key = roof_key(family, precision, threads)
        try:
            fns[key] = matmul_fn(family, precision, device, n, threads, workdir)
        except Exception as exc:  # a roof that cannot be measured leaves peak_fraction empty, says why
            missing[key] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    best_ns = {key: float("inf") for key in fns}
    for round_ in range(rounds):
        for key, fn in fns.items():
            timing = time_calls(lambda _: fn(), None, warmup=2 if round_ == 0 else 0, time_budget_s=time_budget_s,
                                min_repeats=5)
            best_ns[key] = min(best_ns[key], float(timing.samples_ns.min()))
    return {key: 2.0 * n**3 / (ns / 1e9) for key, ns in best_ns.items()}, missing
