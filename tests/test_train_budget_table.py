"""The equal-budget table: every seed architecture gets a valid recipe at its smallest input, and a
real (very short) run writes the table row, the record and the checkpoint."""
from __future__ import annotations

import json

import pytest

import zoo
from bench.train import budget_table


@pytest.mark.parametrize(("arch", "size", "options"), budget_table.ARCHITECTURES)
def test_every_architecture_builds_at_its_table_input(arch, size, options):
    recipe = budget_table.budget_recipe(arch, size, options, 600)
    assert recipe.time_budget_s == 600 and recipe.dataset == "cifar10"
    assert size == max(32, zoo.spec(arch).min_input_size)   # the smallest input CIFAR-10 can give it
    model = zoo.build(arch, input_shape=(size, size, 3), num_classes=10, **options)
    assert model.count_params() > 0


def test_a_short_table_run_writes_rows_records_and_checkpoints(tmp_path, cifar10):
    rows = budget_table.budget_table(8.0, tmp_path / "runs", tmp_path / "results", only=["alexnet"], limit_train=2000)
    (row,) = rows
    assert row["architecture"] == "alexnet" and row["input"] == 67
    assert 0.0 <= row["test_top1"] <= 1.0 and row["epochs_done"] > 0 and row["images_per_s"] > 0
    assert (tmp_path / "runs/alexnet/model.keras").exists()
    table = json.loads((tmp_path / "results/equal_budget.json").read_text())
    assert table["budget_s"] == 8.0 and table["rows"][0]["architecture"] == "alexnet"
    assert "| alexnet | 67 |" in (tmp_path / "results/equal_budget.md").read_text()
    assert (tmp_path / "results/alexnet/recipe.json").exists()
    # an interrupted table resumes: a finished architecture is not trained again
    again = budget_table.budget_table(8.0, tmp_path / "runs", tmp_path / "results", only=["alexnet"], limit_train=2000)
    assert again[0]["test_top1"] == row["test_top1"] and again[0]["train_time_s"] == row["train_time_s"]


def test_one_recipe_for_all_but_what_an_architecture_cannot_share():
    recipes = {arch: budget_table.budget_recipe(arch, size, options, 450)
               for arch, size, options in budget_table.ARCHITECTURES}
    shared = {"optimizer", "lr", "schedule", "warmup_epochs", "weight_decay", "batch_size", "augment",
              "precision", "bn_momentum", "time_budget_s"}
    reference = recipes["resnet50"].to_dict()
    for arch, recipe in recipes.items():
        own = budget_table.OWN_SETTINGS.get(arch, {})
        for key in shared:
            expected = own.get(key, reference[key])
            assert recipe.to_dict()[key] == expected, (arch, key)
    # the deep networks do a few hundred steps in the budget: Keras' 0.99 would leave stale averages
    assert recipes["resnet50"].bn_momentum == 0.9
    assert recipes["vgg11"].lr == 1e-4 and recipes["resnet18"].lr == 1e-3
