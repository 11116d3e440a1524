"""Tidy results: one flat row per measurement, appended to results.csv and flushed to disk as soon
as it is measured, so an interrupted run keeps every finished row; results.json mirrors the CSV."""
from __future__ import annotations

import csv
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.plumbing.files import atomic_write_json

# column -> type; the CSV header is exactly this order.
COLUMNS: dict[str, type] = {
    "model": str, "architecture": str, "dataset": str, "task": str, "engine": str, "device": str, "precision": str,
    "xla": bool, "batch_size": int, "pipeline": str, "threads": int, "threads_used": int, "input_shape": str,
    "strategy": str, "replicas": int, "global_batch": int,
    "images_per_sec": float,
    "latency_ms_p50": float, "latency_ms_p90": float, "latency_ms_p99": float,
    "latency_ms_mean": float, "latency_ms_std": float, "latency_ms_min": float,
    "repeats": int, "warmup": int, "conversion_s": float,
    "verified": str, "check": str, "artifact_format": str, "executed_precision": str,
    "top1": float, "top5": float, "examples": int, "checkpoint": str,
    "params": int, "flops_per_image": float, "achieved_flops_per_sec": float,
    "peak_flops_per_sec": float, "peak_fraction": float,
    "peak_memory_mb": float, "gpu_peak_memory_mb": float,
    "status": str, "reason": str, "duration_s": float, "timestamp": str,
    "env_id": str, "hostname": str, "cpu_model": str, "cpu_flags": str, "gpu_name": str,
    "tf_version": str, "keras_version": str, "ort_version": str, "git_commit": str,
}
# What identifies a cell: a rerun with --resume skips cells whose key is already on disk.
KEY = ("model", "dataset", "task", "engine", "device", "precision", "xla", "batch_size", "pipeline", "threads")
STATUSES = ("ok", "skipped", "failed")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_key(row: dict) -> tuple[str, ...]:
    return tuple(_text(row.get(c)) for c in KEY)


def _text(value) -> str:
    if isinstance(value, np.generic):  # numpy scalars print as np.float64(...)
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ResultsFile:
    """results.csv (+ results.json) in `out_dir`, opened for appending."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "results.csv"
        self.json_path = self.out_dir / "results.json"

    def exists(self) -> bool:
        return self.csv_path.exists()

    def read(self) -> list[dict[str, str]]:
        if not self.csv_path.exists():
            return []
        with self.csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames and list(reader.fieldnames) != list(COLUMNS):
                raise ValueError(f"{self.csv_path} has different columns than this version writes; "
                                 f"use --fresh to start it again or another --out")
            return list(reader)

    def finished_keys(self) -> set[tuple[str, ...]]:
        return {cell_key(r) for r in self.read() if r.get("status") in STATUSES}

    def append(self, row: dict) -> dict[str, str]:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"not a results column: {sorted(unknown)}")
        if row.get("status") not in STATUSES:
            raise ValueError(f"row status must be one of {STATUSES}, got {row.get('status')!r}")
        text = {c: _text(row.get(c)) for c in COLUMNS}
        new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
            if new:
                writer.writeheader()
            writer.writerow(text)  # one write of a whole line, then forced to disk
            f.flush()
            os.fsync(f.fileno())
        self.write_json()
        return text

    def write_json(self) -> None:
        rows = [typed(r) for r in self.read()]
        atomic_write_json(self.json_path, rows, allow_nan=False)  # never a half-written results.json

    def clear(self) -> None:
        for path in (self.csv_path, self.json_path):
            path.unlink(missing_ok=True)


def typed(row: dict[str, str]) -> dict[str, object]:
    """A CSV row with its column types back; empty cells become None (JSON null)."""
    out: dict[str, object] = {}
    for column, kind in COLUMNS.items():
        value = row.get(column, "")
        if value == "":
            out[column] = None if kind is not str else ""
        elif kind is bool:
            out[column] = value == "true"
        elif kind is int:
            out[column] = int(float(value))
        elif kind is float:
            f = float(value)
            out[column] = None if math.isnan(f) or math.isinf(f) else f
        else:
            out[column] = value
    return out
