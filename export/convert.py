"""Conversion only (validation lives in `verify`): Keras model -> SavedModel, ONNX, ONNX fp16.

ONNX goes through `tf2onnx.convert.from_function` on a traced `tf.function`: with Keras 3,
`tf2onnx.convert.from_keras` is not reliable. The graph input is named `input` with a dynamic
batch axis `batch`; outputs are named by what they hold (`probabilities` or `logits`).
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Iterable

import keras
import numpy as np
import onnx
import tensorflow as tf

from bench.plumbing.environment import version

DEFAULT_OPSET = 17
INPUT_NAME = "input"
SAVEDMODEL_SIGNATURE = "serving_default"


class ConversionError(ValueError):
    """The model cannot be converted as asked; the message says why and what to do."""


def output_kind(model: keras.Model) -> str:
    """'probabilities' when the main output is a softmax (rows >= 0 summing to 1), else 'logits'.

    Judged on the model's own numbers for a few in-range inputs, so it holds for any
    architecture whatever layer produces the final activation.
    """
    shape = (4, *input_shape(model))
    x = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype("float32")
    y = _main_output(model(x, training=False))
    y = np.asarray(y, dtype="float64")
    is_prob = bool(np.all(y >= 0.0) and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3))
    return "probabilities" if is_prob else "logits"


def input_shape(model: keras.Model) -> tuple[int, int, int]:
    shape = model.inputs[0].shape
    if len(model.inputs) != 1 or len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ConversionError(
            f"model {model.name!r} must take one NHWC image batch with a fixed height, width and "
            f"channels; its inputs are {[tuple(t.shape) for t in model.inputs]}. Rebuild it with "
            "input_shape=(H, W, C)."
        )
    return tuple(int(d) for d in shape[1:])  # type: ignore[return-value]


def output_names(model: keras.Model, kind: str) -> list[str]:
    """Main output first, named by kind; GoogLeNet's auxiliary heads follow as aux1, aux2..."""
    return [kind] + [f"aux{i}" for i in range(1, len(model.outputs))]


def _main_output(y):
    return y[0] if isinstance(y, (list, tuple)) else y


def serving_function(model: keras.Model, kind: str) -> tf.types.experimental.GenericFunction:
    names = output_names(model, kind)
    spec = [tf.TensorSpec((None, *input_shape(model)), tf.float32, name=INPUT_NAME)]

    def serve(x):
        y = model(x, training=False)
        y = list(y) if isinstance(y, (list, tuple)) else [y]
        return {name: tf.identity(t, name=name) for name, t in zip(names, y)}

    return tf.function(serve, input_signature=spec)


def to_savedmodel(model: keras.Model, path: str | os.PathLike, kind: str | None = None) -> Path:
    """Writes a TF SavedModel with one signature `serving_default(input) -> {kind: ...}`."""
    kind = kind or output_kind(model)
    path = Path(path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    fn = serving_function(model, kind)
    archive.add_endpoint(SAVEDMODEL_SIGNATURE, fn, input_signature=list(fn.input_signature))
    archive.write_out(str(path), verbose=False)
    return path


def check_opset(opset: int) -> None:
    """Fails early, before any conversion, for an opset that tf2onnx or onnxruntime cannot handle."""
    from tf2onnx import constants

    supported = sorted(constants.OPSET_TO_IR_VERSION)
    if not isinstance(opset, int) or opset < 13 or opset > supported[-1]:
        raise ConversionError(
            f"opset {opset} is not supported: tf2onnx {version('tf2onnx')} writes opsets 13.."
            f"{supported[-1]} for these models; use --opset {DEFAULT_OPSET} (the default)"
        )
    import onnxruntime as ort

    from export.runtimes import onnxruntime_session

    # onnxruntime publishes no "max opset" API: ask it to load a one-node model of that opset.
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "opset_probe",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    probe = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        ir_version=constants.OPSET_TO_IR_VERSION[opset],
    )
    try:
        onnxruntime_session(probe.SerializeToString())
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ConversionError(
            f"onnxruntime {ort.__version__} cannot run opset {opset} ({exc}); use a lower "
            f"--opset, e.g. {DEFAULT_OPSET}"
        ) from None


def to_onnx(
    model: keras.Model,
    path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    kind: str | None = None,
) -> Path:
    """Converts with tf2onnx at `opset`, then refuses a graph onnxruntime could not run."""
    check_opset(opset)
    kind = kind or output_kind(model)
    fn = serving_function(model, kind)
    proto = from_function(fn, opset)
    _refuse_unsupported_ops(proto, opset)
    _name_batch_axis(proto)
    _order_outputs(proto, output_names(model, kind))
    onnx.checker.check_model(proto)
    path = Path(path)
    onnx.save(proto, str(path))
    return path


