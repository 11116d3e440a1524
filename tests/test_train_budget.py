"""Budget-aware schedules, the machine's speed in the record, --seeds and its spread, and the three
inputs refused before training (budget too small, images too small, seeds not integers).
Real TensorFlow on a few thousand MNIST images."""
from __future__ import annotations

import csv
import json
import time

import keras
import pytest

from bench.train import get_recipe, train
from bench.train.budget import BudgetTooSmall
from bench.train.cli import main
from bench.train.fit import InputTooSmall
from bench.train.machine import scaled_target_s, time_verdict
from bench.train.seeds import parse_seeds, summarize

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# 608 training images (mnist_tiny holds out 5%) at batch 64: 9 steps per epoch
TINY = dict(limit_train=640, batch_size=64, model_options={"widths": (8, 16, 16)})


class SlowSteps(keras.callbacks.Callback):
    """Makes every training step last `seconds` (compute included, padded with a sleep): a slow machine
    whose speed does not drift. Adding a fixed sleep instead left the step time to the compute, which a
    second pytest worker on a 2-core machine slows unpredictably (CI: a run cut by its budget after
    the machine slowed in its last epoch)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - self._start)))


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_budget_fits_the_whole_schedule_into_the_epochs_that_fit(mnist, tmp_path):
    # 40 epochs (360 steps) planned by the recipe; at 0.2 s per step a 20 s budget, of which the
    # first step's tracing takes a few seconds, fits far fewer: the one-cycle schedule (warm-up to
    # its peak, decay to 0) must be fitted into them and end, not be cut off at the budget
    recipe = get_recipe("mnist_tiny").replace(epochs=40, time_budget_s=20.0, **TINY)
    run = tmp_path / "run"
    record = train(recipe, run, dataset=mnist, verbose=0, extra_callbacks=[SlowSteps(0.2)])
    plan = record["plan"]
    assert plan["epochs_recipe"] == 40 and plan["steps_per_epoch"] == 9
    assert 1 <= plan["epochs_planned"] <= 14, plan
    assert record["epochs_planned"] == plan["epochs_planned"]
    # the planned steps were all done: a complete schedule, not one cut off by the budget
    assert plan["steps_done"] == plan["steps_planned"], plan
    assert record["epochs_done"] == pytest.approx(plan["epochs_planned"], abs=1e-3)
    assert plan["stopped_early"] is False and plan["first_estimate_epochs"] is not None
    assert record["status"].startswith("done: the schedule fitted to the time budget"), record["status"]
    # TimeBudget stops at the first step that ends past the budget: the overrun is at most one step
    # (on a loaded CI machine a step, an epoch's first above all, can take over a second)
    with open(run / "steps.csv", newline="") as f:
        ends = [float(r["train_time_s"]) for r in csv.DictReader(f)]
    assert len(ends) == plan["steps_done"]  # every step logged (every = 1 at 9 steps per epoch)
    longest_step = max(b - a for a, b in zip([0.0, *ends], ends))
    assert record["train_time_s"] <= 20.0 + longest_step + 0.05, (record["train_time_s"], longest_step)
    # the checkpoint's schedule is the fitted one (a resume continues it)
    schedule = keras.saving.load_model(run / "last.keras").optimizer._learning_rate
    assert schedule.total_steps == plan["steps_planned"]
    # mnist_tiny's one-cycle rises towards its peak, then decays to 0 (end_fraction 0) at the planned
    # last step: the last epoch ends at ~0, far below the highest lr of the run
    with open(run / "steps.csv", newline="") as f:
        step_lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert max(step_lrs) > 0.5 * recipe.lr, step_lrs
    lrs = [float(r["lr"]) for r in history(run)]
    assert lrs[-1] < 0.02 * recipe.lr, lrs
    saved = json.loads((run / "recipe.json").read_text())
    assert saved["plan"]["epochs_planned"] == plan["epochs_planned"]
    # the machine's measured speed is in every record
    speed = saved["machine_speed"]
    assert speed["matmul_gflops"] > 1 and speed["reference_gflops"] == 450.0
    assert speed["speed_vs_reference"] == pytest.approx(speed["matmul_gflops"] / 450.0, rel=1e-2)


def test_run_without_a_budget_plans_and_does_the_recipe_epochs(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=1.5, **TINY)  # a fractional last epoch
    record = train(recipe, tmp_path / "run", dataset=mnist, verbose=0)
    plan = record["plan"]
    assert plan["steps_done"] == plan["steps_planned"] == 14  # 1.5 x 9, rounded
    assert plan["epochs_planned"] == plan["epochs_recipe"] == round(14 / 9, 3)
    assert record["status"] == "done" and "stopped_early" not in plan


def test_budget_too_small_for_one_epoch_is_refused_before_training(mnist, tmp_path):
    recipe = get_recipe("mnist_tiny").replace(epochs=5, time_budget_s=1.0, **TINY)
    run = tmp_path / "run"
    with pytest.raises(BudgetTooSmall, match=r"time budget of 1 s cannot fit 1 epoch.*Raise the budget to at "
                                             r"least \d+ s \(--time-budget\)"):
        train(recipe, run, dataset=mnist, verbose=0, extra_callbacks=[SlowSteps(0.1)])
    assert not run.exists()  # nothing half-trained is left behind


def test_architecture_larger_than_the_images_is_refused_with_the_size_to_set(mnist, tmp_path):
    # VGG-11 needs 32x32; MNIST is 28x28 and the recipe sets no image_size
    recipe = get_recipe("mnist_tiny").replace(model="vgg11", model_options={}, limit_train=640)
    with pytest.raises(InputTooSmall, match=r"vgg11 cannot take mnist's own 28x28 images.*"
                                            r"set image_size=\(32, 32\) in the recipe or pass --image-size 32"):
        train(recipe, tmp_path / "run", dataset=mnist, verbose=0)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_architecture_larger_than_the_images(tmp_path, capsys):
    code = main(["--model", "vgg11", "--dataset", "mnist", "--epochs", "2", "--limit-train", "500",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "--image-size 32" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0,a", "1.5", "0;1", "", "0,,1", "-1,2", "1,1", "0", "three"])
def test_seeds_that_are_not_a_count_or_distinct_integers_are_refused(text, tmp_path, capsys):
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)
    with pytest.raises(SystemExit) as exit_:
        main(["--recipe", "mnist_tiny", "--seeds", text, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert "--seeds" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_seed_list_parses():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds(" 3, 7 ") == [3, 7]
    assert parse_seeds("3") == [0, 1, 2]  # a count: make train SEEDS=3


@pytest.mark.slow  # a long real run: make test-all
def test_seeds_run_once_each_and_write_mean_min_max(tmp_path, capsys):
    out, results = tmp_path / "run", tmp_path / "results"
    code = main(["--recipe", "mnist_tiny", "--epochs", "1", "--limit-train", "400", "--batch-size", "50",
                 "--seeds", "2", "--quiet", "--out", str(out), "--results", str(results)])
    assert code == 0
    records = [json.loads((out / "recipe.json").read_text()), json.loads((out / "seed1" / "recipe.json").read_text())]
    assert [r["seed"] for r in records] == [0, 1]
    spread = json.loads((results / "spread.json").read_text())
    assert spread["seeds"] == [0, 1] and spread["n"] == 2
    top1 = [r["test_top1"] for r in records]
    assert spread["test_top1"]["min"] == pytest.approx(min(top1), abs=1e-5)
    assert spread["test_top1"]["max"] == pytest.approx(max(top1), abs=1e-5)
    assert spread["test_top1"]["mean"] == pytest.approx(sum(top1) / 2, abs=1e-5)
    assert [r["matmul_gflops"] for r in spread["runs"]] == [r["machine_speed"]["matmul_gflops"] for r in records]
    # each seed's record is copied beside the spread
    assert json.loads((results / "seed1" / "recipe.json").read_text()) == records[1]
    assert "mnist_tiny: 2 seeds (0, 1)" in (results / "spread.md").read_text()
    assert "spread of 2 seeds" in capsys.readouterr().out


def test_spread_of_runs_of_different_recipes_is_refused():
    a = {"recipe": {"name": "a", "model": "m", "dataset": "d"}, "seed": 0, "test_top1": 0.9, "train_time_s": 1}
    b = dict(a, recipe={"name": "b", "model": "m", "dataset": "d"})
    with pytest.raises(ValueError, match="different recipes"):
        summarize([a, b])


def test_time_target_is_scaled_by_the_measured_matmul_rate():
    assert scaled_target_s(90, 450e9) == pytest.approx(90)
    assert scaled_target_s(90, 225e9) == pytest.approx(180)  # half as fast: twice the time
    slow = time_verdict(150, 90, 225e9)
    assert slow["within"] is True and slow["target_s_here"] == 180.0
    assert slow["verdict"].startswith("within target for its speed")
    assert time_verdict(150, 90, 450e9)["within"] is False
    assert time_verdict(150, None, 450e9) is None


def test_recipes_know_the_schedules_and_their_options_without_tensorflow():
    from bench.train import recipes, schedules

    assert recipes.SCHEDULES == schedules.SCHEDULES
    assert recipes.SCHEDULE_OPTIONS == schedules.SCHEDULE_OPTIONS
