"""VGG (Simonyan & Zisserman, 2014) from a conv_arch, as the seed's vgg_block / vgg."""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

PAPER = (
    "Simonyan, Zisserman: Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition (ICLR 2015)"
)
# (number of 3x3 convs, filters) per block: configurations A, B, D, E of the paper's Table 1.
CONV_ARCHS: dict[str, tuple[tuple[int, int], ...]] = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "vgg19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def check_conv_arch(conv_arch: object) -> tuple[tuple[int, int], ...]:
    def positive_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    ok = (
        isinstance(conv_arch, Sequence)
        and not isinstance(conv_arch, str)
        and len(conv_arch) > 0
        and all(
            isinstance(block, Sequence) and len(block) == 2 and all(map(positive_int, block))
            for block in conv_arch
        )
    )
    if not ok:
        raise ValueError(
            "vgg: conv_arch must be a non-empty sequence of (num_convs, num_filters) pairs of "
            f"positive integers, e.g. ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)); got {conv_arch!r}"
        )
    return tuple((int(n), int(f)) for n, f in conv_arch)  # type: ignore[union-attr]


def vgg_block(x: keras.KerasTensor, num_convs: int, num_filters: int, name: str) -> keras.KerasTensor:
    """num_convs 3x3 'same' convs with ReLU, then a 2x2/2 max-pool that halves H and W."""
    for i in range(1, num_convs + 1):
        x = layers.Conv2D(
            num_filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}"
        )(x)
    return layers.MaxPooling2D(2, strides=2, name=f"{name}_pool")(x)


def build_vgg(
    input_shape: tuple[int, int, int],
    num_classes: int,
    classifier_activation: str | None,
    conv_arch: Sequence[tuple[int, int]],
    name: str,
) -> keras.Model:
    conv_arch = check_conv_arch(conv_arch)
    check_min_size(
        name,
        input_shape,
        2 ** len(conv_arch),
        224,
        why=f"{len(conv_arch)} 2x2 max-pools each halve the side",
    )
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, (num_convs, num_filters) in enumerate(conv_arch, start=1):
        x = vgg_block(x, num_convs, num_filters, name=f"block{i}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    x = layers.Dense(4096, activation="relu", name="fc2")(x)
    x = layers.Dropout(0.5, name="fc2_dropout")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _register_named(name: str) -> None:
    layout = "-".join(str(n) for n, _ in CONV_ARCHS[name])
    depth = sum(n for n, _ in CONV_ARCHS[name]) + 3

    @register(
        ModelSpec(
            name=name,
            family="vgg",
            paper=PAPER,
            default_input_shape=(224, 224, 3),
            min_input_size=32,
            notes=f"{depth} weight layers, convs per block {layout}; layer names as "
            "keras.applications (block1_conv1 ... fc1, fc2, predictions), plus the paper's "
            "dropout 0.5 after fc1 and fc2.",
        )
    )
    def builder(
        input_shape: tuple[int, int, int],
        num_classes: int,
        classifier_activation: str | None = "softmax",
    ) -> keras.Model:
        return build_vgg(input_shape, num_classes, classifier_activation, CONV_ARCHS[name], name)


for _name in CONV_ARCHS:
    _register_named(_name)


@register(
    ModelSpec(
        name="vgg",
        family="vgg",
        paper=PAPER,
        default_input_shape=(224, 224, 3),
        min_input_size=32,
        notes="VGG from any conv_arch (the seed's vgg(conv_arch)); the smallest input is "
        "2**len(conv_arch) (32 for the default five blocks).",
        options={"conv_arch": "sequence of (num_convs, num_filters); default VGG-11's"},
    )
)
def vgg(
    input_shape: tuple[int, int, int],
    num_classes: int,
    classifier_activation: str | None = "softmax",
    *,
    conv_arch: Sequence[tuple[int, int]] = CONV_ARCHS["vgg11"],
) -> keras.Model:
    return build_vgg(input_shape, num_classes, classifier_activation, conv_arch, "vgg")
