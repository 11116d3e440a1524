"""One training run of a recipe: data, model, optimiser, fit, checkpoints, record.

    record = train(get_recipe("mnist_cnn"), Path("runs/mnist_cnn"), seed=0)

writes into the run directory:
    last.keras, best.keras   full models (weights + optimizer state); best on validation top-1
    state.json               epochs done, best so far, training time, budget plan: what --resume reads
    history.csv              one row per epoch (lr, loss, top1, val_loss, val_top1, epoch and training time)
    steps.csv                every few steps: training time, loss, lr (curves of runs shorter than an epoch)
    curves.png               loss and top-1 curves
    recipe.json              recipe used, seed, versions, machine (and its measured matmul rate), data
                             sizes, precision and why, the plan (epochs planned / done), wall and
                             training time, the time-target verdict, test top-1
    model.keras              inference model: float32, the main output only (GoogLeNet), with the
                             recipe's test-time augmentation as layers (airbench94)

Before anything is trained the run measures the machine (1024x1024 float32 matmul rate), chooses its
precision from the CPU (bench.train.machine) and refuses inputs smaller than the architecture allows.
With a time budget it fits its schedule to the epochs that fit after its first steps
(bench.train.budget). Training time is the TrainClock's (bench.train.callbacks).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

import zoo
from bench.plumbing.environment import machine_speed, training_environment
from bench.plumbing.files import atomic_path, atomic_write_json
from bench.plumbing.metrics import top_k_correct
from bench.plumbing.precision import KERAS_POLICIES, check, dtype_policy
from bench.train.augment import build_augmentation
from bench.train.budget import BudgetPlanner, BudgetTooSmall, Plan
from bench.train.callbacks import (EpochCheckpoint, HistoryCSV, Lookahead, NonFiniteLossStop, StepLimit, StepLog,
                                   SwitchOff, TimeBudget, TrainClock, read_history)
from bench.train.machine import time_verdict, training_precision
from bench.train.optim import TorchSGD, airbench_units
from bench.train.recipes import Recipe
from bench.train.schedules import RefittableSchedule, make_schedule
from bench.train.splits import SPLIT_SEED, Splits, make_splits
from zoo.inference import all_layers, as_float32, inference_outputs

NO_DECAY = ["bias", "gamma", "beta"]  # biases and batch-norm scales/offsets are not decayed
STEM_BIAS = "stem/bias"  # the whitening stem's bias (zoo airbench94), frozen after whiten_bias_epochs


class TrainingDiverged(RuntimeError):
    pass


class CheckpointMismatch(ValueError):
    pass


class InputTooSmall(ValueError):
    """The architecture's smallest input is larger than the images the recipe feeds it."""


def _tf_class_name(strategy) -> str:
    """TensorFlow's own strategy class (bench.distribute wraps some in subclasses that fix Keras bugs)."""
    return next(c.__name__ for c in type(strategy).__mro__ if c.__module__.startswith("tensorflow"))


def set_seeds(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_optimizer(recipe: Recipe, lr, switches: Sequence[str] = ()) -> keras.optimizers.Optimizer:
    """The recipe's optimizer with learning rate (or schedule) `lr`. airbench_sgd takes `lr` in
    Keras units (compile_model converts airbench's) and the coupled L2 from the recipe."""
    if recipe.optimizer == "airbench_sgd":
        _, l2 = airbench_units(recipe.lr, recipe.weight_decay, recipe.momentum, recipe.batch_size)
        scale = {"/beta": recipe.bn_bias_lr_scale} if recipe.bn_bias_lr_scale != 1.0 else {}
        return TorchSGD(lr, momentum=recipe.momentum, l2=l2, nesterov=True, grad_scale=scale, switches=switches)
    wd = recipe.weight_decay or None
    if recipe.optimizer == "sgd":  # the seed: plain SGD
        opt = keras.optimizers.SGD(lr, momentum=recipe.momentum, weight_decay=wd)
    elif recipe.optimizer == "sgd_nesterov":
        opt = keras.optimizers.SGD(lr, momentum=recipe.momentum, nesterov=True, weight_decay=wd)
    elif recipe.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=wd)
    else:
        opt = keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay)
    if wd:
        opt.exclude_from_weight_decay(var_names=NO_DECAY)
    return opt


