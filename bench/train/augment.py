"""Data augmentation as Keras 3 preprocessing layers, configured with ImageDataGenerator's names.

The seed tutorial augments with `tf.image.random_*` calls and with the deprecated
`ImageDataGenerator`. Both are expressed here as one `keras.Sequential` of preprocessing
layers that runs inside the `tf.data` pipeline on float32 batches in [0, 1]:

    aug = build_augmentation({"rotation_range": 10, "width_shift_range": 0.1,
                              "horizontal_flip": True}, seed=0)
    ds = ds.map(lambda x, y: (aug(x, training=True), y))

Keys (ImageDataGenerator's own names first, then the seed's tf.image operations):

| key                      | meaning (as in the seed)                          | layer                  |
|--------------------------|---------------------------------------------------|------------------------|
| rescale                  | multiply pixel values (e.g. 1/255 for uint8 input) | Rescaling              |
| rotation_range           | degrees, uniform in [-r, r] (or [lower, upper])    | RandomRotation         |
| width_shift_range        | fraction of width, U(-w, w) (or [lower, upper])    | RandomTranslation      |
| height_shift_range       | fraction of height, U(-h, h) (or [lower, upper])   | RandomTranslation      |
| shear_range              | shear angle in degrees, along x, in [-s, s]        | RandomShear            |
| zoom_range               | z or [lower, upper]; scale in [1-z, 1+z], <1 = in  | RandomZoom             |
| horizontal_flip          | random left-right flip                             | RandomFlip             |
| vertical_flip            | random up-down flip                                | RandomFlip             |
| brightness_range         | [lower, upper] multiplicative factor               | RandomBrightnessScale  |
| fill_mode, cval          | how pixels moved in from outside are filled        | (options of the above) |
| random_flip_left_right   | tf.image.random_flip_left_right                    | RandomFlip             |
| random_flip_up_down      | tf.image.random_flip_up_down                       | RandomFlip             |
| random_crop              | [h, w]: tf.image.random_crop to that size          | RandomCropPerImage     |
| crop_padding             | pad p pixels (reflect), then crop back (CIFAR)     | RandomCropPerImage     |
| random_brightness        | max_delta: add uniform [-d, d]                     | RandomBrightness       |
| random_hue               | max_delta in [0, 0.5]: rotate hue by [-d, d] turns | RandomHue              |
| alternating_flip         | airbench: a random half flipped, then all flipped  | (the training pipeline |
|                          | on odd epochs (replaces horizontal_flip)           |  of bench.train.splits)|

`alternating_flip` needs the epoch index, which a layer does not see: `bench.train.splits` builds
an epoch-indexed pipeline for it, and `build_augmentation` leaves it out.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import keras
import tensorflow as tf

from bench.plumbing.precision import dtype_policy

VALUE_RANGE = (0.0, 1.0)  # bench.data pipelines yield float32 images in [0, 1]

KEYS = (
    "rescale", "rotation_range", "width_shift_range", "height_shift_range", "shear_range",
    "zoom_range", "horizontal_flip", "vertical_flip", "brightness_range", "fill_mode", "cval",
    "random_flip_left_right", "random_flip_up_down", "random_crop", "crop_padding",
    "random_brightness", "random_hue", "alternating_flip",
)
FILL_MODES = ("nearest", "constant", "reflect", "wrap")


@keras.saving.register_keras_serializable(package="bench.train")
class RandomBrightnessScale(keras.layers.Layer):
    """ImageDataGenerator's `brightness_range=[lo, hi]`: multiply each image by U(lo, hi), clip.

    Keras' RandomBrightness adds a delta (that is tf.image.random_brightness); the generator
    scales instead, so this small layer keeps the seed's meaning.
    """

    def __init__(self, lower: float, upper: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= lower <= upper:
            raise ValueError(f"brightness_range must be [lower, upper] with 0 <= lower <= upper, "
                             f"got [{lower}, {upper}]; e.g. [0.5, 1.5]")
        self.lower, self.upper, self.seed = float(lower), float(upper), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        batched = len(images.shape) == 4
        x = images if batched else images[None]
        factor = keras.random.uniform((tf.shape(x)[0], 1, 1, 1), self.lower, self.upper,
                                      seed=self.seed_generator)
        x = tf.clip_by_value(x * factor, *VALUE_RANGE)
        return x if batched else x[0]

    def get_config(self):
        return {**super().get_config(), "lower": self.lower, "upper": self.upper, "seed": self.seed}


@keras.saving.register_keras_serializable(package="bench.train")
class RandomCropPerImage(keras.layers.Layer):
    """tf.image.random_crop for batches: an independent crop window for every image.

    (keras.layers.RandomCrop draws one window per batch.) With `padding` the image is first
    reflect-padded, the usual CIFAR "pad 4, crop 32" recipe. Not applied at inference, where
    a crop smaller than the input takes the centre. Without a size, the crop keeps the
    input's own size (pad-and-crop).
    """

    def __init__(self, height: int | None = None, width: int | None = None, padding: int = 0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.padding, self.seed = height, width, int(padding), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _size(self, input_shape) -> tuple[int, int]:
        return (self.height or int(input_shape[-3]), self.width or int(input_shape[-2]))

    def call(self, images, training=True):
        batched = len(images.shape) == 4
        x = images if batched else images[None]
        out_h, out_w = self._size(images.shape)
        if self.padding:
            p = self.padding
            x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        n = tf.shape(x)[0]
        if training:
            u = keras.random.uniform((n, 2), 0.0, 1.0, seed=self.seed_generator)
            top = tf.floor(u[:, 0] * tf.cast(h - out_h + 1, tf.float32))
            left = tf.floor(u[:, 1] * tf.cast(w - out_w + 1, tf.float32))
        else:
            top = tf.fill([n], tf.cast((h - out_h) // 2, tf.float32))
            left = tf.fill([n], tf.cast((w - out_w) // 2, tf.float32))
        # crop_and_resize at exact pixel centres copies pixels (no interpolation) per image
        hf, wf = tf.cast(h - 1, tf.float32), tf.cast(w - 1, tf.float32)
        boxes = tf.stack([top / hf, left / wf, (top + out_h - 1) / hf,
                          (left + out_w - 1) / wf], axis=1)
        out = tf.image.crop_and_resize(x, boxes, tf.range(n), (out_h, out_w), method="nearest")
        out = tf.cast(out, images.dtype)
        return out if batched else out[0]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], *self._size(input_shape), input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "padding": self.padding, "seed": self.seed}


def _pair(value: Any, key: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ValueError(f"augmentation {key!r} must be a number or [lower, upper], got {value!r}")


def _symmetric(value: Any, key: str) -> tuple[float, float]:
    """ImageDataGenerator's `r` means U(-r, r); an explicit [lower, upper] is kept as given."""
    if isinstance(value, (int, float)):
        return -abs(float(value)), abs(float(value))
    return _pair(value, key)


