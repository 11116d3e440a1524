"""Systems under test for inference: one small class per engine.

Each engine takes a Keras model and a fixed batch shape in `prepare`, and `__call__(batch)` returns
the model's output as a numpy array, i.e. synchronised: the work is finished when it returns.
The timer (`timing.time_calls`) knows nothing about engines, and engines know nothing about timing.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


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
    # Which large-matmul rate this engine's peak_fraction is measured against (see roofline.py).
    peak_family: ClassVar[str] = "tf"

    def __init__(self, device: str = "cpu", workdir: str | Path | None = None):
        self.device = device
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench-engine-"))
        self._model = None
        # Seconds spent exporting/converting the current model (SavedModel, ONNX); None for engines
        # that run the Keras model as it is.
        self.conversion_s: float | None = None

    @classmethod
    def availability(cls, device: str, precision: str = "fp32") -> tuple[bool, str]:
        """(available, reason when not) on this machine for `device` and a model built in `precision`."""
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

        self._model = model
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
    """The model exported as a SavedModel and reloaded: what a serving system would run."""

    name = "savedmodel"

    def prepare(self, model, batch_shape):
        import tensorflow as tf

        if self._model is not model:  # export once per model; the signature has a dynamic batch dim
            path = self.workdir / f"savedmodel-{id(model):x}"
            started = time.perf_counter()
            export_savedmodel(model, path)
            self.conversion_s = time.perf_counter() - started
            self._loaded = tf.saved_model.load(str(path))
            # the export package's endpoint, Keras' default endpoint, or the signature
            self._fn = (getattr(self._loaded, "serving_default", None) or getattr(self._loaded, "serve", None)
                        or self._loaded.signatures["serving_default"])
            self._model = model

    def __call__(self, batch):
        import tensorflow as tf

        with tf.device(tf_device_name(self.device)):
            return np.asarray(_first_output(self._fn(tf.constant(batch))))


class OnnxRuntime(Engine):
    """The model converted to ONNX (tf2onnx) and run by an onnxruntime session."""

    name = "onnxruntime"
    provider = "CPUExecutionProvider"
    peak_family = "onnxruntime"

    @classmethod
    def availability(cls, device, precision="fp32"):
        import onnxruntime as ort

        if precision == "mixed_bfloat16":
            # tf2onnx keeps the bfloat16 casts; onnxruntime has no bfloat16 Conv/MatMul kernels.
            return False, "onnxruntime has no bfloat16 convolution kernels; mixed_bfloat16 runs in TF only"
        if cls.provider not in ort.get_available_providers():
            return False, (f"{cls.provider} not in onnxruntime's providers {ort.get_available_providers()} "
                           f"(install onnxruntime-gpu and a CUDA runtime for it)")
        return True, ""

    def prepare(self, model, batch_shape):
        from export.runtimes import onnxruntime_session

        if self._model is not model:  # convert once per model; the ONNX graph has a dynamic batch dim
            path = self.workdir / f"model-{id(model):x}.onnx"
            started = time.perf_counter()
            export_onnx(model, path)
            self.conversion_s = time.perf_counter() - started
            self._session = onnxruntime_session(path, provider=self.provider)
            self._input = self._session.get_inputs()[0].name
            self._outputs = [self._session.get_outputs()[0].name]
            self._model = model

    def __call__(self, batch):
        return self._session.run(self._outputs, {self._input: batch})[0]


class OnnxRuntimeCuda(OnnxRuntime):
    name = "onnxruntime_cuda"
    provider = "CUDAExecutionProvider"
    peak_family = "onnxruntime_cuda"


ENGINES: dict[str, type[Engine]] = {
    cls.name: cls for cls in (KerasPredict, TfFunction, Xla, SavedModel, OnnxRuntime, OnnxRuntimeCuda)
}


def export_savedmodel(model, path: Path) -> None:
    from export.convert import to_savedmodel

    to_savedmodel(model, str(path))


def export_onnx(model, path: Path, opset: int = 17) -> None:
    from export.convert import to_onnx

    to_onnx(model, str(path), opset=opset)
