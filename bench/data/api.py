"""`load_dataset` and `dataset_names`: the one entry point the rest of the toolkit uses."""
from __future__ import annotations

import os
from pathlib import Path

from bench.data import cache, sources
from bench.data.dataset import ImageDataset, load_arrays_dataset

# loaded datasets stay in memory: a second load_dataset in the same process shares the arrays
_LOADED: dict[tuple, object] = {}


def dataset_names() -> list[str]:
    return list(sources.REGISTRY_NAMES)


def load_dataset(name_or_path: str | os.PathLike, label_mode: str = "fine"):
    """A dataset by name (`dataset_names()`) or an image-folder path (`train/<class>/*`,
    `test/<class>/*`). Missing files are fetched: cache -> Keras cache -> registry -> internet.
    `label_mode` ("fine" or "coarse") applies to CIFAR-100 only."""
    text = os.fspath(name_or_path)
    key = (text, label_mode, str(cache.cache_root()))
    if key in _LOADED:
        return _LOADED[key]
    if text in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        ds = load_arrays_dataset(text, label_mode)
    elif text == "hotdog":
        from bench.data import folders

        ds = folders.load_hotdog()
    elif Path(text).expanduser().is_dir():
        from bench.data import folders

        ds = folders.FolderDataset.open(Path(text).expanduser())
    else:
        raise ValueError(f"unknown dataset {text!r}: use one of {dataset_names()} or the path of an image "
                         f"folder holding train/<class>/*.jpg and test/<class>/*.jpg")
    _LOADED[key] = ds
    return ds


__all__ = ["load_dataset", "dataset_names", "ImageDataset"]
