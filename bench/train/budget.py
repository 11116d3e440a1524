"""Budget-aware training plans: fit a whole schedule into the time a run has, instead of cutting it.

A recipe plans `epochs` epochs (fractional allowed: a last partial epoch). With a time budget
(`time_budget_s`, training time as `callbacks.TrainClock` measures it) the run measures its own
speed and fits the plan to it:

1. first estimate, after the first `probe` steps (the first two, which trace the graph, are not
   counted in the rate but their time is spent): steps that fit = steps done + remaining budget /
   seconds per step. If fewer than the recipe's `min_epochs` fit, the run stops right there with
   BudgetTooSmall, before it has trained anything worth keeping, saying how much time it needs.
   Otherwise the planned total becomes min(the recipe's steps, the steps that fit), and the
   learning-rate schedule, lookahead and parameter freezes are fitted to it (warm-up, peak and
   decay all happen, in fewer steps): a slower machine gets a complete, shorter schedule;
2. after the first epoch the estimate is made again from the whole epoch; if it differs from the
   plan by more than `revise_above` (5%) the plan is revised (recorded);
3. during and after each epoch, a plan that would overrun the budget at the epoch's speed is
   revised down (the machine got busier): the schedule's decay is compressed, not cut off;
   TimeBudget stops the run at the budget in any case, and the record then says it stopped early.

The record's `plan` says how many epochs were planned (first estimate and final), how many were
done, and every revision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from bench.train.callbacks import TrainClock


class BudgetTooSmall(ValueError):
    """The time budget cannot fit the recipe's minimum number of epochs on this machine."""


@dataclass
class Plan:
    """The planned optimizer steps of a run's first (or only) phase, and how they were decided."""

    steps_per_epoch: int
    recipe_steps: int                       # the recipe's epochs, in steps
    total_steps: int                        # the plan now
    budget_s: float | None = None
    first_estimate_steps: int | None = None
    seconds_per_step: float | None = None
    revisions: list[dict[str, Any]] = field(default_factory=list)
    listeners: list[Callable[[int], None]] = field(default_factory=list, repr=False)

    @classmethod
    def for_recipe(cls, epochs: float, steps_per_epoch: int, budget_s: float | None) -> "Plan":
        steps = max(1, int(round(epochs * steps_per_epoch)))
        return cls(steps_per_epoch=steps_per_epoch, recipe_steps=steps, total_steps=steps, budget_s=budget_s)

    @property
    def planned_epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch

    def set_total(self, steps: int, reason: str, at_step: int, elapsed_s: float) -> None:
        steps = max(1, min(int(steps), self.recipe_steps))
        first = self.first_estimate_steps is None
        if first:
            self.first_estimate_steps = steps
        elif steps == self.total_steps:
            return
        if not first:
            self.revisions.append({"at_step": int(at_step), "train_time_s": round(elapsed_s, 2),
                                   "from_epochs": round(self.planned_epochs, 3),
                                   "to_epochs": round(steps / self.steps_per_epoch, 3), "reason": reason})
        self.total_steps = steps
        for listener in self.listeners:
            listener(steps)

    def to_state(self) -> dict[str, Any]:
        return {"steps_per_epoch": self.steps_per_epoch, "recipe_steps": self.recipe_steps,
                "total_steps": self.total_steps, "budget_s": self.budget_s,
                "first_estimate_steps": self.first_estimate_steps, "seconds_per_step": self.seconds_per_step,
                "revisions": list(self.revisions)}

    def restore(self, saved: dict[str, Any] | None) -> None:
        """Continues a resumed run's plan (same steps per epoch and recipe length only)."""
        if not saved or saved.get("steps_per_epoch") != self.steps_per_epoch \
                or saved.get("recipe_steps") != self.recipe_steps:
            return
        self.total_steps = int(saved["total_steps"])
        self.first_estimate_steps = saved.get("first_estimate_steps")
        self.seconds_per_step = saved.get("seconds_per_step")
        self.revisions = list(saved.get("revisions") or [])

    def record(self, steps_done: int, stopped_by_budget: bool) -> dict[str, Any]:
        spe = self.steps_per_epoch
        out = {"epochs_recipe": round(self.recipe_steps / spe, 3), "epochs_planned": round(self.planned_epochs, 3),
               "epochs_done": round(steps_done / spe, 3), "steps_per_epoch": spe, "steps_planned": self.total_steps,
               "steps_done": int(steps_done), "time_budget_s": self.budget_s}
        if self.budget_s:
            out.update(first_estimate_epochs=(round(self.first_estimate_steps / spe, 3)
                                              if self.first_estimate_steps is not None else None),
                       revised=bool(self.revisions), revisions=self.revisions,
                       seconds_per_step=self.seconds_per_step,
                       stopped_early=bool(stopped_by_budget and steps_done < self.total_steps))
        return out


