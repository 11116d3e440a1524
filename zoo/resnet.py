"""ResNet v1 (He et al., 2015): the seed's basic residual block (18/34) and bottlenecks (50/101/152).

Layer names follow keras.applications.resnet (conv1_conv, conv2_block1_1_conv, ...), so a
summary reads like the paper's Table 1 and the bottleneck models match keras' parameter counts.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

PAPER = "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (CVPR 2016)"
BN_EPSILON = 1.001e-5  # keras.applications' value
# Inputs this small get the CIFAR stem unless small_input says otherwise.
SMALL_INPUT_MAX = 64


def basic_block(
    x: keras.KerasTensor, filters: int, stride: int = 1, conv_shortcut: bool = False, *, name: str
) -> keras.KerasTensor:
    """The seed's Residual: conv3x3-BN-ReLU-conv3x3-BN, plus x (through a 1x1 strided conv
    when the shape changes, without BN as in the seed), then ReLU."""
    shortcut = x
    if conv_shortcut:
        shortcut = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(x)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(
    x: keras.KerasTensor, filters: int, stride: int = 1, conv_shortcut: bool = False, *, name: str
) -> keras.KerasTensor:
    """1x1 (stride) -> 3x3 -> 1x1 (4 * filters), each with BN; projection shortcut with BN.

    As keras.applications' residual_block_v1 (stride on the first 1x1, biases kept)."""
    shortcut = x
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_0_bn")(shortcut)
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


Block = Callable[..., keras.KerasTensor]


def stack_blocks(
    x: keras.KerasTensor, block: Block, filters: int, blocks: int, stride: int, *, name: str
) -> keras.KerasTensor:
    """One stage (the seed's ResnetBlock): the first block may change shape, the rest keep it."""
    channels_in = x.shape[-1]
    channels_out = 4 * filters if block is bottleneck_block else filters
    needs_projection = stride != 1 or channels_in != channels_out
    x = block(x, filters, stride, needs_projection, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = block(x, filters, name=f"{name}_block{i}")
    return x


def stem(x: keras.KerasTensor, small_input: bool) -> keras.KerasTensor:
    if small_input:
        # CIFAR-style: 3x3 stride 1 and no max-pool, so a 32x32 image keeps 32x32 into conv2.
        x = layers.Conv2D(64, 3, padding="same", name="conv1_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
        return layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def build_resnet(
    name: str,
    block: Block,
    blocks_per_stage: tuple[int, int, int, int],
    input_shape: tuple[int, int, int],
    num_classes: int,
    classifier_activation: str | None,
    small_input: bool | None,
) -> keras.Model:
    if small_input not in (None, True, False):
        raise ValueError(f"{name}: small_input must be True, False or None (automatic); got {small_input!r}")
    if small_input is None:
        small_input = min(input_shape[:2]) <= SMALL_INPUT_MAX
    # Total stride: 2 (conv1) * 2 (pool1) * 2 * 2 * 2 (conv3-5) = 32, or 8 with the CIFAR stem.
    min_size = 8 if small_input else 32
    check_min_size(
        name, input_shape, min_size, 224, why=f"the network downsamples by {min_size}"
    )
    inputs = keras.Input(shape=input_shape, name="image")
    x = stem(inputs, small_input)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage), start=2):
        x = stack_blocks(x, block, filters, blocks, stride=1 if stage == 2 else 2, name=f"conv{stage}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


CONFIGS: dict[str, tuple[Block, tuple[int, int, int, int]]] = {
    "resnet18": (basic_block, (2, 2, 2, 2)),
    "resnet34": (basic_block, (3, 4, 6, 3)),
    "resnet50": (bottleneck_block, (3, 4, 6, 3)),
    "resnet101": (bottleneck_block, (3, 4, 23, 3)),
    "resnet152": (bottleneck_block, (3, 8, 36, 3)),
}


def _register(name: str) -> None:
    block, blocks_per_stage = CONFIGS[name]
    kind = (
        "the seed's basic block (projection shortcut without BN, as the seed)"
        if block is basic_block
        else "bottleneck blocks, parameter-for-parameter keras.applications' v1"
    )

    @register(
        ModelSpec(
            name=name,
            family="resnet",
            paper=PAPER,
            default_input_shape=(224, 224, 3),
            min_input_size=8,
            notes=f"Blocks per stage {blocks_per_stage}, {kind}. Inputs <= {SMALL_INPUT_MAX}px "
            "get the CIFAR stem (3x3 stride 1, no max-pool; smallest input 8); larger ones the "
            "ImageNet stem (7x7/2 + max-pool; smallest input 32).",
            options={
                "small_input": "True: CIFAR stem, False: ImageNet stem, None (default): "
                f"CIFAR stem for inputs <= {SMALL_INPUT_MAX}px",
            },
        )
    )
    def builder(
        input_shape: tuple[int, int, int],
        num_classes: int,
        classifier_activation: str | None = "softmax",
        *,
        small_input: bool | None = None,
    ) -> keras.Model:
        return build_resnet(
            name, block, blocks_per_stage, input_shape, num_classes, classifier_activation, small_input
        )


for _name in CONFIGS:
    _register(_name)
