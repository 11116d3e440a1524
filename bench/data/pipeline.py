"""tf.data pipelines over in-memory uint8 arrays, preprocessed on the fly.

Indices are shuffled and batched first, then each batch is gathered from the
arrays and converted (scale to [0, 1], channels, resize or pad): only one
batch is ever resized at a time, never a copy of the dataset.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

RESIZE_METHODS = ("resize", "pad")
Augment = Callable  # images (float32 NHWC in [0, 1]) -> images, e.g. a keras augmentation layer


def image_size_hw(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """`227` or `(227, 227)` -> (227, 227); None stays None."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size), int(image_size))
    else:
        size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def check_options(resize_method: str, channels: int | None) -> None:
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got {resize_method!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or None (as stored), got {channels!r}")


def preprocess(images, image_size=None, resize_method: str = "resize", channels: int | None = None):
    """uint8 or float [0, 255] NHWC batch -> float32 in [0, 1], converted channels, resized."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32) / 255.0
    have = images.shape[-1]
    if channels == 3 and have == 1:
        images = tf.image.grayscale_to_rgb(images)
    elif channels == 1 and have == 3:
        images = tf.image.rgb_to_grayscale(images)
    size = image_size_hw(image_size)
    if size is not None:
        if resize_method == "pad":
            # the seed's AlexNet input: MNIST letterboxed to 227x227
            images = tf.image.resize_with_pad(images, size[0], size[1])
        else:
            images = tf.image.resize(images, size)
        images = tf.clip_by_value(images, 0.0, 1.0)  # interpolation may overshoot slightly
    return images


def from_arrays(x: np.ndarray, y: np.ndarray, batch_size: int, image_size=None, resize_method: str = "resize",
                channels: int | None = None, shuffle: bool = False, seed: int | None = None,
                augment: Augment | None = None, drop_remainder: bool = False, limit: int | None = None):
    """A prefetching `tf.data.Dataset` of (float32 images in [0, 1], int64 labels) batches."""
    import tensorflow as tf

    check_options(resize_method, channels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be >= 1 (the first N examples), got {limit}")
    n = len(x) if limit is None else min(int(limit), len(x))
    # x, y may be numpy arrays or tensors already converted (and cached) by the caller;
    # `limit` only narrows the indices, so nothing is sliced or copied here
    images = tf.convert_to_tensor(x)
    labels = tf.cast(tf.convert_to_tensor(y), tf.int64)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def load(idx):
        batch = preprocess(tf.gather(images, idx), image_size, resize_method, channels)
        if augment is not None:
            batch = augment(batch)
        return batch, tf.gather(labels, idx)

    # a seeded pipeline must also be deterministic through the parallel map
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
