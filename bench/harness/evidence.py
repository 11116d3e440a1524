"""Accuracy costs a run takes from verified exports instead of measuring them again.

When `export` verifies a trained checkpoint's artifacts it measures the top-1 of every reduced
precision on the whole test split against the float32 model (manifest.json, `reduced_precision`).
A benchmark of the same architecture timed with untrained weights at another input size (the
seed's ResNet at 224 against a checkpoint trained on CIFAR-10 at 32x32) can use those costs to say
which precision to ship, without evaluating the test set through every engine again (minutes per
model per engine). The run records what it read in environment.json; the report uses it.

An export that the accuracy rule refused measured its costs all the same: those costs are evidence
too (a precision that loses 13 points on a trained ResNet-50 must not be shipped for the untrained
one), so a failed export counts whenever it judged a precision on real images.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def collect(entries: list[dict[str, str]]) -> dict[str, list]:
    """{"rows": one per exported (format, precision) that the accuracy rule judged, "missing": one
    note per entry that is not a verified export, saying how to make it}."""
    rows, missing = [], []
    for entry in entries:
        try:
            rows += rows_of(Path(entry["artifact"]), entry.get("architecture"))
        except ValueError as exc:
            missing.append(f"{exc}" + (f"; make it with: {entry['produce']}" if entry.get("produce") else ""))
    return {"rows": rows, "missing": missing}


def rows_of(root: Path, architecture: str | None = None) -> list[dict[str, Any]]:
    """The accuracy rows of one export (its artifact directory or the copy of its manifest in
    results/export). `architecture` overrides the manifest's (a training model's own name, such as
    GoogLeNet's `googlenet_train`, is not the zoo name the benchmark times)."""
    from export.formats import FORMATS

    path = root / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{root}: no manifest.json (not an export)")
    manifest = json.loads(path.read_text())
    if manifest.get("status") not in ("passed", "failed"):
        raise ValueError(f"{root}: export status {manifest.get('status')!r}, not a finished export")
    shape = "x".join(str(d) for d in manifest["input"]["shape"][1:])
    rows = []
    for key, check in (manifest.get("reduced_precision") or {}).items():
        fmt = key.partition("@")[0]
        if fmt not in FORMATS or "top1" not in check:
            continue
        rows.append({"model": root.name, "architecture": architecture or manifest.get("architecture", ""),
                     "dataset": manifest.get("dataset", ""), "engine": FORMATS[fmt].runtime,
                     "precision": check["precision"], "top1": check["top1"], "top1_float32": check["top1_fp32"],
                     "cost_points": (check["top1_fp32"] - check["top1"]) * 100, "examples": check["images"],
                     "input_shape": shape, "export_status": manifest["status"], "source": str(path)})
    if not rows:
        raise ValueError(f"{root}: the export judged no reduced precision on real images")
    return rows
