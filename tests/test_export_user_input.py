"""What a new user hands `python -m export` and `export predict`: a 16-bit PNG (it was binarised),
a training run's directory (its artifact was named "model")."""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from export.__main__ import main
from export.package import MANIFEST
from export.predict import classify, preprocess


def tiny_cnn() -> keras.Model:
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="predictions")(x), name="tiny_cnn")


@pytest.fixture(scope="module")
def run_dir(mnist, tmp_path_factory) -> Path:
    """What `bench train` leaves: runs/NAME/model.keras beside recipe.json (a tiny CNN trained for
    a few seconds on real MNIST images)."""
    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(mnist.pipeline("train", 64, shuffle=True, seed=0, limit=2048), epochs=1, verbose=0)
    run = tmp_path_factory.mktemp("runs") / "digits_v2"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "recipe.json").write_text(json.dumps({"recipe": {"name": "mnist_tiny", "dataset": "mnist",
                                                            "resize_method": "resize"}}))
    return run


@pytest.fixture(scope="module")
def artifact(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("art") / "digits"
    assert main([str(run_dir / "model.keras"), "--formats", "onnx", "--parity-images", "256",
                 "--out", str(out)]) == 0
    return out


def test_a_run_directory_names_the_artifact(artifact, run_dir, tmp_path):
    manifest = json.loads((artifact / MANIFEST).read_text())
    assert manifest["model"] == "digits_v2" and manifest["recipe"] == "mnist_tiny"  # was "model"
    # another checkpoint of the run says which; a lone file keeps its own name; --name wins
    import shutil

    shutil.copy(run_dir / "model.keras", tmp_path / "mine.keras")
    for checkpoint, extra, name in ((run_dir / "model.keras", ["--name", "prod"], "prod"),
                                    (tmp_path / "mine.keras", [], "mine")):
        out = tmp_path / f"art_{name}"
        assert main([str(checkpoint), "--formats", "onnx", "--random-images", "4", "--parity-images", "64",
                     "--out", str(out), *extra]) == 0
        assert json.loads((out / MANIFEST).read_text())["model"] == name
    from export.job import RecipeInfo, default_name

    shutil.copy(run_dir / "model.keras", tmp_path / "best.keras")
    assert default_name(tmp_path / "best.keras", RecipeInfo(name="mnist_tiny")) == f"{tmp_path.name}_best"


def test_a_16_bit_png_is_scaled_not_binarised(artifact, mnist, tmp_path):
    x, _ = mnist.numpy("test")
    digit = x[0, :, :, 0]
    eight, sixteen = tmp_path / "digit8.png", tmp_path / "digit16.png"
    Image.fromarray(digit).save(eight)
    Image.fromarray(digit.astype(np.uint16) * 257).save(sixteen)  # the same picture, 16 bits per pixel
    with Image.open(sixteen) as img:
        assert img.mode == "I;16"
        clipped = np.asarray(img.convert("L"), dtype="float32") / 255  # what predict did: values > 255 clip
    preprocessing = json.loads((artifact / MANIFEST).read_text())["preprocessing"]
    a8, a16 = preprocess(eight, preprocessing), preprocess(sixteen, preprocessing)
    np.testing.assert_allclose(a16, a8, atol=1e-6)
    assert np.count_nonzero(np.abs(clipped - digit / 255) > 0.01) > 50  # the old input was another picture

    # the training pipeline's decoder (TensorFlow) reads the 16-bit file the same way
    import tensorflow as tf

    tf_pixels = tf.io.decode_image(tf.io.read_file(str(sixteen)), channels=1).numpy()[:, :, 0]
    np.testing.assert_allclose(a16[:, :, 0], tf_pixels / 255, atol=1 / 255)

    top8, top16 = classify(artifact, [str(eight), str(sixteen)], top_k=3)
    assert [n for n, _ in top16] == [n for n, _ in top8]
    np.testing.assert_allclose([p for _, p in top16], [p for _, p in top8], atol=1e-5)


def test_pixels_without_a_fixed_range_are_refused_by_name(artifact, tmp_path):
    path = tmp_path / "depth.tiff"
    Image.fromarray(np.full((28, 28), 3.5, dtype="float32")).save(path)  # mode F
    preprocessing = json.loads((artifact / MANIFEST).read_text())["preprocessing"]
    with pytest.raises(ValueError) as err:
        preprocess(path, preprocessing)
    assert str(err.value) == (f"{path}: floating-point pixels have no fixed range to scale to [0, 1]; "
                              "save it as an 8- or 16-bit PNG")
