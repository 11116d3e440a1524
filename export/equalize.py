"""Rescales the channels that feed a BatchNormalization so that each has unit scale, without changing
what the model computes: the re-parametrisation that lets int8 quantization see them.

A convolution followed by BatchNorm is free to grow its weights (the BN divides the scale away),
and airbench-style training does: in the MNIST airbench94 model one channel of the first group's
convolution spans +-1e5 while others have a standard deviation of 0.4. Float32 does not care; an int8
model quantizes that tensor with one scale (847 there), so every small channel rounds to zero, and all
three int8 converters (onnxruntime's QDQ, OpenVINO's from it, the TFLite converter) gave one class
for every image (11.35% top-1 against 99.46%).

For each channel c of a Conv2D or Dense whose output reaches a BatchNormalization only through
max- or average-pooling (which commute with a positive per-channel scale), with no other consumer:
kernel[..., c] and bias[c] are divided by s_c = sqrt(moving_variance_c + epsilon), and the BN's
moving_mean_c by s_c, its moving_variance_c set so that sqrt(variance + epsilon) is 1. The BN's
output is unchanged in exact arithmetic; `equalize` checks it on random inputs and undoes everything
if the model's outputs moved by more than float32 rounding.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# between the convolution and its BatchNorm: positively homogeneous, channel-wise
PASSTHROUGH = ("MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D")
PRODUCERS = ("Conv2D", "Conv1D", "Dense", "WhiteningConv2D")


def _producer(layer):
    nodes = layer._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    return nodes[0].input_tensors[0]._keras_history.operation


def _single_use(layer) -> bool:
    return len(layer._inbound_nodes) == 1 and len(layer._outbound_nodes) == 1


def _models(model):
    yield model
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer is not model:
            yield from _models(layer)


def pairs(model) -> list[tuple[Any, Any]]:
    """(producer, BatchNormalization) pairs that can be equalised, in every nested model."""
    import keras

    found = []
    for sub in _models(model):
        for bn in getattr(sub, "layers", []):
            if not isinstance(bn, keras.layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
                continue
            if bn.axis not in (-1, len(bn.input.shape) - 1):  # channels last only
                continue
            prod = _producer(bn)
            while prod is not None and type(prod).__name__ in PASSTHROUGH and _single_use(prod):
                prod = _producer(prod)
            if (prod is None or type(prod).__name__ not in PRODUCERS or not _single_use(prod)
                    or getattr(prod, "activation", None) not in (None, keras.activations.linear)):
                continue
            found.append((prod, bn))
    return found


def _apply(prod, bn) -> None:
    var = np.asarray(bn.moving_variance, dtype=np.float64)
    s = np.sqrt(var + bn.epsilon)
    prod.kernel.assign((np.asarray(prod.kernel, dtype=np.float64) / s).astype(np.float32))
    if getattr(prod, "bias", None) is not None:
        prod.bias.assign((np.asarray(prod.bias, dtype=np.float64) / s).astype(np.float32))
    bn.moving_mean.assign((np.asarray(bn.moving_mean, dtype=np.float64) / s).astype(np.float32))
    # sqrt(new_var + eps) == 1; for eps near 1 the variance would go negative: such a BN is left alone
    bn.moving_variance.assign(np.full(var.shape, 1.0 - bn.epsilon, dtype=np.float32))


def equalize(model, atol: float = 1e-5, seed: int = 0) -> list[str]:
    """Equalises every pair in place and returns the BatchNorm layers' names; leaves the model as it
    was (and returns []) when its outputs on random inputs move by more than `atol` relative to
    their largest value."""
    candidates = [(p, b) for p, b in pairs(model) if b.epsilon < 0.5]
    if not candidates:
        return []
    weights = model.get_weights()
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).random((4, *shape), dtype=np.float32)
    before = [np.asarray(o) for o in _outputs(model, x)]
    for prod, bn in candidates:
        _apply(prod, bn)
    after = [np.asarray(o) for o in _outputs(model, x)]
    moved = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12)) for a, b in zip(after, before))
    if not np.isfinite(moved) or moved > atol:
        model.set_weights(weights)
        return []
    return [bn.name for _, bn in candidates]


def _outputs(model, x):
    out = model(x, training=False)
    return out if isinstance(out, (list, tuple)) else [out]
