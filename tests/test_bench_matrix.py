"""Profiles and matrix files: loading, overrides, validation before anything runs, cell expansion."""
from __future__ import annotations

import pytest

from bench.harness import matrix as mx
from bench.harness import run


@pytest.mark.parametrize("name", ["quick", "cpu-full", "gpu-full"])
def test_named_profiles_load_and_validate(name):
    matrix = mx.load_profile(name)
    mx.validate(matrix)
    assert matrix.models and matrix.datasets and matrix.engines


def test_quick_profile_cells():
    matrix = mx.load_profile("quick")
    cells = mx.cells(matrix, "cpu")
    infer = [c for c in cells if c.task == "infer"]
    # per model and batch size: keras_predict float32; tf_function, xla, savedmodel in float32;
    # onnxruntime in float32, float16, int8; openvino in float32, bfloat16, int8; litert in float32, int8
    per = 1 + 3 + 3 + 3 + 2
    assert len(infer) == 3 * per * 3  # models x (engine, precision) x batch sizes
    pairs = {(c.engine, c.precision) for c in infer}
    assert ("keras_predict", "int8") not in pairs and ("keras_predict", "float16") not in pairs
    assert {("openvino", "bfloat16"), ("litert", "int8"), ("onnxruntime", "float16")} <= pairs
    assert {c.batch_size for c in infer} == {1, 8, 32} and {c.dataset for c in cells} == {"mnist"}
    train = [c for c in cells if c.task == "train"]
    assert {c.pipeline for c in train} == {"synthetic", "real"} and len({c.model.name for c in train}) == 2
    assert len({c.key() for c in cells}) == len(cells)  # keys identify cells uniquely (resume)


@pytest.mark.parametrize("option, value, listed", [
    ("--models", "resnet18,no_such_net", "resnet50"),
    ("--datasets", "imagenet22k", "cifar10"),
    ("--engines", "tensorrt", "onnxruntime"),
    ("--precisions", "int4", "mixed_bfloat16"),
    ("--tasks", "serve", "accuracy"),
])
def test_unknown_names_rejected_before_anything_runs(option, value, listed, tmp_path, capsys):
    out = tmp_path / "out"
    code = run.main(["--profile", "quick", option, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    bad = value.split(",")[-1]
    assert "unknown" in err and repr(bad) in err and listed in err  # says what is wrong and what is valid
    assert not out.exists()  # nothing ran, nothing written


def test_all_problems_reported_at_once(tmp_path, capsys):
    code = run.main(["--models", "nope", "--datasets", "nada", "--engines", "zilch", "--batch-sizes", "0",
                     "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    for word in ("'nope'", "'nada'", "'zilch'", "batch sizes must be positive"):
        assert word in err


def test_unknown_profile_and_bad_matrix_file(tmp_path, capsys):
    assert run.main(["--profile", "turbo"]) == 2
    assert "unknown profile 'turbo'" in capsys.readouterr().err
    bad = tmp_path / "m.toml"
    bad.write_text('datasets = ["mnist"]\nbatchsizes = [1]\n')
    assert run.main(["--matrix", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'batchsizes'" in err and "batch_sizes" in err
    bad.write_text("datasets = [mnist")
    assert run.main(["--matrix", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_gpu_requested_without_gpu(tmp_path, capsys):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert run.main(["--profile", "quick", "--device", "gpu", "--out", str(tmp_path / "g")]) == 2
    assert "no GPU" in capsys.readouterr().err


def test_overrides_keep_profile_model_options():
    matrix = mx.with_overrides(mx.load_profile("quick"), models=["resnet18", "vgg11"], batch_sizes=[2])
    assert matrix.models[0].options == {"small_input": True} and matrix.models[1].options == {}
    assert matrix.batch_sizes == [2]


def test_matrix_file_round_trip(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('''
datasets = ["mnist"]
tasks = ["infer", "train"]
engines = ["tf_function"]
batch_sizes = [1, 2]
xla = ["on", "off"]
repeats = 20
[[models]]
name = "resnet18"
image_size = 32
options = { small_input = true }
[train]
batch_sizes = [8]
pipelines = ["synthetic"]
''')
    matrix = mx.load_matrix(path)
    mx.validate(matrix)
    assert matrix.name == "mine" and matrix.repeats == 20 and matrix.xla == [True, False]
    cells = mx.cells(matrix, "cpu")
    assert len(cells) == 2 + 2  # 2 infer batch sizes + 2 xla settings x 1 train batch x 1 pipeline
    assert {c.xla for c in cells if c.task == "train"} == {True, False}


def test_rows_name_the_device_an_engine_really_runs_on():
    matrix = mx.with_overrides(mx.load_profile("gpu-full"), models=["resnet18"], precisions=["float32"],
                               tasks=["infer"], batch_sizes=[1])
    devices = {c.engine: c.device for c in mx.cells(matrix, "gpu")}
    assert devices == {"keras_predict": "gpu", "tf_function": "gpu", "xla": "gpu", "savedmodel": "gpu",
                       "onnxruntime": "cpu", "onnxruntime_cuda": "gpu"}


def test_dry_run_lists_cells_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "plan"
    assert run.main(["--profile", "quick", "--dry-run", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"{len(mx.cells(mx.load_profile('quick'), 'cpu'))} cells")
    assert lines[0].startswith("[1/") and not out.exists()