class BudgetPlanner(keras.callbacks.Callback):
    """Fits `plan` to the time budget as the module docstring describes. Runs after TrainClock."""

    def __init__(self, plan: Plan, clock: TrainClock, min_epochs: float, recipe_name: str,
                 probe: int = 12, revise_above: float = 0.05, safety: float = 0.98):
        super().__init__()
        self.plan, self.clock, self.min_epochs, self.recipe_name = plan, clock, float(min_epochs), recipe_name
        self.probe, self.revise_above, self.safety = int(probe), float(revise_above), float(safety)
        self._marks: list[tuple[int, float]] = []   # (global step, clock) at batch ends this epoch

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._marks = []

    def on_train_batch_end(self, batch, logs=None):
        self._marks.append((self._step(), self.clock.elapsed()))
        if self.plan.first_estimate_steps is None and (
                len(self._marks) >= min(self.probe, self.plan.total_steps, self.plan.steps_per_epoch)
                or self.clock.elapsed() >= self.plan.budget_s):  # the budget is spent before the probe ends
            self._first_estimate()
        elif self.plan.first_estimate_steps is not None and len(self._marks) > 4:
            self._keep_within_budget()

    def _keep_within_budget(self) -> None:
        """Mid-epoch: a plan that would overrun the budget at this epoch's speed so far is revised
        down now (the machine got busier), so the schedule still ends instead of being cut off."""
        rate, step = self._rate(), self._step()
        if rate is None or step >= self.plan.total_steps:
            return
        if (self.plan.total_steps - step) * rate > self.plan.budget_s - self.clock.elapsed():
            self.plan.seconds_per_step = round(rate, 5)
            self.plan.set_total(max(self._fit(rate), step), "would overrun the budget at this epoch's speed",
                                step, self.clock.elapsed())

    def _rate(self) -> float | None:
        """Seconds per step over this epoch's steps after its first two (tracing, warm-up)."""
        marks = self._marks[2:] if len(self._marks) > 4 else self._marks[1:]
        if len(marks) < 2:
            return None
        (s0, t0), (s1, t1) = marks[0], marks[-1]
        return (t1 - t0) / max(s1 - s0, 1)

    def _fit(self, rate: float) -> int:
        remaining = self.plan.budget_s - self.clock.elapsed()
        return self._step() + int(max(remaining, 0.0) * self.safety / rate)

    def _first_estimate(self) -> None:
        rate = self._rate()
        if rate is None:
            rate = self._marks[-1][1] / max(self._marks[-1][0], 1)
        self.plan.seconds_per_step = round(rate, 5)
        fits = self._fit(rate)
        need = int(math.ceil(self.min_epochs * self.plan.steps_per_epoch))
        if fits < min(need, self.plan.recipe_steps):
            epoch_s = rate * self.plan.steps_per_epoch
            raise BudgetTooSmall(
                f"recipe {self.recipe_name!r}: its time budget of {self.plan.budget_s:.0f} s cannot fit "
                f"{self.min_epochs:g} epoch(s) on this machine: one epoch of {self.plan.steps_per_epoch} steps "
                f"takes about {epoch_s:.0f} s here ({rate:.3f} s per step over the first "
                f"{len(self._marks)} steps), so about {fits / self.plan.steps_per_epoch:.2f} epochs would fit. "
                f"Raise the budget to at least {math.ceil(self.min_epochs * epoch_s * 1.1 + self.clock.elapsed()):.0f} s "
                f"(--time-budget), or train on fewer images (--limit-train) or a smaller model. Nothing was saved.")
        self.plan.set_total(fits, "first estimate", self._step(), self.clock.elapsed())

    def on_epoch_end(self, epoch, logs=None):
        if self.plan.first_estimate_steps is None and self._marks:  # (an epoch shorter than the probe)
            self._first_estimate()
            return
        rate = self._rate()
        if rate is None or self._step() >= self.plan.total_steps:
            return
        self.plan.seconds_per_step = round(rate, 5)
        fits = self._fit(rate)
        if epoch == 0:  # the estimate from a whole epoch
            if abs(fits - self.plan.total_steps) > self.revise_above * self.plan.total_steps \
                    and not (fits > self.plan.total_steps == self.plan.recipe_steps):
                self.plan.set_total(fits, "re-estimate after the first epoch", self._step(), self.clock.elapsed())
        elif fits < self.plan.total_steps:  # would overrun the budget at the recent speed
            self.plan.set_total(fits, f"would overrun the budget at epoch {epoch + 1}'s speed", self._step(),
                                self.clock.elapsed())

