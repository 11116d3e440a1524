"""The network of Keller Jordan's airbench94 (2024; after Page's ResNet-9 and hlb-cifar10)."""
from __future__ import annotations

import keras
from keras import layers

from zoo.layers import check_min_size
from zoo.registry import ModelSpec, register


@register(
    ModelSpec(
        name="airbench_net",
        family="airbench",
        paper="Keller Jordan: 94% on CIFAR-10 in 3.29 seconds on a single GPU (2024), airbench94",
        default_input_shape=(32, 32, 3),
        min_input_size=9,
        notes="A 2x2 stem conv, then three groups of conv -> max-pool -> BN -> GELU -> conv -> BN -> "
        "GELU, global max-pool and a linear classifier scaled by 1/9; 2.0M parameters, 0.12 GMACs at "
        "32x32. airbench freezes its stem to a whitening transform computed from the data; here the "
        "stem is an ordinary trainable conv, so the model needs nothing but its input shape. BN "
        "momentum 0.6 (airbench's; PyTorch 0.4) lets the moving statistics follow a fast one-cycle "
        "schedule.",
        options={"widths": "filters of the three groups, default (64, 256, 256)",
                 "stem_filters": "filters of the 2x2 stem, default 24"},
    )
)
def airbench_net(input_shape: tuple[int, int, int], num_classes: int,
                 classifier_activation: str | None = "softmax", *,
                 widths: tuple[int, int, int] = (64, 256, 256), stem_filters: int = 24) -> keras.Model:
    check_min_size("airbench_net", input_shape, 9, 32, "a 2x2 stem and three 2x2 max-pools")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(stem_filters, 2, padding="valid", name="stem_conv")(inputs)
    x = layers.Activation("gelu", name="stem_gelu")(x)
    for group, filters in enumerate(widths, start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"group{group}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"group{group}_pool")(x)
        x = layers.BatchNormalization(momentum=0.6, name=f"group{group}_bn1")(x)
        x = layers.Activation("gelu", name=f"group{group}_gelu1")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"group{group}_conv2")(x)
        x = layers.BatchNormalization(momentum=0.6, name=f"group{group}_bn2")(x)
        x = layers.Activation("gelu", name=f"group{group}_gelu2")(x)
    x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
    # airbench's 1/9: max-pooled features are large, and unscaled logits saturate the softmax
    x = layers.Rescaling(1.0 / 9.0, name="logit_scale")(x)
    outputs = layers.Activation(classifier_activation or "linear", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="airbench_net")
