"""Small networks: fast recipes on two CPU cores, the harness' reference model, tf.distribute proofs.

The seed's classic architectures are far too heavy to reach 99.4% on MNIST in minutes on two CPU
cores; these are the networks the toolkit trains and times where a classic one would not fit.
"""
from __future__ import annotations

import keras
from keras import layers

from zoo.layers import check_min_size
from zoo.registry import ModelSpec, register


@register(
    ModelSpec(
        name="small_cnn",
        family="small",
        paper="a VGG-style CNN with batch norm (Simonyan & Zisserman 2015; Ioffe & Szegedy 2015)",
        default_input_shape=(28, 28, 1),
        min_input_size=8,
        notes="Two 3x3 conv + BN + ReLU per stage, max-pool between stages, global average pooling; "
        "141k parameters at the default widths (32, 64, 128). BN momentum 0.9 (PyTorch's 0.1): with "
        "Keras' 0.99 the moving statistics still remember their initial values after the few "
        "hundred steps of a short run.",
        options={"widths": "filters of the three stages, default (32, 64, 128)"},
    )
)
def small_cnn(input_shape: tuple[int, int, int], num_classes: int,
              classifier_activation: str | None = "softmax", *,
              widths: tuple[int, int, int] = (32, 64, 128)) -> keras.Model:
    check_min_size("small_cnn", input_shape, 2 ** (len(widths) - 1), 28)
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
    outputs = layers.Dense(num_classes, activation=classifier_activation, dtype="float32",
                           name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


@register(
    ModelSpec(
        name="reference_cnn",
        family="small",
        paper="the benchmark harness' reference model (this toolkit)",
        default_input_shape=(32, 32, 3),
        min_input_size=4,
        notes="Three conv layers (16-32-64) and global average pooling: a batch-1 forward pass of "
        "well under a millisecond on one CPU core at 32x32x3, so the harness-overhead check and the "
        "quick profile see the timing loop's own cost, not a model's.",
    )
)
def reference_cnn(input_shape: tuple[int, int, int], num_classes: int,
                  classifier_activation: str | None = "softmax") -> keras.Model:
    check_min_size("reference_cnn", input_shape, 4, 32)
    inputs = keras.Input(tuple(input_shape))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="reference_cnn")


def _tiny(kind: str, input_shape, num_classes, classifier_activation) -> keras.Model:
    x = inputs = keras.Input(tuple(input_shape))
    if kind == "cnn":
        x = layers.Conv2D(16, 3, activation="relu", name="conv1")(x)
        x = layers.MaxPooling2D(name="pool1")(x)
        x = layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
        x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"tiny_{kind}")


_TINY_NOTES = ("The tf.distribute proofs' network (bench.distribute.worker): small enough that 20 "
               "synchronous steps of 2 workers on one machine take seconds, so weights can be "
               "compared bit for bit across configurations.")


@register(ModelSpec(name="tiny_mlp", family="small", paper="a one-hidden-layer perceptron (128 units)",
                    default_input_shape=(28, 28, 1), min_input_size=1, notes=_TINY_NOTES))
def tiny_mlp(input_shape: tuple[int, int, int], num_classes: int,
             classifier_activation: str | None = "softmax") -> keras.Model:
    return _tiny("mlp", input_shape, num_classes, classifier_activation)


@register(ModelSpec(name="tiny_cnn", family="small", paper="a LeNet-style CNN: two conv + pool, one hidden layer",
                    default_input_shape=(28, 28, 1), min_input_size=10, notes=_TINY_NOTES))
def tiny_cnn(input_shape: tuple[int, int, int], num_classes: int,
             classifier_activation: str | None = "softmax") -> keras.Model:
    check_min_size("tiny_cnn", input_shape, 10, 28)
    return _tiny("cnn", input_shape, num_classes, classifier_activation)
