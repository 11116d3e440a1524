"""Verdict tables: aligned, Markdown-valid, numbers formatted with their units."""
import math

from bench.gate.compare import Comparison
from bench.gate.compare import perf_table
from bench.plumbing.tables import render


def test_render_pads_columns_and_right_aligns_numbers():
    text = render(["name", "ms"], [["a", 1.5], ["longer name", 12.25]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert lines[1] == "|-------------|-------:|"
    assert lines[2] == "| a           |  1.500 |"
    assert lines[3] == "| longer name | 12.250 |"


def test_perf_table_shows_slowdown_bound_threshold_and_verdict():
    rows = [Comparison("tf_infer[resnet18-b32]", "REGRESSED", 1.262, 1.201, 0.10, 20.0, 25.24, 3),
            Comparison("export_onnx", "ok", 0.98, 0.91, 0.15, 500.0, 490.0, 3),
            Comparison("train_step[resnet18-b32]", "new", math.nan, math.nan, 0.10, math.nan, 80.0, 3,
                       "no baseline to compare with")]
    text = perf_table(rows)
    lines = text.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:8] == ["benchmark", "base_ms", "candidate_ms", "slowdown", "slowdown_low95", "threshold",
                          "rounds", "verdict"]
    regressed = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert regressed[:8] == ["tf_infer[resnet18-b32]", "20.000", "25.240", "+26.2%", "+20.1%", "+10%", "3",
                             "REGRESSED"]
    new = [cell.strip() for cell in lines[4].strip("|").split("|")]
    assert new[1] == "-" and new[3] == "-" and new[7] == "new"
