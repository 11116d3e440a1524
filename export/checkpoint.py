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


def check_finite(model, source: str | os.PathLike) -> None:
    """Refuses a model with a NaN or infinite weight (a diverged training run, a damaged file),
    naming the layer and weight: no export of it can be verified, since a graph that fuses or folds
    the weight can hide the NaN that the eager model and other runtimes produce."""
    import numpy as np

    bad = []
    seen = set()
    for weight in model.weights:
        path = getattr(weight, "path", None) or weight.name
        if path in seen:
            continue
        seen.add(path)
        value = np.asarray(weight)
        if not np.issubdtype(value.dtype, np.floating):
            continue
        nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
        if nan or inf:
            layer, _, name = path.rpartition("/")
            bad.append((layer or "?", name, nan, inf, value.size))
    if bad:
        layer, name, nan, inf, size = bad[0]
        more = f" (and {len(bad) - 1} more weight(s))" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{source} has non-finite weights: layer {layer!r} weight {name!r} has {nan} NaN and {inf} inf "
            f"of {size} values{more}; nothing was exported: export a checkpoint from before training "
            f"diverged, or retrain (e.g. a lower learning rate)")
