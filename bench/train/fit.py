"""One training run of a recipe: data, model, optimiser, fit, checkpoints, record.

    record = train(get_recipe("mnist_cnn"), Path("runs/mnist_cnn"), seed=0)

writes into the run directory:
    last.keras, best.keras   full models (weights + optimizer state); best on validation top-1
    state.json               epochs done, best so far, training time: what --resume reads
    history.csv              one row per epoch (lr, loss, top1, val_loss, val_top1, epoch time)
    curves.png               loss and top-1 curves
    recipe.json              recipe used, seed, versions, machine, data sizes, wall time, test top-1
    model.keras              inference model (GoogLeNet: the main output only)
"""
from __future__ import annotations

import json
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
from bench.plumbing.environment import training_environment
from bench.plumbing.files import atomic_path, atomic_write_json
from bench.plumbing.metrics import top_k_correct
from bench.plumbing.precision import KERAS_POLICIES, check, dtype_policy
from bench.train.augment import build_augmentation
from bench.train.callbacks import EpochCheckpoint, HistoryCSV, NonFiniteLossStop, TimeBudget, read_history
from bench.train.recipes import Recipe
from bench.train.schedules import make_schedule
from bench.train.splits import SPLIT_SEED, Splits, make_splits
from zoo.inference import as_float32, inference_outputs

NO_DECAY = ["bias", "gamma", "beta"]  # biases and batch-norm scales/offsets are not decayed


class TrainingDiverged(RuntimeError):
    pass


class CheckpointMismatch(ValueError):
    pass


def _tf_class_name(strategy) -> str:
    """TensorFlow's own strategy class (bench.distribute wraps some in subclasses that fix Keras bugs)."""
    return next(c.__name__ for c in type(strategy).__mro__ if c.__module__.startswith("tensorflow"))


