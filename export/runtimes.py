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
                        optimization: str = "all", quiet: bool = True, optimized_model: str | None = None,
                        profile: str | None = None):
    """An onnxruntime InferenceSession of `model` (a path or serialized bytes).

    threads: intra-op threads (0: onnxruntime's default, one per physical core); inter-op work
    runs sequentially, as a single-stream deployment would. provider: CPU or CUDA. profile: a file
    prefix for onnxruntime's profiler (`end_profiling()` returns the file it wrote).
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
    if optimized_model:  # the graph the provider really runs, written out for inspection
        options.optimized_model_filepath = str(optimized_model)
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile)
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
    """An onnxruntime session; the precision is the file's: float32, the float16 model, the QDQ int8
    model. For float16 and int8 the graph the CPU provider really runs (after its optimiser) is
    inspected: on x86 CPUs it converts a float16 model's weights to float32 and computes in float32
    (a PrecisionUnavailable, not a float16 row), and an int8 model must run quantized kernels."""

    runtime = "onnxruntime"
    QUANTIZED_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul")

    def __init__(self, path, precision: str = "float32", threads: int = 0, provider: str = CPU,
                 optimization: str = "all", names: list[str] | None = None, strict: bool = True):
        """strict=False accepts a float16 model computed in float32 (export verifies the file's
        float16 weights on any CPU); the benchmark is strict: its precision column is the compute."""
        super().__init__(precision, cpu_threads(threads))
        self.strict = strict
        check = precision != "float32" and provider == CPU
        self.session, optimized = self._open(path, provider, optimization, check)
        self.input_name = self.session.get_inputs()[0].name
        self._names = [o.name for o in self.session.get_outputs()]
        self.output_names = names or self._names
        self.executed = self._check_precision(optimized) if check else {}

    def _open(self, path, provider, optimization, dump: bool):
        if not dump:
            return onnxruntime_session(path, threads=self.threads, provider=provider, optimization=optimization), None
        import tempfile

        import onnx

        with tempfile.TemporaryDirectory(prefix="ort-optimized-") as tmp:
            target = os.path.join(tmp, "optimized.onnx")
            session = onnxruntime_session(path, threads=self.threads, provider=provider, optimization=optimization,
                                          optimized_model=target)
            return session, onnx.load(target)

    def _check_precision(self, optimized) -> dict[str, int]:
        import onnx

        ops: dict[str, int] = {}
        for node in optimized.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        if self.precision == "float16":
            halves = sum(1 for t in optimized.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
            if not halves and not self.strict:
                return {"computed in float32 (float16 weights)": 1}
            if not halves:
                raise PrecisionUnavailable(
                    "onnxruntime's CPU provider computes this float16 model in float32 here: its graph optimiser "
                    "turns the float16 weights into float32 and runs float32 kernels (no float16 convolution or "
                    "matrix-multiply kernels for this CPU)")
            return {"float16 initializers": halves}
        quantized = {op: n for op, n in ops.items() if op in self.QUANTIZED_OPS}
        if self.precision == "int8" and not quantized:
            raise PrecisionUnavailable("onnxruntime runs no quantized kernel for this model (no QLinearConv, QGemm, "
                                       "...); is it a quantized model?")
        return quantized

    def run(self, batch):
        return dict(zip(self.output_names, self.session.run(self._names, {self.input_name: batch})))

    def main(self, batch):
        return self.session.run(self._names[:1], {self.input_name: batch})[0]


class PrecisionUnavailable(RuntimeError):
    """The runtime cannot compute this model in the asked precision on this machine: it would
    silently compute in another one. The message says which and why."""


def cpu_threads(threads: int) -> int:
    """0 means every core this process may use; runtimes are always given an explicit count."""
    return threads or len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (threads or os.cpu_count() or 1)


_OV_TYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": "f32"}


class OpenVinoSession(Session):
    """OpenVINO's CPU plugin on an IR (.xml) or ONNX file. The precision is set explicitly with
    INFERENCE_PRECISION_HINT (int8 models: f32 for what is not quantized) and proved afterwards
    from the compiled model: the hint read back, and the precision the convolutions and matrix
    multiplies really run in. Without AVX512-BF16/AMX the plugin ignores a bf16 hint; that is a
    PrecisionUnavailable, never a float32 number labelled bfloat16.

    The model is compiled for the static shape of the batch it is given (`batch`, then each new batch
    size once): the plugin runs a dynamic batch dimension with shape-agnostic kernels, measured 1.19x
    to 1.27x slower for the cat/dog EfficientNet-Lite0 at batch 1 (float32, bfloat16 and int8)."""

    runtime = "openvino"
    KEEP = 4  # compiled shapes kept; export verification uses two or three batch sizes

    def __init__(self, path, precision: str = "float32", threads: int = 0, names: list[str] | None = None,
                 batch: int | None = None):
        import openvino as ov

        if precision not in _OV_TYPES:
            raise ValueError(f"OpenVINO computes in {', '.join(_OV_TYPES)}; not {precision!r}")
        super().__init__(precision, cpu_threads(threads))
        self._core = ov.Core()
        self._model = self._core.read_model(str(path))
        self._version = ov.get_version().split("-")[0]
        self._config = {"INFERENCE_PRECISION_HINT": _OV_TYPES[precision], "INFERENCE_NUM_THREADS": self.threads,
                        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        self._compiled: dict[tuple[int, ...], tuple] = {}
        self._current: tuple[int, ...] = ()
        shape = self._model.inputs[0].get_partial_shape()
        self._shape = [None if d.is_dynamic else d.get_length() for d in shape]
        self._for(batch or self._shape[0] or 1)
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.output_names = names or [o.get_any_name() for o in self.compiled.outputs]

    def _for(self, batch: int) -> None:
        """Makes the compiled model and request for inputs of `batch` images current (compiled on first use)."""
        shape = (int(batch), *self._shape[1:])
        if shape not in self._compiled:
            if None in shape:
                raise ValueError(f"{self._model.inputs[0].get_any_name()} has dynamic dimensions besides the batch "
                                 f"({self._shape}); OpenVINO needs a static shape here")
            model = self._model.clone()
            model.reshape({model.inputs[0]: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config)
            self.executed = executed_precisions(compiled)
            self._check_precision(compiled)
            if len(self._compiled) >= self.KEEP:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[shape] = (compiled, compiled.create_infer_request())
        self.compiled, self.request = self._compiled[shape]
        self._current = shape

    def _check_precision(self, compiled) -> None:
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        compute = {p for p, n in self.executed.items() if n}
        wanted = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(self.precision)
        if wanted and (wanted not in hint.replace("float32", "f32").replace("bfloat16", "bf16").replace("float16", "f16")
                       or wanted not in compute):
            raise PrecisionUnavailable(
                f"OpenVINO {self._version} on this CPU computes this model in {'/'.join(sorted(compute)) or hint}, not "
                f"{self.precision} (hint read back: {hint})" + ("; bfloat16 needs AVX512_BF16 or AMX" if wanted == "bf16"
                                                                 else ""))
        if self.precision == "int8" and not ({"i8", "u8"} & compute):
            raise PrecisionUnavailable(f"OpenVINO {self._version} runs no convolution or matrix multiply of this model "
                                       f"in int8 (it runs {'/'.join(sorted(compute))}); is it a quantized model?")

    def _infer(self, batch):
        if tuple(batch.shape) != self._current:
            self._for(len(batch))
        self.request.infer({0: batch}, share_inputs=True)  # synchronous: returns when the work is done
        return self.request

    def run(self, batch):
        request = self._infer(batch)
        return {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(self.output_names)}

    def main(self, batch):
        return self._infer(batch).get_output_tensor(0).data


_KERNEL_PRECISION = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16", "i8": "i8",
                     "u8": "u8", "int8": "i8"}


def executed_precisions(compiled) -> dict[str, int]:
    """How many convolutions and matrix multiplies the compiled model runs in each precision, from
    the plugin's runtime graph after fusion. The kernel's name (`primitiveType`, e.g.
    brgconv_avx2_f32, jit_avx2_I8, jit_avx512_amx_bf16) is the proof; `runtimePrecision` alone can
    report f16 for f16-stored weights that f32 kernels compute with."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in ("Convolution", "GroupConvolution",
                                                                            "FullyConnected", "MatMul"):
            continue
        kernel = info["primitiveType"].astype(str).lower() if "primitiveType" in info else ""
        precision = _KERNEL_PRECISION.get(kernel.rsplit("_", 1)[-1]) if "_" in kernel else None
        if precision is None:
            precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
        counts[precision] = counts.get(precision, 0) + 1
    return counts


