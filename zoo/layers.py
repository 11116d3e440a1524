"""Small pieces shared by the families: the input-size check and conv + BN."""
from __future__ import annotations

import keras
from keras import layers


def check_min_size(
    name: str,
    input_shape: tuple[int, int, int],
    min_size: int,
    default_size: int,
    why: str = "",
) -> None:
    """Raises a ValueError that says the smallest size and how to resize."""
    height, width, _ = input_shape
    if min(height, width) >= min_size:
        return
    reason = f" ({why})" if why else ""
    raise ValueError(
        f"{name}: input {height}x{width} is too small; the smallest input is "
        f"{min_size}x{min_size}{reason}. Resize the images in the data pipeline, e.g. "
        f"ds.pipeline(split, batch_size, image_size=({default_size}, {default_size})) or with "
        f'resize_method="pad" to keep the aspect ratio, and build with '
        f"input_shape=({default_size}, {default_size}, {input_shape[2]})."
    )


def conv2d_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int | tuple[int, int],
    strides: int = 1,
    padding: str = "same",
    *,
    name: str,
) -> keras.KerasTensor:
    """Conv (no bias: BN's offset replaces it) -> BN (no scale: ReLU follows) -> ReLU.

    The Inception v3 convention of keras.applications, so parameter counts match it.
    """
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(axis=-1, scale=False, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def classifier(
    x: keras.KerasTensor, num_classes: int, activation: str | None, name: str = "predictions"
) -> keras.KerasTensor:
    # Softmax in float32 even under mixed precision, so probabilities sum to 1.
    return layers.Dense(num_classes, activation=activation, dtype="float32", name=name)(x)
