"""Recipes trained end to end on a 200-image archive in the official `cifar-100-python.tar.gz`
layout: the CIFAR-100 recipe (the published file cannot be had on this machine), and GoogLeNet
with its auxiliary classifiers, whose saved model keeps the main output only."""
from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.data import load_dataset, sources
from bench.train import get_recipe, train
from bench.train.fit import top1
from tests.test_data_cifar import cifar100_python


@pytest.fixture
def tiny_cifar100(cifar10, isolated_cache, monkeypatch):
    folder = isolated_cache / "datasets" / "cifar100"
    folder.mkdir(parents=True)
    # one image of each of the 100 classes per split: training refuses a class it has no image of
    path, fine, _ = cifar100_python(folder / "cifar-100-python.tar.gz", cifar10.numpy("test")[0][:200], n_train=100)
    monkeypatch.setattr(sources, "CIFAR100_PYTHON_DIGEST", {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    monkeypatch.setitem(sources.INFO, "cifar100",
                        sources.DatasetInfo("cifar100", (), (32, 32, 3), {"train": 100, "test": 100}))
    return load_dataset("cifar100")


@pytest.mark.slow  # a long real run: make test-all
def test_cifar100_resnet18_recipe_trains_on_an_official_layout_archive(tiny_cifar100, tmp_path):
    recipe = get_recipe("cifar100_resnet18").replace(epochs=2, batch_size=8, warmup_epochs=1, val_fraction=0.0)
    record = train(recipe, tmp_path / "run", dataset=tiny_cifar100, seed=0, verbose=0)
    assert record["data_sizes"] == {"train": 100, "val": 0, "test": 100}
    assert len(record["class_names"]) == 100 and record["class_names"][7] == "fine_7"
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.output_shape == (None, 100)
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert saved["recipe"]["name"] == "cifar100_resnet18" and saved["epochs_done"] == 2


@pytest.mark.slow  # a long real run: make test-all
def test_googlenet_with_auxiliary_heads_saves_its_main_output(tiny_cifar100, tmp_path):
    recipe = get_recipe("cifar10_googlenet").replace(epochs=2, batch_size=8, warmup_epochs=1, val_fraction=0.0)
    record = train(recipe, tmp_path / "run", dataset=tiny_cifar100, seed=0, verbose=0)
    last = keras.saving.load_model(tmp_path / "run" / "last.keras")
    assert len(last.outputs) == 3  # trained on main + 0.3 * each auxiliary loss
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert len(model.outputs) == 1 and model.output_shape == (None, 100)
    # the recorded test top-1 is the saved model's, on the 100 test images
    x, y = tiny_cifar100.numpy("test")
    x = keras.ops.image.resize(x.astype("float32") / 255.0, recipe.image_size)
    pred = np.argmax(np.asarray(model(x, training=False)), -1)
    assert np.mean(pred == y) == pytest.approx(record["test_top1"])
    # top1 scores a main-output model against the per-output targets the training data carries
    labels = pred.copy()
    labels[:50] = (labels[:50] + 1) % 100  # half of them wrong on purpose
    onehot = tf.one_hot(labels, 100)
    ds = tf.data.Dataset.from_tensors((x, (onehot, onehot, onehot)))
    assert top1(model, ds) == 0.5
