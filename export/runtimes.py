"""The one place that opens an inference runtime session: providers, threads, optimisation level.

Used by export (verification), `export predict`, the benchmark's engines and the perf gate, so what
is verified, what is timed and what is shipped run with the same options. Deployment-side code:
onnxruntime (and the other runtimes) only, never TensorFlow.
"""
from __future__ import annotations

import os

import numpy as np

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# onnxruntime's graph optimisation levels by name; "all" (the default) includes layout and fusion
# passes (Conv+BN+ReLU, QDQ -> QLinearConv) that a deployment would use.
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class RuntimeUnavailable(RuntimeError):
    """A runtime or one of its providers is not installed here; the message says what to install."""


def onnxruntime_session(model: str | os.PathLike | bytes, *, threads: int = 0, provider: str = CPU,
                        optimization: str = "all", quiet: bool = True):
    """An onnxruntime InferenceSession of `model` (a path or serialized bytes).

    threads: intra-op threads (0: onnxruntime's default, one per physical core); inter-op work
    runs sequentially, as a single-stream deployment would. provider: CPU or CUDA.
    """
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"unknown graph optimisation level {optimization!r}; valid: {', '.join(OPTIMIZATION_LEVELS)}")
    if provider not in ort.get_available_providers():
        raise RuntimeUnavailable(f"{provider} is not among onnxruntime's providers {ort.get_available_providers()} "
                                 f"(install onnxruntime-gpu and a CUDA runtime for CUDAExecutionProvider)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if quiet:
        options.log_severity_level = 3  # errors only: no per-node warnings in a user's terminal
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=[provider])


class Session:
    """An opened model file: `run(batch) -> {output name: array}` and `main(batch) -> main output`.

    `precision` is what the runtime computes in, set explicitly when it opened the model."""

    runtime = ""

    def __init__(self, precision: str, threads: int):
        self.precision, self.threads = precision, threads
        self.input_name = "input"
        self.output_names: list[str] = []

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def main(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)[self.output_names[0]]


class OnnxRuntimeSession(Session):
    runtime = "onnxruntime"

    def __init__(self, path, precision: str = "float32", threads: int = 0, provider: str = CPU,
                 optimization: str = "all"):
        super().__init__(precision, threads)
        self.session = onnxruntime_session(path, threads=threads, provider=provider, optimization=optimization)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch):
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: batch})))

    def main(self, batch):
        return self.session.run(self.output_names[:1], {self.input_name: batch})[0]


def open_session(path: str | os.PathLike, runtime: str, precision: str = "float32", threads: int = 0,
                 **options) -> Session:
    """The model file at `path` opened by `runtime` to compute in `precision`."""
    if runtime == "onnxruntime":
        return OnnxRuntimeSession(path, precision, threads, **options)
    raise ValueError(f"unknown runtime {runtime!r}; valid: onnxruntime")
