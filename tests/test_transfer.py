"""Transfer learning: frozen pretrained backbone + new head, fine-tuning the top, local weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import zoo
from zoo import efficientnet_lite, sample_photos, transfer

SIZE = 64  # small real-photo crops keep the training steps quick


@pytest.fixture(scope="module")
def two_class_photos() -> tuple[np.ndarray, np.ndarray]:
    """Four real photos at 64x64, labelled cat-like (chelsea, astronaut) vs object (coffee, rocket)."""
    from PIL import Image

    names = ["chelsea", "astronaut", "coffee", "rocket"]
    x = np.stack([
        np.asarray(Image.fromarray(sample_photos.load(n)).resize((SIZE, SIZE), Image.BILINEAR),
                   dtype=np.float32) / 255.0
        for n in names
    ])
    return x, np.array([0, 0, 1, 1])


def _weights(layer) -> list[np.ndarray]:
    return [np.array(w) for w in layer.get_weights()]


def _fit(model, x, y, lr):
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)


def test_head_learns_while_backbone_and_batchnorm_stay_fixed(two_class_photos):
    x, y = two_class_photos
    model = transfer.build_transfer_model("efficientnet_lite0", (SIZE, SIZE, 3), num_classes=2, head="gap")
    backbone = model.get_layer("backbone")
    reference = efficientnet_lite.imagenet_reference_model()
    np.testing.assert_array_equal(backbone.get_layer("block5a_dwconv").get_weights()[0],
                                  reference.get_layer("block5a_dwconv").get_weights()[0])
    head = [w.path for w in model.trainable_weights]
    assert len(head) == 2 and all("predictions" in p for p in head)

    before_bn, before_conv = _weights(backbone.get_layer("top_bn")), _weights(backbone.get_layer("top_conv"))
    before_head = _weights(model.get_layer("predictions"))
    _fit(model, x, y, lr=0.1)
    # Moving mean/variance too: the backbone runs in inference mode while the head trains.
    for got, want in zip(_weights(backbone.get_layer("top_bn")) + _weights(backbone.get_layer("top_conv")),
                         before_bn + before_conv):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(_weights(model.get_layer("predictions"))[0], before_head[0])

    # Phase 2: the top layers train, BatchNorm (weights and statistics) and lower layers do not.
    unfrozen = transfer.unfreeze_top(model, 6)
    assert unfrozen == ["block7a_project_conv", "top_conv"]
    assert not backbone.get_layer("top_bn").trainable
    before_low = _weights(backbone.get_layer("block6d_project_conv"))
    # Swapped labels: the head already fits these four photos, so their own labels would leave
    # almost no gradient for the unfrozen layers; the swapped ones make it large.
    _fit(model, x, 1 - y, lr=0.1)
    assert not np.allclose(_weights(backbone.get_layer("top_conv"))[0], before_conv[0])
    for got, want in zip(_weights(backbone.get_layer("top_bn")), before_bn):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_weights(backbone.get_layer("block6d_project_conv"))[0], before_low[0])


def test_flatten_head_is_the_seeds_flatten_dense():
    model = transfer.build_transfer_model("efficientnet_lite0", (SIZE, SIZE, 1), num_classes=3,
                                          head="flatten", dropout=0.0)
    features = (SIZE // 32) ** 2 * 1280
    assert model.get_layer("flatten").output.shape == (None, features)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == features * 3 + 3
    probs = np.asarray(model(np.zeros((2, SIZE, SIZE, 1), np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_random_backbone_trains_entirely_for_a_scratch_baseline():
    model = transfer.build_transfer_model("efficientnet_lite0", (32, 32, 3), num_classes=2, weights=None)
    assert len(model.trainable_weights) > 100


def test_registered_by_name():
    assert {"efficientnet_lite0", "efficientnet_lite0_transfer", "resnet50_transfer"} <= set(zoo.names())
    model = zoo.build("efficientnet_lite0_transfer", input_shape=(32, 32, 3), num_classes=4, head="flatten")
    assert model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="valid options"):
        zoo.build("efficientnet_lite0_transfer", input_shape=(32, 32, 3), num_classes=4, heads="gap")


def test_unfreeze_top_rejects_bad_counts():
    model = transfer.build_transfer_model("efficientnet_lite0", (32, 32, 3), num_classes=2)
    with pytest.raises(ValueError, match="between 1 and"):
        transfer.unfreeze_top(model, 0)
    with pytest.raises(ValueError, match="between 1 and"):
        transfer.unfreeze_top(model, 10_000)
    with pytest.raises(ValueError, match="no layer named 'backbone'"):
        transfer.unfreeze_top(zoo.build("efficientnet_lite0", input_shape=(32, 32, 3)), 3)


def test_bad_arguments_say_what_is_valid():
    with pytest.raises(ValueError, match="valid backbones: efficientnet_lite0, resnet50"):
        transfer.build_transfer_model("vgg16", (32, 32, 3), 2)
    with pytest.raises(ValueError, match="valid heads: gap, flatten"):
        transfer.build_transfer_model("efficientnet_lite0", (32, 32, 3), 2, head="pool")
    with pytest.raises(ValueError, match="channels"):
        transfer.build_transfer_model("efficientnet_lite0", (32, 32, 2), 2)
    with pytest.raises(ValueError, match="smallest input is 32x32"):
        transfer.build_transfer_model("resnet50", (28, 28, 1), 2, weights=None)


@pytest.fixture(scope="module")
def resnet50_weights(tmp_path_factory):
    """A top-less ResNet50 weights file, saved by the test (Keras' ImageNet file needs internet)."""
    keras.utils.set_random_seed(3)
    resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    resnet.save_weights(path)
    return path, resnet


def test_resnet50_backbone_from_a_local_weights_file(resnet50_weights):
    path, saved = resnet50_weights
    model = transfer.build_transfer_model("resnet50", (32, 32, 3), num_classes=2, weights=str(path))
    loaded = model.get_layer("backbone").get_layer("resnet50")
    for name in ("conv1_conv", "conv3_block2_2_bn", "conv5_block3_3_conv"):
        for got, want in zip(loaded.get_layer(name).get_weights(), saved.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    unfrozen = transfer.unfreeze_top(model, 7)  # looks inside the nested keras.applications model
    assert unfrozen == ["conv5_block3_2_conv", "conv5_block3_3_conv"]


def test_resnet50_preprocessing_is_keras_caffe_mode():
    x = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32)
    got = np.asarray(transfer.CaffePreprocess()(x))
    want = keras.applications.resnet50.preprocess_input(x * 255.0)
    np.testing.assert_allclose(got, want, atol=1e-4)


# a file of another architecture on purpose: Keras warns about every container it cannot match
@pytest.mark.filterwarnings("ignore:Skipping nested container at:UserWarning")
def test_weights_file_of_another_architecture_names_the_file(resnet50_weights, tmp_path):
    path, _ = resnet50_weights
    with pytest.raises(ValueError, match="resnet50_notop.weights.h5"):
        transfer.build_transfer_model("efficientnet_lite0", (32, 32, 3), num_classes=2, weights=str(path))
    lite = efficientnet_lite.build_efficientnet_lite0((32, 32, 3), include_top=False)
    lite_path = tmp_path / "lite0_notop.weights.h5"
    lite.save_weights(lite_path)
    with pytest.raises(ValueError, match="lite0_notop.weights.h5"):
        transfer.build_transfer_model("resnet50", (32, 32, 3), num_classes=2, weights=str(lite_path))


def test_transfer_model_round_trips_through_keras_file(tmp_path, resnet50_weights):
    path, _ = resnet50_weights
    model = transfer.build_transfer_model("resnet50", (32, 32, 3), num_classes=2, weights=str(path))
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    model.save(tmp_path / "resnet50_transfer.keras")
    restored = keras.models.load_model(tmp_path / "resnet50_transfer.keras")
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), atol=1e-5)
