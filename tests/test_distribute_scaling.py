"""Scaling efficiency: the formula, and a tiny real measurement (2 fresh processes with 1 and 2
logical CPU devices) written to CSV + markdown."""
from __future__ import annotations

import csv

import pytest

from bench.harness.scaling import COLUMNS, efficiency, main


def test_efficiency_is_throughput_over_n_times_one_replica():
    assert efficiency(2000.0, 1000.0, 2) == pytest.approx(1.0)
    assert efficiency(1000.0, 1000.0, 2) == pytest.approx(0.5)  # a second replica that adds nothing
    assert efficiency(3000.0, 1000.0, 4) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="positive one-replica throughput"):
        efficiency(1000.0, 0.0, 2)


@pytest.mark.slow  # a long real run: make test-all
def test_logical_device_scaling_is_measured_and_written(tmp_path):
    out = tmp_path / "distribute"
    assert main(["--out", str(out), "--setups", "logical_devices", "--model", "tiny_mlp", "--per-replica-batch", "16",
                 "--warmup", "1", "--steps", "3", "--repeats", "1"]) == 0
    with open(out / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    assert [(r["setup"], int(r["replicas"]), int(r["global_batch"])) for r in rows] == [
        ("logical_devices", 1, 16), ("logical_devices", 2, 32)]
    one, two = (float(r["images_per_sec"]) for r in rows)
    assert one > 0 and two > 0
    assert float(rows[0]["scaling_efficiency"]) == 1.0
    assert float(rows[1]["scaling_efficiency"]) == pytest.approx(two / (2 * one), abs=1e-3)
    text = (out / "scaling.md").read_text()
    assert "| logical_devices | 2 | default | 32 |" in text
    assert "2 logical CPU devices on 2 cores share the same cores" in text
    assert sorted(p.name for p in out.iterdir()) == ["scaling.csv", "scaling.md"]  # scratch runs elsewhere


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
    assert "--steps and --warmup must be >= 1" in capsys.readouterr().err