def _check(config: dict[str, Any]) -> None:
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {unknown}; valid options: {', '.join(KEYS)}")
    fill = config.get("fill_mode", "nearest")
    if fill not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {fill!r}")
    hue = config.get("random_hue")
    if hue is not None and not 0 <= float(hue) <= 0.5:
        raise ValueError(f"random_hue is tf.image's max_delta and must be in [0, 0.5], got {hue}")
    for key in ("shear_range", "random_brightness", "crop_padding"):
        if key in config and float(config[key]) < 0:
            raise ValueError(f"{key} must be >= 0, got {config[key]}")


def build_augmentation(config: dict[str, Any] | None, seed: int | None = None,
                       name: str = "augmentation") -> keras.Sequential | None:
    """See `_build`; the layers always compute in float32, whatever the global mixed-precision
    policy: they are input-pipeline work on float32 batches, not part of the model."""
    with dtype_policy("float32"):
        return _build(config, seed, name)


def _build(config: dict[str, Any] | None, seed: int | None, name: str) -> keras.Sequential | None:
    """A Sequential of preprocessing layers for `config` (see the module table); None if empty.

    Layers run in a fixed order: rescale, geometry (crop, rotation, shift, shear, zoom, flips),
    then colour (brightness, hue), so colour ops always see values in [0, 1].
    Each layer gets its own seed derived from `seed`, so runs with the same seed match.
    """
    config = {k: v for k, v in (config or {}).items() if v not in (None, False, 0, 0.0)}
    _check(config)
    config.pop("alternating_flip", None)  # done by the epoch-indexed pipeline (bench.train.splits)
    fill = dict(fill_mode=config.get("fill_mode", "nearest"), fill_value=float(config.get("cval", 0.0)))
    config.pop("fill_mode", None)
    config.pop("cval", None)
    seeds = itertools.count(0 if seed is None else seed * 1000)

    def next_seed():  # one seed per layer, so two layers never draw the same numbers
        return None if seed is None else next(seeds)

    out: list[keras.layers.Layer] = []
    if "rescale" in config:
        out.append(keras.layers.Rescaling(float(config["rescale"]), name="rescale"))
    if "random_crop" in config or "crop_padding" in config:
        h, w = (int(v) for v in _pair(config["random_crop"], "random_crop")) \
            if "random_crop" in config else (None, None)
        out.append(RandomCropPerImage(h, w, padding=int(config.get("crop_padding", 0)),
                                      seed=next_seed(), name="crop"))
    if "rotation_range" in config:
        lo, hi = _symmetric(config["rotation_range"], "rotation_range")
        out.append(keras.layers.RandomRotation((lo / 360.0, hi / 360.0), seed=next_seed(),
                                               name="rotation", **fill))
    if "width_shift_range" in config or "height_shift_range" in config:
        out.append(keras.layers.RandomTranslation(
            _symmetric(config.get("height_shift_range", 0.0), "height_shift_range"),
            _symmetric(config.get("width_shift_range", 0.0), "width_shift_range"),
            seed=next_seed(), name="shift", **fill))
    if "shear_range" in config:
        # ImageDataGenerator shears along x by an angle; Keras takes the shear factor tan(angle)
        factor = math.tan(math.radians(float(config["shear_range"])))
        out.append(keras.layers.RandomShear(x_factor=factor, y_factor=0.0, seed=next_seed(),
                                            name="shear", **fill))
    if "zoom_range" in config:
        lo, hi = _pair(config["zoom_range"], "zoom_range")
        if isinstance(config["zoom_range"], (int, float)):
            lo, hi = 1.0 - lo, 1.0 + hi
        if not 0 < lo <= hi:
            raise ValueError(f"zoom_range must give 0 < lower <= upper, got [{lo}, {hi}]")
        # the generator shows a window zx times the image; Keras' factor f shows (1 + f) times
        out.append(keras.layers.RandomZoom((lo - 1.0, hi - 1.0), seed=next_seed(), name="zoom", **fill))
    horizontal = config.get("horizontal_flip") or config.get("random_flip_left_right")
    vertical = config.get("vertical_flip") or config.get("random_flip_up_down")
    if horizontal or vertical:
        mode = "horizontal_and_vertical" if horizontal and vertical else (
            "horizontal" if horizontal else "vertical")
        out.append(keras.layers.RandomFlip(mode, seed=next_seed(), name="flip"))
    if "brightness_range" in config:
        lo, hi = _pair(config["brightness_range"], "brightness_range")
        out.append(RandomBrightnessScale(lo, hi, seed=next_seed(), name="brightness_range"))
    if "random_brightness" in config:
        out.append(keras.layers.RandomBrightness(float(config["random_brightness"]),
                                                 value_range=VALUE_RANGE, seed=next_seed(),
                                                 name="brightness"))
    if "random_hue" in config:
        # tf.image.random_hue(max_delta) shifts hue by U(-d, d); Keras' factor f shifts by <= f/2
        out.append(keras.layers.RandomHue(2.0 * float(config["random_hue"]),
                                          value_range=VALUE_RANGE, seed=next_seed(), name="hue"))
    if not out:
        return None
    return keras.Sequential(out, name=name)
