"""Shared fixtures.

- `isolated_cache`: an empty IMGCLS_CACHE and Keras home in tmp_path, network
  sources off (IMGCLS_OFFLINE=1), and the in-process dataset cache cleared.
- `mnist`, `cifar10`: the real datasets from the default cache (`make data`);
  if absent, bench.data fetches them or fails with its own message.
"""
from __future__ import annotations

import pytest

from bench.plumbing.console import quiet_tensorflow

# as every command does: TF_CPP_MIN_LOG_LEVEL=2 unless set, TensorFlow's start-up noise filtered
quiet_tensorflow()


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    from bench.data import api

    monkeypatch.setenv("IMGCLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    saved = dict(api._LOADED)
    api._LOADED.clear()
    yield tmp_path / "cache"
    api._LOADED.clear()
    api._LOADED.update(saved)


@pytest.fixture(scope="session")
def mnist():
    from bench.data import load_dataset

    return load_dataset("mnist")


@pytest.fixture(scope="session")
def cifar10():
    from bench.data import load_dataset

    return load_dataset("cifar10")
