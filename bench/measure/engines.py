"""Systems under test for inference: one small class per engine.

An engine is prepared once per model and batch shape and then called with a batch; `__call__`
returns the main output as a numpy array, i.e. synchronised: the work is finished when it returns.
The timer (`timing.time_calls`) knows nothing about engines, and engines know nothing about timing.

Two kinds:
- TensorFlow engines run the Keras model itself (`keras_predict`, the seed's way and the baseline;
  `tf_function`; `xla`; a reloaded `savedmodel`). Their precision is the model's Keras dtype policy
  (float32, mixed_float16, mixed_bfloat16); their thread count is the process's (TensorFlow fixes
  it when it starts, so the harness runs other counts in a child process).
- Artifact engines run a file that `export` made, opened by `export.runtimes` exactly as
  `export predict` opens it: onnxruntime (float32, float16, int8), OpenVINO (float32, bfloat16,
  int8), LiteRT (float32, int8), onnxruntime's CUDA provider. Their precision picks the file and
  the runtime's compute setting; their threads are per session.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.plumbing.precision import KERAS_POLICIES


def tf_device_name(device: str) -> str:
    """'cpu' -> '/CPU:0', 'gpu' -> '/GPU:0' (the harness uses the first GPU)."""
    return {"cpu": "/CPU:0", "gpu": "/GPU:0"}[device]


def _first_output(outputs: Any) -> Any:
    # Models with several outputs (GoogLeNet with aux heads) or dict signatures: measure the main one.
    if isinstance(outputs, dict):  # export names the main output first and the heads aux1, aux2...
        main = [k for k in outputs if not k.startswith("aux")]
        outputs = outputs[sorted(main or outputs)[0]]
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return outputs


class Engine:
    """Base: `prepare(model, batch_shape)` once per shape, then `engine(batch)` -> numpy."""

    name: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = KERAS_POLICIES
    # The roof of this engine's peak_fraction (see roofline.py): a large matmul on the same runtime.
    peak_family: ClassVar[str] = "tf"
    # Runs a file made by export (the harness makes the artifact) instead of the Keras model.
    artifact: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", workdir: str | Path | None = None, precision: str = "float32",
                 threads: int = 0):
        self.device, self.precision, self.threads = device, precision, threads
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench-engine-"))
        self._model = None
        # Seconds spent exporting/converting the current model; None for engines that run it as it is.
        self.conversion_s: float | None = None
        # What the runtime reports it really computes in (OpenVINO's executed precisions, ...).
        self.executed: str = ""

    @classmethod
    def availability(cls, device: str, precision: str = "float32") -> tuple[bool, str]:
        """(available, reason when not) on this machine for `device` and `precision`."""
        return True, ""

    def prepare(self, model, batch_shape: tuple[int, ...]) -> None:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def tracing_count(self) -> int | None:
        """Number of traces of the engine's tf.function so far (None when not a tf.function)."""
        return None


class KerasPredict(Engine):
    """`model.predict`: the seed's way, the baseline a user starts from."""

    name = "keras_predict"

    def prepare(self, model, batch_shape):
        self._model = model
        self._batch_size = int(batch_shape[0])

    def __call__(self, batch):
        import tensorflow as tf

        with tf.device(tf_device_name(self.device)):
            return np.asarray(_first_output(self._model.predict(batch, batch_size=self._batch_size, verbose=0)))

    def tracing_count(self):
        fn = getattr(self._model, "predict_function", None)
        return fn.experimental_get_tracing_count() if hasattr(fn, "experimental_get_tracing_count") else None


class TfFunction(Engine):
    """A graph function with a fixed input signature: traced once per batch shape, never in the timed loop."""

    name = "tf_function"
    jit_compile = False

    def prepare(self, model, batch_shape):
        import tensorflow as tf

        if (self._model, getattr(self, "_shape", None)) == (model, tuple(batch_shape)):
            return  # already traced for this model and shape
        self._model, self._shape = model, tuple(batch_shape)
        spec = tf.TensorSpec(tuple(batch_shape), tf.float32, name="images")

        @tf.function(input_signature=[spec], jit_compile=self.jit_compile, reduce_retracing=False)
        def infer(images):
            return _first_output(model(images, training=False))

        self._fn = infer

    def __call__(self, batch):
        import tensorflow as tf

        with tf.device(tf_device_name(self.device)):
            return self._fn(batch).numpy()

    def tracing_count(self):
        return self._fn.experimental_get_tracing_count()


class Xla(TfFunction):
    """The same graph function compiled by XLA (`jit_compile=True`)."""

    name = "xla"
    jit_compile = True
    peak_family = "xla"


class SavedModel(Engine):
    """The model exported as a SavedModel and reloaded: what a TensorFlow serving system would run."""

    name = "savedmodel"

    def prepare(self, model, batch_shape):
        import tensorflow as tf

        from export.convert import to_savedmodel

        if self._model is not model:  # export once per model; the signature has a dynamic batch dim
            path = self.workdir / f"savedmodel-{id(model):x}"
            started = time.perf_counter()
            to_savedmodel(model, path)
            self.conversion_s = time.perf_counter() - started
            self._loaded = tf.saved_model.load(str(path))
            self._fn = self._loaded.signatures["serving_default"]
            self._model = model

    def __call__(self, batch):
        import tensorflow as tf

        with tf.device(tf_device_name(self.device)):
            return np.asarray(_first_output(self._fn(input=tf.constant(batch))))


