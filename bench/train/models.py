"""Models for training recipes: zoo architectures by name, plus one small CNN for fast CPU runs.

The zoo holds the seed's classic architectures, all far too heavy to reach 99.4% on MNIST in
ten minutes on two CPU cores. `small_cnn` is the usual small VGG-style net with batch norm
(two 3x3 convs per stage, max-pool, global average pooling), 141k parameters at the default
widths; wider for Fashion-MNIST and the CIFAR-10 CPU recipe.
Its batch norm uses momentum 0.9 (PyTorch's 0.1): with Keras' 0.99 the moving statistics
still remember their initial values after the few hundred steps of a short run.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers

import zoo


def small_cnn(input_shape: tuple[int, int, int], num_classes: int,
              classifier_activation: str | None = "softmax", *,
              widths: tuple[int, int, int] = (32, 64, 128)) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for stage, filters in enumerate(widths, start=1):
        for i in range(1, (2 if stage < len(widths) else 1) + 1):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"stage{stage}_conv{i}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"stage{stage}_bn{i}")(x)
            x = layers.ReLU(name=f"stage{stage}_relu{i}")(x)
        if stage < len(widths):
            x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def airbench_net(input_shape: tuple[int, int, int], num_classes: int,
                 classifier_activation: str | None = "softmax", *,
                 widths: tuple[int, int, int] = (64, 256, 256), stem_filters: int = 24) -> keras.Model:
    """The network of Keller Jordan's airbench94 (2024; after Page's ResNet-9 and hlb-cifar10):
    a 2x2 stem conv, then three groups of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU,
    global max-pool and a linear classifier; 2.0M parameters, 0.12 GMACs at 32x32.

    airbench freezes its stem to a whitening transform computed from the data; here the stem is
    an ordinary trainable conv so the model needs nothing but its input shape. BN momentum 0.6
    (airbench's; PyTorch 0.4) lets the moving statistics follow the fast one-cycle schedule.
    """
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


LOCAL_MODELS = {"small_cnn": small_cnn, "airbench_net": airbench_net}


def model_names() -> list[str]:
    return sorted(set(zoo.names()) | set(LOCAL_MODELS))


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int,
                **options: Any) -> keras.Model:
    """`name` from the zoo, or one of the recipe-local models above."""
    if name in LOCAL_MODELS:
        return LOCAL_MODELS[name](tuple(input_shape), num_classes, "softmax", **options)
    if name not in zoo.names():
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    return zoo.build(name, input_shape=tuple(input_shape), num_classes=num_classes,
                     classifier_activation="softmax", **options)