def compile_model(model: keras.Model, recipe: Recipe, total_steps: int, lr: float | None = None) -> None:
    peak = recipe.lr if lr is None else lr
    if recipe.optimizer == "airbench_sgd":
        peak, _ = airbench_units(peak, recipe.weight_decay, recipe.momentum, recipe.batch_size)
    warmup = int(recipe.warmup_epochs * total_steps / recipe.epochs) if recipe.epochs else 0
    options = recipe.schedule_options if lr is None else {}
    schedule = make_schedule(recipe.schedule, peak, total_steps, warmup, **options)
    loss = keras.losses.CategoricalCrossentropy(from_logits=recipe.logits, label_smoothing=recipe.label_smoothing)
    switches = (STEM_BIAS,) if recipe.whiten_bias_epochs is not None else ()
    optimizer = make_optimizer(recipe, schedule, switches)
    n = len(model.outputs)
    if n == 1:
        model.compile(optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy(name="top1")])
    else:  # GoogLeNet: main + aux_loss_weight * each auxiliary classifier
        model.compile(optimizer=optimizer, loss=[loss] * n,
                      loss_weights=[1.0] + [recipe.aux_loss_weight] * (n - 1),
                      metrics=[[keras.metrics.CategoricalAccuracy(name="top1")]] + [[]] * (n - 1))
    if isinstance(optimizer, TorchSGD):  # its switches must exist before the first step
        optimizer.build(model.trainable_variables)
        for name in switches:
            if not optimizer.switched(name):
                raise ValueError(f"recipe {recipe.name!r}: whiten_bias_epochs freezes {name!r}, but "
                                 f"{recipe.model} has no such trainable variable (build it with whiten=True)")


