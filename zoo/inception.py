"""Inception v2 (BN-Inception) and Inception v3, built from conv + BN units.

Inception v3 is keras.applications.InceptionV3 layer for layer (same parameter count),
with names after its stages (mixed0 ... mixed10) so a summary reads like the paper's table.
"""
from __future__ import annotations

import keras
from keras import layers

from zoo.layers import check_min_size, classifier, conv2d_bn
from zoo.registry import ModelSpec, register

# ---------------------------------------------------------------------------- Inception v2


def bn_inception_block(
    x: keras.KerasTensor,
    c1: int,
    c3: tuple[int, int],
    c33: tuple[int, int],
    pool: str,
    proj: int,
    *,
    name: str,
) -> keras.KerasTensor:
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 (the 5x5 factorised) | pool -> 1x1 projection."""
    b1 = conv2d_bn(x, c1, 1, name=f"{name}_1x1")
    b3 = conv2d_bn(x, c3[0], 1, name=f"{name}_3x3_reduce")
    b3 = conv2d_bn(b3, c3[1], 3, name=f"{name}_3x3")
    b33 = conv2d_bn(x, c33[0], 1, name=f"{name}_double_3x3_reduce")
    b33 = conv2d_bn(b33, c33[1], 3, name=f"{name}_double_3x3_1")
    b33 = conv2d_bn(b33, c33[1], 3, name=f"{name}_double_3x3_2")
    pool_layer = layers.AveragePooling2D if pool == "avg" else layers.MaxPooling2D
    bp = pool_layer(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv2d_bn(bp, proj, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=name)([b1, b3, b33, bp])


def bn_inception_reduction(
    x: keras.KerasTensor, c3: tuple[int, int], c33: tuple[int, int], *, name: str
) -> keras.KerasTensor:
    """Stride-2 module: 3x3/2 | double 3x3 (last /2) | 3x3/2 max-pool passed through."""
    b3 = conv2d_bn(x, c3[0], 1, name=f"{name}_3x3_reduce")
    b3 = conv2d_bn(b3, c3[1], 3, strides=2, name=f"{name}_3x3")
    b33 = conv2d_bn(x, c33[0], 1, name=f"{name}_double_3x3_reduce")
    b33 = conv2d_bn(b33, c33[1], 3, name=f"{name}_double_3x3_1")
    b33 = conv2d_bn(b33, c33[1], 3, strides=2, name=f"{name}_double_3x3_2")
    bp = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    return layers.Concatenate(name=name)([b3, b33, bp])


@register(
    ModelSpec(
        name="inception_v2",
        family="inception",
        paper="Ioffe, Szegedy: Batch Normalization: Accelerating Deep Network Training by "
        "Reducing Internal Covariate Shift (ICML 2015), BN-Inception of Figure 5",
        default_input_shape=(224, 224, 3),
        min_input_size=32,
        notes="BN after every conv, each 5x5 replaced by two 3x3, stride-2 modules 3c and 4e; "
        "filter counts as TF-slim's inception_v2 (4c/4d pool projections 96, so every 14x14 "
        "module outputs 576 channels). Plain 7x7 stem conv (slim uses a separable one), "
        "dropout 0.2 before the classifier.",
    )
)
def inception_v2(
    input_shape: tuple[int, int, int], num_classes: int, classifier_activation: str | None = "softmax"
) -> keras.Model:
    check_min_size("inception_v2", input_shape, 32, 224, why="the network downsamples by 32")
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv2d_bn(inputs, 64, 7, strides=2, name="conv1_7x7")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv2d_bn(x, 64, 1, name="conv2_3x3_reduce")
    x = conv2d_bn(x, 192, 3, name="conv2_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    # 28x28 at 224x224 input
    x = bn_inception_block(x, 64, (64, 64), (64, 96), "avg", 32, name="inception_3a")
    x = bn_inception_block(x, 64, (64, 96), (64, 96), "avg", 64, name="inception_3b")
    x = bn_inception_reduction(x, (128, 160), (64, 96), name="inception_3c")
    # 14x14
    x = bn_inception_block(x, 224, (64, 96), (96, 128), "avg", 128, name="inception_4a")
    x = bn_inception_block(x, 192, (96, 128), (96, 128), "avg", 128, name="inception_4b")
    x = bn_inception_block(x, 160, (128, 160), (128, 160), "avg", 96, name="inception_4c")
    x = bn_inception_block(x, 96, (128, 192), (160, 192), "avg", 96, name="inception_4d")
    x = bn_inception_reduction(x, (128, 192), (192, 256), name="inception_4e")
    # 7x7
    x = bn_inception_block(x, 352, (192, 320), (160, 224), "avg", 128, name="inception_5a")
    x = bn_inception_block(x, 352, (192, 320), (192, 224), "max", 128, name="inception_5b")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="inception_v2")


# ---------------------------------------------------------------------------- Inception v3

V3_MIN_SIZE = 75  # three valid stride-2 stages and two valid 3x3s (keras' limit too)


def inception_a(x: keras.KerasTensor, pool_proj: int, *, name: str) -> keras.KerasTensor:
    """35x35 module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1."""
    b1 = conv2d_bn(x, 64, 1, name=f"{name}_1x1")
    b5 = conv2d_bn(x, 48, 1, name=f"{name}_5x5_reduce")
    b5 = conv2d_bn(b5, 64, 5, name=f"{name}_5x5")
    b3 = conv2d_bn(x, 64, 1, name=f"{name}_3x3dbl_reduce")
    b3 = conv2d_bn(b3, 96, 3, name=f"{name}_3x3dbl_1")
    b3 = conv2d_bn(b3, 96, 3, name=f"{name}_3x3dbl_2")
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv2d_bn(bp, pool_proj, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=name)([b1, b5, b3, bp])


def reduction_a(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """35x35 -> 17x17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max-pool/2."""
    b3 = conv2d_bn(x, 384, 3, strides=2, padding="valid", name=f"{name}_3x3")
    bd = conv2d_bn(x, 64, 1, name=f"{name}_3x3dbl_reduce")
    bd = conv2d_bn(bd, 96, 3, name=f"{name}_3x3dbl_1")
    bd = conv2d_bn(bd, 96, 3, strides=2, padding="valid", name=f"{name}_3x3dbl_2")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return layers.Concatenate(name=name)([b3, bd, bp])


def inception_b(x: keras.KerasTensor, c7: int, *, name: str) -> keras.KerasTensor:
    """17x17 module with 7x7 convs factorised into 1x7 and 7x1."""
    b1 = conv2d_bn(x, 192, 1, name=f"{name}_1x1")
    b7 = conv2d_bn(x, c7, 1, name=f"{name}_7x7_reduce")
    b7 = conv2d_bn(b7, c7, (1, 7), name=f"{name}_7x7_1")
    b7 = conv2d_bn(b7, 192, (7, 1), name=f"{name}_7x7_2")
    bd = conv2d_bn(x, c7, 1, name=f"{name}_7x7dbl_reduce")
    bd = conv2d_bn(bd, c7, (7, 1), name=f"{name}_7x7dbl_1")
    bd = conv2d_bn(bd, c7, (1, 7), name=f"{name}_7x7dbl_2")
    bd = conv2d_bn(bd, c7, (7, 1), name=f"{name}_7x7dbl_3")
    bd = conv2d_bn(bd, 192, (1, 7), name=f"{name}_7x7dbl_4")
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv2d_bn(bp, 192, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=name)([b1, b7, bd, bp])


def reduction_b(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """17x17 -> 8x8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool/2."""
    b3 = conv2d_bn(x, 192, 1, name=f"{name}_3x3_reduce")
    b3 = conv2d_bn(b3, 320, 3, strides=2, padding="valid", name=f"{name}_3x3")
    b7 = conv2d_bn(x, 192, 1, name=f"{name}_7x7x3_reduce")
    b7 = conv2d_bn(b7, 192, (1, 7), name=f"{name}_7x7x3_1")
    b7 = conv2d_bn(b7, 192, (7, 1), name=f"{name}_7x7x3_2")
    b7 = conv2d_bn(b7, 192, 3, strides=2, padding="valid", name=f"{name}_7x7x3_3")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return layers.Concatenate(name=name)([b3, b7, bp])


def inception_c(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """8x8 module with expanded filter banks (1x3 and 3x1 side by side)."""
    b1 = conv2d_bn(x, 320, 1, name=f"{name}_1x1")
    b3 = conv2d_bn(x, 384, 1, name=f"{name}_3x3_reduce")
    b3 = layers.Concatenate(name=f"{name}_3x3")(
        [
            conv2d_bn(b3, 384, (1, 3), name=f"{name}_3x3_1x3"),
            conv2d_bn(b3, 384, (3, 1), name=f"{name}_3x3_3x1"),
        ]
    )
    bd = conv2d_bn(x, 448, 1, name=f"{name}_3x3dbl_reduce")
    bd = conv2d_bn(bd, 384, 3, name=f"{name}_3x3dbl_1")
    bd = layers.Concatenate(name=f"{name}_3x3dbl")(
        [
            conv2d_bn(bd, 384, (1, 3), name=f"{name}_3x3dbl_1x3"),
            conv2d_bn(bd, 384, (3, 1), name=f"{name}_3x3dbl_3x1"),
        ]
    )
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv2d_bn(bp, 192, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=name)([b1, b3, bd, bp])


@register(
    ModelSpec(
        name="inception_v3",
        family="inception",
        paper="Szegedy et al.: Rethinking the Inception Architecture for Computer Vision "
        "(CVPR 2016)",
        default_input_shape=(299, 299, 3),
        min_input_size=V3_MIN_SIZE,
        notes="keras.applications.InceptionV3 layer for layer (no auxiliary classifier); "
        "smallest input 75x75.",
    )
)
def inception_v3(
    input_shape: tuple[int, int, int], num_classes: int, classifier_activation: str | None = "softmax"
) -> keras.Model:
    check_min_size(
        "inception_v3", input_shape, V3_MIN_SIZE, 299, why="its stem and reductions use 'valid' padding"
    )
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv2d_bn(inputs, 32, 3, strides=2, padding="valid", name="conv1a_3x3")
    x = conv2d_bn(x, 32, 3, padding="valid", name="conv2a_3x3")
    x = conv2d_bn(x, 64, 3, name="conv2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = conv2d_bn(x, 80, 1, padding="valid", name="conv3b_1x1")
    x = conv2d_bn(x, 192, 3, padding="valid", name="conv4a_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    # 35x35 at 299x299 input
    x = inception_a(x, 32, name="mixed0")
    x = inception_a(x, 64, name="mixed1")
    x = inception_a(x, 64, name="mixed2")
    x = reduction_a(x, name="mixed3")
    # 17x17
    x = inception_b(x, 128, name="mixed4")
    x = inception_b(x, 160, name="mixed5")
    x = inception_b(x, 160, name="mixed6")
    x = inception_b(x, 192, name="mixed7")
    x = reduction_b(x, name="mixed8")
    # 8x8
    x = inception_c(x, name="mixed9")
    x = inception_c(x, name="mixed10")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="inception_v3")
