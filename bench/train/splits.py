"""The train / validation / test pipelines of a recipe, from a `bench.data` dataset.

The recipe may take a class subset (cat vs dog), the first N images per class, the first N
images overall, and holds a fixed fraction of the training images out for validation (the
best checkpoint is chosen on it, never on the test split). The held-out set is drawn with a
fixed seed, so every run of a recipe validates on the same images.

Batches come from `bench.data.pipeline.from_arrays` (uint8 in memory; scaling to [0, 1],
resize/pad and channel conversion on the fly per batch), with the recipe's augmentation as its
`augment` hook (training only); labels become one-hot here, for label smoothing.

A recipe with `alternating_flip` (airbench) trains on an epoch-indexed pipeline instead: one
`tf.data` stream of epoch after epoch (`Splits.train_from(first_epoch)`, trained with
`steps_per_epoch`, so Keras keeps one iterator), in which each batch knows its epoch: a fixed random
half of the images is flipped on even epochs and the other half on odd ones, so every image is seen
both ways in every two epochs. Shuffling is stateless per (seed, epoch), so a resumed run sees the
epochs it would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from bench.data.pipeline import from_arrays, preprocess
from bench.train.recipes import Recipe

SPLIT_SEED = 0  # the validation hold-out is the same for every run seed


@dataclass
class Splits:
    train: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset
    sizes: dict[str, int]
    class_names: list[str]
    input_shape: tuple[int, int, int]
    steps_per_epoch: int
    # epoch-indexed training stream (alternating flip): first epoch -> endless dataset; when set,
    # `train` is its stream from epoch 0
    train_from: Callable[[int], tf.data.Dataset] | None = None
    # the first N training images, float32 [0, 1] at the input size, unaugmented (data-dependent init)
    init_images: Callable[[int], np.ndarray] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def epoch_indexed(self) -> bool:
        return self.train_from is not None


def alternating_flip_pipeline(x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, augment,
                              targets) -> Callable[[int], tf.data.Dataset]:
    """airbench's training stream: epochs of n // batch steps (the last partial batch dropped), each
    a stateless shuffle of (seed, epoch); the recipe's other augmentation per batch, then the
    alternating flip. Returns first_epoch -> an endless dataset starting at that epoch."""
    n, bs = len(x), recipe.batch_size
    steps = n // bs
    images, labels = tf.convert_to_tensor(x), tf.cast(tf.convert_to_tensor(y), tf.int64)
    preflip = tf.random.stateless_uniform([n], [seed, 7]) < 0.5   # the half flipped on even epochs

    def load(epoch, idx):
        batch = preprocess(tf.gather(images, idx), recipe.image_size, recipe.resize_method, recipe.channels)
        if augment is not None:
            batch = augment(batch)
        flip = tf.math.logical_xor(tf.gather(preflip, idx), tf.equal(epoch % 2, 1))
        batch = tf.where(flip[:, None, None, None], tf.reverse(batch, axis=[2]), batch)
        return batch, tf.gather(labels, idx)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.constant(seed, tf.int64), 1000 + epoch]))
        idx = tf.reshape(order[: steps * bs], [steps, bs])
        return tf.data.Dataset.from_tensor_slices(idx).map(
            lambda b: load(epoch, b), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def train_from(first_epoch: int) -> tf.data.Dataset:
        ds = tf.data.Dataset.range(int(first_epoch), 1_000_000).flat_map(epoch_batches)
        return ds.map(targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)

    return train_from


def _select(x: np.ndarray, y: np.ndarray, recipe: Recipe, train: bool) -> tuple[np.ndarray, np.ndarray]:
    if recipe.train_classes is not None:
        keep = np.isin(y, recipe.train_classes)
        idx = np.flatnonzero(keep)
        if train and recipe.images_per_class:
            idx = np.concatenate([idx[y[idx] == c][: recipe.images_per_class]
                                  for c in recipe.train_classes])
            idx.sort()
        remap = {c: i for i, c in enumerate(recipe.train_classes)}
        x, y = x[idx], np.array([remap[int(v)] for v in y[idx]], dtype=np.int64)
    if train and recipe.limit_train:
        x, y = x[: recipe.limit_train], y[: recipe.limit_train]
    return x, y


def check_classes(recipe: Recipe, class_names: list[str], labels: dict[str, np.ndarray]) -> None:
    """A classifier needs at least 2 classes, each with at least one image in every split it uses;
    raises ValueError naming what is missing before anything is built or written."""
    if len(class_names) < 2:
        raise ValueError(f"recipe {recipe.name!r}: {len(class_names)} class ({', '.join(class_names)}); a "
                         "classifier needs at least 2 classes: use a dataset or train_classes with two or more")
    for split, y in labels.items():
        missing = [class_names[c] for c in range(len(class_names)) if not np.any(y == c)]
        if missing:
            cut = f" of the first {recipe.limit_train} (--limit-train)" if split == "train" and recipe.limit_train else ""
            raise ValueError(f"recipe {recipe.name!r}: the {split} split{cut} has no images of class "
                             f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}; every class "
                             f"needs at least one image in every split"
                             + ("; raise --limit-train" if cut else ""))


def _targets(num_classes: int, num_outputs: int):
    def targets(images, labels):
        onehot = tf.one_hot(labels, num_classes)
        return images, (onehot if num_outputs == 1 else tuple([onehot] * num_outputs))
    return targets


def _folder_splits(dataset: Any, recipe: Recipe, seed: int, augment, num_outputs: int) -> Splits:
    """Image folders of mixed sizes (hotdog): decoded and resized on the fly by the dataset's own
    pipeline; no hold-out or class subset, since nothing is held in memory to split."""
    if recipe.image_size is None:
        raise ValueError(f"recipe {recipe.name!r}: the images of {dataset.name} differ in size; "
                         "set image_size in the recipe (e.g. (224, 224))")
    if recipe.val_fraction or recipe.train_classes or recipe.limit_train:
        raise ValueError(f"recipe {recipe.name!r}: {dataset.name} is read from image folders of mixed "
                         "sizes; val_fraction must be 0 and train_classes/limit_train unset for it")
    channels = recipe.channels or dataset.image_shape[2]
    targets = _targets(dataset.num_classes, num_outputs)
    common = dict(batch_size=recipe.batch_size, image_size=recipe.image_size,
                  resize_method=recipe.resize_method, channels=channels)
    train = dataset.pipeline("train", shuffle=True, seed=seed, augment=augment, drop_remainder=True,
                             **common).map(targets)
    test = dataset.pipeline("test", **common).map(targets)
    sizes = {"train": dataset.split_sizes["train"], "val": 0, "test": dataset.split_sizes["test"]}
    return Splits(train=train, val=None, test=test, sizes=sizes, class_names=list(dataset.class_names),
                  input_shape=(*recipe.image_size, channels),
                  steps_per_epoch=sizes["train"] // recipe.batch_size)


def make_splits(dataset: Any, recipe: Recipe, seed: int, augmentation: keras.Sequential | None,
                num_outputs: int = 1) -> Splits:
    """`dataset` is a `bench.data.load_dataset(...)` object (`.numpy(split)`, `.class_names`)."""
    augment = None
    if augmentation is not None:
        def augment(images):
            return augmentation(images, training=True)
    if recipe.image_size is not None and hasattr(dataset, "warn_small_images"):  # image folders
        dataset.warn_small_images(recipe.image_size)
    if dataset.image_shape[0] is None:
        return _folder_splits(dataset, recipe, seed, augment, num_outputs)
    x_train, y_train = _select(*dataset.numpy("train"), recipe, train=True)
    x_test, y_test = _select(*dataset.numpy("test"), recipe, train=False)
    class_names = list(dataset.class_names)
    if recipe.train_classes is not None:
        class_names = [class_names[c] for c in recipe.train_classes]
    n_val = int(round(len(x_train) * recipe.val_fraction))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x_train))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    check_classes(recipe, class_names, {"train": y_train[train_idx], "test": y_test})
    if len(train_idx) < recipe.batch_size:
        raise ValueError(f"recipe {recipe.name!r}: {len(train_idx)} training images are fewer than "
                         f"one batch of {recipe.batch_size}; lower --batch-size or raise --limit-train")
    num_classes = len(class_names)
    channels = recipe.channels or x_train.shape[-1]
    size = tuple(recipe.image_size) if recipe.image_size else tuple(x_train.shape[1:3])
    input_shape = (int(size[0]), int(size[1]), int(channels))

    targets = _targets(num_classes, num_outputs)

    def pipeline(x, y, training: bool) -> tf.data.Dataset:
        ds = from_arrays(x, y, recipe.batch_size, recipe.image_size, recipe.resize_method, recipe.channels,
                         shuffle=training, seed=seed, augment=augment if training else None,
                         drop_remainder=training)
        return ds.map(targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    x_fit, y_fit = x_train[train_idx], y_train[train_idx]
    train_from = None
    if recipe.augment.get("alternating_flip"):
        train_from = alternating_flip_pipeline(x_fit, y_fit, recipe, seed, augment, targets)
        train = train_from(0)
    else:
        train = pipeline(x_fit, y_fit, training=True)
    val = pipeline(x_train[val_idx], y_train[val_idx], training=False) if n_val else None
    test = pipeline(x_test, y_test, training=False)

    def init_images(count: int) -> np.ndarray:
        batch = preprocess(x_fit[:count], recipe.image_size, recipe.resize_method, recipe.channels)
        return np.asarray(batch)

    return Splits(train=train, val=val, test=test,
                  sizes={"train": len(train_idx), "val": n_val, "test": len(x_test)},
                  class_names=class_names, input_shape=input_shape,
                  steps_per_epoch=len(train_idx) // recipe.batch_size, train_from=train_from,
                  init_images=init_images)
