"""`--locate`: the first layer whose ONNX output diverges from Keras.

Mapping tf2onnx node names back to Keras layers is fragile, so instead the model is rebuilt
with every layer's output as an extra model output, converted once, and the two runs are
compared output by output in layer order. Outputs are keyed `l0007` (layer index) so the ONNX
output names map back to layers with no guessing.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import onnx
import tensorflow as tf

from export import convert
from export.convert import INPUT_NAME, input_shape

# Divergence relative to the layer's own scale (max |reference|): float32 reordering alone
# stays near 1e-6 even deep in a network, a wrong conversion is orders of magnitude above.
DEFAULT_RTOL = 1e-4


@dataclass
class LayerDiff:
    index: int
    layer: str
    kind: str  # layer class
    max_abs_diff: float
    scale: float  # max |reference| of this layer's output

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.scale, 1e-12)


def probed_layers(model: keras.Model) -> list[tuple[int, keras.layers.Layer]]:
    """Layers with one float tensor output, in the model's (topological) order."""
    out = []
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            tensor = layer.output  # raises for a layer called more than once
        except (AttributeError, ValueError, RuntimeError):
            continue
        if isinstance(tensor, keras.KerasTensor) and "float" in str(tensor.dtype):
            out.append((index, layer))
    return out


def intermediate_onnx(model: keras.Model, opset: int) -> tuple[onnx.ModelProto, list[tuple[int, keras.layers.Layer]]]:
    """An ONNX model whose outputs are the outputs of every probed layer."""
    layers = probed_layers(model)
    probe = keras.Model(model.inputs[0], [layer.output for _, layer in layers])
    keys = [f"l{index:04d}" for index, _ in layers]
    spec = [tf.TensorSpec((None, *input_shape(model)), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=spec)
    def serve(x):
        ys = probe(x, training=False)
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return {key: tf.identity(y) for key, y in zip(keys, ys)}

    return convert.from_function(serve, opset), layers


def compare_layers(
    model: keras.Model,
    proto: onnx.ModelProto,
    layers: list[tuple[int, keras.layers.Layer]],
    images: np.ndarray,
) -> list[LayerDiff]:
    from export.runtimes import onnxruntime_session

    probe = keras.Model(model.inputs[0], [layer.output for _, layer in layers])
    ref = probe(images, training=False)
    ref = [np.asarray(r) for r in (ref if isinstance(ref, (list, tuple)) else [ref])]
    session = onnxruntime_session(proto.SerializeToString())
    keys = [f"l{index:04d}" for index, _ in layers]
    got = session.run(keys, {INPUT_NAME: np.ascontiguousarray(images, dtype="float32")})
    rows = []
    for (index, layer), r, g in zip(layers, ref, got):
        r64 = r.astype("float64")
        rows.append(
            LayerDiff(
                index=index,
                layer=layer.name,
                kind=type(layer).__name__,
                max_abs_diff=float(np.abs(g.astype("float64") - r64).max(initial=0.0)),
                scale=float(np.abs(r64).max(initial=0.0)),
            )
        )
    return rows


def first_divergence(rows: list[LayerDiff], rtol: float = DEFAULT_RTOL) -> LayerDiff | None:
    return next((row for row in rows if row.relative > rtol), None)


def locate(model: keras.Model, images: np.ndarray, opset: int, rtol: float = DEFAULT_RTOL) -> str:
    """Converts the probed model, compares every layer, returns a readable report."""
    proto, layers = intermediate_onnx(model, opset)
    rows = compare_layers(model, proto, layers, images)
    return format_rows(rows, rtol)


def format_rows(rows: list[LayerDiff], rtol: float = DEFAULT_RTOL) -> str:
    first = first_divergence(rows, rtol)
    lines = [f"locate: layer outputs, Keras vs ONNX (diverges when max_abs / max|ref| > {rtol:.0e})"]
    lines.append(f"{'#':>4}  {'layer':<32}{'class':<24}{'max_abs':>11}{'max|ref|':>11}{'relative':>11}")
    for row in rows:
        mark = "  <- first divergence" if row is first else ""
        lines.append(
            f"{row.index:>4}  {row.layer:<32}{row.kind:<24}{row.max_abs_diff:>11.2e}"
            f"{row.scale:>11.2e}{row.relative:>11.2e}{mark}"
        )
    if first is None:
        lines.append("locate: no layer diverges beyond the tolerance")
    else:
        lines.append(f"locate: first divergent layer: {first.layer} ({first.kind}, layer #{first.index})")
    return "\n".join(lines)
