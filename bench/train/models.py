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


LOCAL_MODELS = {"small_cnn": small_cnn}


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
