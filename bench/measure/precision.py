"""Keras' global dtype policy, set for one cell and always reset afterwards."""
from __future__ import annotations

import contextlib
from typing import Iterator

PRECISIONS = {"fp32": "float32", "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Models built inside the block compute in `precision` (variables stay float32 for mixed_*)."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
