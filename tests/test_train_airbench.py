"""airbench94's techniques in the toolkit: the whitening stem, test-time augmentation inside the
shipped model, and a short real run of the MNIST speed-record recipe (mnist_airbench94)."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from bench.train import get_recipe, train
from zoo.airbench import TTAViews, whitening_kernel, with_tta

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_whitening_kernel_decorrelates_the_patches_it_was_computed_from():
    rng = np.random.default_rng(0)
    # correlated 2-channel images: channel 1 is mostly channel 0
    a = rng.normal(size=(200, 8, 8, 1)).astype(np.float32)
    x = np.concatenate([a, 0.9 * a + 0.1 * rng.normal(size=a.shape)], axis=-1).astype(np.float32)
    kernel, evals = whitening_kernel(x, eps=1e-6)
    assert kernel.shape == (2, 2, 2, 16) and np.all(np.diff(evals) <= 0)
    patches = np.stack([x[:, i:7 + i, j:7 + j, :] for i in range(2) for j in range(2)], axis=3).reshape(-1, 8)
    out = patches @ kernel.reshape(8, 16)[:, :8]  # the + half
    cov = out.T @ out / len(out)
    assert np.allclose(cov, np.eye(8), atol=1e-2), np.round(cov, 3)


def test_tta_model_is_the_weighted_mean_of_the_views_logits():
    inputs = keras.Input((6, 6, 1))
    net = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(1).random((4, 6, 6, 1)).astype(np.float32)
    views = TTAViews(2, flip=False)
    shifted = np.asarray(views(x)).reshape(3, 4, 6, 6, 1)
    assert np.array_equal(shifted[0], x)
    logits = [np.asarray(net(v)) for v in shifted]
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(0.5 * logits[0] + 0.25 * logits[1] + 0.25 * logits[2]))
    np.testing.assert_allclose(np.asarray(with_tta(net, 2, flip=False)(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # about 25 s on a quiet 2-core machine (two test-set passes with 3 TTA views)
def test_mnist_record_recipe_ships_its_tta_model_with_the_recorded_accuracy(mnist, tmp_path):
    recipe = get_recipe("mnist_airbench94")
    assert (recipe.epochs, recipe.batch_size, recipe.precision) == (2, 256, "float32")
    assert recipe.model_options["widths"] == (16, 32, 64) and recipe.tta == {"level": 2, "flip": False}
    # a short run of the same recipe: 4,096 images, 2 epochs of 16 steps
    record = train(recipe.replace(limit_train=4096), tmp_path / "run", dataset=mnist, verbose=0)
    assert record["plan"]["steps_done"] == record["plan"]["steps_planned"] == 32
    assert record["precision"] == "float32" and record["data_init"]["images"] == 4096
    assert len(record["data_init"]["whitening_eigenvalues"]) == 4  # 2x2 patches of 1 channel
    assert set(record["test_top1_tta"]) == {"level0", "level2"}  # no flips for digits
    assert record["test_top1"] == record["test_top1_tta"]["level2"] > 0.5
    assert record["time_target"]["target_s_reference"] == 90
    assert record["accuracy_target"]["target"] == 0.994
    # the exported model computes the recorded (TTA) accuracy on its own
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert any(isinstance(layer, TTAViews) for layer in model.layers)
    x, y = mnist.numpy("test")
    pred = np.argmax(model.predict(x.astype("float32") / 255.0, batch_size=500, verbose=0), -1)
    assert np.mean(pred == y) == pytest.approx(record["test_top1"], abs=2e-4)
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["test_top1"] == record["test_top1"]


@keras.saving.register_keras_serializable(package="tests.airbench")
class _TrainerOnlySGD(keras.optimizers.SGD):
    """An optimizer only the training process knows (like bench.train.optim.TorchSGD)."""


def test_shipped_tta_model_loads_where_the_trainer_code_is_absent(tmp_path):
    """The shipped file must not carry the trainer's optimizer: a compiled net inside with_tta once
    made runs/cifar10_airbench94/model.keras unloadable by the benchmark."""
    import subprocess
    import sys

    net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(10)], name="net")
    net.compile(optimizer=_TrainerOnlySGD(0.1), loss="mse")
    shipped = with_tta(net, level=2, flip=True, logits=True)
    shipped.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", shipped.predict(x, verbose=0))
    code = ("import numpy as np, zoo, sys; m = zoo.load_model(sys.argv[1] + '/model.keras'); "
            "x = np.load(sys.argv[1] + '/x.npy'); "
            "assert np.abs(m.predict(x, verbose=0) - np.load(sys.argv[1] + '/y.npy')).max() < 1e-6")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
