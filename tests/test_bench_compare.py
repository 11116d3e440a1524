"""`bench report DIR DIR ...`: results folders of several machines merged by environment id into one
comparison of the same cells, and timm's benchmark column names (issue 16). The folders are written
by bench run's own writers (ResultsFile, environment.json); no TensorFlow is needed to merge them."""
from __future__ import annotations

import csv
from pathlib import Path

from bench.harness.compare import TIMM
from bench.harness.report import main
from bench.harness.results import ResultsFile
from bench.plumbing.files import atomic_write_json

CELL = {"model": "small_cnn", "architecture": "small_cnn", "dataset": "mnist", "task": "infer",
        "engine": "onnxruntime", "precision": "float32", "xla": False, "threads": 0, "input_shape": "28x28x1",
        "params": 123_456, "flops_per_image": 4.2e6, "status": "ok"}


def _folder(path: Path, env_id: str, host: str, gpu: str, rows: list[dict]) -> Path:
    """What `bench run --out PATH` leaves: results.csv rows and environment.json."""
    atomic_write_json(path / "environment.json", {
        "env_id": env_id, "hostname": host, "cpu_model": "AMD EPYC" if not gpu else "Intel Xeon", "cpu_count": 2,
        "gpus": [{"name": gpu}] if gpu else [], "versions": {"tensorflow": "2.21.0", "onnxruntime": "1.22.0"},
        "git": {"commit": "0123456789abcdef"}})
    results = ResultsFile(path)
    for i, row in enumerate(rows):
        results.append({**CELL, **row, "env_id": env_id, "hostname": host, "gpu_name": gpu,
                        "device": "gpu" if gpu else "cpu", "timestamp": f"2026-12-02T07:0{i}:00+00:00"})
    return path


def test_folders_merge_by_environment_and_compare_the_same_cells(tmp_path, capsys):
    laptop = _folder(tmp_path / "laptop-quick", "aaaaaaaaaaaa", "laptop", "", [
        {"batch_size": 1, "images_per_sec": 500.0, "latency_ms_mean": 2.0},
        {"batch_size": 8, "images_per_sec": 2000.0, "latency_ms_mean": 4.0},
        {"batch_size": 64, "images_per_sec": 2500.0, "latency_ms_mean": 25.6}])  # this machine only
    # a second folder of the same machine and commit (another profile): the same column, not a new one
    laptop_train = _folder(tmp_path / "laptop-train", "aaaaaaaaaaaa", "laptop", "", [
        {"task": "train", "engine": "keras_fit", "pipeline": "synthetic", "batch_size": 32,
         "images_per_sec": 300.0, "latency_ms_mean": 106.7}])
    gpu_box = _folder(tmp_path / "gpu-box", "bbbbbbbbbbbb", "gpubox", "NVIDIA L4", [
        {"batch_size": 1, "images_per_sec": 1500.0, "latency_ms_mean": 0.667},
        {"batch_size": 8, "images_per_sec": 9000.0, "latency_ms_mean": 0.889},
        {"batch_size": 8, "images_per_sec": 12000.0, "latency_ms_mean": 0.667},  # the latest row counts
        {"task": "train", "engine": "keras_fit", "pipeline": "synthetic", "batch_size": 32,
         "images_per_sec": 2400.0, "latency_ms_mean": 13.3},
        {"batch_size": 16, "status": "failed", "reason": "out of memory"}])
    out = tmp_path / "compare"
    assert main([str(laptop), str(gpu_box), str(laptop_train), "--out", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "2 environment(s)" in md
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert "laptop (AMD EPYC) [aaaaaaaa]" in header and "gpubox (NVIDIA L4) [bbbbbbbb]" in header
    assert header.count("[aaaaaaaa]") == 1  # two folders, one environment
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:6]: line for line in md.splitlines()
            if line.startswith("| small_cnn")}
    assert "3.00x" in rows[("small_cnn", "mnist", "infer", "onnxruntime", "float32", "1")]
    assert "6.00x" in rows[("small_cnn", "mnist", "infer", "onnxruntime", "float32", "8")]
    assert "8.00x" in rows[("small_cnn", "mnist", "train", "keras_fit", "float32", "32")]
    assert not any(key[5] in ("64", "16") for key in rows)  # measured ok on one machine only

    with (out / "timm_benchmark.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:len(TIMM)] == TIMM
        table = list(reader)
    assert TIMM[:5] == ["model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size"]
    first = next(r for r in table if r["env_id"] == "aaaaaaaaaaaa" and r["infer_batch_size"] == "8")
    assert (first["model"], first["infer_samples_per_sec"], first["infer_step_time"], first["infer_img_size"],
            first["param_count"], first["infer_gmacs"]) == ("small_cnn", "2000.0", "4.0", "28", "0.12", "0.0021")
    train = next(r for r in table if r["train_samples_per_sec"])
    assert train["train_batch_size"] == "32" and train["infer_samples_per_sec"] == ""
    assert len(table) == 3 + 1 + 4  # every ok infer/train row; the failed one is left out

    capsys.readouterr()
    assert main([str(laptop), str(tmp_path / "nothing-here"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing-here has no results.csv" in err
