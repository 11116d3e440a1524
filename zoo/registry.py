"""One table of architectures: name -> (builder, spec).

A family module registers each of its builders at import time::

    @register(ModelSpec(name="resnet18", family="resnet", paper="...",
                        default_input_shape=(224, 224, 3), min_input_size=32))
    def resnet18(input_shape, num_classes, classifier_activation="softmax", *, small_input=None):
        ...

Every builder takes ``(input_shape, num_classes, classifier_activation)`` plus its own
keyword-only options and returns a functional ``keras.Model``. ``build()`` checks what is
common to all models (name, shape, classes, activation, option names) so builders only
check what is specific to them (e.g. the smallest input size).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    paper: str
    default_input_shape: tuple[int, int, int]
    # Smallest H and W the default options accept; some options change it (see notes).
    min_input_size: int
    notes: str = ""
    options: dict[str, str] = field(default_factory=dict)  # option -> one-line help


_REGISTRY: dict[str, tuple[Builder, ModelSpec]] = {}


def register(spec: ModelSpec) -> Callable[[Builder], Builder]:
    """Decorator that adds a builder under ``spec.name``; names are unique."""

    def add(builder: Builder) -> Builder:
        if spec.name in _REGISTRY:
            raise ValueError(f"model name {spec.name!r} is already registered")
        _REGISTRY[spec.name] = (builder, spec)
        return builder

    return add


def names() -> list[str]:
    """Registered names, numbers in natural order (resnet18 before resnet101)."""
    return sorted(_REGISTRY, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def spec(name: str) -> ModelSpec:
    return _lookup(name)[1]


def _lookup(name: str) -> tuple[Builder, ModelSpec]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def _check_input_shape(name: str, input_shape: Any) -> tuple[int, int, int]:
    ok = (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape)
    )
    if not ok:
        raise ValueError(
            f"{name}: input_shape must be (height, width, channels) with positive integers, "
            f"e.g. (224, 224, 3) or (28, 28, 1); got {input_shape!r}"
        )
    return tuple(input_shape)  # type: ignore[return-value]


def _check_activation(name: str, activation: Any) -> None:
    if activation is None or callable(activation):
        return
    try:
        keras.activations.get(activation)
    except ValueError:
        raise ValueError(
            f"{name}: unknown classifier_activation {activation!r}; use 'softmax' for "
            "probabilities or None for logits"
        ) from None


def build(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int = 1000,
    classifier_activation: str | None = "softmax",
    **options: Any,
) -> keras.Model:
    """Builds ``name`` for images of ``input_shape`` (float32 in [0, 1]).

    ``input_shape`` defaults to the architecture's default (``spec(name).default_input_shape``).
    ``classifier_activation=None`` gives logits.
    """
    builder, model_spec = _lookup(name)
    input_shape = _check_input_shape(
        name, model_spec.default_input_shape if input_shape is None else input_shape
    )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"{name}: num_classes must be an integer >= 2 (a classifier needs at least two "
            f"classes); got {num_classes!r}"
        )
    _check_activation(name, classifier_activation)
    accepted = [
        p.name for p in inspect.signature(builder).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"{name}: unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(accepted) or 'none'}"
        )
    return builder(input_shape, num_classes, classifier_activation, **options)