# tf2onnx deep-copies the whole graph, weights included, before each of its ~20 optimizer
# passes so that it can undo a pass that fails; for a 100 MB model that costs gigabytes and a
# good part of the time. Its switch is this variable (tf2onnx 1.17 reads any value as FALSE).
_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"


def from_function(fn, opset: int) -> onnx.ModelProto:
    """The one way into tf2onnx (with the extra op handlers of `tf2onnx_ops`): without the defensive copies; if an optimizer pass then fails, convert again
    the defensive way (a failing pass is skipped and the graph stays correct, less optimised)."""
    import tf2onnx

    from export import tf2onnx_memory, tf2onnx_ops  # noqa: F401  frees stale weight copies; handlers tf2onnx lacks (Erfc)

    saved = os.environ.get(_CATCH_ERRORS)
    try:
        os.environ[_CATCH_ERRORS] = "FALSE"
        try:
            return tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)[0]
        except Exception:  # noqa: BLE001 - retried below, where tf2onnx reports it
            os.environ.pop(_CATCH_ERRORS)
            try:
                return tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)[0]
            except Exception as exc:
                raise ConversionError(f"tf2onnx could not convert the model at opset {opset}: {exc}") from exc
    finally:
        if saved is None:
            os.environ.pop(_CATCH_ERRORS, None)
        else:
            os.environ[_CATCH_ERRORS] = saved


def _order_outputs(proto: onnx.ModelProto, names: list[str]) -> None:
    # tf2onnx emits a dict's outputs sorted by name; put the main output first, as in Keras.
    by_name = {o.name: o for o in proto.graph.output}
    if set(by_name) == set(names):
        ordered = [copy.deepcopy(by_name[n]) for n in names]
        del proto.graph.output[:]
        proto.graph.output.extend(ordered)


def _refuse_unsupported_ops(proto: onnx.ModelProto, opset: int) -> None:
    # tf2onnx logs unsupported TF ops and copies them into the graph unchanged; such a model
    # only fails later, inside onnxruntime. Name the TF ops (their scope names the layer).
    bad = [
        node
        for node in proto.graph.node
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type, opset)
    ]
    if bad:
        where = "; ".join(f"{n.op_type} in {n.name.rsplit('/', 1)[0]}" for n in bad[:5])
        raise ConversionError(
            f"the model has TensorFlow ops that tf2onnx cannot convert to ONNX opset {opset}: "
            f"{where}. Replace the layer that uses them with standard Keras layers (the scope "
            "above names it), or export only --formats savedmodel."
        )


def _name_batch_axis(proto: onnx.ModelProto) -> None:
    # tf2onnx names the unknown batch dim 'unk__N'; give inputs and outputs one stable name.
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_param = "batch"


def to_onnx_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Float16 weights and compute, float32 input and outputs (keep_io_types) for drop-in use."""
    from onnxconverter_common import float16
    model = onnx.load(str(src))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(half, str(dst))
    return Path(dst)




# ---------------------------------------------------------------- OpenVINO IR


def to_openvino(model: keras.Model, xml_path: str | os.PathLike, kind: str | None = None) -> Path:
    """OpenVINO IR (model.xml + model.bin) of a Keras model, converted directly by OpenVINO's
    TensorFlow frontend (tf2onnx needed over 16 GB for VGG-16 at 224x224, this a few). Weights stay
    float32: OpenVINO's default `compress_to_fp16=True` would store them as float16 and change the numbers."""
    import openvino as ov

    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    kind = kind or output_kind(model)
    h, w, c = input_shape(model)

    @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32, name=INPUT_NAME)])
    def serve(x):
        return tf.identity(_main_output(model(x, training=False)), name=kind)

    try:
        converted = ov.convert_model(serve)
    except Exception as exc:  # OpenVINO reports an op it has no frontend for as a RuntimeError or OpConversionFailure
        raise ConversionError(f"OpenVINO {version('openvino')} cannot convert the model: {_first_line(exc)}") from exc
    ov.save_model(converted, str(xml_path), compress_to_fp16=False)
    return xml_path


