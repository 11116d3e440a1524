"""A trained model made ready for inference and export: float32 everywhere, the main output only.

A mixed-precision model is rebuilt with a float32 policy and its own weights (its float16 or
bfloat16 compute was a training-speed choice; ONNX, SavedModel and the engines expect float32
graphs). GoogLeNet's training model has three outputs; inference uses the first.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

import keras

_LOW_PRECISION = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def all_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def is_mixed_precision(model: keras.Model) -> bool:
    return any(getattr(layer, "compute_dtype", "float32") != "float32" for layer in all_layers(model))


def as_float32(model: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision model, with the same weights (returned as is otherwise).
    The config is rewritten so every dtype policy is float32."""
    if not is_mixed_precision(model):
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights([w.astype("float32") for w in model.get_weights()])
    return clone


def _float32_config(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            node = copy.deepcopy(node)
            node["config"]["name"] = "float32"
            return node
        return {key: "float32" if key == "dtype" and value in _LOW_PRECISION else _float32_config(value)
                for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


class OutputsError(ValueError):
    """Auxiliary outputs were asked of a model that has none."""


def inference_outputs(model: keras.Model, aux_outputs: bool = False) -> keras.Model:
    """The main output only (GoogLeNet's first output), or all outputs with aux_outputs."""
    if len(model.outputs) == 1:
        if aux_outputs:
            raise OutputsError(
                f"--aux-outputs asks for auxiliary heads, but {model.name!r} has one output; "
                "build the model with aux_outputs=True (GoogLeNet) or drop --aux-outputs")
        return model
    if aux_outputs:
        return model
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def with_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of a float32 model computing under the Keras dtype policy `policy` (mixed_float16,
    mixed_bfloat16) with the same weights, so precisions are compared on the same model. The layers
    that produce the outputs stay float32 (as the zoo builds them), so probabilities sum to 1."""
    if policy == "float32":
        return model
    outputs = {t._keras_history[0].name for t in model.outputs}
    config = keras.saving.serialize_keras_object(model)
    for layer in config["config"]["layers"]:
        if layer["config"].get("name") not in outputs:
            layer["config"] = _policy_config(layer["config"], policy)
    clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())
    return clone


def _policy_config(node: Any, policy: str) -> Any:
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return {**node, "config": {**node["config"], "name": policy}}
        return {key: _policy_config(value, policy) for key, value in node.items()}
    if isinstance(node, list):
        return [_policy_config(value, policy) for value in node]
    return node
