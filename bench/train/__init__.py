"""Training: recipes, schedules, augmentation, the training run (checkpoints, record), previews.

    from bench.train import get_recipe, train
    train(get_recipe("mnist_cnn"), "runs/mnist_cnn", seed=0)

Names load on first use, so `imgcls train --help` answers without loading TensorFlow.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "RECIPES": "bench.train.recipes", "Recipe": "bench.train.recipes", "get_recipe": "bench.train.recipes",
    "recipe_names": "bench.train.recipes", "build_augmentation": "bench.train.augment",
    "train": "bench.train.fit", "load_checkpoint": "bench.train.fit", "TrainingDiverged": "bench.train.fit",
    "CheckpointMismatch": "bench.train.fit",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench.train' has no attribute {name!r}")
