"""Every classic architecture builds and runs; the reference ones match keras.applications."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.googlenet import main_output_model

CLASSIC = [
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg", "googlenet", "inception_v2",
    "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
]  # fmt: skip

# Built with weights=None (offline): the counts the issue pins, plus the rest of the families.
REFERENCES = {
    "resnet50": (keras.applications.ResNet50, (224, 224, 3), 25_636_712),
    "resnet101": (keras.applications.ResNet101, (224, 224, 3), None),
    "resnet152": (keras.applications.ResNet152, (224, 224, 3), None),
    "vgg16": (keras.applications.VGG16, (224, 224, 3), 138_357_544),
    "vgg19": (keras.applications.VGG19, (224, 224, 3), None),
    "inception_v3": (keras.applications.InceptionV3, (299, 299, 3), 23_851_784),
}
# Forward passes at full size cost the most for these; their 224 build still runs the count check.
SKIP_BIG_FORWARD = {"vgg19", "resnet152"}


def forward(model: keras.Model, side: int, channels: int) -> np.ndarray:
    images = tf.random.stateless_uniform((1, side, side, channels), seed=(1, 2))
    return keras.ops.convert_to_numpy(model(images, training=False))


def fit_side(name: str, side: int) -> int:
    """The side the data pipeline would resize to: the image's own, or the model's smallest."""
    return max(side, zoo.spec(name).min_input_size)


def check_probabilities(probs: np.ndarray, num_classes: int) -> None:
    assert probs.shape == (1, num_classes)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_registry_holds_every_classic_architecture():
    assert set(CLASSIC) <= set(zoo.names())


# "vgg" with its default conv_arch is vgg11; it is built at full size only through vgg11.
@pytest.mark.parametrize("name", [n for n in CLASSIC if n != "vgg"])
def test_full_size_build_params_and_forward(name):
    shape = REFERENCES[name][1] if name in REFERENCES else (224, 224, 3)
    model = zoo.build(name, shape, 1000)
    assert model.__class__.__name__ == "Functional"
    if name in REFERENCES:
        reference_fn, ref_shape, pinned = REFERENCES[name]
        reference = reference_fn(weights=None, input_shape=ref_shape, classes=1000)
        if pinned is not None:
            assert reference.count_params() == pinned
        assert model.count_params() == reference.count_params()
        if name == "inception_v3":  # layer names differ (ours follow the stages), shapes do not
            ours = sorted(tuple(w.shape) for w in model.weights)
            assert ours == sorted(tuple(w.shape) for w in reference.weights)
        else:  # ResNet and VGG: same layer names and shapes, so summaries read alike
            assert weight_shapes_by_layer(model) == weight_shapes_by_layer(reference)
        del reference
    if name not in SKIP_BIG_FORWARD:
        check_probabilities(forward(model, shape[0], 3), 1000)


def weight_shapes_by_layer(model: keras.Model) -> dict[str, list[tuple[int, ...]]]:
    return {l.name: [tuple(w.shape) for w in l.weights] for l in model.layers if l.weights}


@pytest.mark.parametrize("name", CLASSIC)
def test_small_inputs_forward(name):
    # 28x28x1 (MNIST-like), resized up to the model's smallest size where it needs more.
    side = fit_side(name, 28)
    model = zoo.build(name, (side, side, 1), 10)
    images = tf.image.resize(tf.random.stateless_uniform((1, 28, 28, 1), seed=(3, 4)), (side, side))
    check_probabilities(keras.ops.convert_to_numpy(model(images, training=False)), 10)
    # 32x32x3 (CIFAR-like)
    side = fit_side(name, 32)
    model = zoo.build(name, (side, side, 3), 10)
    check_probabilities(forward(model, side, 3), 10)


def test_logits_without_classifier_activation():
    model = zoo.build("resnet18", (32, 32, 3), 10, classifier_activation=None)
    logits = forward(model, 32, 3)
    assert logits.shape == (1, 10)
    assert model.get_layer("predictions").activation is keras.activations.linear
    assert not np.isclose(logits.sum(), 1.0)


def test_resnet_stem_follows_input_size_and_can_be_forced():
    assert zoo.build("resnet18", (32, 32, 3), 10).get_layer("conv1_conv").kernel_size == (3, 3)
    assert zoo.build("resnet18", (96, 96, 3), 10).get_layer("conv1_conv").kernel_size == (7, 7)
    forced = zoo.build("resnet18", (96, 96, 3), 10, small_input=True)
    assert forced.get_layer("conv1_conv").kernel_size == (3, 3)
    assert "pool1_pool" not in [l.name for l in forced.layers]
    # The CIFAR stem keeps the input size into conv2 (total stride 8, not 32).
    assert forced.get_layer("conv2_block2_out").output.shape[1:3] == (96, 96)
    imagenet = zoo.build("resnet18", (64, 64, 3), 10, small_input=False)
    assert imagenet.get_layer("conv5_block2_out").output.shape[1:3] == (2, 2)


def test_resnet18_follows_the_seed_block():
    model = zoo.build("resnet18", (224, 224, 3), 1000)
    names = {l.name for l in model.layers}
    # 1x1 strided projection only where the shape changes, and without BN (as the seed).
    assert "conv2_block1_0_conv" not in names
    assert model.get_layer("conv3_block1_0_conv").strides == (2, 2)
    assert "conv3_block1_0_bn" not in names
    assert model.get_layer("conv5_block2_out").output.shape[1:] == (7, 7, 512)


def test_alexnet_is_the_seed_layer_list():
    model = zoo.build("alexnet", (227, 227, 3), 10)
    convs = [(l.filters, l.kernel_size, l.strides) for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs == [(96, (11, 11), (4, 4)), (256, (5, 5), (1, 1)), (384, (3, 3), (1, 1)),
                     (384, (3, 3), (1, 1)), (256, (3, 3), (1, 1))]  # fmt: skip
    assert model.get_layer("flatten").output.shape[-1] == 6 * 6 * 256
    dense = [l.units for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert dense == [4096, 4096, 10]
    assert [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)] == [0.5, 0.5]


def test_vgg_from_any_conv_arch():
    model = zoo.build("vgg", (32, 32, 1), 10, conv_arch=((1, 16), (2, 32)))
    convs = [l.filters for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs == [16, 32, 32]
    assert model.get_layer("flatten").output.shape[-1] == 8 * 8 * 32
    check_probabilities(forward(model, 32, 1), 10)


def test_googlenet_training_model_has_three_outputs(record_property):
    train = zoo.build("googlenet", (224, 224, 3), 1000, aux_outputs=True)
    assert train.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    outputs = train(tf.zeros((2, 224, 224, 3)), training=False)
    assert [tuple(o.shape) for o in outputs] == [(2, 1000)] * 3
    # The paper's aux heads: 4x4x128 after the 5/3 average pool at 224x224.
    assert train.get_layer("aux1_conv").output.shape[1:] == (4, 4, 128)
    assert train.get_layer("aux2_dropout").rate == 0.7

    infer = zoo.build("googlenet", (224, 224, 3), 1000)
    main_params = infer.count_params()
    print(f"\nGoogLeNet main branch at 224x224x3/1000: {main_params:,} params (paper: ~6.8M)")
    record_property("googlenet_main_params_224_1000", main_params)  # in --junitxml reports
    assert 6.5e6 < main_params < 7.2e6
    assert train.count_params() > main_params

    # Same layer names: weights move between the two by name, and the cut model agrees.
    by_name = {l.name: l for l in train.layers}
    for layer in infer.layers:
        layer.set_weights(by_name[layer.name].get_weights())
    images = tf.random.stateless_uniform((1, 224, 224, 3), seed=(5, 6))
    cut = main_output_model(train)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(infer(images, training=False)),
        keras.ops.convert_to_numpy(cut(images, training=False)),
        rtol=1e-5, atol=1e-6,
    )


def test_googlenet_aux_outputs_at_cifar_size():
    train = zoo.build("googlenet", (32, 32, 3), 10, aux_outputs=True)
    outputs = train(tf.zeros((1, 32, 32, 3)), training=False)
    assert [tuple(o.shape) for o in outputs] == [(1, 10)] * 3


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_saves_and_reloads(tmp_path, name):
    model = zoo.build(name, (32, 32, 3), 10)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    images = tf.random.stateless_uniform((1, 32, 32, 3), seed=(7, 8))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images, training=False)),
        keras.ops.convert_to_numpy(reloaded(images, training=False)),
        rtol=1e-5, atol=1e-6,
    )


def test_real_mnist_through_the_pipeline_resize_into_alexnet(mnist):
    """The workflow the too-small error suggests: resize (here with padding) in the data pipeline."""
    side = zoo.spec("alexnet").min_input_size
    batches = mnist.pipeline("test", 2, image_size=(side, side), resize_method="pad", limit=2)
    images, labels = next(iter(batches))
    assert tuple(images.shape) == (2, side, side, 1)
    model = zoo.build("alexnet", (side, side, 1), mnist.num_classes)
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_real_cifar10_into_resnet18_cifar_stem(cifar10):
    images, _ = next(iter(cifar10.pipeline("test", 2, limit=2)))
    model = zoo.build("resnet18", cifar10.image_shape, cifar10.num_classes)
    assert model.get_layer("conv1_conv").strides == (1, 1)
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