class ArtifactEngine(Engine):
    """A runtime session on one file of an export artifact; `formats` maps the precision asked for
    to the artifact format whose file is run."""

    artifact = True
    runtime: ClassVar[str] = ""
    formats: ClassVar[dict[str, str]] = {}
    options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def package(cls) -> str:
        return {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}[cls.runtime]

    @classmethod
    def availability(cls, device, precision="float32"):
        import importlib.util

        if importlib.util.find_spec(cls.package()) is None:
            pip = {"ai_edge_litert": "ai-edge-litert"}.get(cls.package(), cls.package())
            return False, f"{cls.runtime} is not installed here: pip install {pip}"
        return True, ""

    @property
    def format(self) -> str:
        return self.formats[self.precision]

    def prepare(self, artifact, batch_shape):
        """`artifact`: the harness' Artifact (a directory of files export made, with their names), or
        a keras.Model, whose file this engine runs is then made here by export's converters."""
        from export import runtimes

        if not hasattr(artifact, "files"):  # a Keras model (whose `.path` is a layer path): convert it once
            artifact = self._artifact_of(artifact)
        key = (id(artifact), int(batch_shape[0]))
        if getattr(self, "_key", None) != key:
            extra = {"batch": int(batch_shape[0])} if self.runtime in runtimes.STATIC_SHAPES else {}
            self.session = runtimes.open_session(artifact.path(self.format), self.runtime, self.precision,
                                                 self.threads, names=artifact.output_names, **self.options, **extra)
            self.threads = self.session.threads
            self.conversion_s = artifact.seconds.get(self.format)
            executed = getattr(self.session, "executed", {})
            self.executed = " ".join(f"{k}:{v}" for k, v in sorted(executed.items()))
            self._key = key

    def __call__(self, batch):
        return self.session.main(batch)

    def _artifact_of(self, model):
        """The one file this engine runs, made from `model` in the work folder (cached per model)."""
        if getattr(self, "_made", (None,))[0] is not model:
            from export.formats import FORMATS
            from export.job import ExportJob, ExportRequest
            from export.pipeline import convert_all, ordered

            root = self.workdir / f"{self.name}-{id(model):x}"
            fmt = self.format
            needed = ordered([fmt] + ([FORMATS[fmt].made_from] if FORMATS[fmt].made_from else []))
            if FORMATS[fmt].calibrated:
                raise ValueError(f"{fmt} is calibrated on training images: give the engine an artifact made by "
                                 f"export (or the harness) with a dataset")
            job = ExportJob.of_model(ExportRequest(checkpoint=model.name, out=root, formats=needed), model)
            started = time.perf_counter()
            root.mkdir(parents=True, exist_ok=True)
            convert_all(job, root)
            made = _Made(root, {f: FORMATS[f].file for f in needed}, job.output_names,
                         {fmt: time.perf_counter() - started})
            self._made = (model, made)
        return self._made[1]


class _Made:
    """Files made from a Keras model by an engine itself (the harness passes its own Artifact)."""

    def __init__(self, root: Path, files: dict[str, str], output_names: list[str], seconds: dict[str, float]):
        self.root, self.files, self.output_names, self.seconds = root, files, output_names, seconds

    def path(self, fmt: str) -> Path:
        return self.root / self.files[fmt]


class OnnxRuntime(ArtifactEngine):
    """The model converted to ONNX (tf2onnx) and run by an onnxruntime session: float32, the
    float16 model (onnxconverter-common), the static QDQ int8 model."""

    name = "onnxruntime"
    runtime = "onnxruntime"
    precisions = ("float32", "float16", "int8")
    formats = {"float32": "onnx", "float16": "onnx_fp16", "int8": "onnx_int8"}
    peak_family = "onnxruntime"


class OnnxRuntimeCuda(OnnxRuntime):
    name = "onnxruntime_cuda"
    precisions = ("float32", "float16")
    peak_family = "onnxruntime_cuda"
    options = {"provider": "CUDAExecutionProvider"}

    @classmethod
    def availability(cls, device, precision="float32"):
        import onnxruntime as ort

        provider = cls.options["provider"]
        if provider not in ort.get_available_providers():
            return False, (f"{provider} not in onnxruntime's providers {ort.get_available_providers()} "
                           f"(install onnxruntime-gpu and a CUDA runtime for it)")
        return True, ""


class OpenVino(ArtifactEngine):
    """OpenVINO's CPU plugin on the IR made from the ONNX model: float32, bfloat16 (the same file,
    INFERENCE_PRECISION_HINT bf16, only where the CPU computes it), int8 (the QDQ model's IR)."""

    name = "openvino"
    runtime = "openvino"
    precisions = ("float32", "bfloat16", "int8")
    formats = {"float32": "openvino", "bfloat16": "openvino", "int8": "openvino_int8"}
    peak_family = "openvino"


class LiteRT(ArtifactEngine):
    """The TFLite converter's models run by the ai-edge-litert interpreter (XNNPACK): float32 and
    full-integer int8 with float32 input and output."""

    name = "litert"
    runtime = "litert"
    precisions = ("float32", "int8")
    formats = {"float32": "litert", "int8": "litert_int8"}
    peak_family = "litert"


ENGINES: dict[str, type[Engine]] = {
    cls.name: cls for cls in (KerasPredict, TfFunction, Xla, SavedModel, OnnxRuntime, OnnxRuntimeCuda, OpenVino,
                              LiteRT)
}
TF_ENGINES = tuple(name for name, cls in ENGINES.items() if not cls.artifact)
