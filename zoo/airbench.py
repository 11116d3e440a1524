"""The network of Keller Jordan's airbench94 (2024; after Page's ResNet-9 and hlb-cifar10).

`airbench_net`: the network alone with an ordinary trainable stem (the earlier CPU recipes).
`airbench94`: the network as airbench94 initialises it (whitening stem from training patches,
dirac init, its BatchNorm settings); `with_tta` wraps a trained one with test-time augmentation
as registered layers, so the exported model.keras computes the recipe's accuracy.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

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


# ------------------------------------------------------------------------------------------------
# airbench94 as Keller Jordan trains it (legacy/airbench94.py), ported to Keras: input standardised
# by the training set's statistics, a frozen 2x2 whitening stem computed from training patches,
# dirac (identity) init, BatchNorm with epsilon 1e-12 and no scale, logits out. Test-time
# augmentation is part of the exported model (`with_tta`): two registered layers around the net.
# ------------------------------------------------------------------------------------------------
WHITEN_PATCH = 2  # airbench's stem: 2x2 patches, 2 * 4 * C filters (the eigenvectors, + and -)


def torch_default_init() -> keras.initializers.Initializer:
    """PyTorch's conv/linear default (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


@keras.saving.register_keras_serializable(package="zoo.airbench")
class WhiteningConv2D(layers.Conv2D):
    """airbench's stem: a 2x2 conv whose kernel is frozen (set once from the training images by
    `initialize_from_data`) and whose bias trains. The kernel is made non-trainable when the layer
    is built, so it stays frozen in a model loaded back from a `.keras` file (a flag set on the
    variable afterwards would not be saved)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel.trainable = False


@keras.saving.register_keras_serializable(package="zoo.airbench")
class TTAViews(layers.Layer):
    """(B, H, W, C) -> (V*B, H, W, C): the views of airbench's test-time augmentation stacked on the
    batch axis. level 0: [x]; level 1: [x, flip(x)]; level 2 adds x shifted one pixel up-left and
    down-right (reflect padding), each with its flip. flip=False (digits): no mirrored views."""

    def __init__(self, level: int = 2, flip: bool = True, **kwargs):
        super().__init__(**kwargs)
        if int(level) not in (0, 1, 2):
            raise ValueError(f"TTA level must be 0 (none), 1 (flip) or 2 (flip + 1-px translations), got {level}")
        self.level, self.flip = int(level), bool(flip)

    def view_weights(self) -> list[float]:
        """airbench: 1/2 for the untranslated image, 1/4 for each translation, each split evenly
        over the image and its mirror."""
        base = [1.0] if self.level < 2 else [0.5, 0.25, 0.25]
        mirrors = 2 if (self.flip and self.level >= 1) else 1
        return [b / mirrors for b in base for _ in range(mirrors)]

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        base = [x]
        if self.level >= 2:
            p = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
            base += [p[:, 0:h, 0:w, :], p[:, 2:h + 2, 2:w + 2, :]]
        views = []
        for v in base:
            views.append(v)
            if self.flip and self.level >= 1:
                views.append(tf.reverse(v, axis=[2]))
        return views[0] if len(views) == 1 else tf.concat(views, axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "level": self.level, "flip": self.flip}


@keras.saving.register_keras_serializable(package="zoo.airbench")
class TTAMerge(layers.Layer):
    """(V*B, K) -> (B, K): the weighted sum over the V views stacked by TTAViews."""

    def __init__(self, view_weights=(1.0,), **kwargs):
        super().__init__(**kwargs)
        self.view_weights = [float(w) for w in view_weights]

    def call(self, y):
        v = len(self.view_weights)
        if v == 1:
            return y * self.view_weights[0]
        y = tf.reshape(y, [v, -1, y.shape[-1]])
        w = tf.constant(self.view_weights, dtype=y.dtype)[:, None, None]
        return tf.reduce_sum(y * w, axis=0)

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "view_weights": self.view_weights}


def with_tta(net: keras.Model, level: int = 2, flip: bool = True, logits: bool = True) -> keras.Model:
    """The model to ship: image -> TTA views -> `net` (one pass over all views) -> weighted mean ->
    softmax. `logits`: `net` outputs logits (airbench averages logits); else its probabilities are
    averaged and no softmax is added. Level 0 with logits only adds the softmax."""
    # the trained net as an uncompiled graph of the same layers (same weights): a compiled one would
    # carry its optimizer into the shipped file, which then loads only where the trainer's code does
    outputs = net.outputs[0] if len(net.outputs) == 1 else net.outputs
    net = keras.Model(net.inputs[0], outputs, name=net.name)
    views = TTAViews(level, flip, name="tta_views", dtype="float32")
    inputs = keras.Input(net.inputs[0].shape[1:], name="image")
    y = TTAMerge(views.view_weights(), name="tta_merge", dtype="float32")(net(views(inputs)))
    if logits:
        y = layers.Activation("softmax", dtype="float32", name="probabilities")(y)
    return keras.Model(inputs, y, name=f"{net.name}_tta{level}")


def dirac_kernel(kernel: np.ndarray) -> np.ndarray:
    """torch.nn.init.dirac_ on the first c_in output filters of a (k, k, c_in, c_out) kernel: those
    filters pass their input channel through unchanged; the others keep their random init."""
    k = np.array(kernel, dtype=np.float32)
    c_in = k.shape[2]
    n = min(c_in, k.shape[3])
    k[:, :, :, :n] = 0.0
    k[k.shape[0] // 2, k.shape[1] // 2, np.arange(n), np.arange(n)] = 1.0
    return k


def whitening_kernel(images: np.ndarray, eps: float = 5e-4, patch: int = WHITEN_PATCH) -> tuple[np.ndarray, np.ndarray]:
    """airbench's whitening: eigenvectors of the (uncentred) covariance of every `patch` x `patch`
    patch of `images` (N, H, W, C float, already standardised), each scaled by 1/sqrt(eigenvalue +
    eps), strongest first, as + and - pairs. Returns the (patch, patch, C, 2 * patch^2 * C) conv
    kernel and the eigenvalues (descending). Applied to the same patches, the + half gives outputs
    whose covariance is diag(eigenvalue / (eigenvalue + eps)): the identity up to eps."""
    x = np.asarray(images, dtype=np.float32)
    n, h, w, c = x.shape
    cols = [x[:, i:h - patch + 1 + i, j:w - patch + 1 + j, :] for i in range(patch) for j in range(patch)]
    patches = np.stack(cols, axis=3).reshape(-1, patch * patch * c).astype(np.float64)  # (i, j, c) order
    cov = patches.T @ patches / len(patches)
    evals, evecs = np.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    filters = evecs / np.sqrt(np.maximum(evals, 0.0) + eps)
    kernel = np.concatenate([filters, -filters], axis=1).reshape(patch, patch, c, -1)
    return kernel.astype(np.float32), evals


def initialize_from_data(model: keras.Model, images: np.ndarray, whiten_eps: float = 5e-4) -> dict:
    """The data-dependent part of airbench94's init, from training images (float32 in [0, 1]):
    the `normalize` layer gets their per-channel mean and std, the `WhiteningConv2D` stem the
    whitening kernel of their standardised 2x2 patches. Layers the model does not have are skipped.
    Returns what was set (for the training record)."""
    x = np.asarray(images, dtype=np.float32)
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)) + 1e-8
    done: dict = {"images": int(len(x))}
    names = {layer.name: layer for layer in model.layers}
    if "normalize" in names:
        names["normalize"].set_weights([(1.0 / std).reshape(1, 1, -1, 1).astype(np.float32),
                                        (-mean / std).astype(np.float32)])
        done.update(mean=[round(float(m), 5) for m in mean], std=[round(float(s), 5) for s in std])
    stem = names.get("stem")
    if isinstance(stem, WhiteningConv2D):
        kernel, evals = whitening_kernel((x - mean) / std, whiten_eps, stem.kernel_size[0])
        stem.kernel.assign(kernel)
        done["whitening_eigenvalues"] = [float(f"{e:.4g}") for e in evals]
    return done


@register(
    ModelSpec(
        name="airbench94",
        family="airbench",
        paper="Keller Jordan: 94% on CIFAR-10 in 3.29 seconds on a single GPU (2024), airbench94 as trained there",
        default_input_shape=(32, 32, 3),
        min_input_size=9,
        notes="airbench94 with its initialisation: inputs standardised by a frozen 1x1 layer "
        "(`normalize`, set from training images), a frozen 2x2 whitening stem of 8*C filters "
        "(`stem`, set from training patches by zoo.airbench.initialize_from_data), dirac init of "
        "every 3x3 conv, PyTorch-default init elsewhere, BatchNorm momentum 0.6 (PyTorch 0.4), "
        "epsilon 1e-12 and no scale. Build with classifier_activation=None for logits; "
        "zoo.airbench.with_tta wraps it with test-time augmentation for export.",
        options={"widths": "filters of the three groups, default (64, 256, 256)",
                 "whiten": "True: frozen whitening stem; False: an ordinary trainable 2x2 stem",
                 "dirac": "identity init of the first C_in filters of every 3x3 conv (default True)",
                 "bn_momentum": "Keras BatchNorm momentum, default 0.6",
                 "bn_epsilon": "default 1e-12", "bn_scale": "trainable BN scale, default False"},
    )
)
def airbench94(input_shape: tuple[int, int, int], num_classes: int,
               classifier_activation: str | None = "softmax", *,
               widths: tuple[int, int, int] = (64, 256, 256), whiten: bool = True, dirac: bool = True,
               bn_momentum: float = 0.6, bn_epsilon: float = 1e-12, bn_scale: bool = False) -> keras.Model:
    check_min_size("airbench94", input_shape, 9, 32, "a 2x2 stem and three 2x2 max-pools")
    c = input_shape[2]
    inputs = keras.Input(shape=input_shape, name="image")
    # a frozen 1x1 depthwise conv rather than layers.Normalization: its numbers are ordinary
    # variables (Normalization keeps captured constants, which tf2onnx turns into extra graph inputs)
    x = layers.DepthwiseConv2D(1, use_bias=True, trainable=False, dtype="float32", name="normalize",
                               depthwise_initializer="ones", bias_initializer="zeros")(inputs)
    stem = WhiteningConv2D if whiten else layers.Conv2D
    x = stem(2 * c * WHITEN_PATCH ** 2, WHITEN_PATCH, padding="valid", use_bias=True, name="stem",
             kernel_initializer=torch_default_init(), bias_initializer="zeros")(x)
    x = layers.Activation("gelu", name="stem_gelu")(x)
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, scale=bool(bn_scale), center=True)
    for g, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"g{g}_conv1",
                          kernel_initializer=torch_default_init())(x)
        x = layers.MaxPooling2D(2, name=f"g{g}_pool")(x)
        x = layers.BatchNormalization(name=f"g{g}_bn1", **bn)(x)
        x = layers.Activation("gelu", name=f"g{g}_gelu1")(x)
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"g{g}_conv2",
                          kernel_initializer=torch_default_init())(x)
        x = layers.BatchNormalization(name=f"g{g}_bn2", **bn)(x)
        x = layers.Activation("gelu", name=f"g{g}_gelu2")(x)
    x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_initializer=torch_default_init(), name="fc")(x)
    x = layers.Rescaling(1.0 / 9.0, name="logit_scale")(x)
    outputs = layers.Activation(classifier_activation or "linear", dtype="float32", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="airbench94")
    if dirac:
        for layer in model.layers:
            if isinstance(layer, layers.Conv2D) and layer.name.startswith("g") and "_conv" in layer.name:
                layer.kernel.assign(dirac_kernel(ops.convert_to_numpy(layer.kernel)))
    return model
