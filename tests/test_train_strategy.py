"""`bench train --strategy mirrored` over two logical CPU devices: the CLI wiring of tf.distribute.

The numerical proof that mirrored training equals single-device training is in
tests/test_distribute_training.py; this checks the training command itself uses the strategy: the
global batch is the recipe's per-replica batch times the replicas, and the run records it.
"""

import json
import os
import subprocess
import sys

import pytest
from pathlib import Path

import keras

from bench.train.recipes import get_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a long real run: make test-all
def test_train_mirrored_two_logical_cpus_records_strategy_and_global_batch(tmp_path, mnist):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "train", "--recipe", "mnist_tiny", "--strategy", "mirrored",
         "--cpu-devices", "2", "--epochs", "1", "--limit-train", "2000", "--quiet", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "recipe.json").read_text())
    assert record["strategy"] == "MirroredStrategy"
    assert record["replicas"] == 2
    assert record["recipe"]["batch_size"] == 2 * get_recipe("mnist_tiny").batch_size
    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, 10)
