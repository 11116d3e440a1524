"""The deployment engines and precisions, end to end on a small model trained here on real MNIST:
every engine is checked against the Keras model before it is timed, a precision is what the engine
computes in (never a silent fallback), a failed check or an unconvertible op is a row with the
measured reason, threads are an axis, and each precision has its own roof."""
from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from bench.harness import run
from bench.plumbing.environment import cpu_flags

CPUS = len(os.sched_getaffinity(0))


def small_trained(mnist, path, damage_int8: bool = False):
    """A small CNN trained for a few seconds on real MNIST images and saved with a recipe.json that
    names its dataset. `damage_int8` appends an exact float32 identity through a layer whose one
    huge activation (1e4) leaves per-tensor int8 no resolution for the others: float32 predictions
    are unchanged, int8 ones collapse."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(10, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(mnist.pipeline("train", 64, shuffle=True, seed=0, limit=4096), epochs=2, verbose=0)
    if damage_int8:
        features = model.get_layer("logits").input
        n = int(features.shape[-1])
        wide = keras.layers.Dense(n + 1, name="wide")(features)    # [features, 1e4]
        out = keras.layers.Dense(10, name="logits2")(wide)         # reads the features only
        model = keras.Model(inputs, keras.layers.Activation("softmax")(out))
        eye = np.concatenate([np.eye(n), np.zeros((n, 1))], axis=1).astype("float32")
        model.get_layer("wide").set_weights([eye, np.r_[np.zeros(n), 1e4].astype("float32")])
        trained = keras.Model(inputs, outputs).get_layer("logits").get_weights()
        model.get_layer("logits2").set_weights([np.vstack([trained[0], np.zeros((1, 10))]).astype("float32"),
                                                trained[1]])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    (path.parent / "recipe.json").write_text(json.dumps({"recipe": {"name": path.parent.name, "dataset": "mnist"}}))
    return path


MATRIX = """
datasets = ["mnist"]
tasks = ["infer", "accuracy"]
engines = ["tf_function", "onnxruntime", "openvino", "litert"]
precisions = ["float32", "float16", "bfloat16", "int8", "mixed_bfloat16"]
batch_sizes = [4]
threads = [0, 1]
warmup = 2
repeats = 5
verify_images = 300
calibration_images = 128
matmul_n = 128
overhead_check = false
[[models]]
name = "{checkpoint}"
[accuracy]
engines = ["tf_function", "onnxruntime", "openvino", "litert"]
batch_size = 200
limit = 1000
"""


@pytest.fixture(scope="module")
def engines_run(mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    checkpoint = small_trained(mnist, root / "runs" / "small" / "model.keras")
    matrix = root / "engines.toml"
    matrix.write_text(MATRIX.format(checkpoint=checkpoint))
    out = root / "out"
    assert run.main(["--matrix", str(matrix), "--out", str(out)]) == 0
    return pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""]), out


def test_every_engine_is_checked_before_it_is_timed(engines_run):
    df, _ = engines_run
    ok = df[df["status"] == "ok"]
    assert set(ok["engine"]) == {"tf_function", "onnxruntime", "openvino", "litert"}
    # float32 by parity with the Keras model; reduced precision of a trained model by the accuracy rule
    assert (ok.loc[ok["precision"] == "float32", "verified"] == "parity").all()
    assert (ok.loc[ok["precision"] != "float32", "verified"] == "accuracy").all()
    assert ok["check"].str.contains("on 300 images").all()
    infer = ok[ok["task"] == "infer"]
    assert {("onnxruntime", "int8"), ("openvino", "int8"), ("litert", "int8"), ("litert", "float32"),
            ("openvino", "float32"), ("tf_function", "mixed_bfloat16")} <= set(zip(infer["engine"], infer["precision"]))
    assert infer["latency_ms_p50"].gt(0).all() and infer["artifact_format"].fillna("").ne("").sum() > 0


def test_a_precision_is_what_the_engine_computes_in(engines_run):
    df, _ = engines_run
    flags = set(cpu_flags())
    ov_bf16 = df[(df["engine"] == "openvino") & (df["precision"] == "bfloat16")]
    if {"avx512_bf16", "amx_bf16"} & flags:
        assert (ov_bf16["status"] == "ok").all() and ov_bf16["executed_precision"].str.contains("bf16").all()
    else:  # OpenVINO would silently run float32: a skipped row that says so, never a bfloat16 number
        assert (ov_bf16["status"] == "skipped").all()
        assert ov_bf16["reason"].str.contains("bfloat16 needs AVX512_BF16 or AMX").all()
        assert ov_bf16["latency_ms_p50"].isna().all()
    ov_int8 = df[(df["engine"] == "openvino") & (df["precision"] == "int8") & (df["status"] == "ok")]
    assert len(ov_int8) and ov_int8["executed_precision"].str.contains("i8|u8").all()
    ort_fp16 = df[(df["engine"] == "onnxruntime") & (df["precision"] == "float16")]
    assert (ort_fp16["status"] == "skipped").all() or ort_fp16["executed_precision"].str.contains("float16").all()
    if (ort_fp16["status"] == "skipped").all():
        assert ort_fp16["reason"].str.contains("computes this float16 model in float32").all()
    ort_int8 = df[(df["engine"] == "onnxruntime") & (df["precision"] == "int8") & (df["status"] == "ok")]
    assert ort_int8["executed_precision"].str.contains("QLinearConv").all()


def test_threads_are_an_axis_recorded_in_every_row(engines_run):
    df, _ = engines_run
    infer = df[(df["task"] == "infer") & (df["status"] == "ok")]
    one = infer[infer["threads"] == 1]
    assert set(one["engine"]) == {"tf_function", "onnxruntime", "openvino", "litert"}  # TF in a child process
    assert (one["threads_used"] == 1).all()
    assert (infer.loc[infer["threads"] == 0, "threads_used"] == CPUS).all()


def test_each_precision_has_its_own_roof(engines_run):
    df, out = engines_run
    roofs = json.loads((out / "environment.json").read_text())["peak_matmul_flops_per_sec"]
    for engine, precision in (("onnxruntime", "int8"), ("onnxruntime", "float32"), ("openvino", "int8"),
                              ("litert", "int8")):
        rows = df[(df["engine"] == engine) & (df["precision"] == precision) & (df["status"] == "ok")
                  & (df["task"] == "infer") & (df["threads"] == 0)]
        assert len(rows)
        assert rows["peak_flops_per_sec"].eq(roofs[f"{engine}:{precision}:{CPUS}"]).all()
    assert "tf:float32:1" in roofs  # measured by the child process that ran the 1-thread TensorFlow cells


def test_accuracy_per_engine_and_precision_and_the_report(engines_run):
    df, out = engines_run
    acc = df[(df["task"] == "accuracy") & (df["status"] == "ok")]
    assert len(acc) >= 6 and acc["top1"].between(0.8, 1.0).all() and (acc["examples"] == 1000).all()
    report = (out / "report.md").read_text()
    for text in ("## What to ship", "## Accuracy: what each precision costs", "cost_points", "Pareto front",
                 "Roofs of `peak_fraction`", "## Threads", "instruction sets that decide these results"):
        assert text in report, text
    assert (out / "accuracy_vs_latency.png").stat().st_size > 0


def test_threads_table_gives_each_engine_its_gain_over_float32_onnxruntime_at_the_same_thread_count():
    from bench.harness.report import _threads

    df = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "cpu-threads" / "results.csv")
    infer = df[(df["task"] == "infer") & (df["status"] == "ok")]
    lines = "\n".join(_threads(infer)).splitlines()
    assert lines[0] == "## Threads"
    p50 = infer.set_index(["model", "engine", "precision", "threads_used"])["latency_ms_p50"]
    model = "catdog_efficientnet_lite0_finetune"
    gain_1 = p50[(model, "onnxruntime", "float32", 1)] / p50[(model, "openvino", "int8", 1)]
    row = next(line for line in lines if f"| {model} " in line and "| openvino " in line and "| int8 " in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = [c.strip() for c in next(line for line in lines if "vs_onnxruntime_fp32_1_threads" in line).strip("|").split("|")]
    assert float(cells[header.index("vs_onnxruntime_fp32_1_threads")]) == pytest.approx(gain_1, rel=0.01)


def test_a_failed_check_is_a_failed_row_with_the_measured_difference(mnist, tmp_path):
    checkpoint = small_trained(mnist, tmp_path / "runs" / "damaged" / "model.keras", damage_int8=True)
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(checkpoint=checkpoint).replace(
        'engines = ["tf_function", "onnxruntime", "openvino", "litert"]\nprecisions', 'engines = ["onnxruntime"]\nprecisions')
        .replace('threads = [0, 1]', 'threads = [0]').replace('tasks = ["infer", "accuracy"]', 'tasks = ["infer"]')
        .replace('precisions = ["float32", "float16", "bfloat16", "int8", "mixed_bfloat16"]',
                 'precisions = ["float32", "int8"]'))
    out = tmp_path / "out"
    assert run.main(["--matrix", str(matrix), "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    fp32 = df[df["precision"] == "float32"].iloc[0]
    assert fp32["status"] == "ok" and fp32["verified"] == "parity"
    int8 = df[df["precision"] == "int8"].iloc[0]
    assert int8["status"] == "failed" and int8["reason"].startswith("accuracy: top-1")
    drop = float(int8["reason"].split("drop +")[1].split(" ")[0])
    assert drop > 20, int8["reason"]  # the measured loss, in points
    assert pd.isna(int8["latency_ms_p50"]) and pd.isna(int8["images_per_sec"])  # never a number


def test_an_op_an_engine_cannot_convert_is_a_row_that_names_it(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.ops.erfinv(keras.ops.tanh(x) * 0.5)  # TF's Erfinv: neither tf2onnx nor LiteRT has it
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "runs" / "erfinv" / "model.keras"
    path.parent.mkdir(parents=True)
    keras.Model(inputs, outputs).save(path)
    (path.parent / "recipe.json").write_text(json.dumps({"recipe": {"dataset": "mnist"}}))
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(checkpoint=path).replace(
        'engines = ["tf_function", "onnxruntime", "openvino", "litert"]\nprecisions',
        'engines = ["onnxruntime", "litert"]\nprecisions').replace("threads = [0, 1]", "threads = [0]")
        .replace('tasks = ["infer", "accuracy"]', 'tasks = ["infer"]')
        .replace('precisions = ["float32", "float16", "bfloat16", "int8", "mixed_bfloat16"]', 'precisions = ["float32"]'))
    out = tmp_path / "out"
    assert run.main(["--matrix", str(matrix), "--out", str(out)]) == 0  # the run goes on
    df = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert (df["status"] == "failed").all()
    reasons = dict(zip(df["engine"], df["reason"]))
    assert "Erfinv" in reasons["onnxruntime"] and "tf2onnx cannot convert" in reasons["onnxruntime"]
    assert "Erfinv" in reasons["litert"] and "no builtin kernel" in reasons["litert"]


def test_a_precision_an_engine_cannot_compute_is_a_row_that_says_so(tmp_path):
    out = tmp_path / "out"
    assert run.main(["--models", "reference_cnn", "--datasets", "mnist", "--tasks", "infer", "--engines",
                     "tf_function,onnxruntime", "--precisions", "float32,int8", "--batch-sizes", "1",
                     "--repeats", "3", "--no-overhead-check", "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""]).set_index(["engine", "precision"])
    row = df.loc[("tf_function", "int8")]
    assert row["status"] == "skipped" and "tf_function computes in float32, mixed_float16, mixed_bfloat16" in row["reason"]
    assert df.loc[("onnxruntime", "int8"), "status"] == "ok"  # the run went on
