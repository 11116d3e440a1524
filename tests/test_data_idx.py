"""IDX reader on files the tests write in the official layout, raw and gzip, good and corrupt."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from bench.data.errors import CorruptFile
from bench.data.idx import read_idx, read_idx_split


def idx_bytes(array: np.ndarray) -> bytes:
    """The official IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


@pytest.fixture
def sample(mnist):
    x, y = mnist.numpy("train")
    return x[:50, ..., 0], y[:50].astype(np.uint8)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_round_trip_raw_and_gzip(tmp_path, sample, compress):
    images, labels = sample
    suffix = ".gz" if compress else ""
    write = gzip.compress if compress else (lambda b: b)
    (tmp_path / f"img{suffix}").write_bytes(write(idx_bytes(images)))
    (tmp_path / f"lbl{suffix}").write_bytes(write(idx_bytes(labels)))
    x, y = read_idx_split(tmp_path / f"img{suffix}", tmp_path / f"lbl{suffix}", 10)
    assert x.shape == (50, 28, 28, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[..., 0], images)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()


def test_multibyte_types_are_big_endian(tmp_path):
    values = np.array([[1, -2], [300, 70000]], dtype=">i4")
    (tmp_path / "ints").write_bytes(bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 2) + values.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), [[1, -2], [300, 70000]])


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_truncated_file_is_refused_by_name(tmp_path, sample, compress):
    data = idx_bytes(sample[0])[:-100]
    path = tmp_path / ("truncated.gz" if compress else "truncated")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(CorruptFile, match=r"truncated.*truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_truncated_gzip_stream_is_refused_by_name(tmp_path, sample):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(sample[0]))[:-500])
    with pytest.raises(CorruptFile, match="damaged gzip") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_trailing_bytes_and_bad_magic_are_refused(tmp_path, sample):
    (tmp_path / "long").write_bytes(idx_bytes(sample[1]) + b"\0")
    with pytest.raises(CorruptFile, match="trailing bytes"):
        read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + idx_bytes(sample[1])[2:])
    with pytest.raises(CorruptFile, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "type").write_bytes(b"\0\0\x07\x01" + idx_bytes(sample[1])[4:])
    with pytest.raises(CorruptFile, match="unknown IDX type"):
        read_idx(tmp_path / "type")


def test_label_out_of_range_names_the_labels_file(tmp_path, sample):
    images, labels = sample
    labels = labels.copy()
    labels[7] = 10
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lbl").write_bytes(idx_bytes(labels))
    with pytest.raises(CorruptFile, match=r"label 10 at index 7 is out of range for 10 classes") as err:
        read_idx_split(tmp_path / "img", tmp_path / "lbl", 10)
    assert str(tmp_path / "lbl") in str(err.value)


def test_count_mismatch_between_images_and_labels(tmp_path, sample):
    images, labels = sample
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lbl").write_bytes(idx_bytes(labels[:49]))
    with pytest.raises(CorruptFile, match="50 images but .* 49 labels"):
        read_idx_split(tmp_path / "img", tmp_path / "lbl", 10)