def set_seeds(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_optimizer(recipe: Recipe, lr) -> keras.optimizers.Optimizer:
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
    warmup = int(recipe.warmup_epochs * total_steps / recipe.epochs) if recipe.epochs else 0
    schedule = make_schedule(recipe.schedule, peak, total_steps, warmup)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    n = len(model.outputs)
    if n == 1:
        model.compile(optimizer=make_optimizer(recipe, schedule), loss=loss,
                      metrics=[keras.metrics.CategoricalAccuracy(name="top1")])
    else:  # GoogLeNet: main + aux_loss_weight * each auxiliary classifier
        model.compile(optimizer=make_optimizer(recipe, schedule), loss=[loss] * n,
                      loss_weights=[1.0] + [recipe.aux_loss_weight] * (n - 1),
                      metrics=[[keras.metrics.CategoricalAccuracy(name="top1")]] + [[]] * (n - 1))


def build_for_recipe(recipe: Recipe, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    if recipe.finetune is None:
        return zoo.build(recipe.model, input_shape=tuple(input_shape), num_classes=num_classes,
                         classifier_activation="softmax", **recipe.model_options)
    from zoo import transfer  # the pretrained backbones; imported only when fine-tuning
    ft = recipe.finetune
    options = {k: ft[k] for k in ("head", "dropout", "weights") if k in ft}
    return transfer.build_transfer_model(ft["backbone"], input_shape=input_shape,
                                         num_classes=num_classes, **options)


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


def top1(model: keras.Model, ds: tf.data.Dataset) -> float:
    """Test top-1 from predictions of the main output (labels one-hot in `ds`)."""
    correct = total = 0
    for x, y in ds:
        p = model(x, training=False)
        if isinstance(p, (list, tuple)):  # GoogLeNet's training model: main output first
            p = p[0]
        if isinstance(y, (list, tuple)):  # one target per output
            y = y[0]
        correct += top_k_correct(np.asarray(p), np.asarray(y))
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
    state: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "train_time_s": 0.0,
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
    wall_start: float = field(default_factory=time.perf_counter)
    splits: Splits | None = None
    model: keras.Model | None = None
    state: dict[str, Any] = field(default_factory=dict)
    nan_stop: NonFiniteLossStop = field(default_factory=NonFiniteLossStop)
    budget: TimeBudget | None = None
    callbacks: list = field(default_factory=list)

    @property
    def phase1_epochs(self) -> int:
        return self.recipe.epochs

    @property
    def total_epochs(self) -> int:
        return self.recipe.epochs + int((self.recipe.finetune or {}).get("phase2_epochs", 0))

    def stopped(self) -> bool:
        return self.nan_stop.diverged_at is not None or bool(self.budget and self.budget.stopped)


def train(recipe: Recipe, out_dir: Path | str, *, seed: int = 0, deterministic: bool = False,
          resume: bool = False, precision: str | None = None, dataset: Any = None,
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | None = None,
          strategy: tf.distribute.Strategy | None = None, lr_scaling: str = "linear") -> dict[str, Any]:
    """Runs `recipe` into `out_dir`; returns (and writes) the run record.

    `precision` (None: the recipe's) is a Keras dtype policy; `dataset` a loaded `bench.data`
    dataset (default: the recipe's). Raises TrainingDiverged on a NaN/inf loss (last good checkpoint
    kept), CheckpointMismatch when resuming from a checkpoint of another model. The global Keras
    dtype policy is restored afterwards, so a mixed-precision run does not leak into the caller's
    next model.
    """
    strategy = strategy or tf.distribute.get_strategy()
    recipe = _scaled_for_replicas(recipe, strategy, lr_scaling)
    recipe = recipe.replace(precision=check(precision or recipe.precision, KERAS_POLICIES))
    out = Path(out_dir)
    if not resume and (out / "last.keras").exists():
        raise FileExistsError(f"{out} already holds a training run; pass --resume to continue it "
                              "or choose another --out directory")
    run = _Run(recipe, out, seed, deterministic, strategy, lr_scaling)
    try:
        with dtype_policy(recipe.precision):
            set_seeds(seed, deterministic)
            _prepare(run, dataset, resume)
            _add_callbacks(run, extra_callbacks)
            _fit_phases(run, verbose)
            return _finish(run)
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
    """Data splits (sharded per worker), the model (fresh or resumed) and the run state."""
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
    with strategy.scope():  # model, optimizer, metric variables (and a loaded checkpoint) are mirrored
        fresh = build_for_recipe(recipe, splits.input_shape, splits.num_classes)
        run.model, run.state = _start_or_resume(recipe, run.out, fresh, resume, run.seed,
                                                splits.steps_per_epoch * run.phase1_epochs)
    run.out = Path(chief_only_path(run.out, strategy))  # all read the chief's run; only the chief writes into it
    run.out.mkdir(parents=True, exist_ok=True)


def _add_callbacks(run: _Run, extra: Sequence[keras.callbacks.Callback]) -> None:
    state, initial_epoch = run.state, int(run.state["epoch"])
    if run.recipe.time_budget_s:
        run.budget = TimeBudget(run.recipe.time_budget_s, state["train_time_s"])
    run.callbacks = [run.nan_stop, HistoryCSV(run.out / "history.csv", initial_epoch),
                     EpochCheckpoint(run.out, _monitor_key(run.model, run.splits.val is not None), run.nan_stop,
                                     state, state["train_time_s"])]
    run.callbacks += ([run.budget] if run.budget else []) + list(extra)


def _fit_phases(run: _Run, verbose: int | None) -> None:
    """Phase 1 (the recipe's epochs); for fine-tuning recipes, phase 2 with the top unfrozen."""
    recipe, splits, state = run.recipe, run.splits, run.state
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    print(f"training {recipe.name}: {recipe.model} on {recipe.dataset} {splits.sizes}, input "
          f"{splits.input_shape}, epochs {int(state['epoch']) + 1}..{run.total_epochs}, seed {run.seed}", flush=True)

    def fit(start: int, stop: int) -> None:
        if start < stop and not run.stopped():
            run.model.fit(splits.train, validation_data=splits.val, epochs=stop, initial_epoch=start,
                          shuffle=False, callbacks=run.callbacks, verbose=verbose)

    fit(int(state["epoch"]), run.phase1_epochs)
    ft = recipe.finetune or {}
    if ft.get("phase2_epochs") and run.nan_stop.diverged_at is None:
        if int(state["epoch"]) <= run.phase1_epochs:  # entering phase 2 (not resuming inside it)
            from zoo import transfer
            transfer.unfreeze_top(run.model, int(ft["phase2_unfreeze"]))
            with run.strategy.scope():
                compile_model(run.model, recipe.replace(epochs=int(ft["phase2_epochs"]), schedule="constant"),
                              splits.steps_per_epoch * int(ft["phase2_epochs"]), lr=ft.get("phase2_lr"))
        fit(max(int(state["epoch"]), run.phase1_epochs), run.total_epochs)


def _record(run: _Run) -> dict[str, Any]:
    recipe, splits, state, strategy = run.recipe, run.splits, run.state, run.strategy
    replicas = int(strategy.num_replicas_in_sync)
    return {"recipe": recipe.to_dict(), "seed": run.seed, "deterministic": run.deterministic,
            "precision": recipe.precision, "split_seed": SPLIT_SEED, "data_sizes": splits.sizes,
            "class_names": splits.class_names, "input_shape": list(splits.input_shape),
            "parameters": int(run.model.count_params()), "environment": training_environment(),
            "epochs_done": int(state["epoch"]), "train_time_s": state["train_time_s"],
            "best_epoch": state["best_epoch"], "best_val_top1": state["best"],
            # the recipe above is already per-replica-scaled: batch_size is the global batch
            "strategy": _tf_class_name(strategy), "replicas": replicas,
            "lr_scaling": run.lr_scaling if replicas > 1 else None}


def _finish(run: _Run) -> dict[str, Any]:
    """The record; on divergence it is written and TrainingDiverged raised. Otherwise the best
    epoch's model is tested and saved as what gets exported: float32 everywhere (a mixed-precision
    run's variables are float32 already) and GoogLeNet's main output only."""
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
    final = inference_outputs(as_float32(best))
    record["test_top1"] = round(top1(final, run.splits.test), 5)
    record["test_top1_last"] = round(top1(model, run.splits.test), 5) if best is not model else record["test_top1"]
    with atomic_path(out / "model.keras") as tmp:  # an interrupted save leaves no model.keras
        final.save(tmp)
    record.update(status="stopped at time budget" if run.budget and run.budget.stopped else "done",
                  wall_time_s=round(time.perf_counter() - run.wall_start, 2))
    atomic_write_json(out / "recipe.json", record, indent=2)
    print(f"{recipe.name}: test top-1 {record['test_top1']:.4f} (best epoch {state['best_epoch']}), "
          f"training {state['train_time_s']:.0f} s, wall {record['wall_time_s']:.0f} s -> {out}", flush=True)
    return record
