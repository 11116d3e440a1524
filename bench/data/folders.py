"""Image-folder datasets (`train/<class>/*.jpg`, `test/<class>/*.jpg`), read through
`keras.utils.image_dataset_from_directory`, and the d2l hotdog archive.

Every image is decoded once when the folder is opened, so an unreadable
JPEG or PNG is reported by name up front instead of failing mid-epoch
inside TensorFlow.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data import cache, pipeline, sources
from bench.data.errors import CorruptFile, DataError
from bench.data.locate import Search
from bench.plumbing import progress
from bench.plumbing.console import warn

# what keras' directory loader reads (and TensorFlow's decode_image decodes)
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
SPLITS = ("train", "validation", "val", "test")


# upscaling by more than this (in height or width) to reach the requested size earns a warning
UPSCALE_WARNING = 4.0


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: int
    size: tuple[int, int]  # (height, width)
    channels: int
    gray_decodable: bool = True  # TensorFlow decodes it straight to one channel (not BMP, GIF, CMYK JPEG)


def _class_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under one class folder, in keras' order (sorted walk); hidden
    files (.DS_Store, ...) count as neither."""
    images, others = [], []
    for root, dirs, files in sorted(os.walk(class_dir), key=lambda t: t[0]):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(IMAGE_SUFFIXES):
                images.append(Path(root) / f)
            elif not f.startswith("."):
                others.append(Path(root) / f)
    return images, others


def _bmp_problem(path: Path, mode: str) -> str | None:
    """Why TensorFlow's BMP decoder would fail on or misread this BMP, or None. It reads the pixel
    bytes as 1, 3 or 4 channels (8, 24, 32 bits per pixel) without a palette or compression."""
    with open(path, "rb") as f:
        header = f.read(34)
    if len(header) < 34 or int.from_bytes(header[14:18], "little") < 40:
        return "an OS/2 (old-header) BMP"
    bits = int.from_bytes(header[28:30], "little")
    compression = int.from_bytes(header[30:34], "little")
    if bits not in (8, 24, 32):
        return f"a {bits}-bit BMP"
    if compression in (1, 2):
        return "a run-length-compressed BMP"
    if bits == 8 and mode != "L":
        return "a BMP with a colour palette (TensorFlow would read the palette indices as gray levels)"
    return None


