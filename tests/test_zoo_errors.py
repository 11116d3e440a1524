"""Bad input to zoo.build and the CLI fails with a message that says what to do."""
from __future__ import annotations

import pytest

import zoo
from zoo.__main__ import main


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'resnet99'") as err:
        zoo.build("resnet99", (224, 224, 3), 10)
    for name in ("alexnet", "googlenet", "resnet18", "vgg16", "inception_v3"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "name, shape, smallest",
    [("alexnet", (28, 28, 1), 67), ("inception_v3", (32, 32, 3), 75), ("vgg16", (28, 28, 1), 32),
     ("googlenet", (28, 28, 1), 32)],
)  # fmt: skip
def test_too_small_input_says_smallest_size_and_how_to_resize(name, shape, smallest):
    with pytest.raises(ValueError) as err:
        zoo.build(name, shape, 10)
    message = str(err.value)
    assert f"smallest input is {smallest}x{smallest}" in message
    assert "image_size=" in message and 'resize_method="pad"' in message
    # ... and the smallest size itself builds.
    zoo.build(name, (smallest, smallest, shape[2]), 10)


def test_alexnet_smallest_size_is_exact():
    """67 is the true limit of the valid-padded layers, not a guess: Keras itself rejects 66."""
    import keras

    from zoo import alexnet as family

    with pytest.raises(ValueError):
        family.check_min_size("alexnet", (66, 66, 3), family.MIN_SIZE, 227)
    inputs = keras.Input((66, 66, 3))
    x = keras.layers.Conv2D(96, 11, strides=4)(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2)(keras.layers.MaxPooling2D(3, strides=2)(x))
    with pytest.raises(ValueError):
        keras.layers.MaxPooling2D(3, strides=2)(x)


def test_resnet_forced_imagenet_stem_needs_32():
    with pytest.raises(ValueError, match="smallest input is 32x32"):
        zoo.build("resnet18", (28, 28, 1), 10, small_input=False)
    with pytest.raises(ValueError, match="small_input must be True, False or None"):
        zoo.build("resnet18", (28, 28, 1), 10, small_input="yes")


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True, "10"])
def test_num_classes_must_be_at_least_two(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        zoo.build("resnet18", (32, 32, 3), num_classes)


@pytest.mark.parametrize(
    "conv_arch",
    [(), "64", ((1, 64), (2,)), ((0, 64),), ((1, -8),), ((1.5, 64),), (1, 64), None],
)
def test_malformed_conv_arch(conv_arch):
    with pytest.raises(ValueError, match=r"conv_arch must be a non-empty sequence of \(num_convs, num_filters\)"):
        zoo.build("vgg", (224, 224, 3), 10, conv_arch=conv_arch)


def test_conv_arch_too_deep_for_the_input():
    with pytest.raises(ValueError, match="smallest input is 64x64"):
        zoo.build("vgg", (32, 32, 3), 10, conv_arch=((1, 8),) * 6)


@pytest.mark.parametrize("shape", [(28, 28), (0, 28, 1), (28.0, 28, 1), "224,224,3", None])
def test_malformed_input_shape(shape):
    if shape is None:  # None means the architecture's default, which is valid
        assert zoo.build("resnet18", shape, 10).inputs[0].shape[1:] == (224, 224, 3)
        return
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        zoo.build("resnet18", shape, 10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match="unknown option.*smallinput.*valid options: small_input"):
        zoo.build("resnet18", (32, 32, 3), 10, smallinput=True)
    with pytest.raises(ValueError, match="valid options: none"):
        zoo.build("alexnet", (227, 227, 3), 10, aux_outputs=True)


def test_unknown_classifier_activation():
    with pytest.raises(ValueError, match="unknown classifier_activation 'softmaks'"):
        zoo.build("resnet18", (32, 32, 3), 10, classifier_activation="softmaks")


def test_googlenet_aux_outputs_must_be_bool():
    with pytest.raises(ValueError, match="aux_outputs must be True or False"):
        zoo.build("googlenet", (64, 64, 3), 10, aux_outputs="yes")


def test_cli_rejects_bad_name_and_shape(capsys):
    assert main(["summary", "lenet", "--input-shape", "28,28,1", "--classes", "10"]) == 2
    assert "valid names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["summary", "resnet18", "--input-shape", "28x28"])
    assert "expected H,W,C" in capsys.readouterr().err
