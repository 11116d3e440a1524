"""`python -m bench train ...`: train a model with a recipe; preview augmentations; list recipes.

    python -m bench train --model small_cnn --dataset mnist --out runs/mnist_cnn
    python -m bench train --recipe mnist_cnn --resume --results results/train/mnist_cnn  # re-runnable
    python -m bench train --recipe cifar10_resnet18_cpu --epochs 2 --resume --out runs/c10
    python -m bench train --recipe mnist_airbench94 --seeds 3 --results results/train/mnist_airbench94
    python -m bench train recipes
    python -m bench train augment-preview --dataset cifar10 --augment '{"random_hue": 0.1}' --out aug.png
    python -m bench train finetune-vs-scratch --images-per-class 500
    python -m bench train propose-bounds results/train/mnist_airbench94/spread.json
    python -m bench train budget-table --budget 900 --results results/train/equal_budget
    python -m bench train ablations --results results/train/cifar10_airbench94_ablations
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.plumbing import progress
from bench.plumbing.console import interrupt_note
from bench.plumbing.precision import KERAS_POLICIES

SEED_AUGMENT = {"rotation_range": 20, "width_shift_range": 0.1, "height_shift_range": 0.1,
                "shear_range": 10, "zoom_range": 0.1, "horizontal_flip": True}


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench train",
                                description="Train a model with a recipe (see `python -m bench train recipes`).")
    p.add_argument("--model", help="zoo model name (python -m zoo list); with --dataset picks the recipe")
    p.add_argument("--dataset", help="dataset name (mnist, fashion_mnist, cifar10, ...)")
    p.add_argument("--recipe", help="recipe name; overrides the model/dataset default")
    p.add_argument("--epochs", type=float, help="planned epochs (a fraction: a last partial epoch)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--limit-train", type=int, help="use only the first N training images")
    p.add_argument("--image-size", type=int, help="resize images to N x N (e.g. 227 for AlexNet)")
    p.add_argument("--resize", choices=("resize", "pad"), help="how --image-size is reached "
                   "(pad: the seed's resize_with_pad)")
    p.add_argument("--time-budget", type=float, help="training seconds this run may use: its schedule is "
                   "fitted to the epochs that fit after its first steps (too few for the recipe's min_epochs: refused)")
    p.add_argument("--weights", help="fine-tuning recipes: backbone weights ('imagenet', 'none' for "
                                     "random, or a local .h5/.weights.h5 file)")
    p.add_argument("--out", help="run directory (default runs/RECIPE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="several seeds: a count (3: seeds 0,1,2) or a comma-separated list (0,4,7): one run each (seed 0 in --out, "
                   "seed S in --out/seedS), then their spread (spread.json, spread.md) in --results (or --out)")
    p.add_argument("--deterministic", action="store_true", help="tf.config.experimental.enable_op_determinism()")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--precision", choices=KERAS_POLICIES, help="default: the recipe's, where the CPU computes it "
                   "(mixed_bfloat16 only with avx512_bf16 or amx_bf16, else float32)")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar; "
                   "no progress display while the data is fetched")
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute strategy (docs/distributed.md); batch and LR are per replica")
    p.add_argument("--cpu-devices", type=int, help="--strategy mirrored without GPUs: N logical CPU devices")
    p.add_argument("--lr-scaling", default="linear", choices=("linear", "sqrt", "none"),
                   help="how the LR follows the global batch (per-replica batch x replicas)")
    p.add_argument("--results", help="also copy recipe.json, history.csv and curves.png here "
                                     "(e.g. results/train/mnist_cnn; checkpoints stay in --out)")
    return p


def _preview(argv: list[str]) -> int:
    from bench.data import load_dataset
    from bench.train.preview import augment_preview
    from bench.train.recipes import RECIPES, get_recipe

    p = argparse.ArgumentParser(prog="python -m bench train augment-preview",
                                description="PNG of augmented samples (first row: originals)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--augment", default=json.dumps(SEED_AUGMENT),
                   help="JSON dict of augmentation options (ImageDataGenerator names); "
                        "or a recipe name to show its augmentation")
    p.add_argument("--out", default="out/train/augment_preview.png", help="PNG to write (default "
                   "out/train/augment_preview.png)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.augment in RECIPES:
        config = dict(get_recipe(args.augment).augment)
    else:
        try:
            config = json.loads(args.augment)
        except json.JSONDecodeError as exc:
            p.error(f"--augment is neither a recipe name nor valid JSON ({exc}); "
                    'e.g. --augment \'{"rotation_range": 20}\'')
    out = augment_preview(load_dataset(args.dataset), config, args.out, seed=args.seed)
    print(f"wrote {out}")
    return 0


def _compare(argv: list[str]) -> int:
    from bench.train.compare import finetune_vs_scratch

    p = argparse.ArgumentParser(prog="python -m bench train finetune-vs-scratch",
                                description="EfficientNet-Lite0 fine-tuned vs from scratch, same wall time")
    p.add_argument("--out", default="runs/finetune_vs_scratch", help="directory for the two runs")
    p.add_argument("--results", default="out/train/finetune_vs_scratch.json",
                   help="JSON (and .md) of the comparison (default out/train/finetune_vs_scratch.json; "
                        "results/train/finetune_vs_scratch.json is the committed one)")
    p.add_argument("--images-per-class", type=int, help="default: the recipe's 500")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    overrides = {"images_per_class": args.images_per_class} if args.images_per_class else {}
    summary = finetune_vs_scratch(args.out, args.results, seed=args.seed, **overrides)
    print(json.dumps({k: summary[k] for k in ("finetune", "scratch", "margin_top1")}, indent=2))
    return 0


def _train_kept(out: Path) -> str:
    """What an interrupted training run leaves: checkpoints are written at the end of each epoch,
    whole or not at all."""
    try:
        epoch = int(json.loads((out / "state.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        epoch = 0
    if epoch:
        return f"{out} keeps the run up to its last finished epoch ({epoch}); continue it with --resume"
    return f"no epoch had finished, so no checkpoint was kept in {out}"


def _propose_bounds(argv: list[str]) -> int:
    from bench.train.seeds import DEFAULT_MARGIN, bounds_toml, load_spread

    p = argparse.ArgumentParser(prog="python -m bench train propose-bounds",
                                description="accuracy.toml bounds from a multi-seed spread: [min - margin, "
                                            "max + margin] of its test top-1 (paste into results/baselines/accuracy.toml)")
    p.add_argument("spread", help="spread.json (or the folder holding it) written by --seeds")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help=f"fraction (default {DEFAULT_MARGIN} = 0.2 pp)")
    p.add_argument("--run", help="run directory of the checkpoint to check (default runs/NAME: seed 0)")
    args = p.parse_args(argv)
    try:
        print(bounds_toml(load_spread(args.spread), args.margin, args.run), end="")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _budget_table(argv: list[str]) -> int:
    from bench.train import budget_table

    p = argparse.ArgumentParser(prog="python -m bench train budget-table", description=budget_table.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, required=True, help="training seconds per architecture")
    p.add_argument("--out", type=Path, default=Path("runs/equal_budget"), help="run directories (default %(default)s)")
    p.add_argument("--results", type=Path, default=Path("out/train/equal_budget"),
                   help="table, records and curves (default %(default)s; results/train/equal_budget is the committed one)")
    names = [a for a, _, _ in budget_table.ARCHITECTURES]
    p.add_argument("--only", nargs="+", choices=names, help="only these architectures")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.budget > 0:
        p.error(f"--budget must be a positive number of seconds, got {args.budget}")
    rows = budget_table.budget_table(args.budget, args.out, args.results, args.only, args.seed)
    print(budget_table.table_md(rows, args.budget))
    return 0


def _ablations(argv: list[str]) -> int:
    from bench.train import ablation

    p = argparse.ArgumentParser(prog="python -m bench train ablations", description=ablation.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, default=Path(f"results/train/{ablation.BASE}"),
                   help="the full recipe's records over several seeds (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/ablations"), help="run directories (default %(default)s)")
    p.add_argument("--results", type=Path, default=Path("out/train/ablations"),
                   help="table and records (default %(default)s; results/train/cifar10_airbench94_ablations is the committed one)")
    p.add_argument("--only", nargs="+", choices=list(ablation.VARIANTS), help="only these variants")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    table = ablation.ablations(args.base, args.out, args.results, args.only, args.seed)
    print((args.results / "ablations.md").read_text() if table else "nothing run")
    return 0


SUBCOMMANDS = {"augment-preview": _preview, "finetune-vs-scratch": _compare, "propose-bounds": _propose_bounds,
               "budget-table": _budget_table, "ablations": _ablations}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    if argv[:1] == ["recipes"]:
        from bench.train.recipes import get_recipe, recipe_names

        for name in recipe_names():
            r = get_recipe(name)
            print(f"{name:<38}{r.model:<20}{r.dataset:<15}{r.expect}")
        return 0
    p = _train_parser()
    args = p.parse_args(argv)
    progress.set_quiet(args.quiet)
    from bench.train.seeds import parse_seeds
    seeds = None
    if args.seeds is not None:  # checked before TensorFlow loads
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as exc:
            p.error(str(exc))
    from bench.distribute.strategy import make_strategy
    from bench.train.recipes import default_recipe, get_recipe
    try:  # first: logical devices and the cluster are fixed when TensorFlow starts
        strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices)
    except ValueError as exc:
        p.error(str(exc))
    if args.recipe:
        try:
            recipe = get_recipe(args.recipe)
        except ValueError as exc:
            p.error(str(exc))
        folder = bool(args.dataset) and Path(args.dataset).expanduser().is_dir()
        if folder:  # a recipe on your own image folders, e.g. the seed's hotdog recipe
            recipe = recipe.replace(dataset=args.dataset)
        if (args.model and args.model != recipe.model) or (args.dataset and args.dataset != recipe.dataset):
            p.error(f"recipe {recipe.name!r} trains {recipe.model} on {recipe.dataset}; drop --model/"
                    "--dataset (or give an image-folder path as --dataset) or pick a recipe for them "
                    "(python -m bench train recipes)")
    elif args.model and args.dataset:
        recipe = default_recipe(args.model, args.dataset)
    else:
        p.error("give --model and --dataset, or --recipe NAME (list: python -m bench train recipes)")
    try:
        recipe = recipe.replace(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                limit_train=args.limit_train, time_budget_s=args.time_budget,
                                image_size=(args.image_size,) * 2 if args.image_size else None,
                                resize_method=args.resize)
    except ValueError as exc:
        p.error(str(exc))
    if args.weights:
        if recipe.finetune is None:
            p.error(f"--weights applies to fine-tuning recipes; {recipe.name!r} trains from scratch")
        weights = None if args.weights.lower() == "none" else args.weights
        recipe = recipe.replace(finetune={**recipe.finetune, "weights": weights})

    from bench.data import DataError
    from bench.train.budget import BudgetTooSmall
    from bench.train.fit import CheckpointMismatch, InputTooSmall, TrainingDiverged, train
    from bench.train.seeds import copy_record, train_seeds
    out = Path(args.out or f"runs/{recipe.name}")

    def train_one(seed: int, run_dir: Path) -> dict:
        return train(recipe, run_dir, seed=seed, deterministic=args.deterministic, resume=args.resume,
                     precision=args.precision, verbose=2 if args.quiet else None,
                     strategy=strategy, lr_scaling=args.lr_scaling)

    try:
        if seeds is not None:
            spread = train_seeds(train_one, seeds, out, args.results)
            folder = Path(args.results) if args.results else out
            print((folder / "spread.md").read_text())
            print(f"spread of {spread['n']} seeds: {folder / 'spread.json'}; accuracy bounds from it: "
                  f"python -m bench train propose-bounds {folder / 'spread.json'}")
            return 0
        with interrupt_note(lambda: _train_kept(out)):
            train_one(args.seed, out)
    except (InputTooSmall, BudgetTooSmall) as exc:  # refused before training: say what to change
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TrainingDiverged, CheckpointMismatch, DataError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad input: a model too small for the images, a bad option...
        hint = " (here: --image-size N, and --resize pad for the seed's letterbox)" if "too small" in str(exc) else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    if args.results:
        copy_record(out, Path(args.results))
        print(f"copied the run record to {args.results}")
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
