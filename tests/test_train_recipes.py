"""Recipes, schedules, optimisers, GoogLeNet's auxiliary losses, the CLI and the preview PNG."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import zoo
from bench.data import load_dataset
from bench.train import RECIPES, get_recipe, recipe_names
from bench.train.cli import main
from bench.train.fit import compile_model, make_optimizer
from bench.train.preview import augment_preview
from bench.train.recipes import Recipe
from bench.train.schedules import OneCycle, WarmupCosine, make_schedule
from bench.train.splits import make_splits


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_valid_and_names_a_known_model(name):
    recipe = get_recipe(name)
    assert recipe.model in zoo.names() or recipe.finetune is not None
    assert recipe.expect
    if recipe.finetune:
        from zoo import transfer
        assert recipe.finetune["backbone"] in transfer.BACKBONES


def test_required_recipes_exist():
    names = set(recipe_names())
    assert {"mnist_cnn", "mnist_alexnet", "fashion_mnist_airbench", "cifar10_resnet18",
            "cifar10_airbench_cpu", "cifar100_resnet18", "cifar10_googlenet",
            "catdog_efficientnet_lite0_finetune", "catdog_efficientnet_lite0_scratch",
            "hotdog_resnet50"} <= names
    seed = get_recipe("mnist_alexnet")  # the seed's: SGD 0.01, no momentum, batch 128, pad to 227
    assert (seed.optimizer, seed.lr, seed.momentum, seed.batch_size) == ("sgd", 0.01, 0.0, 128)
    assert (seed.image_size, seed.resize_method) == ((227, 227), "pad")
    assert get_recipe("cifar10_googlenet").aux_loss_weight == 0.3


@pytest.mark.parametrize("fields, words", [
    (dict(optimizer="rmsprop"), "optimizer 'rmsprop'"),
    (dict(schedule="step"), "schedule 'step'"),
    (dict(label_smoothing=1.5), "label_smoothing"),
    (dict(schedule="warmup_cosine", warmup_epochs=2), "warmup_epochs (2) must be less than epochs (1)"),
    (dict(augment={"rotate": 5}), "unknown augmentation option"),
    (dict(finetune={"backbone": "efficientnet_lite0", "layers": 3}), "unknown finetune keys"),
])
def test_bad_recipe_fields_are_named(fields, words):
    base = dict(name="x", model="small_cnn", dataset="mnist", epochs=1, batch_size=8)
    with pytest.raises(ValueError) as err:
        Recipe(**{**base, **fields})
    assert words in str(err.value)


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid recipes: .*mnist_cnn"):
        get_recipe("mnist_huge")


def test_warmup_cosine_rises_then_decays():
    s = WarmupCosine(0.1, total_steps=100, warmup_steps=10)
    lr = [float(s(i)) for i in range(100)]
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)
    assert lr[10] == pytest.approx(0.1)
    assert lr[55] == pytest.approx(0.05, abs=2e-3)  # half-way through the cosine
    assert lr[99] < 1e-3 and all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_one_cycle_peaks_where_asked():
    s = OneCycle(1.0, total_steps=100, peak_at=0.25, start_fraction=0.1, end_fraction=0.0)
    lr = [float(s(i)) for i in range(101)]
    assert lr[0] == pytest.approx(0.1) and lr[25] == pytest.approx(1.0) and lr[100] == pytest.approx(0.0)
    assert int(np.argmax(lr)) == 25
    assert make_schedule("constant", 0.5, 10) == 0.5
    with pytest.raises(ValueError, match="valid: constant, warmup_cosine, one_cycle"):
        make_schedule("cyclic", 0.5, 10)


@pytest.mark.parametrize("optimizer, cls, nesterov", [
    ("sgd", "SGD", False), ("sgd_nesterov", "SGD", True), ("adam", "Adam", None), ("adamw", "AdamW", None)])
def test_optimisers(optimizer, cls, nesterov):
    recipe = get_recipe("mnist_tiny").replace(optimizer=optimizer, weight_decay=1e-4)
    opt = make_optimizer(recipe, 0.01)
    assert type(opt).__name__ == cls and opt.weight_decay == pytest.approx(1e-4)
    if nesterov is not None:
        assert opt.nesterov is nesterov


def test_googlenet_trains_on_main_plus_0_3_of_each_auxiliary_loss():
    x, y = load_dataset("cifar10").numpy("test")
    x, y = x[:16].astype("float32") / 255.0, tf.one_hot(y[:16], 10)
    model = zoo.build("googlenet", input_shape=(32, 32, 3), num_classes=10, aux_outputs=True)
    compile_model(model, get_recipe("cifar10_googlenet"), total_steps=10)
    logs = model.evaluate(x, (y, y, y), return_dict=True, verbose=0)
    expected = logs["predictions_loss"] + 0.3 * (logs["aux1_predictions_loss"] + logs["aux2_predictions_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert "predictions_top1" in logs


def test_splits_hold_out_validation_and_subset_classes():
    cifar = load_dataset("cifar10")
    recipe = get_recipe("catdog_efficientnet_lite0_finetune").replace(image_size=(40, 40), batch_size=50)
    splits = make_splits(cifar, recipe, seed=0, augmentation=None, num_outputs=3)
    assert splits.class_names == ["cat", "dog"]
    assert splits.sizes == {"train": 900, "val": 100, "test": 2000}
    assert splits.input_shape == (40, 40, 3)
    images, targets = next(iter(splits.train))
    assert images.shape == (50, 40, 40, 3) and len(targets) == 3 and targets[0].shape == (50, 2)
    labels = np.concatenate([np.argmax(t[0], -1) for _, t in splits.test])
    assert np.bincount(labels).tolist() == [1000, 1000]


def test_cli_errors_are_clear(capsys, tmp_path):
    # no tuned recipe for AlexNet on Fashion-MNIST: the default keeps 28x28, too small for AlexNet
    assert main(["--model", "alexnet", "--dataset", "fashion_mnist", "--out", str(tmp_path / "ax")]) == 2
    assert "too small" in (err := capsys.readouterr().err) and "--image-size" in err
    with pytest.raises(SystemExit):
        main(["--model", "small_cnn"])
    assert "give --model and --dataset, or --recipe" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--recipe", "mnist_cnn", "--dataset", "cifar10"])
    assert "trains small_cnn on mnist" in capsys.readouterr().err
    assert main(["recipes"]) == 0
    assert "cifar10_airbench_cpu" in capsys.readouterr().out


def test_augment_preview_png(tmp_path):
    out = augment_preview(load_dataset("mnist"), {"rotation_range": 30, "zoom_range": 0.2},
                          tmp_path / "aug.png", n_images=4, n_draws=2)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert main(["augment-preview", "--dataset", "mnist", "--augment", "cifar10_resnet18",
                 "--out", str(tmp_path / "recipe.png")]) == 0
    assert (tmp_path / "recipe.png").stat().st_size > 5_000


@pytest.mark.parametrize("name", ["catdog_efficientnet_lite0_finetune", "mnist_alexnet", "cifar10_googlenet"])
def test_recipe_round_trips_through_json(name):
    import json

    recipe = get_recipe(name)
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))).to_dict() == recipe.to_dict()
