"""Training: recipes, schedules, augmentation, the training run, augmentation previews.

    from bench.train import get_recipe, train
    train(get_recipe("mnist_cnn"), "runs/mnist_cnn", seed=0)
"""
from bench.train.augment import build_augmentation
from bench.train.fit import CheckpointMismatch, TrainingDiverged, load_checkpoint, train
from bench.train.recipes import RECIPES, Recipe, get_recipe, recipe_names

__all__ = ["RECIPES", "Recipe", "get_recipe", "recipe_names", "build_augmentation", "train",
           "load_checkpoint", "TrainingDiverged", "CheckpointMismatch"]
