"""Mixed-precision training runs (the CIFAR-10 CPU recipe trains in bfloat16) and the
airbench network it uses: the exported model computes in float32, the caller's dtype policy
survives, and augmentation stays float32 pipeline work."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from bench.data import load_dataset
from bench.train import get_recipe, train
from bench.train.augment import build_augmentation
import zoo
from bench.train.recipes import Recipe
from bench.plumbing.environment import has_bf16_hardware
from bench.train.machine import training_precision


@pytest.fixture
def float32_policy():
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_airbench_net_builds_for_cifar_and_mnist_sizes(shape):
    model = zoo.build("airbench_net", input_shape=shape, num_classes=10)
    # airbench94's widths 64/256/256 and 24-filter stem: 1,975,096 parameters at 3 channels;
    # a grayscale input drops two input channels of the 2x2x24 stem kernel
    assert model.count_params() == 1_975_096 - (3 - shape[2]) * 2 * 2 * 24
    images = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_airbench_net_logits_are_scaled_by_one_ninth():
    model = zoo.build("airbench_net", input_shape=(32, 32, 3), num_classes=10, classifier_activation=None)
    features = keras.Model(model.inputs, model.get_layer("logits").output)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(features(x)) / 9.0, rtol=1e-5, atol=1e-7)


def test_augmentation_computes_in_float32_under_a_mixed_policy(float32_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    aug = build_augmentation({"crop_padding": 4, "horizontal_flip": True, "rotation_range": 10}, seed=0)
    assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the caller's policy is kept
    x, _ = load_dataset("cifar10").numpy("test")
    out = aug(x[:8].astype("float32") / 255.0, training=True)
    assert out.dtype == "float32" and out.shape == (8, 32, 32, 3)
    assert {layer.dtype_policy.name for layer in aug.layers} == {"float32"}


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Recipe(name="x", model="small_cnn", dataset="mnist", epochs=1, batch_size=8, precision="fp8")


@pytest.mark.slow  # a long real run: make test-all
def test_bfloat16_run_exports_a_float32_model_and_restores_the_policy(tmp_path, float32_policy):
    recipe = get_recipe("cifar10_airbench_cpu").replace(
        epochs=1, batch_size=64, limit_train=1_024, val_fraction=0.0625, time_budget_s=None)
    assert recipe.precision == "mixed_bfloat16"
    cifar = load_dataset("cifar10")
    record = train(recipe, tmp_path / "run", dataset=cifar, seed=0, verbose=0)
    assert keras.config.dtype_policy().name == "float32"
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    # mixed_bfloat16 where the CPU computes bfloat16; elsewhere (emulated: ~9x slower) float32, and why
    chosen = "mixed_bfloat16" if has_bf16_hardware() else "float32"
    assert saved["precision"] == saved["recipe"]["precision"] == chosen
    assert saved["precision_requested"] == "mixed_bfloat16" and chosen in saved["precision_reason"]
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    # the recorded test accuracy is the float32 export's
    x, y = cifar.numpy("test")
    pred = np.argmax(model.predict(x.astype("float32") / 255.0, batch_size=1000, verbose=0), -1)
    assert np.mean(pred == y) == pytest.approx(record["test_top1"], abs=1e-4)
    # one epoch on 960 images learns something: well above the 10% of chance
    assert record["test_top1"] > 0.15, record["test_top1"]


def test_precision_follows_the_cpus_bfloat16_support():
    assert training_precision("mixed_bfloat16", flags=["avx2", "avx512_bf16"])[0] == "mixed_bfloat16"
    chosen, why = training_precision("mixed_bfloat16", flags=["avx2", "fma"])
    assert chosen == "float32" and "no avx512_bf16 or amx_bf16" in why
    forced, why = training_precision("mixed_bfloat16", explicit=True, flags=["avx2"])
    assert forced == "mixed_bfloat16" and "forced by --precision" in why
    assert training_precision("float32", flags=["avx2"])[0] == "float32"
