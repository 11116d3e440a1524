"""The airbench94 ablations: each variant takes exactly one technique out of the recipe, and the
table compares it with the full recipe's mean over its committed seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.train import ablation
from bench.train.recipes import get_recipe

BASE_RESULTS = Path(__file__).resolve().parents[1] / "results" / "train" / "cifar10_airbench94"


@pytest.mark.parametrize("variant", list(ablation.VARIANTS))
def test_each_variant_changes_only_its_own_technique(variant):
    base, changed = get_recipe(ablation.BASE).to_dict(), ablation.variant_recipe(variant).to_dict()
    differ = {k for k in base if base[k] != changed[k]} - {"name", "expect"}
    expected = set(ablation.VARIANTS[variant][1])
    assert differ == expected, (variant, differ)
    if "model_options" in expected:  # merged, not replaced: the widths stay
        assert changed["model_options"]["widths"] == base["model_options"]["widths"]
    assert changed["name"] == f"{ablation.BASE}_{variant}"


def test_no_whitening_really_unsets_the_stem_bias_schedule():
    # Recipe.replace drops None; the ablation must not keep freezing a stem bias that no longer exists
    recipe = ablation.variant_recipe("no_whitening")
    assert recipe.whiten_bias_epochs is None and recipe.model_options["whiten"] is False


def test_table_compares_a_variant_with_the_mean_of_the_committed_seeds(tmp_path):
    records = [json.loads(p.read_text()) for p in
               [BASE_RESULTS / "recipe.json", *sorted(BASE_RESULTS.glob("seed*/recipe.json"))]]
    mean = sum(r["test_top1"] for r in records) / len(records)
    variant = dict(records[1], _record="x")   # a real record standing in for a variant's run
    table = ablation.rows(BASE_RESULTS, {"no_lookahead": variant})
    assert [r["variant"] for r in table] == ["full recipe", "tta_level1", "tta_level0", "no_lookahead"]
    assert table[0]["test_top1"] == pytest.approx(mean, abs=1e-5)
    assert table[-1]["delta_points"] == pytest.approx(100 * (records[1]["test_top1"] - mean), abs=0.01)
    no_tta = sum(r["test_top1_tta"]["level0"] for r in records) / len(records)
    assert table[2]["test_top1"] == pytest.approx(no_tta, abs=1e-5) and table[2]["delta_points"] < 0
    md = ablation.table_md(table, 100 * (max(r["test_top1"] for r in records) - min(r["test_top1"] for r in records)))
    assert f"{100 * mean:.2f}%" in md and "no lookahead" in md


def test_missing_base_records_stop_before_any_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="make train RECIPE=cifar10_airbench94 SEEDS=3"):
        ablation.ablations(tmp_path / "nothing", tmp_path / "runs", tmp_path / "results")
    assert not (tmp_path / "runs").exists()
