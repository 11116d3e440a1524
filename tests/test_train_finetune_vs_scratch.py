"""Fine-tuning vs a tuned scratch baseline: every candidate gets the fine-tuning run's time, the
baseline is chosen on validation (never test), and one plot holds both learning curves."""
from __future__ import annotations

import json

import pytest

from bench.train.compare import curve, finetune_vs_scratch


@pytest.mark.slow  # three short trainings of EfficientNet-Lite0, about 70 s on 2 cores
def test_tuned_scratch_baseline_same_budget_one_plot(tmp_path, cifar10):
    candidates = [("low_lr", {"lr": 1e-4, "schedule": "one_cycle"}), ("high_lr", {"lr": 3e-3, "schedule": "one_cycle"})]
    results = tmp_path / "fvs.json"
    summary = finetune_vs_scratch(tmp_path / "runs", results, candidates=candidates,
                                  images_per_class=24, image_size=(32, 32), batch_size=16)
    budget = summary["budget_s"]
    assert budget == summary["finetune"]["train_time_s"] > 0
    tried = summary["scratch_candidates"]
    assert [r["tuning"] for r in tried] == ["low_lr", "high_lr"]
    # chosen on validation top-1, and reported with its own test top-1
    best = max(tried, key=lambda r: r["best_val_top1"] or 0.0)
    assert summary["scratch"]["tuning"] == best["tuning"]
    assert summary["margin_top1"] == round(summary["finetune"]["test_top1"] - best["test_top1"], 5)
    for r in tried:  # every candidate had the fine-tuning run's training time as its budget
        record = json.loads((tmp_path / "runs" / f"scratch_{r['tuning']}" / "recipe.json").read_text())
        assert record["recipe"]["time_budget_s"] == budget
    assert json.loads(results.read_text())["scratch"]["tuning"] == best["tuning"]
    md = results.with_suffix(".md").read_text()
    assert "(chosen on validation)" in md and "low_lr" in md and "high_lr" in md
    assert (tmp_path / "fvs_curves.png").stat().st_size > 10_000
    seconds, val = curve(tmp_path / "runs" / "finetune")
    assert seconds == sorted(seconds) and len(seconds) == len(val) >= 1


def test_scratch_baseline_batchnorm_tracks_its_moving_weights():
    """The random backbone's BatchNorm layers (nested inside the transfer model) average their
    statistics over ~10 steps, not Keras' ~100: with 0.99 the averages were stale after a short
    run and every test image got the same prediction."""
    import keras

    from bench.train.fit import build_for_recipe
    from bench.train.recipes import get_recipe
    from zoo.inference import all_layers

    model = build_for_recipe(get_recipe("catdog_efficientnet_lite0_scratch").replace(image_size=(32, 32)), (32, 32, 3), 2)
    norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 40 and {layer.momentum for layer in norms} == {0.9}
