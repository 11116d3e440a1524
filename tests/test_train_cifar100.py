"""The CIFAR-100 recipe runs end to end where the data is present: here on a small archive in
the official `cifar-100-python.tar.gz` layout (the published file cannot be had on this machine)."""
from __future__ import annotations

import hashlib
import json

import keras
import pytest

from bench.data import load_dataset, sources
from bench.train import get_recipe, train
from tests.test_data_cifar import cifar100_python

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_cifar100_resnet18_recipe_trains_on_an_official_layout_archive(cifar10, isolated_cache,
                                                                       monkeypatch, tmp_path):
    folder = isolated_cache / "datasets" / "cifar100"
    folder.mkdir(parents=True)
    path, fine, _ = cifar100_python(folder / "cifar-100-python.tar.gz", cifar10.numpy("test")[0][:24])
    monkeypatch.setattr(sources, "CIFAR100_PYTHON_DIGEST", {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    monkeypatch.setitem(sources.INFO, "cifar100",
                        sources.DatasetInfo("cifar100", (), (32, 32, 3), {"train": 20, "test": 4}))
    recipe = get_recipe("cifar100_resnet18").replace(epochs=2, batch_size=8, warmup_epochs=1)
    record = train(recipe, tmp_path / "run", dataset=load_dataset("cifar100"), seed=0, verbose=0)
    assert record["data_sizes"] == {"train": 18, "val": 2, "test": 4}
    assert len(record["class_names"]) == 100 and record["class_names"][7] == "fine_7"
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.output_shape == (None, 100)
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert saved["recipe"]["name"] == "cifar100_resnet18" and saved["epochs_done"] == 2