def to_openvino_int8(xml_source: str | os.PathLike, xml_path: str | os.PathLike,
                     calibration: Iterable[np.ndarray]) -> dict:
    """OpenVINO's own post-training int8 (NNCF) of the float32 IR, calibrated on training images.

    OpenVINO runs the QDQ int8 model made for onnxruntime too, but not as fast as a model quantized
    by its own tool: by hand, ResNet-50 at 224 (64 calibration images, both cores) took 260.4 ms at
    batch 32 as the QDQ model read by OpenVINO (6 of its 54 convolutions and matrix multiplies left in
    float32) and 116.6 ms quantized by NNCF (all 54 in int8), against 202.4 ms in bfloat16."""
    import nncf
    import openvino as ov

    images = [np.ascontiguousarray(image[None], dtype="float32") for batch in calibration for image in batch]
    if not images:
        raise ValueError("int8 calibration got no images; the calibration split is empty")
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(str(xml_source))
    try:
        quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images))
    except Exception as exc:  # an op NNCF cannot place quantizers around, or a graph it cannot trace
        raise ConversionError(f"NNCF {version('nncf')} cannot quantize the OpenVINO model: {_first_line(exc)}") from exc
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    return {"calibration_images": len(images), "quantizer": f"nncf {version('nncf')}"}


# ---------------------------------------------------------------- LiteRT (TensorFlow Lite)


def to_litert(model: keras.Model, path: str | os.PathLike, kind: str | None = None,
              calibration: Iterable[np.ndarray] | None = None) -> dict:
    """A .tflite flatbuffer of the main output, with a dynamic batch axis. With `calibration`
    (training images), full-integer int8: every op int8 (conversion fails rather than leaving an op
    in float), float32 input and output so it is a drop-in replacement. Returns what was done."""
    kind = kind or output_kind(model)
    h, w, c = input_shape(model)
    spec = tf.TensorSpec((None, h, w, c), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(x):
        return tf.identity(_main_output(model(x, training=False)), name=kind)

    # Not from_concrete_functions([...], model): with a Keras 3 model as trackable_obj the weights
    # stay uninitialised variable reads in the .tflite and it outputs NaN without an error (the
    # converter's warning that asks for trackable_obj is silenced for that reason).
    with _absl_quiet():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    images = 0
    if calibration is not None:
        batches = [np.ascontiguousarray(b, dtype="float32") for b in calibration]
        images = sum(len(b) for b in batches)
        if images == 0:
            raise ValueError("int8 calibration got no images; the calibration split is empty")

        def representative():
            for batch in batches:
                for i in range(len(batch)):
                    yield [batch[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        # the same trackable_obj warning again, and the quantizer's note on float32 input statistics
        # (the model's input and output stay float32 on purpose)
        with _absl_quiet(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            blob = converter.convert()
    except Exception as exc:
        what = "full-integer int8" if calibration is not None else "float32"
        raise ConversionError(f"the TFLite converter could not make a {what} model: {_converter_error(exc)}") from exc
    path = Path(path)
    path.write_bytes(blob)
    return {"calibration_images": images} if calibration is not None else {}


def _converter_error(exc: Exception) -> str:
    """The TFLite converter's error names the TensorFlow ops it could not lower deep inside an MLIR
    dump: say which, and what to do."""
    import re

    text = str(exc)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    custom = re.search(r"Custom ops: ([\w, ]+)", text)
    if custom:
        ops = sorted(set(ops) | {o.strip() for o in custom.group(1).split(",") if o.strip()})
    if ops:
        return (f"LiteRT has no builtin kernel for the TensorFlow op(s) {', '.join(ops)}; replace the layer that "
                f"uses them with standard Keras layers, or ship another format")
    unsupported = re.search(r"'tfl\.(\w+)' op .*?(int8|quantiz)[^\n]*", text)
    if unsupported:
        return f"LiteRT's {unsupported.group(1)} has no int8 kernel for this model ({unsupported.group(0)[:200]})"
    return _first_line(exc, 400)


class _absl_quiet:
    """absl warnings off inside the block (TensorFlow logs through absl)."""

    def __enter__(self):
        import logging

        from absl import logging as absl_logging

        # absl's own verbosity, and the standard logger it writes through before absl is initialised
        self._level, self._std = absl_logging.get_verbosity(), logging.getLogger("absl").level
        absl_logging.set_verbosity(absl_logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)

    def __exit__(self, *exc):
        import logging

        from absl import logging as absl_logging

        absl_logging.set_verbosity(self._level)
        logging.getLogger("absl").setLevel(self._std)
        return False


def _first_line(exc: Exception, limit: int = 300) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    interesting = [line for line in lines if "error" in line.lower() or "not supported" in line.lower()]
    return ((interesting or lines or [type(exc).__name__])[0])[:limit]
