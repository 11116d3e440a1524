"""`bench run --strategy multiworker` with two local workers: the chief measures and writes every
row; the other worker joins only the chief's pending training cells (their steps are collective)
and leaves no scratch folder behind; on --resume both skip what the chief already has."""
from __future__ import annotations

import pytest

import glob
import os
import sys
import tempfile

import pandas as pd

from bench.distribute.launch import launch

MODEL = "reference_cnn"
COMMAND = [sys.executable, "-m", "bench", "run", "--profile", "quick", "--models", MODEL,
           "--tasks", "train,infer", "--engines", "tf_function", "--batch-sizes", "8",
           "--strategy", "multiworker", "--no-overhead-check"]


def worker1_scratch() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "imgcls-worker1-*")))


@pytest.mark.slow  # a long real run: make test-all
def test_two_workers_write_one_results_file_and_resume_together(tmp_path):
    out = tmp_path / "res"
    before = worker1_scratch()
    job = launch([*COMMAND, "--out", str(out), "--fresh"], 2, log_dir=str(tmp_path / "logs"), timeout_s=600)
    assert job.ok, job.message
    rows = pd.read_csv(out / "results.csv")
    assert sorted(rows["task"]) == ["infer", "train", "train"] and (rows["status"] == "ok").all()
    assert (rows.loc[rows["task"] == "train", "replicas"] == 2).all()
    log1 = open(job.log_paths[1]).read()
    assert "infer " not in log1.split("device")[-1]  # worker 1 ran no inference cell
    assert worker1_scratch() == before  # its scratch folder is gone

    # the chief loses its last training row; on --resume both workers run just that cell
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    assert len(lines) == 4 and rows.iloc[-1]["task"] == "train"
    (out / "results.csv").write_text("".join(lines[:-1]))
    job = launch([*COMMAND, "--out", str(out), "--resume"], 2, log_dir=str(tmp_path / "logs2"), timeout_s=600)
    assert job.ok, job.message
    assert len(pd.read_csv(out / "results.csv")) == 3
    for path in job.log_paths:
        assert "resuming: 2 of 3 cells already on disk" in open(path).read()
