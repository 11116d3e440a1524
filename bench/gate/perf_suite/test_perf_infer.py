"""Inference latency of small zoo models through TensorFlow (tf.function, fixed signature) and
onnxruntime, at batch 1 and 32."""
import pytest

import perf_systems

BATCHES = (1, 32)
ORT_MODELS = ("resnet18",)  # one conversion per code tree is all the gate's time allows


@pytest.fixture(scope="module")
def models():
    return {key: perf_systems.build_model(key) for key in perf_systems.MODELS}


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("key", list(perf_systems.MODELS))
def test_tf_infer(measure, models, key, batch):
    run = perf_systems.make_tf_infer(models[key], batch)
    measure(run, model=key, batch=batch, code_root=perf_systems.code_root())


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("key", ORT_MODELS)
def test_ort_infer(measure, models, perf_cache, key, batch):
    model = models[key]
    run = perf_systems.make_ort_infer(perf_systems.onnx_file(model, key, perf_cache), batch,
                                      tuple(model.input_shape[1:]))
    measure(run, model=key, batch=batch, code_root=perf_systems.code_root())
