"""The in-memory dataset object (MNIST, Fashion-MNIST, CIFAR-10/100) and its decoded cache.

Decoded arrays are cached per dataset as one uncompressed .npz in the cache
folder, with a sha256 of its arrays stored inside: a second load reads it
back in about a second; a damaged or stale .npz is rebuilt from the sources.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data import cache, locate, pipeline, sources
from bench.data.errors import CorruptFile, DataError

NPZ_FORMAT = 1


@dataclass
class ImageDataset:
    """In-memory uint8 NHWC images and int64 labels per split, with tf.data pipelines."""

    name: str
    class_names: list[str]
    image_shape: tuple[int, int, int]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str = ""
    _tensors: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for x, y in self.splits.values():  # shared by every user in the process: never edited in place
            x.setflags(write=False)
            y.setflags(write=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {s: len(y) for s, (_, y) in self.splits.items()}

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.splits:
            raise ValueError(f"{self.name} has no split {split!r}; splits: {sorted(self.splits)}")
        return self.splits[split]

    def numpy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x uint8 NHWC, y int64) of a split; shared read-only arrays (copy before editing)."""
        return self._split(split)

    def pipeline(self, split: str, batch_size: int, image_size=None, resize_method: str = "resize",
                 channels: int | None = None, shuffle: bool = False, seed: int | None = None,
                 augment=None, drop_remainder: bool = False, limit: int | None = None):
        """Batches of (float32 images in [0, 1], int64 labels); see `bench.data.pipeline.from_arrays`."""
        if split not in self._tensors:  # converted to TF once per split, shared by all pipelines
            import tensorflow as tf

            x, y = self._split(split)
            with tf.device("/CPU:0"):
                self._tensors[split] = (tf.convert_to_tensor(x), tf.convert_to_tensor(y))
        x, y = self._tensors[split]
        return pipeline.from_arrays(x, y, batch_size, image_size, resize_method, channels,
                                    shuffle, seed, augment, drop_remainder, limit)

    def describe(self) -> str:
        names = ", ".join(self.class_names[:12]) + (", ..." if self.num_classes > 12 else "")
        sizes = ", ".join(f"{s} {n}" for s, n in self.split_sizes.items())
        return (f"{self.name}: {self.num_classes} classes ({names}); images {self.image_shape} uint8; "
                f"{sizes}; from {self.source}")


def validate(info: sources.DatasetInfo, found: locate.Found) -> None:
    """Counts, shapes and (for balanced sets) images per class must be the published ones."""
    for split, want in info.split_sizes.items():
        if split not in found.splits:
            raise CorruptFile(f"{found.source}: split {split!r} is missing")
        x, y = found.splits[split]
        if len(x) != want or len(y) != want:
            raise CorruptFile(f"{found.source}: {split} has {len(x)} images / {len(y)} labels, expected {want}")
        if x.shape[1:] != info.image_shape or x.dtype != np.uint8:
            raise CorruptFile(f"{found.source}: {split} images are {x.dtype}{x.shape[1:]}, expected uint8{info.image_shape}")
        if split in info.per_class:
            counts = np.bincount(y, minlength=len(found.class_names))
            if not np.all(counts == info.per_class[split]):
                raise CorruptFile(f"{found.source}: {split} images per class {counts.tolist()}, "
                                  f"expected {info.per_class[split]} each")


def _npz_path(key: str) -> Path:
    return cache.datasets_dir() / key.removesuffix("_coarse") / f"{key}.npz"


def _read_npz(path: Path) -> ImageDataset | None:
    """The cached dataset, or None (with a note on stderr) if the file is damaged or stale."""
    try:
        arrays, meta_json = cache.load_arrays(path)
        meta = json.loads(meta_json)
        if meta.get("format") != NPZ_FORMAT:
            raise DataError(f"{path}: cache format {meta.get('format')}, expected {NPZ_FORMAT}")
        if cache.arrays_sha256(arrays) != meta["arrays_sha256"]:
            raise DataError(f"{path}: arrays do not match their stored sha256")
    except (DataError, ValueError, KeyError) as exc:
        print(f"note: rebuilding the decoded cache ({exc})", file=sys.stderr)
        return None
    splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in meta["splits"]}
    return ImageDataset(meta["name"], meta["class_names"], tuple(meta["image_shape"]), splits, meta["source"])


def _write_npz(path: Path, ds: ImageDataset) -> None:
    arrays = {}
    for s, (x, y) in ds.splits.items():
        arrays[f"x_{s}"], arrays[f"y_{s}"] = x, y
    meta = {"format": NPZ_FORMAT, "name": ds.name, "class_names": ds.class_names,
            "image_shape": list(ds.image_shape), "splits": list(ds.splits), "source": ds.source,
            "arrays_sha256": cache.arrays_sha256(arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.save_arrays(path, arrays, json.dumps(meta))


def load_arrays_dataset(name: str, label_mode: str = "fine") -> ImageDataset:
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 (label_mode fine|coarse), decoded and verified."""
    # coarse CIFAR-100 is another label space, so another name (and .npz)
    key = "cifar100_coarse" if name == "cifar100" and label_mode == "coarse" else name
    if name == "cifar100" and label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' (100 classes) or 'coarse' (20), got {label_mode!r}")
    npz = _npz_path(key)
    if npz.is_file() and (ds := _read_npz(npz)) is not None:
        return ds
    search = locate.Search(name)
    if name == "mnist":
        found = locate.find_mnist(search)
    elif name == "fashion_mnist":
        found = locate.find_fashion_mnist(search)
    elif name == "cifar10":
        found = locate.find_cifar10(search)
    else:
        found = locate.find_cifar100(search, label_mode)
    info = sources.INFO[name]
    class_names = found.class_names or list(info.class_names)
    found.class_names = class_names
    validate(info, found)
    splits = {s: (np.ascontiguousarray(x), np.asarray(y, np.int64)) for s, (x, y) in found.splits.items()}
    ds = ImageDataset(key, class_names, info.image_shape, splits, found.source)
    try:
        _write_npz(npz, ds)
    except (DataError, OSError) as exc:  # the arrays are good; only the next load will be slower
        print(f"note: could not cache the decoded arrays ({exc})", file=sys.stderr)
    return ds
