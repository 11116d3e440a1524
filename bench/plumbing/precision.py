"""One precision vocabulary: the number format a model or an engine computes in.

- Keras dtype policies (what a TensorFlow model computes in; variables stay float32 under mixed_*):
  `float32`, `mixed_float16`, `mixed_bfloat16`.
- Deployment engines (what the runtime computes in, set explicitly, never a default):
  `float32`, `float16`, `bfloat16`, `int8`.

A row's `precision` is always one of these names; the engines that run a converted file say which
of them they support (bench.measure.engines).
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

KERAS_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
ENGINE_PRECISIONS = ("float32", "float16", "bfloat16", "int8")
PRECISIONS = tuple(dict.fromkeys(KERAS_POLICIES + ENGINE_PRECISIONS))
# Spellings from other tools, refused with the name to use instead.
_ALIASES = {"fp32": "float32", "f32": "float32", "fp16": "float16", "f16": "float16", "half": "float16",
            "bf16": "bfloat16", "i8": "int8", "u8": "int8", "mixed_fp16": "mixed_float16",
            "mixed_bf16": "mixed_bfloat16"}


def check(precision: str, allowed: Iterable[str] = PRECISIONS, what: str = "precision") -> str:
    """`precision` if it is in `allowed`; else a ValueError that names the valid choices."""
    allowed = tuple(allowed)
    if precision in allowed:
        return precision
    hint = f" (this toolkit writes {_ALIASES[precision]!r})" if precision in _ALIASES else ""
    raise ValueError(f"unknown {what} {precision!r}{hint}; valid: {', '.join(allowed)}")


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Keras' global dtype policy set to `policy` inside the block and always restored after it,
    so a mixed-precision model never leaks its policy into the caller's next model."""
    import keras

    check(policy, KERAS_POLICIES, "Keras dtype policy")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
