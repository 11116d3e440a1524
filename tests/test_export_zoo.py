"""Every zoo architecture converts to ONNX and matches Keras, at its smallest input size.

Conversion cost grows with the weights, not the input, so each model is built at the
smallest size its spec allows (3 classes). The SavedModel path (Keras' own tracing of the same
function) is exercised once per family; ONNX (tf2onnx's op-by-op rewrite, where an
architecture can break) for every name.
"""
from __future__ import annotations

import gc

import keras
import numpy as np
import pytest

import zoo
from export import convert, runtimes, verify
from zoo import inference

CLASSES = 3
# Transfer models: no ImageNet weights (offline). GoogLeNet: the training model, so its two
# auxiliary heads are exported and checked too (what --aux-outputs exports).
OPTIONS = {"resnet50_transfer": {"weights": None}, "efficientnet_lite0_transfer": {"weights": None},
           "googlenet": {"aux_outputs": True}}
# One per family (builder code), plus a nested-backbone transfer model.
SAVEDMODEL_TOO = {"alexnet", "vgg11", "googlenet", "inception_v2", "resnet18",
                  "efficientnet_lite0_transfer"}


# Deeper repeats of blocks another name already covers (resnet18/50, vgg11, googlenet's inception
# blocks, the plain backbones of the transfer models): marked slow so `make test` (-m "not slow")
# skips them; `make test-all` exports every name.
DEEPER_REPEATS = {"resnet34", "resnet101", "resnet152", "vgg13", "vgg16", "vgg19", "vgg", "inception_v2",
                  "inception_v3", "resnet50_transfer", "efficientnet_lite0_transfer"}


def smallest_shape(name: str) -> tuple[int, int, int]:
    size = zoo.spec(name).min_input_size
    return (size, size, 3)


@pytest.fixture(autouse=True)
def _free_models():
    yield
    keras.backend.clear_session()
    gc.collect()


def _inputs(shape, n=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype("float32")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEPER_REPEATS else n for n in zoo.names()])
def test_architecture_exports_with_parity(name, tmp_path):
    shape = smallest_shape(name)
    model = zoo.build(name, input_shape=shape, num_classes=CLASSES, **OPTIONS.get(name, {}))
    kind = convert.output_kind(model)
    assert kind == "probabilities"
    names = convert.output_names(model, kind)
    onnx_path = convert.to_onnx(model, tmp_path / "model.onnx", kind=kind)
    session = runtimes.open_session(onnx_path, "onnxruntime")
    assert session.output_names == names
    runners = {"onnx": session.run}
    if name in SAVEDMODEL_TOO:
        runners["savedmodel"] = verify.savedmodel_runner(
            convert.to_savedmodel(model, tmp_path / "savedmodel", kind=kind))
    collector = verify.Collector(verify.keras_runner(model, names), runners)
    # two batch sizes through one graph: the batch axis is dynamic
    verify.collect(collector, [(_inputs(shape, 1, 1), None), (_inputs(shape, 3, 2), None)])
    checks = collector.checks("random", kind)
    assert all(c.passed for c in checks), verify.report(checks)
    assert all(f.images == 4 for c in checks for f in c.figures)
    assert {f.output for c in checks for f in c.figures} == set(names)


def test_googlenet_main_output_unless_aux_heads_are_asked_for():
    """Export drops the training model's auxiliary heads (parity-tested above with them)
    unless --aux-outputs; what remains is the main output, unchanged."""
    shape = smallest_shape("googlenet")
    training = zoo.build("googlenet", input_shape=shape, num_classes=CLASSES, aux_outputs=True)
    assert len(training.outputs) == 3
    assert convert.output_names(training, "probabilities") == ["probabilities", "aux1", "aux2"]
    main_only = inference.inference_outputs(training)
    assert len(main_only.outputs) == 1
    assert inference.inference_outputs(training, aux_outputs=True) is training
    x = _inputs(shape)
    np.testing.assert_array_equal(np.asarray(main_only(x, training=False)),
                                  np.asarray(training(x, training=False)[0]))
