"""The export building blocks on their own: figures, verdicts, atomic directory, float32
rebuild of mixed-precision models, opset checks and the TF-free resize."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import checkpoint, convert, runtimes, verify
from zoo import inference
from export.package import MANIFEST, atomic_directory, read_manifest, verify_files, write_manifest
from export.predict import bilinear_resize, resize_with_pad


def test_compare_figures_on_known_arrays():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype="float32")
    cand = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]], dtype="float32")  # row 2 flips to class 1
    f = verify.compare(ref, cand, "probabilities")
    assert f.images == 2
    assert f.max_abs_diff == pytest.approx(0.2, abs=1e-6)
    assert f.max_rel_diff == pytest.approx(0.2 / 0.3, rel=1e-5)
    assert f.mean_abs_diff == pytest.approx(0.4 / 6, rel=1e-5)
    assert f.top1_agreement == 0.5
    with pytest.raises(ValueError, match="differs from the reference"):
        verify.compare(ref, cand[:, :2])


@pytest.mark.parametrize(
    "kind,diff,agree,passed",
    [("probabilities", 1e-5, 1.0, True), ("probabilities", 2e-5, 1.0, False),
     ("logits", 9e-5, 1.0, True), ("logits", 2e-4, 1.0, False), ("logits", 0.0, 0.99, False)],
)
def test_float32_verdict_thresholds(kind, diff, agree, passed):
    check = verify.Check("onnx", "real", verify.ATOL[kind],
                         [verify.Figures("out", 100, diff, 0.0, 0.0, agree)])
    assert check.passed is passed
    assert ("PASS" if passed else "FAIL") in verify.report([check]).splitlines()[1]


def test_atomic_directory_failure_never_leaves_a_complete_looking_dir(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_directory(out) as tmp:
            assert tmp.parent == tmp_path and tmp != out
            (tmp / "model.onnx").write_bytes(b"half")
            raise RuntimeError("midway")
    assert not out.exists()
    assert [p.name for p in (tmp_path / "art.failed").iterdir()] == ["model.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.failed"]
    with atomic_directory(out) as tmp:
        (tmp / "model.onnx").write_bytes(b"whole")
        write_manifest(tmp, {"status": "passed"})
        assert not out.exists()  # nothing at DIR until the block completes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    manifest = read_manifest(out)
    assert verify_files(out, manifest) == []
    (out / "model.onnx").write_bytes(b"changed")
    assert verify_files(out, manifest) == ["model.onnx"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_directory(out):
            pass
    assert json.loads((out / MANIFEST).read_text())["status"] == "passed"


def _mixed_model() -> keras.Model:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((12, 12, 3))
        x = keras.layers.Conv2D(4, 3)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
        return keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_model_is_rebuilt_in_float32_with_its_weights(tmp_path):
    path = tmp_path / "mixed.keras"
    _mixed_model().save(path)
    mixed = checkpoint.load(path)
    assert inference.is_mixed_precision(mixed)
    clone = inference.as_float32(mixed)
    assert not inference.is_mixed_precision(clone)
    assert {layer.dtype_policy.name for layer in clone.layers} == {"float32"}
    for a, b in zip(mixed.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(0, 1, (4, 12, 12, 3)).astype("float32")
    # only float16 rounding separates them
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(mixed(x), dtype="float32"), atol=1e-2)
    onnx_path = convert.to_onnx(clone, tmp_path / "m.onnx")
    got = runtimes.open_session(onnx_path, "onnxruntime").run(x)["probabilities"]
    assert verify.compare(np.asarray(clone(x)), got).max_abs_diff <= 1e-5


def test_output_kind_and_names():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    assert convert.output_kind(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))) == "probabilities"
    logits = keras.Model(inputs, keras.layers.Dense(3)(x))
    assert convert.output_kind(logits) == "logits"
    with pytest.raises(inference.OutputsError, match="has one output"):
        inference.inference_outputs(logits, aux_outputs=True)


def test_check_opset_accepts_default_and_refuses_out_of_range():
    convert.check_opset(17)
    for opset in (12, 19, 99):
        with pytest.raises(convert.ConversionError, match=f"opset {opset} is not supported"):
            convert.check_opset(opset)


@pytest.mark.parametrize("src,dst", [((28, 28), (32, 32)), ((40, 30), (17, 23)), ((20, 50), (64, 64))])
def test_tf_free_resize_equals_tf_image(src, dst):
    x = np.random.default_rng(1).uniform(0, 1, (*src, 3)).astype("float32")
    np.testing.assert_allclose(bilinear_resize(x, *dst), tf.image.resize(x, dst).numpy(), atol=1e-5)
    np.testing.assert_allclose(resize_with_pad(x, *dst), tf.image.resize_with_pad(x, *dst).numpy(), atol=1e-5)


def test_exact_gelu_converts_to_onnx_through_erf(tmp_path):
    # Keras 3's exact GELU uses TF's Erfc, which tf2onnx 1.17 cannot convert on its own
    import onnxruntime as ort

    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Dense(32, activation="gelu")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Activation(lambda t: keras.activations.gelu(t, approximate=False))(
        keras.layers.Dense(8)(x))
    model = keras.Model(inputs, outputs)
    path = convert.to_onnx(model, tmp_path / "gelu.onnx", kind="logits")
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    # spans both tails of GELU, where erfc is near 0 and near 2
    x = np.concatenate([np.linspace(-12, 12, 16 * 64, dtype="float32").reshape(64, 4, 4, 1),
                        np.random.default_rng(0).normal(0, 3, (64, 4, 4, 1)).astype("float32")])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=2e-5, rtol=1e-5)


def test_openvino_compiles_each_batch_size_for_its_static_shape(tmp_path):
    """The CPU plugin runs a dynamic batch dimension more slowly, so the session compiles one static
    shape per batch size (the one it is told first); every batch size still gives the model's answer."""
    pytest.importorskip("openvino")
    model = _mixed_model()
    clone = inference.as_float32(model)
    onnx_path = convert.to_onnx(clone, tmp_path / "m.onnx")
    session = runtimes.open_session(onnx_path, "openvino", batch=2)
    assert [d.get_length() for d in session.compiled.inputs[0].get_partial_shape()] == [2, 12, 12, 3]
    x = np.random.default_rng(1).uniform(0, 1, (7, 12, 12, 3)).astype("float32")
    want = np.asarray(clone(x))
    for n in (2, 3, 1, 7, 5, 2):  # more sizes than the session keeps compiled
        assert verify.compare(want[:n], session.main(x[:n])).max_abs_diff <= 1e-5
        assert session.compiled.inputs[0].get_partial_shape().is_static
    assert len(session._compiled) == runtimes.OpenVinoSession.KEEP


def test_openvino_int8_is_quantized_by_openvinos_own_tool_on_the_calibration_images(tmp_path):
    """export's openvino_int8: the float32 IR quantized by NNCF; every convolution and matrix multiply
    runs in int8, the answers stay near float32's, and no calibration image is refused clearly."""
    pytest.importorskip("nncf")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    ir = convert.to_openvino(model, tmp_path / "fp32" / "model.xml")
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 1, (8, 16, 16, 3)).astype("float32") for _ in range(4)]
    info = convert.to_openvino_int8(ir, tmp_path / "int8" / "model.xml", batches)
    assert info["calibration_images"] == 32 and info["quantizer"].startswith("nncf ")
    session = runtimes.open_session(tmp_path / "int8" / "model.xml", "openvino", "int8")
    assert set(session.executed) <= {"i8", "u8"}  # nothing left in float32
    x = rng.uniform(0, 1, (16, 16, 16, 3)).astype("float32")
    assert verify.compare(np.asarray(model(x)), session.main(x)).max_abs_diff < 0.05
    with pytest.raises(ValueError, match="calibration got no images"):
        convert.to_openvino_int8(ir, tmp_path / "none" / "model.xml", [])
    assert not (tmp_path / "none").exists()
