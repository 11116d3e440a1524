"""`python -m bench run` end to end on a tiny quick-like matrix, and interrupted runs that resume."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pandas as pd
import pytest

from bench.harness import run
from bench.harness.results import COLUMNS, KEY

REPO = Path(__file__).resolve().parents[1]
MODEL = "reference_cnn"

TINY = f'''
datasets = ["mnist"]
tasks = ["infer", "train", "accuracy"]
engines = ["keras_predict", "tf_function", "onnxruntime", "onnxruntime_cuda"]
batch_sizes = [1, 4]
warmup = 2
repeats = 6
matmul_n = 128
[[models]]
name = "{MODEL}"
[train]
batch_sizes = [16]
warmup_steps = 2
steps = 3
[accuracy]
fit_steps = 30
batch_size = 100
limit = 200
'''


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    matrix = root / "tiny.toml"
    matrix.write_text(TINY)
    out = root / "out"
    code = run.main(["--matrix", str(matrix), "--out", str(out)])
    return code, out


def test_end_to_end_writes_every_output(tiny_run):
    code, out = tiny_run
    assert code == 0
    for name in ("results.csv", "results.json", "environment.json", "report.md", "latency_vs_batch.png",
                 "throughput_vs_batch.png", "train_synthetic_vs_real.png", "accuracy_vs_latency.png"):
        assert (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png.name


def test_rows_complete_and_typed(tiny_run):
    _, out = tiny_run
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4 * 2 + 2 + 2  # engines x batch sizes, synthetic + real training, TF + ONNX accuracy
    for column in ("batch_size", "repeats", "warmup"):
        assert df[column].dtype == "int64", column
    assert df["xla"].dtype == bool
    for column in ("images_per_sec", "latency_ms_p50", "latency_ms_p99", "top1", "params", "peak_memory_mb"):
        assert pd.api.types.is_float_dtype(df[column]) or pd.api.types.is_integer_dtype(df[column]), column
    assert set(df["status"]) == {"ok", "skipped"}
    assert not df[[k for k in KEY if k != "pipeline"]].isna().any().any()  # the key is filled (pipeline: training)
    ok = df[df["status"] == "ok"]
    measured = ok[ok["task"] != "accuracy"]
    assert not measured[["images_per_sec", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean",
                         "latency_ms_std", "params", "flops_per_image", "achieved_flops_per_sec", "peak_fraction",
                         "peak_memory_mb", "timestamp", "env_id", "tf_version", "ort_version"]].isna().any().any()
    assert (measured["latency_ms_p50"] <= measured["latency_ms_p90"]).all()
    assert (measured["latency_ms_p90"] <= measured["latency_ms_p99"]).all()
    infer = ok[ok["task"] == "infer"]
    assert (infer["repeats"] == 6).all() and (infer["warmup"] == 2).all()
    assert ((infer["peak_fraction"] > 0) & (infer["peak_fraction"] < 5)).all()
    skipped = df[df["status"] == "skipped"]
    assert set(skipped["engine"]) == {"onnxruntime_cuda"} and skipped["reason"].str.contains("CUDA").all()
    train = ok[ok["task"] == "train"]
    assert set(train["pipeline"]) == {"synthetic", "real"} and (train["repeats"] == 3).all()
    acc = ok[ok["task"] == "accuracy"].set_index("engine")
    assert set(acc.index) == {"tf_function", "onnxruntime"} and (acc["examples"] == 200).all()
    assert 0.0 <= acc.loc["tf_function", "top1"] <= 1.0
    # The same trained model through TF and through onnxruntime.
    assert abs(acc.loc["tf_function", "top1"] - acc.loc["onnxruntime", "top1"]) <= 0.01


def test_json_and_environment_join_the_rows(tiny_run):
    _, out = tiny_run
    rows = json.loads((out / "results.json").read_text())
    df = pd.read_csv(out / "results.csv")
    assert len(rows) == len(df) and isinstance(rows[0]["batch_size"], int)
    env = json.loads((out / "environment.json").read_text())
    for package in ("tensorflow", "keras", "onnxruntime", "onnx", "tf2onnx"):
        assert package in env["versions"]
    assert env["cpu_count"] >= 1 and env["cpu_model"] and env["command"][-1] == str(out)
    # a roof per engine family, precision and thread count the rows used
    threads = len(os.sched_getaffinity(0))
    assert env["git"]["commit"] and {f"tf:float32:{threads}", f"onnxruntime:float32:{threads}"} <= set(
        env["peak_matmul_flops_per_sec"])
    assert env["cpu_flags"] == df["cpu_flags"].fillna("").iloc[0].split()
    assert set(df["env_id"]) == {env["env_id"]} and set(df["tf_version"]) == {env["versions"]["tensorflow"]}
    assert 0 < env["harness_overhead"]["bare_ms_per_call"]


def test_report_has_the_verdicts(tiny_run):
    _, out = tiny_run
    report = (out / "report.md").read_text()
    for text in ("fastest verified engine per model and batch size", "speedup_vs_keras_predict",
                 "speedup_vs_onnxruntime_fp32", "## Checks", "parity: max abs diff", "Harness overhead",
                 "real_over_synthetic", "## Accuracy", "![latency vs batch size](latency_vs_batch.png)"):
        assert text in report, text


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as f:
        return list(csv.DictReader(f))


def _start(matrix: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # A shell running us in the background (`cmd &` without job control) starts children with SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: restore the default so Ctrl-C
    # reaches the run as it does from a terminal.
    return subprocess.Popen([sys.executable, "-m", "bench", "run", "--matrix", str(matrix), "--out", str(out), *extra],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_rows(proc: subprocess.Popen, csv_path: Path, n: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if csv_path.exists() and len(_rows(csv_path)) >= n:
            return
        assert proc.poll() is None, f"run ended early: {proc.stderr.read()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} rows within {timeout_s} s")


def test_interrupted_run_keeps_rows_and_resumes(tmp_path, capsys):
    matrix = tmp_path / "slow.toml"
    matrix.write_text(f'''
datasets = ["mnist"]
engines = ["tf_function"]
batch_sizes = [1, 2, 3, 4, 5, 6, 7, 8]
warmup = 1
time_budget_s = 0.4
min_repeats = 3
overhead_check = false
matmul_n = 64
models = ["{MODEL}"]
''')
    out = tmp_path / "out"
    csv_path = out / "results.csv"
    # Ctrl-C after two rows: the run stops with 130 and says how to go on.
    proc = _start(matrix, out)
    _wait_for_rows(proc, csv_path, 2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "--resume" in proc.stderr.read()
    first = _rows(csv_path)
    assert 2 <= len(first) < 8 and all(r["status"] == "ok" and r["latency_ms_p50"] for r in first), \
        [(r["batch_size"], r["status"], r["reason"]) for r in first]

    # A crash (SIGKILL) in the resumed run: what was finished is still on disk, no torn line.
    proc = _start(matrix, out, "--resume")
    _wait_for_rows(proc, csv_path, len(first) + 1)
    proc.kill()
    proc.wait(timeout=30)
    second = _rows(csv_path)
    assert second[:len(first)] == first and all(r["status"] == "ok" and r["timestamp"] for r in second)

    # Neither --resume nor --fresh on a directory with results: refused, nothing changed.
    assert run.main(["--matrix", str(matrix), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err and _rows(csv_path) == second

    assert run.main(["--matrix", str(matrix), "--out", str(out), "--resume"]) == 0
    final = _rows(csv_path)
    assert final[:len(second)] == second  # earlier rows untouched
    assert sorted(int(r["batch_size"]) for r in final) == list(range(1, 9))  # each cell exactly once
    assert len(json.loads((out / "results.json").read_text())) == 8
    assert len(json.loads((out / "environment.json").read_text())["earlier_runs"]) >= 2

    assert run.main(["--matrix", str(matrix), "--out", str(out), "--fresh", "--batch-sizes", "2"]) == 0
    fresh = _rows(csv_path)
    assert len(fresh) == 1 and fresh[0]["batch_size"] == "2"


def test_accuracy_of_a_given_checkpoint_through_tf_and_onnxruntime(tmp_path):
    from bench.data import load_dataset
    from bench.measure.accuracy import fit_briefly
    import zoo

    # A real checkpoint: trained briefly at 32x32x3 (MNIST resized, gray -> RGB), saved as .keras.
    # Seeded: the initial weights otherwise depend on what ran before (40 unseeded steps once gave 28%).
    keras.utils.set_random_seed(0)
    model = zoo.build("reference_cnn", input_shape=(32, 32, 3), num_classes=10)
    fit_briefly(model, load_dataset("mnist"), input_shape=(32, 32, 3), steps=100)
    checkpoint = tmp_path / "cnn_mnist.keras"
    model.save(checkpoint)
    out = tmp_path / "acc"
    code = run.main(["--profile", "quick", "--tasks", "accuracy", "--checkpoint", str(checkpoint),
                     "--precisions", "float32", "--no-overhead-check", "--out", str(out)])
    assert code == 0
    df = pd.read_csv(out / "results.csv").set_index("engine")
    assert set(df.index) == {"tf_function", "onnxruntime", "openvino", "litert"} and (df["status"] == "ok").all()
    assert (df["model"] == "cnn_mnist").all() and (df["checkpoint"] == str(checkpoint)).all()
    assert (df["input_shape"] == "32x32x3").all() and (df["examples"] == 2000).all()
    assert df.loc["tf_function", "top1"] > 0.3  # trained, not chance
    assert abs(df.loc["tf_function", "top1"] - df.loc["onnxruntime", "top1"]) <= 0.001
    assert (df["verified"] == "parity").all()


def test_missing_checkpoint_is_rejected(tmp_path, capsys):
    assert run.main(["--tasks", "accuracy", "--checkpoint", str(tmp_path / "none.keras"),
                     "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