def build_for_recipe(recipe: Recipe, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    if recipe.finetune is None:
        model = zoo.build(recipe.model, input_shape=tuple(input_shape), num_classes=num_classes,
                          classifier_activation=None if recipe.logits else "softmax", **recipe.model_options)
    else:
        from zoo import transfer  # the pretrained backbones; imported only when fine-tuning
        ft = recipe.finetune
        options = {k: ft[k] for k in ("head", "dropout", "weights") if k in ft}
        model = transfer.build_transfer_model(ft["backbone"], input_shape=input_shape,
                                              num_classes=num_classes, **options)
    if recipe.bn_momentum is not None:  # read when the training step is traced: set before fit
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(recipe.bn_momentum)
    return model


def _build_checked(recipe: Recipe, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """build_for_recipe, with an input the architecture refuses turned into what to change in the recipe."""
    try:
        return build_for_recipe(recipe, input_shape, num_classes)
    except ValueError as exc:
        if "too small" not in str(exc):
            raise
        smallest = zoo.spec(recipe.model).min_input_size if ":" not in recipe.model else None
        size = f"{input_shape[0]}x{input_shape[1]}"
        where = (f"the recipe's image_size {size}" if recipe.image_size else
                 f"{recipe.dataset}'s own {size} images (the recipe sets no image_size)")
        fix = (f"set image_size=({smallest}, {smallest}) in the recipe or pass --image-size {smallest}"
               if smallest else "set image_size in the recipe or pass --image-size N")
        raise InputTooSmall(f"recipe {recipe.name!r}: {recipe.model} cannot take {where}: {exc} "
                            f"For this recipe: {fix} (the data pipeline resizes; --resize pad keeps the "
                            f"aspect ratio). Nothing was trained.") from None


def _describe(model: keras.Model) -> str:
    shapes = [tuple(o.shape[1:]) for o in model.outputs]
    return (f"'{model.name}' with input {tuple(model.inputs[0].shape[1:])}, outputs {shapes}, "
            f"{len(model.weights)} weight tensors, {model.count_params():,} parameters")


def load_checkpoint(path: Path, expected: keras.Model) -> keras.Model:
    """Loads a `.keras` checkpoint and checks it is the architecture `expected` (same input,
    outputs and every weight shape); raises CheckpointMismatch naming both otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train without --resume first")
    try:
        model = zoo.load_model(path, compile=True)  # with the optimizer state
    except zoo.CheckpointError as exc:  # a corrupt or foreign file: say which, and what to do
        raise CheckpointMismatch(f"cannot resume from {path}: {exc}. "
                                 "Delete it or choose another --out directory.") from exc
    got = [tuple(w.shape) for w in model.weights]
    want = [tuple(w.shape) for w in expected.weights]
    same_io = ([tuple(i.shape[1:]) for i in model.inputs] == [tuple(i.shape[1:]) for i in expected.inputs]
               and [tuple(o.shape[1:]) for o in model.outputs]
               == [tuple(o.shape[1:]) for o in expected.outputs])
    if not same_io or got != want:
        raise CheckpointMismatch(
            f"checkpoint {path} does not match the requested model: it holds {_describe(model)}, "
            f"the run asks for {_describe(expected)}. Resume with the model, dataset and image "
            "size it was trained with, or use a new --out directory to start over.")
    return model


def top1(model: keras.Model, ds: tf.data.Dataset, max_batch: int = 500) -> float:
    """Test top-1 from predictions of the main output (labels one-hot in `ds`). Batches are cut to
    `max_batch` images (a TTA model runs up to six views of each at once)."""
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    correct = total = 0
    for x, y in ds:
        if isinstance(y, (list, tuple)):  # one target per output
            y = y[0]
        for i in range(0, int(x.shape[0]), max_batch):
            p = predict(x[i:i + max_batch])
            if isinstance(p, (list, tuple)):  # GoogLeNet's training model: main output first
                p = p[0]
            correct += top_k_correct(np.asarray(p), np.asarray(y[i:i + max_batch]))
        total += int(x.shape[0])
    return correct / max(total, 1)


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "top1")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            key = next((k for k in history[0] if k.startswith(prefix) and k.endswith(metric)
                        and (prefix or not k.startswith("val_"))), None)
            if key:
                ax.plot(epochs, [r.get(key, np.nan) for r in history], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _monitor_key(model: keras.Model, has_val: bool) -> str | None:
    if not has_val:
        return None
    return "val_top1" if len(model.outputs) == 1 else f"val_{model.output_names[0]}_top1"


def _start_or_resume(recipe: Recipe, out: Path, fresh: keras.Model, resume: bool, seed: int,
                     total_steps: int) -> tuple[keras.Model, dict[str, Any]]:
    """The compiled model and run state: from `out`'s last checkpoint when resuming (checked
    against the requested model), else the freshly built model at epoch 0."""
    state: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "train_time_s": 0.0, "batches": 0,
                             "recipe": recipe.name, "model": recipe.model, "dataset": recipe.dataset,
                             "seed": seed}
    state_path = out / "state.json"
    if resume and state_path.exists():
        saved = json.loads(state_path.read_text())
        if (saved.get("model"), saved.get("dataset")) != (recipe.model, recipe.dataset):
            raise CheckpointMismatch(
                f"{out} holds a run of model {saved.get('model')!r} on {saved.get('dataset')!r}, "
                f"not {recipe.model!r} on {recipe.dataset!r}; use a new --out directory")
        model = load_checkpoint(out / "last.keras", fresh)  # weights, optimizer state, step
        state.update(saved)
        return model, state
    if resume:
        print(f"no checkpoint in {out} yet: starting from epoch 1", file=sys.stderr)
    compile_model(fresh, recipe, total_steps)
    return fresh, state


@dataclass
class _Run:
    """What the steps of one training run share."""

    recipe: Recipe
    out: Path
    seed: int
    deterministic: bool
    strategy: Any
    lr_scaling: str
    precision: dict[str, str] = field(default_factory=dict)
    speed: dict[str, Any] | None = None
    wall_start: float = field(default_factory=time.perf_counter)
    splits: Splits | None = None
    model: keras.Model | None = None
    state: dict[str, Any] = field(default_factory=dict)
    nan_stop: NonFiniteLossStop = field(default_factory=NonFiniteLossStop)
    budget: TimeBudget | None = None
    clock: TrainClock | None = None
    plan: Plan | None = None
    data_init: dict[str, Any] | None = None
    init_s: float = 0.0
    resumed_speeds: list = field(default_factory=list)  # the machine speed at each resume
    prior_init_s: float = 0.0  # data-init time of the session that started a resumed run
    callbacks: list = field(default_factory=list)         # phase 2 (fine-tuning)
    phase1_callbacks: list = field(default_factory=list)  # the planned phase: + budget plan, step limit, lookahead

    @property
    def phase1_epochs(self) -> int:
        return int(math.ceil(self.recipe.epochs))

    @property
    def total_epochs(self) -> int:
        return self.phase1_epochs + int((self.recipe.finetune or {}).get("phase2_epochs", 0))

    def stopped(self) -> bool:
        return self.nan_stop.diverged_at is not None or bool(self.budget and self.budget.stopped)

    def phase1_steps(self) -> int:
        return int(self.model.optimizer.iterations.numpy()) if self.model is not None else 0


def train(recipe: Recipe, out_dir: Path | str, *, seed: int = 0, deterministic: bool = False,
          resume: bool = False, precision: str | None = None, dataset: Any = None,
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | None = None,
          strategy: tf.distribute.Strategy | None = None, lr_scaling: str = "linear") -> dict[str, Any]:
    """Runs `recipe` into `out_dir`; returns (and writes) the run record.

    `precision` (None: the recipe's, where the CPU supports it; see bench.train.machine) is a Keras
    dtype policy; `dataset` a loaded `bench.data` dataset (default: the recipe's). Raises
    TrainingDiverged on a NaN/inf loss (last good checkpoint kept), CheckpointMismatch when resuming
    from a checkpoint of another model, InputTooSmall / BudgetTooSmall (ValueErrors) before training
    when the images are smaller than the architecture allows or the time budget cannot fit the
    recipe's minimum epochs. The global Keras dtype policy is restored afterwards, so a
    mixed-precision run does not leak into the caller's next model.
    """
    strategy = strategy or tf.distribute.get_strategy()
    recipe = _scaled_for_replicas(recipe, strategy, lr_scaling)
    requested = check(precision or recipe.precision, KERAS_POLICIES)
    chosen, why = training_precision(requested, explicit=precision is not None)
    recipe = recipe.replace(precision=chosen)
    if recipe.lookahead and strategy.num_replicas_in_sync > 1:
        raise ValueError(f"recipe {recipe.name!r} uses lookahead, which keeps its average outside the "
                         "distribution strategy: train it with --strategy default")
    out = Path(out_dir)
    if not resume and (out / "last.keras").exists():
        raise FileExistsError(f"{out} already holds a training run; pass --resume to continue it "
                              "or choose another --out directory")
    created = not out.exists()
    run = _Run(recipe, out, seed, deterministic, strategy, lr_scaling,
               precision={"requested": requested, "chosen": chosen, "reason": why})
    try:
        run.speed = machine_speed()  # once, before any work of the run's own
        if resume:
            _keep_first_machine(run)
        with dtype_policy(recipe.precision):
            set_seeds(seed, deterministic)
            _prepare(run, dataset, resume)
            _add_callbacks(run, extra_callbacks)
            _fit_phases(run, verbose)
            return _finish(run)
    except (InputTooSmall, BudgetTooSmall):
        if created:  # refused before anything worth keeping was trained
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        _remove_worker_scratch(out, strategy)


def _scaled_for_replicas(recipe: Recipe, strategy, lr_scaling: str) -> Recipe:
    """The recipe's batch and learning rate are per replica: scale them to the global batch."""
    from bench.distribute.strategy import scale_batch_and_lr

    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return recipe
    scaled = scale_batch_and_lr(recipe.batch_size, recipe.lr, replicas, rule=lr_scaling)
    return recipe.replace(batch_size=scaled.global_batch, lr=scaled.learning_rate)


def _remove_worker_scratch(out: Path, strategy) -> None:
    """A non-chief worker wrote only to its scratch folder; nothing of it is kept."""
    from bench.distribute.strategy import chief_only_path

    scratch = Path(chief_only_path(out, strategy))
    if scratch != out:
        shutil.rmtree(scratch.parent, ignore_errors=True)


def _prepare(run: _Run, dataset: Any, resume: bool) -> None:
    """Data splits (sharded per worker), the model (fresh or resumed, checked against the images
    it will get), its data-dependent init and the run state."""
    from bench.distribute.strategy import chief_only_path, shard_dataset

    recipe, strategy = run.recipe, run.strategy
    if dataset is None:
        from bench.data import load_dataset
        dataset = load_dataset(recipe.dataset)
    augmentation = build_augmentation(recipe.augment, seed=run.seed)
    num_outputs = 3 if recipe.model_options.get("aux_outputs") else 1
    splits = make_splits(dataset, recipe, run.seed, augmentation, num_outputs)
    splits.train = shard_dataset(splits.train, strategy)  # each worker keeps its part of every global batch
    splits.val = shard_dataset(splits.val, strategy) if splits.val is not None else None
    run.splits = splits
    run.plan = Plan.for_recipe(recipe.epochs, splits.steps_per_epoch, recipe.time_budget_s)
    with strategy.scope():  # model, optimizer, metric variables (and a loaded checkpoint) are mirrored
        fresh = _build_checked(recipe, splits.input_shape, splits.num_classes)
        run.out.mkdir(parents=True, exist_ok=True)
        run.model, run.state = _start_or_resume(recipe, run.out, fresh, resume, run.seed, run.plan.total_steps)
    run.plan.restore(run.state.get("plan"))
    if run.model is fresh and recipe.data_init is not None and splits.init_images is not None:
        t0 = time.perf_counter()
        images = splits.init_images(int(recipe.data_init.get("images", 5000)))
        from zoo.airbench import initialize_from_data
        run.data_init = initialize_from_data(run.model, images, float(recipe.data_init.get("whiten_eps", 5e-4)))
        run.init_s = time.perf_counter() - t0  # training work (airbench times it too)
    elif run.state.get("data_init"):
        run.data_init = run.state["data_init"]
    run.out = Path(chief_only_path(run.out, strategy))  # all read the chief's run; only the chief writes into it
    run.out.mkdir(parents=True, exist_ok=True)


def _add_callbacks(run: _Run, extra: Sequence[keras.callbacks.Callback]) -> None:
    recipe, state, plan, model = run.recipe, run.state, run.plan, run.model
    initial_epoch = int(state["epoch"])
    run.clock = clock = TrainClock(state["train_time_s"], state.get("batches", 0))
    clock.add(run.init_s)
    schedule = getattr(model.optimizer, "_learning_rate", None)
    if isinstance(schedule, RefittableSchedule):
        plan.listeners.append(schedule.set_total_steps)
    if recipe.time_budget_s:
        run.budget = TimeBudget(recipe.time_budget_s, clock)

    def save_state(s: dict[str, Any]) -> None:
        s.update(plan=plan.to_state(), batches=clock.batches, data_init=run.data_init)

    every = max(1, min(50, run.splits.steps_per_epoch // 20))
    # order matters: the clock first (all read it), the NaN stop before the checkpoint, the budget
    # planner before the time budget (it refuses a budget too small before the budget stops the run),
    # both before lookahead (which keeps its average when they end training at a step)
    run.callbacks = [clock, run.nan_stop] + ([run.budget] if run.budget else [])
    planner = [BudgetPlanner(plan, clock, recipe.min_epochs, recipe.name)] if recipe.time_budget_s else []
    run.phase1_callbacks = planner + run.callbacks[2:] + [StepLimit(lambda: plan.total_steps)]
    if recipe.lookahead:
        run.phase1_callbacks.append(Lookahead(lambda: plan.total_steps))
    if recipe.whiten_bias_epochs is not None:
        fraction = recipe.whiten_bias_epochs / recipe.epochs  # of the planned steps, refitted with them
        run.phase1_callbacks.append(SwitchOff(STEM_BIAS, lambda: int(round(fraction * plan.total_steps))))
    rest = [StepLog(run.out / "steps.csv", clock, every, keep_until_step=state.get("batches", 0)),
            HistoryCSV(run.out / "history.csv", initial_epoch, clock),
            EpochCheckpoint(run.out, _monitor_key(model, run.splits.val is not None), run.nan_stop,
                            state, clock, on_save=save_state)] + list(extra)
    run.phase1_callbacks = [clock, run.nan_stop] + run.phase1_callbacks + rest
    run.callbacks += rest


def _phase1_done(run: _Run) -> bool:
    """The planned steps are done, or the time budget is used up (a resumed run does not continue)."""
    if run.phase1_steps() >= run.plan.total_steps:
        return True
    return bool(run.budget and run.clock.total >= run.budget.budget_s)


def _fit_phases(run: _Run, verbose: int | None) -> None:
    """Phase 1 (the recipe's epochs, or the part of them its time budget fits); for fine-tuning
    recipes, phase 2 with the top unfrozen."""
    recipe, splits, state = run.recipe, run.splits, run.state
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    budget = f", time budget {recipe.time_budget_s:.0f} s" if recipe.time_budget_s else ""
    print(f"training {recipe.name}: {recipe.model} on {recipe.dataset} {splits.sizes}, input "
          f"{splits.input_shape}, epochs {int(state['epoch']) + 1}..{recipe.epochs:g}{budget}, seed {run.seed}, "
          f"{recipe.precision} ({run.precision['reason']}), matmul {run.speed['matmul_gflops']} GFLOP/s", flush=True)

    def fit(start: int, stop: int, callbacks: list) -> None:
        if start < stop and not run.stopped():
            data = splits.train_from(start) if splits.epoch_indexed else splits.train
            steps = splits.steps_per_epoch if splits.epoch_indexed else None
            run.model.fit(data, validation_data=splits.val, epochs=stop, initial_epoch=start, steps_per_epoch=steps,
                          shuffle=False, callbacks=callbacks, verbose=verbose)

    if not _phase1_done(run):
        fit(int(state["epoch"]), run.phase1_epochs, run.phase1_callbacks)
    state["phase1_steps"] = state.get("phase1_steps") or run.phase1_steps()
    ft = recipe.finetune or {}
    if ft.get("phase2_epochs") and run.nan_stop.diverged_at is None:
        start = max(int(state["epoch"]), run.phase1_epochs)
        if int(state["epoch"]) <= run.phase1_epochs:  # entering phase 2 (not resuming inside it)
            from zoo import transfer
            transfer.unfreeze_top(run.model, int(ft["phase2_unfreeze"]))
            with run.strategy.scope():
                compile_model(run.model, recipe.replace(epochs=int(ft["phase2_epochs"]), schedule="constant"),
                              splits.steps_per_epoch * int(ft["phase2_epochs"]), lr=ft.get("phase2_lr"))
        fit(start, run.total_epochs, run.callbacks)  # epochs numbered on from phase 1's planned ones


def _keep_first_machine(run: _Run) -> None:
    """A resumed run keeps the machine speed (and data-init time) of the session that started it;
    the speed at each resume is listed beside it. Resuming a finished run thus leaves its record's
    numbers as they were, instead of relabelling them with the resuming machine's speed."""
    path = run.out / "recipe.json"
    try:
        prior = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return
    if prior.get("machine_speed"):
        run.resumed_speeds = [*prior.get("resumed_machine_speeds", []), run.speed]
        run.speed = prior["machine_speed"]
        run.prior_init_s = float(prior.get("data_init_s") or 0.0)  # for the record: the clock has it already


def _record(run: _Run) -> dict[str, Any]:
    recipe, splits, state, strategy = run.recipe, run.splits, run.state, run.strategy
    replicas = int(strategy.num_replicas_in_sync)
    stopped_by_budget = bool(run.budget and run.budget.stopped)
    plan = run.plan.record(int(state.get("phase1_steps") or run.phase1_steps()), stopped_by_budget)
    return {"recipe": recipe.to_dict(), "seed": run.seed, "deterministic": run.deterministic,
            "precision": recipe.precision, "precision_requested": run.precision["requested"],
            "precision_reason": run.precision["reason"], "split_seed": SPLIT_SEED, "data_sizes": splits.sizes,
            "class_names": splits.class_names, "input_shape": list(splits.input_shape),
            "parameters": int(run.model.count_params()), "environment": training_environment(),
            "machine_speed": run.speed,
            "epochs_done": round(run.clock.batches / splits.steps_per_epoch, 3),
            "epochs_planned": plan["epochs_planned"], "plan": plan,
            "train_time_s": round(run.clock.total, 2), "data_init_s": round(run.init_s or run.prior_init_s, 2),
            **({"resumed_machine_speeds": run.resumed_speeds} if run.resumed_speeds else {}),
            "data_init": run.data_init,
            "images_per_s": round(run.clock.batches * recipe.batch_size / max(run.clock.total, 1e-9), 1),
            "best_epoch": state["best_epoch"], "best_val_top1": state["best"],
            # the recipe above is already per-replica-scaled: batch_size is the global batch
            "strategy": _tf_class_name(strategy), "replicas": replicas,
            "lr_scaling": run.lr_scaling if replicas > 1 else None}


def _status(run: _Run, plan: dict[str, Any]) -> str:
    if plan.get("stopped_early"):
        return (f"stopped at time budget: {plan['epochs_done']:g} of {plan['epochs_planned']:g} planned epochs "
                "(the schedule did not finish)")
    if plan["epochs_planned"] < plan["epochs_recipe"]:
        return (f"done: the schedule fitted to the time budget, {plan['epochs_planned']:g} of the recipe's "
                f"{plan['epochs_recipe']:g} epochs")
    return "done"


def tta_setting(recipe: Recipe) -> tuple[int, bool]:
    """(TTA level, flip) of the model a recipe ships: its `tta`, or none (level 0)."""
    if recipe.tta is None:
        return 0, False
    return int(recipe.tta.get("level", 2)), bool(recipe.tta.get("flip", True))


def _inference_model(run: _Run, trained: keras.Model) -> tuple[keras.Model, dict[str, float] | None]:
    """What model.keras ships: float32, main output, softmax, the recipe's TTA as layers. Returns it
    and, for TTA recipes, the test top-1 at every TTA level up to the recipe's."""
    recipe = run.recipe
    final = inference_outputs(as_float32(trained))
    if not (recipe.logits or recipe.tta):
        return final, None
    from zoo.airbench import with_tta

    level, flip = tta_setting(recipe)
    per_level = {}
    for lvl in range(0, level + 1) if recipe.tta else (0,):
        if lvl == 1 and not flip:  # level 1 adds only the mirrored view: without flips it is level 0
            continue
        per_level[f"level{lvl}"] = round(top1(with_tta(final, lvl, flip, logits=recipe.logits), run.splits.test), 5)
    return with_tta(final, level, flip, logits=recipe.logits), per_level


def _finish(run: _Run) -> dict[str, Any]:
    """The record; on divergence it is written and TrainingDiverged raised. Otherwise the best
    epoch's model is tested and saved as what gets exported: float32 everywhere (a mixed-precision
    run's variables are float32 already), GoogLeNet's main output only, TTA inside."""
    recipe, out, state, model = run.recipe, run.out, run.state, run.model
    record = _record(run)
    if run.nan_stop.diverged_at is not None:
        epoch, batch, loss = run.nan_stop.diverged_at
        kept = (f"the last good checkpoint {out / 'last.keras'} (epoch {state['epoch']}) is kept"
                if state["epoch"] else "no epoch finished, so there is no good checkpoint")
        message = (f"training diverged: loss became {loss} at epoch {epoch + 1}, batch {batch + 1}; "
                   f"{kept}. Lower the learning rate (recipe {recipe.name!r} uses lr={recipe.lr}) "
                   "or check the input data for NaN.")
        record.update(status="diverged", error=message, wall_time_s=round(time.perf_counter() - run.wall_start, 2))
        atomic_write_json(out / "recipe.json", record, indent=2)
        raise TrainingDiverged(message)
    history = read_history(out / "history.csv")
    if history:
        plot_curves(history, out / "curves.png", f"{recipe.name} (seed {run.seed})")
    best = model  # the best epoch on validation, which is often the last
    if (out / "best.keras").exists() and state["best_epoch"] != state["epoch"]:
        best = zoo.load_model(out / "best.keras")
    shipped, per_level = _inference_model(run, best)
    record["test_top1"] = per_level[f"level{tta_setting(recipe)[0]}"] if per_level \
        else round(top1(shipped, run.splits.test), 5)
    if per_level:
        record["test_top1_tta"] = per_level
    record["test_top1_last"] = round(top1(model, run.splits.test), 5) if best is not model else record["test_top1"]
    with atomic_path(out / "model.keras") as tmp:  # an interrupted save leaves no model.keras
        shipped.save(tmp)
    record["time_target"] = time_verdict(record["train_time_s"], recipe.time_target_s,
                                         (run.speed or {}).get("matmul_gflops", 0) * 1e9)
    if recipe.accuracy_target is not None:
        record["accuracy_target"] = {"target": recipe.accuracy_target,
                                     "met": bool(record["test_top1"] >= recipe.accuracy_target),
                                     "note": "one run; the recipe's target is the mean over seeds (bench train --seeds)"}
    record.update(status=_status(run, record["plan"]), wall_time_s=round(time.perf_counter() - run.wall_start, 2))
    atomic_write_json(out / "recipe.json", record, indent=2)
    target = f"; {record['time_target']['verdict']}" if record.get("time_target") else ""
    print(f"{recipe.name}: test top-1 {record['test_top1']:.4f} [{record['status']}] (best epoch "
          f"{state['best_epoch']}), {record['epochs_done']:g} epochs, training {record['train_time_s']:.0f} s, "
          f"wall {record['wall_time_s']:.0f} s{target} -> {out}", flush=True)
    return record
