"""`--dry-run` warns about batch sizes whose activations cannot fit in memory (issue 16)."""
from __future__ import annotations

import keras

from bench.harness import estimate, run


def test_activation_bytes_is_twice_the_largest_layer_output():
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, padding="same"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    assert estimate.activation_bytes(model) == 2 * 32 * 32 * 8 * 4


def test_nested_backbone_layers_count():
    inner = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(64, 3, padding="same")], name="backbone")
    outer = keras.Sequential([keras.Input((16, 16, 3)), inner, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    assert estimate.activation_bytes(outer) == 2 * 16 * 16 * 64 * 4


def test_dry_run_warns_with_a_batch_that_fits(tmp_path, capsys):
    code = run.main(["--models", "resnet18", "--datasets", "mnist", "--engines", "onnxruntime",
                     "--tasks", "infer", "--batch-sizes", "1,10000000", "--dry-run", "--out", str(tmp_path / "plan")])
    assert code == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: batch")]
    assert len(warnings) == 1 and "batch 10000000 of resnet18" in warnings[0], out
    fits = int(warnings[0].rsplit("at most ", 1)[1].split()[0].rstrip(":"))
    assert 1 <= fits < 10_000_000
    assert not (tmp_path / "plan").exists()


def test_no_warning_without_a_memory_reading():
    assert estimate.memory_warnings([], {}, None) == []
