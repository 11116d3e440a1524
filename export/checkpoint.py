"""What gets exported: a Keras model from a checkpoint file or a zoo name, made export-ready.

Export-ready means float32 everywhere (a mixed-precision model is rebuilt with a float32
policy and its own weights) and, unless auxiliary heads are asked for, the main output only.
"""
from __future__ import annotations

import copy
import os
import zipfile
from pathlib import Path
from typing import Any

import keras

MODEL_SUFFIXES = (".keras", ".h5")


class CheckpointError(ValueError):
    """The checkpoint is missing or is not a Keras model; the message says what to pass."""


def load(
    source: str | os.PathLike,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> keras.Model:
    """A model from a `.keras`/`.h5` file, or an untrained zoo architecture built by name
    (`options` go to `zoo.build`, e.g. aux_outputs=True for GoogLeNet)."""
    path = Path(source)
    if path.suffix in MODEL_SUFFIXES or path.exists():
        return _load_file(path)
    return _build_untrained(str(source), input_shape, num_classes, **options)


def _load_file(path: Path) -> keras.Model:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a .keras file written by training")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a Keras model file: a .keras file is a zip archive written by "
            "model.save('name.keras'); this one is not a zip archive"
        )
    if path.suffix not in MODEL_SUFFIXES:
        raise CheckpointError(
            f"{path} is not a Keras model file: expected a .keras (or legacy .h5) file written by "
            "model.save(...), or a zoo architecture name with --input-shape and --classes"
        )
    _register_zoo_layers()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a broken or foreign file
        raise CheckpointError(f"{path} could not be loaded as a Keras model: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a keras.Model")
    return model


def _register_zoo_layers() -> None:
    # Custom zoo layers register themselves with Keras when zoo is imported.
    try:
        import zoo  # noqa: F401
        import zoo.registry  # noqa: F401
    except ImportError:
        pass


def _build_untrained(
    name: str, input_shape: tuple[int, int, int] | None, num_classes: int | None, **options: Any
) -> keras.Model:
    try:
        import zoo
    except ImportError:
        raise CheckpointError(f"{name!r} is not a file and the zoo package is not available") from None
    known = zoo.names()
    if name not in known:
        raise CheckpointError(
            f"{name!r} is neither a checkpoint file (.keras) nor a zoo architecture; "
            f"architectures: {', '.join(known)}"
        )
    if input_shape is None or num_classes is None:
        raise CheckpointError(
            f"exporting the untrained zoo model {name!r} needs --input-shape H,W,C and --classes N"
        )
    try:
        return zoo.build(name, input_shape=tuple(input_shape), num_classes=num_classes, **options)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def is_mixed_precision(model: keras.Model) -> bool:
    return any(
        getattr(layer, "compute_dtype", "float32") != "float32"
        for layer in all_layers(model)
    )


def all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def as_float32(model: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision model, with the same weights (returned as is otherwise).

    ONNX and SavedModel consumers expect float32 graphs; the float16 compute of mixed precision
    is a training-speed choice. The config is rewritten so every dtype policy is float32.
    """
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
        return {
            key: "float32" if key == "dtype" and value in _LOW_PRECISION else _float32_config(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


_LOW_PRECISION = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def inference_outputs(model: keras.Model, aux_outputs: bool = False) -> keras.Model:
    """The main output only (GoogLeNet's first output), or all outputs with aux_outputs."""
    if len(model.outputs) == 1:
        if aux_outputs:
            raise CheckpointError(
                f"--aux-outputs asks for auxiliary heads, but {model.name!r} has one output; "
                "build the model with aux_outputs=True (GoogLeNet) or drop --aux-outputs"
            )
        return model
    if aux_outputs:
        return model
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)
