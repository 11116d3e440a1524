"""Strict reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip).

Layout (big-endian): two zero bytes, a type code, the number of dimensions,
one uint32 per dimension, then the values.  The reader checks the magic, the
dimensions and the exact byte length, so a truncated or padded file is
refused with its name instead of being half-loaded.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from bench.data.errors import CorruptFile

# IDX type code -> numpy dtype (multi-byte types are big-endian)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path: Path) -> bytes:
    """The IDX content of `path`, decompressed if it is gzip (detected by its magic, not its name)."""
    data = Path(path).read_bytes()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise CorruptFile(f"{path}: damaged gzip stream ({exc}); delete the file and fetch it again") from exc


def parse_idx(data: bytes, path: Path | str) -> np.ndarray:
    """Decode IDX bytes into an array; `path` only names the file in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptFile(f"{path}: not an IDX file (magic {data[:4].hex() or 'empty'}, expected 0000TTNN)")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise CorruptFile(f"{path}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0:
        raise CorruptFile(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFile(f"{path}: truncated IDX header ({len(data)} bytes, header needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise CorruptFile(
            f"{path}: IDX file {problem}: dims {dims} need {expected} bytes, file has {len(data)}; "
            f"delete it and fetch it again"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_idx_bytes(path), path)


def read_idx_split(images_path: Path, labels_path: Path, num_classes: int,
                   images_bytes: bytes | None = None, labels_bytes: bytes | None = None):
    """One split from its images and labels files: (uint8 NHWC images, int64 labels).

    Checks that the counts agree and every label is below `num_classes`; the
    error names the offending file.  Already-read bytes may be passed in.
    """
    from bench.data.cifar import check_labels

    images = parse_idx(images_bytes if images_bytes is not None else read_idx_bytes(images_path), images_path)
    labels = parse_idx(labels_bytes if labels_bytes is not None else read_idx_bytes(labels_path), labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CorruptFile(f"{images_path}: images are {images.dtype}{images.shape}, expected uint8 (N, H, W)")
    if labels.ndim != 1:
        raise CorruptFile(f"{labels_path}: labels have shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise CorruptFile(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    return images[..., None], check_labels(labels, num_classes, str(labels_path))
