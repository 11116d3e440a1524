"""FLOPs come from TensorFlow's profiler, with a multiply-add counted as 2."""
from __future__ import annotations

import keras
import pytest

import zoo
from zoo.__main__ import main


def test_conv_and_dense_count_a_multiply_add_as_two():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, use_bias=False)(x)
    model = keras.Model(inputs, outputs)
    conv_macs = 8 * 8 * 4 * (3 * 3 * 2)
    dense_macs = (8 * 8 * 4) * 5
    assert zoo.flops_per_image(model) == 2 * (conv_macs + dense_macs)


@pytest.mark.slow  # a long real run: make test-all
def test_resnet50_at_224_is_about_4_gmacs(record_property):
    flops = zoo.flops_per_image(zoo.build("resnet50", (224, 224, 3), 1000))
    print(f"\nResNet-50 224x224: {flops / 1e9:.3f} GFLOPs")
    record_property("resnet50_flops_224", flops)
    assert 7.7e9 <= flops <= 8.2e9


def test_flops_grow_with_input_area():
    small = zoo.flops_per_image(zoo.build("resnet18", (32, 32, 3), 10))
    large = zoo.flops_per_image(zoo.build("resnet18", (64, 64, 3), 10, small_input=True))
    assert large == pytest.approx(4 * small, rel=0.01)


def test_cli_list_and_summary(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for name in ("alexnet", "vgg19", "googlenet", "inception_v2", "resnet152"):
        assert name in listing
    assert main(["summary", "resnet18", "--input-shape", "32,32,3", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    params = zoo.build("resnet18", (32, 32, 3), 10).count_params()
    assert f"parameters: {params:,}" in out
    assert "conv2_block1_1_conv" in out
    assert "FLOPs per image:" in out and "multiply-add counts as 2" in out
    assert main(["summary", "vgg", "--input-shape", "32,32,1", "--classes", "10",
                 "--option", "conv_arch=((1,16),(1,32))", "--no-flops"]) == 0  # fmt: skip
    assert "block2_conv1" in capsys.readouterr().out
