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

Besides registered names, ``build`` takes ``package.module:function`` for any constructor in the
style of ``keras.applications`` (``keras.applications:ResNet50``: its ``classes`` argument gets
``num_classes``, ``weights`` defaults to None). That is the one way the toolkit resolves a model
name: recipes, benchmark matrices and the tf.distribute worker all call ``build``.

The family modules are imported on the first look-up, not when ``zoo`` is imported, so a command
can answer ``--help`` without loading TensorFlow.
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

Builder = Callable[..., Any]
# Imported on the first look-up; each registers its builders.
FAMILIES = ("zoo.alexnet", "zoo.vgg", "zoo.googlenet", "zoo.inception", "zoo.resnet", "zoo.small",
            "zoo.airbench", "zoo.efficientnet_lite", "zoo.transfer")


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


def load_families() -> None:
    """Imports every family module (registering its builders and custom layers); idempotent."""
    for module in FAMILIES:
        importlib.import_module(module)


def names() -> list[str]:
    """Registered names, numbers in natural order (resnet18 before resnet101)."""
    load_families()
    return sorted(_REGISTRY, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def spec(name: str) -> ModelSpec:
    return _lookup(name)[1]


def _lookup(name: str) -> tuple[Builder, ModelSpec]:
    load_families()
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
    import keras

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
) -> Any:
    """Builds ``name`` for images of ``input_shape`` (float32 in [0, 1]).

    ``input_shape`` defaults to the architecture's default (``spec(name).default_input_shape``).
    ``classifier_activation=None`` gives logits. ``name`` may also be ``package.module:function``.
    """
    if ":" in name:
        return _build_constructor(name, input_shape, num_classes, classifier_activation, **options)
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


def _build_constructor(name: str, input_shape, num_classes: int, classifier_activation, **options: Any):
    """`package.module:function`, called keras.applications-style: `input_shape`, `classes` (or
    `num_classes`), `classifier_activation`, `weights=None` unless given."""
    module_name, _, attr = name.partition(":")
    try:
        constructor = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model constructor {name!r} cannot be loaded ({exc}); give a zoo name "
                         f"or package.module:function, e.g. keras.applications:ResNet50") from None
    if input_shape is None:
        raise ValueError(f"{name}: give input_shape=(H, W, C)")
    input_shape = _check_input_shape(name, input_shape)
    params = inspect.signature(constructor).parameters
    kwargs: dict[str, Any] = {"input_shape": input_shape}
    if "classes" in params:
        kwargs["classes"] = num_classes
    elif "num_classes" in params:
        kwargs["num_classes"] = num_classes
    else:
        raise ValueError(f"{name} takes neither `classes` nor `num_classes`; it cannot be built "
                         f"as a {num_classes}-class classifier")
    if "classifier_activation" in params:
        kwargs["classifier_activation"] = classifier_activation
    if "weights" in params:
        kwargs["weights"] = None
    kwargs.update(options)
    try:
        return constructor(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{name} refused its arguments {sorted(kwargs)}: {exc}") from None
