"""Callbacks of a training run: the training clock, NaN stop, per-epoch checkpoint + state, history
CSV, step log, time budget, step limit, lookahead (EMA of the weights) and parameter freezing.

Order matters and is fixed by `fit.train`: TrainClock runs first (everything else reads it),
NonFiniteLossStop before the checkpoint callback so it can refuse to save weights from an epoch
that diverged.

Training time, everywhere in a record and for every budget, is the TrainClock's: the time from
each epoch's start to its last training step (the steps themselves, waiting for input batches,
the first step's tracing, the callbacks run between steps), summed over epochs and resumes, plus
one-off training work such as the whitening init. Validation passes, checkpoint writing and the
test evaluation are not training time. Two runs compared "for the same training time" are
measured by this one clock.
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


class TrainClock(keras.callbacks.Callback):
    """Training time (see the module docstring): `elapsed()` at any moment, `total` after each epoch;
    `batches`: training steps run in every phase (a fine-tuning run's second phase restarts the
    optimizer's own step count)."""

    def __init__(self, already_s: float = 0.0, batches: int = 0):
        super().__init__()
        self.total, self.batches = float(already_s), int(batches)
        self._epoch_start: float | None = None
        self._last_step = 0.0

    def add(self, seconds: float) -> None:
        """One-off training work outside model.fit (e.g. the whitening init)."""
        self.total += float(seconds)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_step = time.perf_counter()
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_start is not None:
            self.total += self._last_step - self._epoch_start
        self._epoch_start = None

    def elapsed(self) -> float:
        if self._epoch_start is None:
            return self.total
        return self.total + time.perf_counter() - self._epoch_start


class TimeBudget(keras.callbacks.Callback):
    """Stops training once the clock's training time (across resumes) reaches `budget_s`.

    It stops mid-epoch; that partial epoch is still validated and checkpointed as done."""

    def __init__(self, budget_s: float, clock: TrainClock):
        super().__init__()
        self.budget_s, self.clock = float(budget_s), clock
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.elapsed() >= self.budget_s:
            self.stopped = True
            self.model.stop_training = True


class StepLimit(keras.callbacks.Callback):
    """Ends training after `limit()` optimizer steps in total: a fractional last epoch, or the end of
    a schedule fitted to a time budget. Counts from the optimizer's own step, so resumes agree."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit  # callable: the planned total, which a budget may revise
        self.reached = False

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.limit():
            self.reached = True
            self.model.stop_training = True


class StepLog(keras.callbacks.Callback):
    """Every `every` steps: step, training time, loss (Keras' running mean over the epoch so far) and
    learning rate, written to `path` (CSV) at each epoch end. Curves against training time for runs
    too short for per-epoch curves (an equal time budget, a fine-tuning comparison)."""

    def __init__(self, path: Path, clock: TrainClock, every: int, keep_until_step: int = 0):
        super().__init__()
        self.path, self.clock, self.every = path, clock, max(1, int(every))
        self.rows = [r for r in read_history(path, key="step") if r["step"] <= keep_until_step] if keep_until_step else []

    def on_train_batch_end(self, batch, logs=None):
        step = self.clock.batches
        if step % self.every == 0 or step == 1:
            loss = (logs or {}).get("loss")
            self.rows.append({"step": step, "train_time_s": round(self.clock.elapsed(), 3),
                              "loss": float(np.asarray(loss)) if loss is not None else float("nan"),
                              "lr": current_lr(self.model)})

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, ["step", "train_time_s", "loss", "lr"])
            writer.writeheader()
            writer.writerows(self.rows)


class Lookahead(keras.callbacks.Callback):
    """hlb-cifar10 / airbench94's lookahead: every `every` steps, ema <- d * ema + (1 - d) * w and
    w <- ema, over every float weight of the model (BatchNorm's moving statistics included), with
    d = 0.95**5 * (step / total)**3 (0 early: plain training; about 0.77 at the end). At the planned
    last step, and whenever training stops early, the model is left holding the EMA.
    `total()` is the planned step count (a time budget may revise it). A resumed run starts its EMA
    from the checkpoint's weights (the EMA itself is not saved)."""

    def __init__(self, total, every: int = 5):
        super().__init__()
        self.total, self.every = total, int(every)

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self._vars = [v for v in self.model.weights if "float" in str(v.dtype)]
        self._ema = [tf.Variable(keras.ops.convert_to_tensor(v), trainable=False) for v in self._vars]

        @tf.function
        def update(decay):
            for e, v in zip(self._ema, self._vars):
                e.assign(decay * e + (1.0 - decay) * tf.cast(keras.ops.convert_to_tensor(v), e.dtype))
                v.assign(tf.cast(e, v.dtype))

        self._update = update
        self._final_done = False

    def on_train_batch_end(self, batch, logs=None):
        import tensorflow as tf

        step, total = int(self.model.optimizer.iterations.numpy()), max(int(self.total()), 1)
        if step % self.every == 0:
            self._update(tf.constant(0.95 ** 5 * min(step / total, 1.0) ** 3, tf.float32))
        # the planned end, or an earlier callback (time budget) ends training at this step
        if (step >= total or self.model.stop_training) and not self._final_done:
            self._update(tf.constant(1.0, tf.float32))
            self._final_done = True

    def on_train_end(self, logs=None):
        import tensorflow as tf

        if not self._final_done:  # stopped before the planned end (a time budget): keep the EMA
            self._update(tf.constant(1.0, tf.float32))
            self._final_done = True


class SwitchOff(keras.callbacks.Callback):
    """Freezes a TorchSGD switch group at step `at_step()` (airbench: the whitening bias trains for
    its first 3 of 10 epochs); before it, and after a resume before it, the group trains."""

    def __init__(self, name: str, at_step):
        super().__init__()
        self.name, self.at_step = name, at_step

    def _apply(self):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.set_switch(self.name, 0.0 if step >= self.at_step() else 1.0)

    def on_train_begin(self, logs=None):
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self._apply()


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the full model (weights + optimizer state) to `last.keras` after every good epoch,
    `best.keras` when the monitored validation metric improves, and `state.json` (epochs done,
    best so far, training time) that `--resume` reads. Nothing is saved for a diverged epoch."""

    def __init__(self, out_dir: Path, monitor: str | None, nan_stop: NonFiniteLossStop,
                 state: dict[str, Any], clock: TrainClock, on_save=None):
        super().__init__()
        self.out_dir, self.monitor, self.nan_stop = out_dir, monitor, nan_stop
        self.state, self.clock = state, clock
        self.on_save = on_save  # adds to the state before it is written (e.g. the budget plan)

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
        self.state.update(epoch=epoch + 1, train_time_s=round(self.clock.total, 2),
                          steps=int(self.model.optimizer.iterations.numpy()))
        if self.on_save:
            self.on_save(self.state)
        atomic_write_json(self.out_dir / "state.json", self.state, indent=2)


class HistoryCSV(keras.callbacks.Callback):
    """One row per epoch: epoch (1-based), learning rate, wall time, and every logged metric.
    On resume the rows of epochs that were not checkpointed are dropped first."""

    def __init__(self, path: Path, initial_epoch: int, clock: TrainClock | None = None):
        super().__init__()
        self.path, self.clock = path, clock
        self.rows = read_history(path)[:initial_epoch] if initial_epoch else []
        self._t = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "lr": current_lr(self.model),
               "epoch_time_s": round(time.perf_counter() - self._t, 2)}
        if self.clock is not None:  # cumulative training time at this epoch's end
            row["train_time_s"] = round(self.clock.total, 2)
        row.update({k: float(np.asarray(v)) for k, v in (logs or {}).items() if k != "learning_rate"})
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)


def read_history(path: Path, key: str = "epoch") -> list[dict[str, Any]]:
    """Rows of history.csv (key "epoch") or steps.csv (key "step"), numbers parsed."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == key else float(v)) for k, v in r.items() if v != ""}
                for r in csv.DictReader(f)]
