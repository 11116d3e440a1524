"""Short real training runs on MNIST: learning, resume, NaN stop, mismatched checkpoints."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from bench.data import load_dataset
from bench.train import CheckpointMismatch, TrainingDiverged, get_recipe, load_checkpoint, train
import zoo

# a small, fast variant of the test recipe: 1,800 training images, 28 steps per epoch
SMALL = dict(limit_train=2_000, batch_size=64, model_options={"widths": (8, 16, 16)})


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates an interruption (a killed job) right after an epoch's checkpoint is written."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt(f"interrupted after epoch {self.epoch}")


class EpochsSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class PoisonWeights(keras.callbacks.Callback):
    """A layer that starts producing NaN part-way through epoch `epoch` (1-based)."""

    def __init__(self, epoch: int, batch: int = 3):
        super().__init__()
        self.epoch, self.batch, self._epoch = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self._epoch == self.epoch and batch == self.batch:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def test_tiny_recipe_learns_mnist_above_90_percent(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny")
    record = train(recipe, tmp_path / "run", dataset=mnist, seed=0, verbose=0)
    steps = record["data_sizes"]["train"] // recipe.batch_size * recipe.epochs
    assert steps <= 400
    assert record["test_top1"] > 0.90, record["test_top1"]
    run = tmp_path / "run"
    for name in ("last.keras", "best.keras", "model.keras", "history.csv", "curves.png", "recipe.json"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "recipe.json").read_text())
    assert saved["recipe"]["name"] == "mnist_tiny" and saved["seed"] == 0
    assert saved["data_sizes"] == {"train": 9_500, "val": 500, "test": 10_000}
    assert saved["environment"]["tensorflow"] and saved["wall_time_s"] > 0
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the saved inference model gives the recorded test accuracy
    model = keras.saving.load_model(run / "model.keras")
    x, y = mnist.numpy("test")
    pred = np.argmax(model.predict(x.astype("float32") / 255.0, batch_size=1000, verbose=0), -1)
    assert np.mean(pred == y) == pytest.approx(saved["test_top1"], abs=1e-4)


def test_interrupted_run_resumes_from_its_last_checkpoint(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=3, **SMALL)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(recipe, run, dataset=mnist, verbose=0, extra_callbacks=[StopAfterEpoch(1)])
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    steps = (recipe.limit_train - round(recipe.limit_train * recipe.val_fraction)) // recipe.batch_size
    ckpt = keras.saving.load_model(run / "last.keras")
    assert int(ckpt.optimizer.iterations) == steps

    with pytest.raises(FileExistsError, match="--resume"):
        train(recipe, run, dataset=mnist, verbose=0)  # never silently overwrite a run

    seen = EpochsSeen()
    record = train(recipe, run, dataset=mnist, resume=True, verbose=0, extra_callbacks=[seen])
    assert seen.epochs == [1, 2]  # 0-based: it starts at the second epoch
    assert [int(r["epoch"]) for r in history(run)] == [1, 2, 3]  # one continuous history
    assert record["epochs_done"] == 3
    final = keras.saving.load_model(run / "last.keras")
    assert int(final.optimizer.iterations) == 3 * steps  # optimizer state carried over
    # the one-cycle schedule continued: the lr at the end of epoch 2 is past the peak, not restarted
    lrs = [float(r["lr"]) for r in history(run)]
    assert lrs[0] > lrs[1] > lrs[2]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=3, **SMALL)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as err:
        train(recipe, run, dataset=mnist, verbose=0, extra_callbacks=[PoisonWeights(epoch=2)])
    message = str(err.value)
    assert "nan" in message and "epoch 2" in message and "last.keras" in message
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    kept = keras.saving.load_model(run / "last.keras")
    assert all(np.isfinite(np.asarray(w)).all() for w in kept.weights)
    record = json.loads((run / "recipe.json").read_text())
    assert record["status"] == "diverged"


def test_huge_learning_rate_diverges_with_a_clear_message(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=1, optimizer="sgd", lr=1e12, **SMALL)
    with pytest.raises(TrainingDiverged, match="no epoch finished.*Lower the learning rate"):
        train(recipe, tmp_path / "run", dataset=mnist, verbose=0)
    assert not (tmp_path / "run" / "last.keras").exists()


def test_checkpoint_of_another_model_is_refused(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=1, **SMALL)
    run = tmp_path / "run"
    train(recipe, run, dataset=mnist, verbose=0)
    wider = recipe.replace(model_options={"widths": (16, 16, 16)})
    with pytest.raises(CheckpointMismatch, match="does not match the requested model"):
        train(wider, run, dataset=mnist, resume=True, verbose=0)
    with pytest.raises(CheckpointMismatch, match="holds a run of model 'small_cnn' on 'mnist'"):
        train(recipe.replace(dataset="fashion_mnist"), run, resume=True, verbose=0)
    other = zoo.build("small_cnn", input_shape=(32, 32, 3), num_classes=10, widths=(8, 16, 16))
    with pytest.raises(CheckpointMismatch, match=r"input \(28, 28, 1\).*input \(32, 32, 3\)"):
        load_checkpoint(run / "last.keras", other)
    (tmp_path / "junk.keras").write_bytes(b"not a keras file")
    with pytest.raises(CheckpointMismatch, match="cannot resume from .*junk.keras.*not a zip archive"):
        load_checkpoint(tmp_path / "junk.keras", other)


@pytest.mark.slow  # a long real run: make test-all
def test_same_seed_same_run_through_the_cli(tmp_path):
    # a subprocess: op determinism, once enabled, stays on for the whole process
    script = (
        "import sys; from bench.train.cli import main\n"
        "for out in sys.argv[1:]:\n"
        "    assert main(['--recipe', 'mnist_tiny', '--epochs', '1', '--limit-train', '1000',\n"
        "                 '--batch-size', '50', '--seed', '3', '--deterministic', '--quiet',\n"
        "                 '--out', out, '--results', out + '_results']) == 0\n"
    )
    a, b = tmp_path / "a", tmp_path / "b"
    done = subprocess.run([sys.executable, "-c", script, str(a), str(b)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"19/19 - .* - loss: ", done.stdout) and "test top-1" in done.stdout  # progress
    ra, rb = (json.loads((d / "recipe.json").read_text()) for d in (a, b))
    assert ra["deterministic"] and ra["seed"] == 3 and ra["recipe"]["limit_train"] == 1000
    assert ra["test_top1"] == rb["test_top1"]
    copied = tmp_path / "a_results"
    assert json.loads((copied / "recipe.json").read_text()) == ra
    assert (copied / "history.csv").exists() and (copied / "curves.png").exists()
    assert history(a)[0]["loss"] == history(b)[0]["loss"]


@pytest.fixture(scope="module")
def catdog_folders(tmp_path_factory):
    """train/<class>/*.jpg and test/<class>/*.jpg of real CIFAR-10 cats and dogs, mixed sizes."""
    from PIL import Image

    x, y = load_dataset("cifar10").numpy("test")
    root = tmp_path_factory.mktemp("catdog")
    for split, (start, n) in {"train": (0, 60), "test": (500, 20)}.items():
        for label, name in ((3, "cat"), (5, "dog")):
            (root / split / name).mkdir(parents=True)
            idx = np.flatnonzero(y == label)[start:start + n]
            for k, i in enumerate(idx):
                size = 32 + 8 * (k % 3)  # 32, 40 or 48 pixels: sizes differ, as in hotdog
                Image.fromarray(x[i]).resize((size, size)).save(root / split / name / f"{k}.jpg")
    return root


def test_image_folders_of_mixed_sizes_train_like_the_seeds_hotdog(catdog_folders, tmp_path):
    """The hotdog recipe's data path: train/<class>/*.jpg, test/<class>/*.jpg of varying sizes."""
    from bench.train.recipes import Recipe

    root = catdog_folders
    recipe = Recipe(name="folders", model="small_cnn", dataset=str(root), epochs=1, batch_size=20,
                    image_size=(32, 32), val_fraction=0.0, optimizer="adam", lr=1e-3,
                    model_options={"widths": (8, 8, 8)}, augment={"horizontal_flip": True})
    record = train(recipe, tmp_path / "run", verbose=0)
    assert record["class_names"] == ["cat", "dog"]
    assert record["data_sizes"] == {"train": 120, "val": 0, "test": 40}
    assert record["epochs_done"] == 1 and (tmp_path / "run" / "model.keras").exists()
    with pytest.raises(ValueError, match="val_fraction must be 0"):
        train(recipe.replace(val_fraction=0.1), tmp_path / "run2", verbose=0)


@pytest.mark.slow  # a long real run: make test-all
def test_seeds_hotdog_resnet50_recipe_runs_on_image_folders(catdog_folders, tmp_path):
    # the seed's recipe (ResNet50 + Flatten + Dense(2), adam, batch 32) end to end; here without
    # ImageNet weights (Keras downloads them; no internet) and at 32x32 to stay small
    from bench.train.cli import main

    out = tmp_path / "hotdog"
    assert main(["--recipe", "hotdog_resnet50", "--dataset", str(catdog_folders), "--weights", "none",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "40", "--quiet",
                 "--out", str(out)]) == 0
    record = json.loads((out / "recipe.json").read_text())
    assert record["recipe"]["finetune"] == {"backbone": "resnet50", "head": "flatten", "weights": None}
    assert record["class_names"] == ["cat", "dog"] and record["input_shape"] == [32, 32, 3]
    assert keras.saving.load_model(out / "model.keras").get_layer("flatten") is not None


def test_a_one_class_folder_is_refused_before_anything_is_written(mnist, tmp_path, capsys):
    """It used to train (splits 3/0/3, num_classes 1... or a silent empty second class) and report
    100% test top-1, with the run files written."""
    from bench.train.cli import main
    from tests.test_data_folders import write_folder

    folder = write_folder(tmp_path / "one", mnist, [7], per_class=3, fmt="PNG")
    out = tmp_path / "runs" / "one"
    assert main(["--model", "small_cnn", "--dataset", str(folder), "--epochs", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {folder / 'train'}: a classifier needs at least 2 class folders, found only '7'; "
                   "put each class's images in train/<class>/ and test/<class>/\n")
    assert not (tmp_path / "runs").exists()


def test_a_class_subset_or_a_cut_that_leaves_a_class_without_images_is_refused(mnist, tmp_path):
    from bench.train.splits import make_splits

    one = get_recipe("mnist_tiny").replace(train_classes=(3,), **SMALL)
    with pytest.raises(ValueError, match=r"1 class \(3\); a classifier needs at least 2 classes"):
        train(one, tmp_path / "one", dataset=mnist, verbose=0)
    assert not (tmp_path / "one").exists()
    cut = get_recipe("mnist_tiny").replace(limit_train=5, batch_size=2, val_fraction=0.0)
    with pytest.raises(ValueError) as err:  # MNIST's first five labels are 5 0 4 1 9
        make_splits(mnist, cut, seed=0, augmentation=None)
    assert str(err.value) == ("recipe 'mnist_tiny': the train split of the first 5 (--limit-train) has no "
                              "images of class '2', '3', '6', '7', '8'; every class needs at least one image "
                              "in every split; raise --limit-train")