def check_image(path: Path) -> tuple[tuple[int, int], int, bool]:
    """Fully decode one image; return ((height, width), channels, gray_decodable), or raise
    CorruptFile naming it and saying what to do."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes every pixel: a truncated file fails here
            fmt, mode, (w, h) = img.format, img.mode, img.size
    except Exception as exc:
        raise CorruptFile(f"{path}: unreadable image ({exc}); delete or replace the file") from exc
    if fmt not in ("JPEG", "PNG", "BMP", "GIF"):
        raise CorruptFile(f"{path}: {fmt} data; TensorFlow decodes only JPEG, PNG, BMP and GIF: "
                          "convert it to PNG or JPEG")
    if fmt == "BMP" and (problem := _bmp_problem(path, mode)):
        raise CorruptFile(f"{path}: {problem}, which TensorFlow cannot decode correctly; "
                          "re-save it as PNG")
    # TensorFlow decodes BMP and GIF to 3 or 4 channels only, and a CMYK JPEG not to one channel
    gray_decodable = fmt in ("JPEG", "PNG") and mode not in ("CMYK", "YCCK")
    return (h, w), (1 if mode in ("L", "1", "I;16", "I") else 3), gray_decodable


@dataclass
class FolderDataset:
    """An image-folder dataset with the same interface as the array datasets."""

    name: str
    root: Path
    class_names: list[str]
    files: dict[str, list[ImageFile]]
    source: str = ""
    _arrays: dict = field(default_factory=dict, repr=False)
    _warned_sizes: set = field(default_factory=set, repr=False)

    @classmethod
    def open(cls, root: Path, name: str | None = None) -> "FolderDataset":
        """Checks the layout and decodes every image once; raises DataError naming the folder or
        file and what to do. A dataset needs at least 2 classes, each with at least one image in
        every split. Files that are not images are skipped with one warning."""
        root = Path(root)
        splits = [s for s in SPLITS if (root / s).is_dir()]
        if "train" not in splits:
            raise DataError(f"{root}: no 'train' folder; an image-folder dataset needs "
                            f"train/<class>/*.jpg (and test/<class>/*.jpg)")
        class_names = sorted(d.name for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(class_names) < 2:
            found = f"only {class_names[0]!r}" if class_names else "none"
            raise DataError(f"{root / 'train'}: a classifier needs at least 2 class folders, found {found}; "
                            f"put each class's images in train/<class>/ and test/<class>/")
        listed: dict[str, list[tuple[int, Path]]] = {}
        skipped: list[Path] = []
        for split in splits:
            have = sorted(d.name for d in (root / split).iterdir() if d.is_dir() and not d.name.startswith("."))
            if have != class_names:
                raise DataError(f"{root / split}: class folders {have} differ from train's {class_names}; "
                                f"every split needs the same class folders")
            listed[split] = []
            for label, cls_name in enumerate(class_names):
                images, others = _class_files(root / split / cls_name)
                if not images:
                    raise DataError(f"{root / split / cls_name}: no images ({', '.join(IMAGE_SUFFIXES)}); every "
                                    f"class needs at least one image in every split: add images or remove "
                                    f"the {cls_name!r} folder from every split")
                listed[split] += [(label, path) for path in images]
                skipped += others
        if skipped:
            warn(f"skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} under {root} that "
                 f"{'are' if len(skipped) > 1 else 'is'} not {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} "
                 f"(e.g. {skipped[0]}); convert any images among them to PNG or JPEG to use them")
        every = [(split, label, path) for split in splits for label, path in listed[split]]
        files: dict[str, list[ImageFile]] = {split: [] for split in splits}
        for split, label, path in progress.iterate(every, f"checking images in {root}", total=len(every),
                                                   unit="images"):
            size, channels, gray = check_image(path)
            files[split].append(ImageFile(path, label, size, channels, gray))
        return cls(name or root.name, root, list(class_names), files, str(root))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {s: len(f) for s, f in self.files.items()}

    @property
    def image_shape(self) -> tuple[int | None, int | None, int]:
        """(H, W, C) of the raw images; H and W are None when the sizes differ."""
        every = [f for fs in self.files.values() for f in fs]
        sizes = {f.size for f in every}
        channels = max(f.channels for f in every)
        (h, w) = next(iter(sizes)) if len(sizes) == 1 else (None, None)
        return (h, w, channels)

    def _split(self, split: str) -> list[ImageFile]:
        if split not in self.files:
            raise ValueError(f"{self.name} has no split {split!r}; splits: {sorted(self.files)}")
        return self.files[split]

    def numpy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """All images of a split as uint8 NHWC (only when they share one size) and int64 labels."""
        if split not in self._arrays:
            files = self._split(split)
            h, w, c = self.image_shape
            if h is None:
                raise DataError(f"{self.root}: images differ in size, so they do not stack into one array; "
                                f"use pipeline(..., image_size=...) to resize them on the fly")
            import tensorflow as tf

            # decoded by TensorFlow, like the pipeline, so numpy() and pipeline() give the same pixels
            # (PIL's JPEG decoder rounds chroma differently)
            x = np.empty((len(files), h, w, c), np.uint8)
            for i, f in enumerate(progress.iterate(files, f"decoding {self.root / split}", len(files), "images")):
                if c == 1 and not f.gray_decodable:  # BMP, GIF, CMYK JPEG: via RGB, as the pipeline does
                    rgb = tf.io.decode_image(tf.io.read_file(str(f.path)), channels=3, expand_animations=False)
                    x[i] = tf.image.rgb_to_grayscale(rgb).numpy()
                else:
                    x[i] = tf.io.decode_image(tf.io.read_file(str(f.path)), channels=c, expand_animations=False).numpy()
            y = np.array([f.label for f in files], np.int64)
            x.setflags(write=False)  # shared, like the array datasets' splits
            y.setflags(write=False)
            self._arrays[split] = (x, y)
        return self._arrays[split]

    def pipeline(self, split: str, batch_size: int, image_size=None, resize_method: str = "resize",
                 channels: int | None = None, shuffle: bool = False, seed: int | None = None,
                 augment=None, drop_remainder: bool = False, limit: int | None = None):
        """Batches of (float32 images in [0, 1], int64 labels), decoded and resized on the fly."""
        import keras
        import tensorflow as tf

        pipeline.check_options(resize_method, channels)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if limit is not None and int(limit) < 1:
            raise ValueError(f"limit must be >= 1 (the first N examples), got {limit}")
        files = self._split(split)
        size = pipeline.image_size_hw(image_size)
        if size is None:
            h, w, _ = self.image_shape
            if h is None:
                raise DataError(f"{self.root}: images differ in size; pass image_size=(height, width)")
            size = (h, w)
        channels = channels or self.image_shape[2]
        self.warn_small_images(size)
        # TensorFlow decodes BMP, GIF and CMYK JPEG to 3 channels only: such a split is read as RGB
        # and converted to grayscale here (tf.image.rgb_to_grayscale, as export predict does)
        via_rgb = channels == 1 and any(not f.gray_decodable for f in files)
        n = len(files) if limit is None else min(int(limit), len(files))
        ds = keras.utils.image_dataset_from_directory(
            self.root / split, labels="inferred", label_mode="int", class_names=self.class_names,
            color_mode="grayscale" if channels == 1 and not via_rgb else "rgb", batch_size=None, image_size=size,
            shuffle=shuffle and limit is None, seed=seed, interpolation="bilinear",
            pad_to_aspect_ratio=resize_method == "pad", verbose=False)
        if limit is not None:
            ds = ds.take(n)  # the first N files in sorted order, then shuffled below
            if shuffle:
                ds = ds.shuffle(n, seed=seed)

        def scale(images, labels):
            images = tf.cast(images, tf.float32)
            if via_rgb:
                images = tf.image.rgb_to_grayscale(images)
            images = tf.clip_by_value(images / 255.0, 0.0, 1.0)
            return (augment(images) if augment is not None else images), tf.cast(labels, tf.int64)

        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)

    def warn_small_images(self, image_size) -> None:
        """Warns once per size about images much smaller than `image_size` (height, width): they
        are upscaled to it, which blurs them, and a tiny one is most likely not a real example."""
        size = pipeline.image_size_hw(image_size)
        if size is None or size in self._warned_sizes:
            return
        self._warned_sizes.add(size)
        every = [f for fs in self.files.values() for f in fs]
        small = [f for f in every if max(size[0] / f.size[0], size[1] / f.size[1]) > UPSCALE_WARNING]
        if small:
            example = min(small, key=lambda f: f.size[0] * f.size[1])
            warn(f"{len(small)} of {len(every)} images under {self.root} {'is' if len(small) == 1 else 'are'} "
                 f"more than {UPSCALE_WARNING:g}x "
                 f"smaller than the {size[0]}x{size[1]} input and will be upscaled (blurred), e.g. "
                 f"{example.path} ({example.size[0]}x{example.size[1]}); remove them or use a smaller image size")

    def describe(self) -> str:
        sizes = ", ".join(f"{s} {n}" for s, n in self.split_sizes.items())
        return (f"{self.name}: {self.num_classes} classes ({', '.join(self.class_names[:12])}); "
                f"images {self.image_shape}; {sizes}; from {self.source}")


def extract_zip(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest` via a temporary folder, renamed into place when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():  # refuse paths that would land outside the folder
                    target = (Path(tmp) / member).resolve()
                    if not target.is_relative_to(Path(tmp).resolve()):
                        raise CorruptFile(f"{archive}: member {member!r} points outside the archive folder")
                z.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptFile(f"{archive}: damaged zip archive ({exc}); delete it and fetch it again") from exc
        if dest.exists():  # a stale extraction of our own: replace it whole
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        os.mkdir(tmp)  # TemporaryDirectory cleans up the (now empty) name it created
    return dest


def load_hotdog() -> FolderDataset:
    """d2l's hotdog set: `hotdog/{train,test}/{hotdog,not-hotdog}/*`, from hotdog.zip (sha1 checked)."""
    folder = cache.datasets_dir() / "hotdog"
    extracted = folder / "extracted"
    root = extracted / "hotdog"
    if (root / "train").is_dir():
        return FolderDataset.open(root, "hotdog")
    search = Search("hotdog")
    search.note(str(root), "not extracted yet")
    for archive in (folder / sources.HOTDOG_ZIP, cache.keras_datasets_dir() / sources.HOTDOG_ZIP):
        if archive.is_file():
            cache.check_digests(archive, sources.HOTDOG_DIGEST, archive)
            extract_zip(archive, extracted)
            return FolderDataset.open(root, "hotdog")
        search.note(str(archive), "absent")
    search.note("npm, PyPI and Debian registries", "no package ships the hotdog set")
    if not cache.offline():
        try:
            archive = cache.download(sources.HOTDOG_URL, folder / sources.HOTDOG_ZIP, sources.HOTDOG_DIGEST)
            extract_zip(archive, extracted)
            return FolderDataset.open(root, "hotdog")
        except (urllib.error.URLError, OSError) as exc:
            search.note(sources.HOTDOG_URL, f"download failed ({exc})")
    else:
        search.note(sources.HOTDOG_URL, "skipped (IMGCLS_OFFLINE is set)")
    raise search.unavailable(f"download {sources.HOTDOG_URL} (sha1 {sources.HOTDOG_DIGEST['sha1']}) "
                             f"on a machine with internet and put hotdog.zip in {folder}")
