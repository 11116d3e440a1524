"""What gets exported: a trained model from a checkpoint file, or an untrained zoo architecture.

Loading is `zoo.load_model` (the toolkit's one checkpoint loader); making the model export-ready
(float32 everywhere, the main output only) is `zoo.inference`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.checkpoint import MODEL_SUFFIXES, CheckpointError, load_model


def load(source: str | os.PathLike, input_shape: tuple[int, int, int] | None = None,
         num_classes: int | None = None, custom_objects: str | None = None, **options: Any):
    """A model from a `.keras`/`.h5` file, or an untrained zoo architecture built by name
    (`options` go to `zoo.build`, e.g. aux_outputs=True for GoogLeNet)."""
    path = Path(source)
    if path.suffix in MODEL_SUFFIXES or path.exists():
        return load_model(path, custom_objects=custom_objects)
    return _build_untrained(str(source), input_shape, num_classes, **options)


def _build_untrained(name: str, input_shape: tuple[int, int, int] | None, num_classes: int | None,
                     **options: Any):
    import zoo

    known = zoo.names()
    if name not in known and ":" not in name:
        raise CheckpointError(
            f"{name!r} is neither a checkpoint file (.keras) nor a zoo architecture; "
            f"architectures: {', '.join(known)}")
    if input_shape is None or num_classes is None:
        raise CheckpointError(f"exporting the untrained model {name!r} needs --input-shape H,W,C and --classes N")
    try:
        return zoo.build(name, input_shape=tuple(input_shape), num_classes=num_classes, **options)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
