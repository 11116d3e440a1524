"""Peak float32 matrix-multiply rate per engine family on this device: the roof of `peak_fraction`.

A large square matmul (2*N^3 FLOPs) is timed through the same runtime the engines use: plain TF
graph ('tf': keras_predict, tf_function, savedmodel), XLA ('xla') and onnxruntime ('onnxruntime',
per provider). The best rate over the repeats is the peak: a roof is an upper bound, not a typical.
"""
from __future__ import annotations

import numpy as np

from bench.measure.engines import tf_device_name
from bench.measure.timing import time_calls


def _tf_matmul(n: int, device: str, jit: bool):
    import tensorflow as tf

    spec = tf.TensorSpec((n, n), tf.float32)

    @tf.function(input_signature=[spec, spec], jit_compile=jit)
    def matmul(a, b):
        return tf.matmul(a, b)

    def run(ab):
        with tf.device(tf_device_name(device)):
            return matmul(*ab).numpy()

    return run


def _ort_matmul(n: int, provider: str):
    from onnx import TensorProto, helper

    from export.runtimes import onnxruntime_session

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime 1.2x/1.3x accepts
    session = onnxruntime_session(model.SerializeToString(), provider=provider)
    return lambda ab: session.run(None, {"a": ab[0], "b": ab[1]})[0]


def _matmul_fn(family: str, device: str, n: int):
    if family in ("tf", "xla"):
        return _tf_matmul(n, device, jit=family == "xla")
    if family == "onnxruntime":
        return _ort_matmul(n, "CPUExecutionProvider")
    if family == "onnxruntime_cuda":
        return _ort_matmul(n, "CUDAExecutionProvider")
    raise ValueError(f"unknown matmul family {family!r}; valid: tf, xla, onnxruntime, onnxruntime_cuda")


def peak_rates(families: list[str], device: str = "cpu", n: int = 1024, rounds: int = 3,
               time_budget_s: float = 0.3) -> dict[str, float]:
    """Best FLOP/s of an n x n float32 matmul per family ('tf', 'xla', 'onnxruntime',
    'onnxruntime_cuda'). Families are measured in interleaved rounds and the best repeat of all
    rounds is kept: on a shared machine the best repeat is the one least disturbed by others."""
    rng = np.random.default_rng(0)
    ab = (rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32))
    fns = {family: _matmul_fn(family, device, n) for family in families}
    best_ns = {family: float("inf") for family in families}
    for round_ in range(rounds):
        for family, fn in fns.items():
            timing = time_calls(fn, ab, warmup=2 if round_ == 0 else 0, time_budget_s=time_budget_s, min_repeats=5)
            best_ns[family] = min(best_ns[family], float(timing.samples_ns.min()))
    return {family: 2.0 * n**3 / (ns / 1e9) for family, ns in best_ns.items()}
