"""GoogLeNet / Inception v1 (Szegedy et al., 2014): the seed's Inception block and stages B1-B5.

``aux_outputs=True`` adds the paper's two auxiliary classifiers (after inception_4a and
inception_4d) for training; the default model has the main output only. Both share layer
names, and ``main_output_model`` cuts the training model down to the inference model.
"""
from __future__ import annotations

import keras
from keras import layers

from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

MIN_SIZE = 32  # five stride-2 stages: below 32 the last maps are made of padding


def inception_block(
    x: keras.KerasTensor,
    c1: int,
    c2: tuple[int, int],
    c3: tuple[int, int],
    c4: int,
    *,
    name: str,
) -> keras.KerasTensor:
    """Four parallel paths concatenated on channels (the seed's Inception layer):
    1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1, all ReLU and 'same'."""

    def conv(t: keras.KerasTensor, filters: int, size: int, suffix: str) -> keras.KerasTensor:
        return layers.Conv2D(
            filters, size, padding="same", activation="relu", name=f"{name}_{suffix}"
        )(t)

    p1 = conv(x, c1, 1, "1x1")
    p2 = conv(conv(x, c2[0], 1, "3x3_reduce"), c2[1], 3, "3x3")
    p3 = conv(conv(x, c3[0], 1, "5x5_reduce"), c3[1], 5, "5x5")
    p4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    p4 = conv(p4, c4, 1, "pool_proj")
    return layers.Concatenate(axis=-1, name=name)([p1, p2, p3, p4])


def aux_classifier(
    x: keras.KerasTensor, num_classes: int, activation: str | None, *, name: str
) -> keras.KerasTensor:
    """avg-pool 5/3 -> 1x1 conv 128 -> FC 1024 -> dropout 0.7 -> classes.

    The paper's pool is 'valid' (14x14 -> 4x4 at 224x224); maps smaller than the 5x5
    window (inputs under ~80px) use 'same' as the seed does, so small images still work."""
    padding = "valid" if min(x.shape[1:3]) >= 5 else "same"
    x = layers.AveragePooling2D(5, strides=3, padding=padding, name=f"{name}_avg_pool")(x)
    x = layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, num_classes, activation, name=f"{name}_predictions")


@register(
    ModelSpec(
        name="googlenet",
        family="inception",
        paper="Szegedy et al.: Going Deeper with Convolutions (CVPR 2015)",
        default_input_shape=(224, 224, 3),
        min_input_size=MIN_SIZE,
        notes="Inception v1 as the seed (B1-B5, no LRN) plus the paper's dropout 0.4 before the "
        "classifier. aux_outputs=True: outputs [predictions, aux1_predictions, "
        "aux2_predictions] (the paper weights the auxiliary losses 0.3).",
        options={"aux_outputs": "True: training model with the two auxiliary classifiers"},
    )
)
def googlenet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    classifier_activation: str | None = "softmax",
    *,
    aux_outputs: bool = False,
) -> keras.Model:
    if aux_outputs not in (True, False):
        raise ValueError(f"googlenet: aux_outputs must be True or False; got {aux_outputs!r}")
    check_min_size("googlenet", input_shape, MIN_SIZE, 224, why="the network downsamples by 32")
    inputs = keras.Input(shape=input_shape, name="image")
    # B1
    x = layers.Conv2D(64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7")(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    # B2
    x = layers.Conv2D(64, 1, padding="same", activation="relu", name="conv2_3x3_reduce")(x)
    x = layers.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    # B3
    x = inception_block(x, 64, (96, 128), (16, 32), 32, name="inception_3a")
    x = inception_block(x, 128, (128, 192), (32, 96), 64, name="inception_3b")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    # B4
    x = inception_block(x, 192, (96, 208), (16, 48), 64, name="inception_4a")
    aux1 = x
    x = inception_block(x, 160, (112, 224), (24, 64), 64, name="inception_4b")
    x = inception_block(x, 128, (128, 256), (24, 64), 64, name="inception_4c")
    x = inception_block(x, 112, (144, 288), (32, 64), 64, name="inception_4d")
    aux2 = x
    x = inception_block(x, 256, (160, 320), (32, 128), 128, name="inception_4e")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool4")(x)
    # B5
    x = inception_block(x, 256, (160, 320), (32, 128), 128, name="inception_5a")
    x = inception_block(x, 384, (192, 384), (48, 128), 128, name="inception_5b")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    main = classifier(x, num_classes, classifier_activation)
    if not aux_outputs:
        return keras.Model(inputs, main, name="googlenet")
    outputs = [
        main,
        aux_classifier(aux1, num_classes, classifier_activation, name="aux1"),
        aux_classifier(aux2, num_classes, classifier_activation, name="aux2"),
    ]
    return keras.Model(inputs, outputs, name="googlenet_train")


def main_output_model(model: keras.Model) -> keras.Model:
    """The inference model of a (trained) 3-output GoogLeNet: same layers and weights, main output only."""
    return keras.Model(model.inputs, model.get_layer("predictions").output, name="googlenet")
