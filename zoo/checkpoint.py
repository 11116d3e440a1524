"""The one checkpoint loader: a trained model back from a `.keras` (or legacy `.h5`) file.

Training resumes from it (with the optimizer state, `compile=True`), export and the benchmark load
inference models with it. Every failure is a CheckpointError that says what was wrong and what
to pass instead; the zoo's custom layers are registered first, and `custom_objects` names a module
of the user's that defines (and registers) layers of their own.
"""
from __future__ import annotations

import importlib
import os
import zipfile
from pathlib import Path

MODEL_SUFFIXES = (".keras", ".h5")


class CheckpointError(ValueError):
    """The checkpoint is missing or is not a loadable Keras model; the message says what to pass."""


def load_model(path: str | os.PathLike, *, compile: bool = False, custom_objects: str | None = None):
    """`path` as a keras.Model. `custom_objects`: a module path (`package.module`) imported first."""
    import keras

    from zoo.registry import load_families

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a .keras file written by "
                              f"training (model.save('name.keras'))")
    if path.suffix not in MODEL_SUFFIXES:
        raise CheckpointError(f"{path} is not a Keras model file: expected a .keras (or legacy .h5) file "
                              f"written by model.save(...)")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a Keras model file: a .keras file is a zip archive written by "
                              f"model.save('name.keras'); this one is not a zip archive")
    load_families()  # the zoo's custom layers register themselves when their family is imported
    if custom_objects:
        try:
            importlib.import_module(custom_objects)
        except ImportError as exc:
            raise CheckpointError(f"--custom-objects {custom_objects}: the module cannot be imported ({exc}); "
                                  f"give an importable module (on PYTHONPATH) that defines the layers") from None
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a broken or foreign file
        raise CheckpointError(_explain(path, exc)) from exc
    if not isinstance(model, keras.Model):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a keras.Model")
    return model


def _explain(path: Path, exc: Exception) -> str:
    text = str(exc)
    first = (text.strip().splitlines() or [""])[0][:300]
    if "Lambda" in text and "safe_mode" in text:
        return (f"{path} has a Lambda layer, whose Python code Keras will not load from a file "
                f"(it could run anything). Replace the Lambda with a registered custom layer and pass "
                f"its module with --custom-objects package.module")
    if "Could not locate" in text or "Unknown layer" in text or "custom_objects" in text:
        return (f"{path} uses a layer class this process does not know ({first}). Pass the module that "
                f"defines and registers it (@keras.saving.register_keras_serializable) with "
                f"--custom-objects package.module")
    return f"{path} could not be loaded as a Keras model: {type(exc).__name__}: {first}"
