"""AlexNet as the seed tutorial lists it (Krizhevsky et al., 2012), single-tower, no LRN."""
from __future__ import annotations

import keras
from keras import layers

from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

# 11x11/4 valid conv, then three 3x3/2 valid pools: 67 is the smallest side that
# leaves a 1x1 map after the last pool ((67 - 11) / 4 + 1 = 15 -> 7 -> 3 -> 1).
MIN_SIZE = 67


@register(
    ModelSpec(
        name="alexnet",
        family="alexnet",
        paper="Krizhevsky, Sutskever, Hinton: ImageNet Classification with Deep "
        "Convolutional Neural Networks (NeurIPS 2012)",
        default_input_shape=(227, 227, 3),
        min_input_size=MIN_SIZE,
        notes="The seed's layer list: one tower (96-256-384-384-256 filters), no LRN, "
        "Flatten + 4096-4096 with dropout 0.5. The Flatten size, hence the first dense "
        "layer, depends on the input size (6x6x256 at 227x227).",
    )
)
def alexnet(
    input_shape: tuple[int, int, int], num_classes: int, classifier_activation: str | None = "softmax"
) -> keras.Model:
    check_min_size("alexnet", input_shape, MIN_SIZE, 227)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dropout(0.5, name="drop6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    x = layers.Dropout(0.5, name="drop7")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="alexnet")
