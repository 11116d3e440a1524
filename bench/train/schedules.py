"""Learning-rate schedules of the recipes, as serializable Keras schedules whose length can be refitted.

Both are functions of the optimizer step, so a resumed run (whose optimizer keeps its
`iterations`) continues the schedule exactly where it stopped.

Keras calls a schedule inside the traced training step, so a plain Python `total_steps` would be
frozen into the graph. Here the total is a variable read at every step: a time-budgeted run
measures its speed, then `set_total_steps(n)` fits the whole schedule (warm-up, peak, decay) into
the steps that fit, and the next step already follows the new shape. `get_config` writes the
current total, so a checkpoint resumes with the refitted schedule.
"""
from __future__ import annotations

import math

import keras
from keras import ops


class RefittableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule over `total_steps` steps whose total can be changed while training runs."""

    def _init_total(self, total_steps: int) -> None:
        if int(total_steps) <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        self._total = keras.Variable(float(int(total_steps)), trainable=False, dtype="float32",
                                     name="schedule_total_steps")

    @property
    def total_steps(self) -> int:
        return int(round(float(ops.convert_to_numpy(self._total))))

    def set_total_steps(self, total_steps: int) -> None:
        """Fits the whole schedule into `total_steps` optimizer steps (from step 0)."""
        if int(total_steps) <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        self._total.assign(float(int(total_steps)))

    def _total_tensor(self):
        return ops.cast(self._total, "float32")


@keras.saving.register_keras_serializable(package="bench.train")
class WarmupCosine(RefittableSchedule):
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to
    `peak_lr * final_fraction` at `total_steps` (held after that). A refitted total scales the
    warm-up with it (the warm-up keeps its fraction of the run)."""

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                 final_fraction: float = 0.0):
        if total_steps <= 0 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                             f"total_steps={total_steps}")
        self.peak_lr, self.final_fraction = float(peak_lr), float(final_fraction)
        self.warmup_fraction = int(warmup_steps) / int(total_steps)
        self._init_total(total_steps)

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_fraction * self.total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = self._total_tensor()
        warmup = ops.floor(self.warmup_fraction * total + 1e-6)
        warm = self.peak_lr * (step + 1.0) / ops.maximum(warmup, 1.0)
        progress = ops.clip((step - warmup) / ops.maximum(total - warmup, 1.0), 0.0, 1.0)
        floor = self.peak_lr * self.final_fraction
        cosine = floor + (self.peak_lr - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warm, cosine)

    def end_value(self) -> float:
        return self.peak_lr * self.final_fraction

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "final_fraction": self.final_fraction}


@keras.saving.register_keras_serializable(package="bench.train")
class OneCycle(RefittableSchedule):
    """Smith's one-cycle as airbench uses it: linear from `peak_lr * start_fraction` up to
    `peak_lr` at `peak_at` (fraction of training), then linear down to `peak_lr * end_fraction`
    at the last step. airbench94: peak_at 0.23, start 0.2, end 0.07."""

    def __init__(self, peak_lr: float, total_steps: int, peak_at: float = 0.25,
                 start_fraction: float = 0.1, end_fraction: float = 0.0):
        if total_steps <= 0 or not 0 < peak_at < 1:
            raise ValueError(f"need total_steps > 0 and 0 < peak_at < 1, got total_steps={total_steps}, "
                             f"peak_at={peak_at}")
        self.peak_lr, self.peak_at = float(peak_lr), float(peak_at)
        self.start_fraction, self.end_fraction = float(start_fraction), float(end_fraction)
        self._init_total(total_steps)

    def __call__(self, step):
        t = ops.clip(ops.cast(step, "float32") / self._total_tensor(), 0.0, 1.0)
        up = self.start_fraction + (1.0 - self.start_fraction) * t / self.peak_at
        down = 1.0 + (self.end_fraction - 1.0) * (t - self.peak_at) / (1.0 - self.peak_at)
        return self.peak_lr * ops.where(t < self.peak_at, up, down)

    def end_value(self) -> float:
        return self.peak_lr * self.end_fraction

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "peak_at": self.peak_at,
                "start_fraction": self.start_fraction, "end_fraction": self.end_fraction}


SCHEDULES = ("constant", "warmup_cosine", "one_cycle")
# the recipe's `schedule_options` keys each schedule takes
SCHEDULE_OPTIONS = {"constant": (), "warmup_cosine": ("final_fraction",),
                    "one_cycle": ("peak_at", "start_fraction", "end_fraction")}


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0, **options):
    """The recipe's `schedule` name -> a float (constant) or a RefittableSchedule."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    unknown = sorted(set(options) - set(SCHEDULE_OPTIONS[name]))
    if unknown:
        raise ValueError(f"schedule {name!r} takes no option(s) {unknown}; valid: {SCHEDULE_OPTIONS[name] or 'none'}")
    if name == "constant":
        return float(lr)
    if name == "warmup_cosine":
        return WarmupCosine(lr, total_steps, warmup_steps, **options)
    return OneCycle(lr, total_steps, **options)