class LiteRTSession(Session):
    """The ai-edge-litert interpreter (XNNPACK delegate on), resized to the batch it is given.
    A full-integer int8 model keeps float32 input and output; its int8 is checked on the tensors."""

    runtime = "litert"

    def __init__(self, path, precision: str = "float32", threads: int = 0, names: list[str] | None = None,
                 batch: int | None = None):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if precision not in ("float32", "int8"):
            raise ValueError(f"LiteRT runs float32 and int8 models; not {precision!r}")
        super().__init__(precision, cpu_threads(threads))
        self.interpreter = Interpreter(model_path=str(path), num_threads=self.threads,
                                       experimental_op_resolver_type=OpResolverType.AUTO)
        self._input = self.interpreter.get_input_details()[0]
        self._outputs = self.interpreter.get_output_details()
        int8_weights = sum(1 for t in self.interpreter.get_tensor_details() if t["dtype"] == np.int8)
        if precision == "int8" and not int8_weights:
            raise PrecisionUnavailable(f"{path} holds no int8 tensors: it is not a quantized LiteRT model")
        self.executed = {"int8 tensors": int8_weights}
        self.input_name = self._input["name"]
        self.output_names = names or [o["name"] for o in self._outputs]
        self._batch = None
        self.resize(batch or int(self._input["shape"][0]) or 1)

    def resize(self, batch: int) -> None:
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [batch, *self._input["shape"][1:]], strict=True)
            self.interpreter.allocate_tensors()
            self._batch = batch

    def _invoke(self, batch):
        self.resize(len(batch))
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()

    def run(self, batch):
        self._invoke(batch)
        return {name: self.interpreter.get_tensor(o["index"]).copy() for name, o in zip(self.output_names, self._outputs)}

    def main(self, batch):
        self._invoke(batch)
        return self.interpreter.get_tensor(self._outputs[0]["index"])


RUNTIMES = {"onnxruntime": OnnxRuntimeSession, "openvino": OpenVinoSession, "litert": LiteRTSession}
# runtimes that prepare a model for one input shape: told the batch size when it is known, so the
# shape is fixed before the first (warm-up) call rather than inside a timed one
STATIC_SHAPES = ("openvino", "litert")


def open_session(path: str | os.PathLike, runtime: str, precision: str = "float32", threads: int = 0,
                 **options) -> Session:
    """The model file at `path` opened by `runtime` to compute in `precision`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    try:
        return RUNTIMES[runtime](path, precision, threads, **options)
    except ImportError as exc:
        package = {"openvino": "openvino", "litert": "ai-edge-litert", "onnxruntime": "onnxruntime"}[runtime]
        raise RuntimeUnavailable(f"{runtime} is not installed here ({exc}); pip install {package}") from None
