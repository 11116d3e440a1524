"""export.equalize: the channels before a BatchNorm rescaled to unit scale, the function unchanged,
and the int8 model that a per-tensor scale ruined (one huge channel, small ones rounded to zero)
made usable again."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from export.equalize import equalize, pairs


def _model(seed: int = 0) -> keras.Model:
    """conv -> max-pool -> BN (airbench's: no scale, epsilon 1e-12) -> GELU -> classifier, whose
    first channel is 1e5 times larger than the others, as scale-invariant training can leave it."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-12, scale=False, name="bn")(x)
    x = keras.layers.Activation("gelu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    model = keras.Model(inputs, outputs, name="tiny_bn")
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    kernel = np.asarray(conv.kernel)
    kernel[..., 0] *= 1e5
    conv.kernel.assign(kernel)
    # the moving statistics a training run would have: those of the pooled conv outputs
    x = np.random.default_rng(seed).random((256, 12, 12, 1), dtype=np.float32)
    pooled = np.asarray(keras.Model(inputs, model.get_layer("pool").output)(x))
    bn.moving_mean.assign(pooled.mean(axis=(0, 1, 2)))
    bn.moving_variance.assign(pooled.var(axis=(0, 1, 2)))
    return model


def test_finds_conv_pool_batchnorm_and_keeps_the_function():
    model = _model()
    assert [(p.name, b.name) for p, b in pairs(model)] == [("conv", "bn")]
    x = np.random.default_rng(1).random((16, 12, 12, 1), dtype=np.float32)
    before = np.asarray(model(x))
    assert equalize(model) == ["bn"]
    np.testing.assert_allclose(np.asarray(model(x)), before, atol=1e-6)
    pooled = np.asarray(keras.Model(model.inputs, model.get_layer("pool").output)(x))
    spread = pooled.std(axis=(0, 1, 2))
    assert spread.max() / spread.min() < 10, spread   # was about 1e5 before


def test_a_layer_with_a_second_consumer_is_left_alone():
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    other = keras.layers.GlobalAveragePooling2D()(conv)   # sees the conv's scale: cannot rescale it
    out = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(bn), other])
    assert pairs(keras.Model(inputs, out)) == []


def test_int8_of_an_unequalised_model_fails_and_of_the_equalised_one_agrees(tmp_path):
    from export.convert import to_onnx
    from export.quantize import to_onnx_int8
    from export.runtimes import onnxruntime_session

    rng = np.random.default_rng(2)
    calibration = [rng.random((32, 12, 12, 1), dtype=np.float32) for _ in range(4)]
    x = rng.random((256, 12, 12, 1), dtype=np.float32)
    agreement = {}
    for name, fix in (("raw", False), ("equalized", True)):
        model = _model()
        reference = np.argmax(np.asarray(model(x)), -1)
        if fix:
            assert equalize(model) == ["bn"]
        to_onnx(model, tmp_path / f"{name}.onnx")
        to_onnx_int8(tmp_path / f"{name}.onnx", tmp_path / f"{name}_int8.onnx", calibration)
        session = onnxruntime_session(str(tmp_path / f"{name}_int8.onnx"), threads=1)
        pred = np.argmax(session.run(None, {session.get_inputs()[0].name: x})[0], -1)
        agreement[name] = float(np.mean(pred == reference))
    assert agreement["equalized"] >= 0.9 and agreement["equalized"] > agreement["raw"] + 0.2, agreement
