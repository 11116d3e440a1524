"""Callbacks of a training run: NaN stop, per-epoch checkpoint + state, history CSV, time budget.

Order matters and is fixed by `fit.train`: NonFiniteLossStop runs first so the checkpoint
callback can refuse to save weights from an epoch that diverged.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bench.plumbing.files import atomic_path, atomic_write_json


class NonFiniteLossStop(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or inf and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.diverged_at: tuple[int, int, float] | None = None  # (epoch, batch, loss)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss))):
            self.diverged_at = (self._epoch, batch, float(np.asarray(loss)))
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `budget_s` seconds of training (across resumes) have passed.

    It stops mid-epoch; that partial epoch is still validated and checkpointed as done."""

    def __init__(self, budget_s: float, already_s: float = 0.0):
        super().__init__()
        self.budget_s, self.already_s = budget_s, already_s
        self.stopped = False

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.already_s + time.perf_counter() - self._start >= self.budget_s:
            self.stopped = True
            self.model.stop_training = True


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the full model (weights + optimizer state) to `last.keras` after every good epoch,
    `best.keras` when the monitored validation metric improves, and `state.json` (epochs done,
    best so far, training time) that `--resume` reads. Nothing is saved for a diverged epoch."""

    def __init__(self, out_dir: Path, monitor: str | None, nan_stop: NonFiniteLossStop,
                 state: dict[str, Any], start_time_s: float):
        super().__init__()
        self.out_dir, self.monitor, self.nan_stop = out_dir, monitor, nan_stop
        self.state = state
        self._t0 = time.perf_counter() - start_time_s

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.nan_stop.diverged_at is not None or not math.isfinite(float(logs.get("loss", 0.0))):
            return
        with atomic_path(self.out_dir / "last.keras") as tmp:
            self.model.save(tmp)
        value = logs.get(self.monitor) if self.monitor else None
        if value is not None and (self.state.get("best") is None or value > self.state["best"]):
            self.state.update(best=float(value), best_epoch=epoch + 1)
            with atomic_path(self.out_dir / "best.keras") as tmp:
                self.model.save(tmp)
        self.state.update(epoch=epoch + 1, train_time_s=round(time.perf_counter() - self._t0, 2))
        atomic_write_json(self.out_dir / "state.json", self.state, indent=2)


class HistoryCSV(keras.callbacks.Callback):
    """One row per epoch: epoch (1-based), learning rate, wall time, and every logged metric.
    On resume the rows of epochs that were not checkpointed are dropped first."""

    def __init__(self, path: Path, initial_epoch: int):
        super().__init__()
        self.path = path
        self.rows = read_history(path)[:initial_epoch] if initial_epoch else []
        self._t = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "lr": current_lr(self.model),
               "epoch_time_s": round(time.perf_counter() - self._t, 2)}
        row.update({k: float(np.asarray(v)) for k, v in (logs or {}).items() if k != "learning_rate"})
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items() if v != ""}
                for r in csv.DictReader(f)]
