"""`python -m export` end to end on a small CNN trained here on real MNIST images.

One module-scoped export with every format feeds the manifest, predict and fp16/int8 tests;
the failure tests each export a small model of their own.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

from export import convert, runtimes
from export.__main__ import main
from bench.plumbing.files import sha256_file as sha256
from export.package import MANIFEST

REPO = Path(__file__).resolve().parents[1]
PARITY_IMAGES = 2000


def tiny_cnn(input_shape=(28, 28, 1), classes=10) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory) -> Path:
    """A tiny CNN trained for a few seconds on 4096 real MNIST training images."""
    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(mnist.pipeline("train", 64, shuffle=True, seed=0, limit=4096), epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_cnn.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def artifact(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("art") / "tiny"
    rc = main([str(trained), "--formats", "savedmodel,onnx,onnx_fp16,onnx_int8", "--dataset", "mnist",
               "--out", str(out), "--parity-images", str(PARITY_IMAGES), "--calibration-images", "256"])
    assert rc == 0
    return out


def test_manifest_is_complete_and_hashes_every_file(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text())
    assert manifest["status"] == "passed"
    assert manifest["model"] == "tiny_cnn" and manifest["architecture"] == "tiny_cnn"
    assert manifest["dataset"] == "mnist" and manifest["class_names"] == [str(i) for i in range(10)]
    assert manifest["input"] == {"name": "input", "shape": [None, 28, 28, 1], "dtype": "float32", "layout": "NHWC"}
    assert manifest["outputs"][0]["name"] == "probabilities"
    pre = manifest["preprocessing"]
    assert pre["size"] == [28, 28] and pre["channels"] == 1 and pre["resize_method"] == "resize"
    assert pre["scale"] == pytest.approx(1 / 255)
    assert manifest["opset"] == 17 and manifest["formats"]["onnx"]["opset"] == 17
    assert set(manifest["tools"]) >= {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"}
    assert all(manifest["tools"][t] for t in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"))
    assert manifest["created"].endswith("+00:00")
    assert set(manifest["conversion_seconds"]) == {"savedmodel", "onnx", "onnx_fp16", "onnx_int8"}
    # parity figures: real test images and random inputs, both fp32 formats and the eager Keras model
    # (against the graph reference), all within tolerance
    checks = manifest["parity"]["checks"]
    assert {(c["format"], c["inputs"]) for c in checks} == {
        (f, i) for f in ("keras_eager", "savedmodel", "onnx") for i in ("real", "random")}
    for check in checks:
        assert check["passed"]
        fig = check["outputs"][0]
        assert fig["max_abs_diff"] <= 1e-5 and fig["top1_agreement"] == 1.0
        assert fig["images"] == (PARITY_IMAGES if check["inputs"] == "real" else 32)
    # accuracy is the ONNX model's, measured on the test images; the model learnt something
    acc = manifest["accuracy"]
    assert acc["images"] == PARITY_IMAGES and acc["top1_onnx"] == acc["top1_keras"]
    assert acc["top1_onnx"] > 0.8
    # every file on disk is listed with its true sha256, and nothing else is listed
    on_disk = {p.relative_to(artifact).as_posix() for p in artifact.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk
    assert "savedmodel/saved_model.pb" in on_disk and "model_int8.onnx" in on_disk
    for name, digest in manifest["files"].items():
        assert sha256(artifact / name) == digest
    # no temp or failed leftovers beside the artifact
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["tiny"]


def test_reloaded_savedmodel_has_named_signature_and_dynamic_batch(artifact, mnist):
    loaded = tf.saved_model.load(str(artifact / "savedmodel"))
    sig = loaded.signatures["serving_default"]
    spec = sig.structured_input_signature[1]["input"]
    assert spec.shape.as_list() == [None, 28, 28, 1]
    x, _ = mnist.numpy("test")
    for n in (1, 5):
        out = sig(input=tf.constant(x[:n].astype("float32") / 255.0))["probabilities"]
        assert out.shape == (n, 10)


def test_reduced_precision_is_judged_against_fp32(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text())
    rp = manifest["reduced_precision"]
    for fmt in ("onnx_fp16", "onnx_int8"):
        row = rp[fmt]
        assert row["images"] == PARITY_IMAGES
        assert row["top1_drop"] == pytest.approx(row["top1_fp32"] - row["top1"])
        assert row["top1_drop_low95"] <= row["top1_drop"] <= row["top1_drop_high95"]
        assert row["passed"] == (row["top1_drop_low95"] <= 0.01)
        assert 0.9 <= row["top1_agreement_with_fp32"] <= 1.0
    assert rp["onnx_int8"]["calibration_images"] == 256
    # the int8 model really is quantized (QDQ nodes), the fp16 one really holds float16 weights
    import onnx

    int8 = onnx.load(str(artifact / "model_int8.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    fp16 = onnx.load(str(artifact / "model_fp16.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def _write_pngs(mnist, folder: Path, count: int) -> tuple[list[Path], np.ndarray]:
    from PIL import Image

    x, y = mnist.numpy("test")
    paths = []
    for i in range(count):
        paths.append(folder / f"test{i}.png")
        Image.fromarray(x[i, :, :, 0]).save(paths[-1])
    return paths, x[:count]


def test_predict_runs_without_tensorflow_and_matches_the_onnx_model(artifact, mnist, tmp_path):
    import onnxruntime as ort

    paths, x = _write_pngs(mnist, tmp_path, 4)
    script = (
        "import sys, json\nfrom export.__main__ import main\n"
        f"rc = main(['predict', {str(artifact)!r}, *{[str(p) for p in paths]!r}, '--top-k', '1'])\n"
        "print(json.dumps({'rc': rc, 'tf': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == {"rc": 0, "tf": False, "keras": False}
    # the printed top-1 is what the ONNX model says on the pipeline's own preprocessing
    session = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"input": x.astype("float32") / 255.0})[0]
    printed = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert printed == [str(i) for i in probs.argmax(-1)]


def test_predict_refuses_tampered_artifact(artifact, mnist, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    paths, _ = _write_pngs(mnist, tmp_path, 1)
    assert main(["predict", str(copy), str(paths[0])]) == 2
    assert "(sha256 mismatch): model.onnx" in capsys.readouterr().err


def test_predict_preprocessing_equals_the_training_pipeline(mnist, tmp_path):
    """A 28x28 MNIST digit for a 32x32 RGB model, resized and letterboxed as bench.data does."""
    from bench.data.pipeline import preprocess as pipeline_preprocess
    from export.predict import preprocess

    paths, x = _write_pngs(mnist, tmp_path, 1)
    for method, size in (("resize", (32, 32)), ("pad", (40, 30))):
        ours = preprocess(paths[0], {"size": list(size), "channels": 3, "scale": 1 / 255,
                                     "resize_method": method})
        ref = pipeline_preprocess(x[:1], size, method, channels=3).numpy()[0]
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-5)


# ---------------------------------------------------------------- failures and bad input


def _error(capsys) -> str:
    return capsys.readouterr().err


def test_existing_output_directory_is_an_error_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc = main(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--out", str(out)])
    assert rc == 2
    assert "already exists; pass --overwrite" in _error(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_file_that_is_not_a_keras_model(tmp_path, capsys):
    bad = tmp_path / "weights.keras"
    bad.write_text("not a model")
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "is not a Keras model file" in _error(capsys)
    other = tmp_path / "model.txt"
    other.write_text("x")
    assert main([str(other), "--out", str(tmp_path / "out")]) == 2
    assert "expected a .keras" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.txt", "weights.keras"]


@pytest.mark.parametrize("opset", ["30", "9"])
def test_opset_that_cannot_be_run_is_refused_before_any_work(tmp_path, capsys, opset):
    rc = main(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--out", str(tmp_path / "o"),
               "--opset", opset])
    assert rc == 2
    assert f"opset {opset} is not supported" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_bad_requests(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--out", out,
                 "--formats", "onnx,tflite"]) == 2
    assert "unknown format(s) ['tflite']" in _error(capsys)
    assert main(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--out", out,
                 "--formats", "onnx_int8"]) == 2
    assert "add onnx to --formats" in _error(capsys)
    assert main(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--out", out,
                 "--formats", "onnx,onnx_int8"]) == 2
    assert "pass --dataset" in _error(capsys)
    assert main(["no_such_net", "--out", out]) == 2
    assert "neither a checkpoint file" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


@keras.saving.register_keras_serializable(package="test_export")
class BesselLayer(keras.layers.Layer):
    """Uses a TensorFlow op that has no ONNX conversion."""

    def call(self, x):
        return tf.math.bessel_i1e(x)


@keras.saving.register_keras_serializable(package="test_export")
class InferenceNoise(keras.layers.Layer):
    """Adds fresh noise even at inference: no export can reproduce its outputs."""

    def call(self, x):
        return x + tf.random.normal(tf.shape(x), stddev=3.0)


def _saved(tmp_path: Path, middle: keras.layers.Layer) -> Path:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = middle(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_unconvertible_layer_fails_midway_and_leaves_no_complete_looking_dir(tmp_path, capsys):
    path = _saved(tmp_path, BesselLayer(name="bessel"))
    out = tmp_path / "art"
    rc = main([str(path), "--out", str(out)])
    err = _error(capsys)
    assert rc == 2
    assert "BesselI1e" in err and "bessel" in err and "cannot convert" in err
    assert not out.exists()
    failed = tmp_path / "art.failed"
    # the SavedModel was already written when ONNX conversion failed: kept for inspection only
    assert (failed / "savedmodel" / "saved_model.pb").is_file()
    assert not (failed / MANIFEST).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.failed", "model.keras"]


def test_parity_failure_exits_nonzero_and_locate_names_the_layer(tmp_path, capsys):
    path = _saved(tmp_path, InferenceNoise(name="noise"))
    out = tmp_path / "art"
    rc = main([str(path), "--out", str(out), "--locate", "--random-images", "8"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "parity: FAIL" in captured.out
    assert "first divergent layer: noise" in captured.out
    assert "FAILED: float32 parity check failed" in captured.err
    assert not out.exists()
    failed = tmp_path / "art.failed"
    manifest = json.loads((failed / MANIFEST).read_text())
    assert manifest["status"] == "failed"
    assert "first divergent layer: noise" in (failed / "report.txt").read_text()
    # a failed artifact is never served
    assert main(["predict", str(failed), str(path)]) == 2
    assert "not a verified artifact" in _error(capsys)


def test_overwrite_replaces_and_clears_previous_failure(trained, tmp_path):
    out = tmp_path / "art"
    (tmp_path / "art.failed").mkdir()
    out.mkdir()
    (out / "old.txt").write_text("old")
    rc = main([str(trained), "--formats", "onnx", "--random-images", "4", "--out", str(out), "--overwrite"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "model.onnx", "report.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_training_run_directory_supplies_dataset_and_class_subset(mnist, tmp_path):
    """`bench train` leaves model.keras beside recipe.json; a cat-vs-dog style subset of the
    labels (here MNIST 7 and 2, in that order) is filtered and renumbered as in training."""
    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(1)
    tiny_cnn(classes=2).save(run / "model.keras")
    (run / "recipe.json").write_text(json.dumps({
        "recipe": {"name": "mnist_7_vs_2", "dataset": "mnist", "train_classes": [7, 2],
                   "resize_method": "resize"},
        "test_top1": 0.5}))
    out = tmp_path / "art"
    assert main([str(run / "model.keras"), "--formats", "onnx", "--parity-images", "300",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["dataset"] == "mnist" and manifest["recipe"] == "mnist_7_vs_2"
    assert manifest["class_names"] == ["7", "2"]
    assert manifest["accuracy"]["top1_training_run"] == 0.5
    import onnxruntime as ort

    x, y = mnist.numpy("test")
    keep = np.isin(y, [7, 2])
    x, y = x[keep][:300], np.where(y[keep][:300] == 7, 0, 1)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"input": x.astype("float32") / 255.0})[0]
    assert manifest["accuracy"]["images"] == 300
    assert manifest["accuracy"]["top1_onnx"] == pytest.approx(float(np.mean(probs.argmax(-1) == y)))


def test_int8_that_damages_accuracy_is_rejected_with_the_measured_drop(mnist, tmp_path, capsys):
    from tests.test_engines import small_trained

    checkpoint = small_trained(mnist, tmp_path / "runs" / "damaged" / "model.keras", damage_int8=True)
    out = tmp_path / "art"
    rc = main([str(checkpoint), "--formats", "onnx,onnx_int8", "--out", str(out), "--parity-images", "1000",
               "--calibration-images", "128"])
    assert rc == 1 and not out.exists()
    assert "reduced-precision accuracy check failed" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "art.failed" / MANIFEST).read_text())
    row = manifest["reduced_precision"]["onnx_int8"]
    assert manifest["status"] == "failed" and row["passed"] is False
    assert row["top1_drop"] > 0.2 and row["top1_drop_low95"] > 0.01  # the measured loss, judged with its bound
    assert manifest["parity"]["checks"][0]["passed"]  # float32 was fine: only int8 damaged it


def test_int8_calibration_reads_training_images_never_test_images(mnist, tmp_path):
    from export.job import ExportData
    from export.pipeline import calibration_images

    data = ExportData("mnist", (28, 28, 1), 10)
    splits = []
    original = data.batches

    def recording(split, *args, **kwargs):
        splits.append(split)
        return original(split, *args, **kwargs)

    data.batches = recording

    class Job:  # what calibration_images reads of an export job
        request = type("R", (), {"batch_size": 32, "calibration_images": 64})()

    Job.data = data
    images = np.concatenate(list(calibration_images(Job)))
    assert splits == ["train"] and len(images) == 64
    x_test, _ = mnist.numpy("test")
    test = x_test.reshape(len(x_test), -1).astype("float32") / 255.0
    # none of the calibration images is a test image
    assert not any(np.any(np.all(np.abs(test - img.reshape(1, -1)) < 1e-6, axis=1)) for img in images[:16])


def test_streams_times_each_verified_file_in_every_worker_layout(artifact, tmp_path):
    """bench streams: one worker on every core, one with one thread, one per core; a precision the
    CPU does not compute in is a skipped row with the reason, and an unverified artifact is refused."""
    from bench.measure import streams

    out = tmp_path / "streams"
    rows = streams.run(artifact, out, engines=["onnxruntime"], seconds=0.3, warmup=2)
    cores = len(os.sched_getaffinity(0))
    layouts = [layout.name for layout in streams.layouts(cores)]
    assert [(r["precision"], r["layout"]) for r in rows] == [(p, name) for p in ("float32", "float16", "int8")
                                                             for name in layouts]
    ok = {(r["precision"], r["layout"]): r for r in rows if r["status"] == "ok"}
    assert ("float32", "1xall") in ok and ("int8", "1x1") in ok
    assert ok[("float32", "1x1")]["threads_per_worker"] == 1 and ok[("float32", "1x1")]["images_per_sec"] > 0
    if cores > 1:
        many = ok[("float32", f"{cores}x1")]
        assert many["workers"] == cores and many["calls"] >= cores
    for r in rows:
        if r["status"] != "ok":  # float16 on a CPU that computes it in float32
            assert r["precision"] == "float16" and "float32" in r["reason"]
    saved = json.loads((out / "streams.json").read_text())
    assert saved["rows"] == rows and saved["environment"]["machine_speed"]["matmul_gflops"] > 0
    assert "vs_ort_fp32_same_layout" in (out / "streams.md").read_text()
    # an artifact whose checks failed is not timed
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "status": "failed"}))
    with pytest.raises(ValueError, match="not a verified artifact"):
        streams.run(broken, tmp_path / "no", engines=["onnxruntime"], seconds=0.1)


def test_op_profile_splits_each_files_kernel_time_by_operator_kind(artifact, tmp_path):
    """bench op-profile: the float32 and int8 files' kernel time per call by kind, warm-up calls left
    out; depthwise convolutions are told apart from the others; a file the artifact lacks is refused."""
    from bench.measure import op_profile

    result = op_profile.run(artifact, tmp_path / "prof", calls=12, warmup=3)
    for precision, kind in (("float32", "convolution"), ("int8", "convolution")):
        got = result["precisions"][precision]
        assert got["calls"] == 12 and got["kinds"][kind]["us"] > 0 and got["kinds"][kind]["nodes"] == 2
        assert op_profile.DEPTHWISE not in got["kinds"]
        assert got["total_us"] == pytest.approx(sum(k["us"] for k in got["kinds"].values()))
    assert "QLinearConv" not in result["precisions"]["int8"]["kinds"]  # counted as convolution
    text = (tmp_path / "prof" / "op_profile.md").read_text()
    assert "| convolution |" in text and "| all kernels |" in text
    assert json.loads((tmp_path / "prof" / "op_profile.json").read_text())["precisions"].keys() == {"float32", "int8"}
    # a depthwise convolution in the graph onnxruntime runs is its own kind
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="pw")(x))
    path = convert.to_onnx(model, tmp_path / "dw.onnx")
    optimized = tmp_path / "dw-optimized.onnx"
    runtimes.onnxruntime_session(path, threads=1, optimized_model=str(optimized))
    kinds = set(op_profile.kinds_of(onnx.load(optimized)).values())
    assert {op_profile.DEPTHWISE, "convolution"} <= kinds
    # an artifact without the int8 file
    partial = tmp_path / "partial"
    shutil.copytree(artifact, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    del manifest["formats"]["onnx_int8"]
    (partial / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="no onnx_int8 file"):
        op_profile.run(partial, tmp_path / "no")
