"""The committed exports in results/export: every trained checkpoint's reduced-precision files were
judged by the accuracy rule on its whole test split, calibrated on training images, and a rejected
export keeps the measured drop that rejected it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

EXPORTS = Path(__file__).resolve().parents[1] / "results" / "export"
REDUCED = ("onnx_fp16", "onnx_int8", "openvino_int8", "litert_int8")   # files of their own
MANIFESTS = sorted(EXPORTS.glob("*/manifest.json"))


def test_there_are_committed_exports():
    assert len(MANIFESTS) >= 3, MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.name)
def test_each_reduced_precision_file_was_judged_on_the_whole_test_split(path):
    m = json.loads(path.read_text())
    reduced = m["reduced_precision"]
    judged = [fmt for fmt in REDUCED if fmt in m["formats"]]
    if "openvino" in m["formats"] and "openvino@bfloat16" in reduced:
        judged.append("openvino@bfloat16")
    assert judged, f"{path}: no reduced-precision format"
    for fmt in judged:
        r = reduced[fmt]
        assert r["inputs"] == "real" and r["images"] == m["accuracy"]["images"], (fmt, r["images"])
        assert m["accuracy"]["split"] == "test"
        # the verdict follows from the measured drop and its 95% interval, never the other way round
        assert r["passed"] == (r["top1_drop_low95"] <= r["max_top1_drop"]), (fmt, r)
        assert r["top1_drop"] == pytest.approx(r["top1_fp32"] - r["top1"], abs=1e-4)
        if "calibration_images" in r:  # int8: calibrated on training images, never the test split
            assert r["calibration_images"] > 0
    parity = all(c["passed"] for c in m["parity"]["checks"])
    assert (m["status"] == "passed") == (parity and all(reduced[f]["passed"] for f in judged))
    assert (path.parent / "report.txt").exists()


def test_a_rejected_export_records_the_drop_that_rejected_it():
    rejected = [json.loads(p.read_text()) for p in MANIFESTS if json.loads(p.read_text())["status"] != "passed"]
    assert rejected, "results/export keeps at least one rejected export as the accuracy rule's evidence"
    for m in rejected:
        failed = [r for r in m["reduced_precision"].values() if not r["passed"]]
        assert all(r["verdict"].startswith("FAIL: top-1 drop") for r in failed)
        off = [c for c in m["parity"]["checks"] if not c["passed"]]
        assert failed or off, "a rejected export says what rejected it: a measured drop or a parity check"
        for c in off:   # a float32 parity failure keeps its measured difference
            assert any(o["max_abs_diff"] > c["atol"] or o["top1_agreement"] < 1 or o["nonfinite"]
                       for o in c["outputs"]), c
    # and at least one of them was refused by the accuracy rule, with the drop it measured
    assert any(not r["passed"] for m in rejected for r in m["reduced_precision"].values())
