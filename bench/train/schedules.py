"""Learning-rate schedules of the recipes, as serializable Keras schedules.

Both are functions of the optimizer step, so a resumed run (whose optimizer keeps its
`iterations`) continues the schedule exactly where it stopped.
"""
from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bench.train")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to
    `peak_lr * final_fraction` at `total_steps` (held after that)."""

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                 final_fraction: float = 0.0):
        if total_steps <= 0 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                             f"total_steps={total_steps}")
        self.peak_lr, self.total_steps = float(peak_lr), int(total_steps)
        self.warmup_steps, self.final_fraction = int(warmup_steps), float(final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak_lr * (step + 1.0) / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 0.0, 1.0)
        floor = self.peak_lr * self.final_fraction
        cosine = floor + (self.peak_lr - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "final_fraction": self.final_fraction}


@keras.saving.register_keras_serializable(package="bench.train")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's one-cycle as airbench uses it: linear from `peak_lr * start_fraction` up to
    `peak_lr` at `peak_at` (fraction of training), then linear down to `peak_lr * end_fraction`."""

    def __init__(self, peak_lr: float, total_steps: int, peak_at: float = 0.25,
                 start_fraction: float = 0.1, end_fraction: float = 0.0):
        if total_steps <= 0 or not 0 < peak_at < 1:
            raise ValueError(f"need total_steps > 0 and 0 < peak_at < 1, got total_steps={total_steps}, "
                             f"peak_at={peak_at}")
        self.peak_lr, self.total_steps, self.peak_at = float(peak_lr), int(total_steps), float(peak_at)
        self.start_fraction, self.end_fraction = float(start_fraction), float(end_fraction)

    def __call__(self, step):
        t = ops.clip(ops.cast(step, "float32") / self.total_steps, 0.0, 1.0)
        up = self.start_fraction + (1.0 - self.start_fraction) * t / self.peak_at
        down = 1.0 + (self.end_fraction - 1.0) * (t - self.peak_at) / (1.0 - self.peak_at)
        return self.peak_lr * ops.where(t < self.peak_at, up, down)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "peak_at": self.peak_at,
                "start_fraction": self.start_fraction, "end_fraction": self.end_fraction}


SCHEDULES = ("constant", "warmup_cosine", "one_cycle")


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0):
    """The recipe's `schedule` name -> a float (constant) or a LearningRateSchedule."""
    if name == "constant":
        return float(lr)
    if name == "warmup_cosine":
        return WarmupCosine(lr, total_steps, warmup_steps)
    if name == "one_cycle":
        return OneCycle(lr, total_steps)
    raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
