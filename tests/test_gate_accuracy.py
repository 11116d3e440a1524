"""Accuracy gate: bounds parsing, and checking a real tiny MNIST checkpoint against them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.gate import accuracy
from bench.gate.accuracy_proof import GATE_MARGIN


def write_bounds(path, text):
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist):
    """A run directory as `bench train` writes it: a briefly trained softmax model on MNIST."""
    import keras

    from bench.train.recipes import get_recipe
    from bench.train.splits import make_splits

    recipe = get_recipe("mnist_tiny").replace(name="gate_tiny", batch_size=128)
    splits = make_splits(mnist, recipe, seed=0, augmentation=None)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    model.fit(splits.train.take(40), epochs=1, verbose=0)
    run = tmp_path_factory.mktemp("runs") / "gate_tiny"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "recipe.json").write_text(json.dumps({"recipe": recipe.to_dict(), "seed": 0, "test_top1": 0.5}))
    return run, model


def test_load_bounds(tmp_path):
    path = write_bounds(tmp_path / "b.toml", """
[checkpoints.mnist_cnn]
top1 = [0.994, 0.999]
[checkpoints.other]
top1 = [0, 1]
run = "elsewhere/other"
produce = "make train"
""")
    first, second = accuracy.load_bounds(path, root=tmp_path)
    assert (first.name, first.top1_min, first.top1_max) == ("mnist_cnn", 0.994, 0.999)
    assert first.run == tmp_path / "runs" / "mnist_cnn" and "--recipe mnist_cnn" in first.produce
    assert second.run == tmp_path / "elsewhere" / "other" and second.produce == "make train"


def test_the_stored_bounds_file_is_valid():
    bounds = accuracy.load_bounds(accuracy.DEFAULT_BOUNDS)
    assert bounds and all(0 < b.top1_min < b.top1_max <= 1 for b in bounds)


@pytest.mark.parametrize(("text", "message"), [
    ("[checkpoints.a]\ntop1 = [99.4, 100]\n", "fractions, not percent"),
    ("[checkpoints.a]\ntop1 = [0.9, 0.8]\n", "0 <= min <= max <= 1"),
    ("[checkpoints.a]\ntop1 = 0.9\n", "must be a list \\[min, max\\]"),
    ("[checkpoints.a]\ntop1 = [0.9, 1.0]\ntop5 = [0.9, 1.0]\n", "unknown key\\(s\\) top5"),
    ("[other]\nx = 1\n", "no \\[checkpoints.NAME\\] tables"),
    ("[checkpoints.a\n", "not valid TOML"),
])
def test_malformed_bounds_are_clear_errors(tmp_path, text, message):
    with pytest.raises(accuracy.BoundsError, match=message):
        accuracy.load_bounds(write_bounds(tmp_path / "b.toml", text))


def test_missing_bounds_file(tmp_path, capsys):
    assert accuracy.main(["--bounds", str(tmp_path / "absent.toml")]) == 2
    assert "absent.toml does not exist" in capsys.readouterr().err


def test_evaluates_the_checkpoint_on_its_test_split(tiny_run, mnist):
    run, model = tiny_run
    top1, n, recorded = accuracy.evaluate_top1(run)
    x, y = mnist.numpy("test")
    expected = float(np.mean(np.argmax(model.predict(x.astype("float32") / 255.0, verbose=0), -1) == y))
    assert n == len(y) == 10_000 and recorded == 0.5
    assert top1 == pytest.approx(expected, abs=2e-4)
    assert top1 > 0.5  # 40 steps of a softmax regression learn MNIST well above chance


def test_bounds_verdicts_and_exit_codes(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    top1, _, _ = accuracy.evaluate_top1(run)
    cases = {"inside": ([top1 - 0.01, min(top1 + 0.01, 1.0)], "ok", 0),
             "below": ([min(top1 + 0.05, 1.0), 1.0], "BELOW", 1),
             "above": ([0.0, top1 - 0.05], "ABOVE", 1)}
    for label, ((lo, hi), verdict, code) in cases.items():
        bounds = write_bounds(tmp_path / f"{label}.toml",
                              f'[checkpoints.gate_tiny]\ntop1 = [{lo:.4f}, {hi:.4f}]\nrun = "{run}"\n')
        out = tmp_path / label
        assert accuracy.main(["--bounds", str(bounds), "--out", str(out)]) == code, label
        printed = capsys.readouterr().out
        assert f"| {verdict}" in printed and "gate_tiny" in printed
        assert (out / "accuracy.csv").read_text().count("\n") == 2


def test_missing_checkpoint_is_skipped_or_fails_under_strict(tmp_path, capsys):
    bounds = write_bounds(tmp_path / "b.toml",
                          f'[checkpoints.absent]\ntop1 = [0.9, 1.0]\nrun = "{tmp_path / "runs/absent"}"\n'
                          'produce = "python -m bench train --recipe absent"\n')
    assert accuracy.main(["--bounds", str(bounds)]) == 0
    printed = capsys.readouterr().out
    assert "missing" in printed and "python -m bench train --recipe absent" in printed and "1 skipped" in printed
    assert accuracy.main(["--bounds", str(bounds), "--strict"]) == 1
    assert "ERROR" in capsys.readouterr().out


def test_unknown_only_name_is_an_error(tmp_path, capsys):
    bounds = write_bounds(tmp_path / "b.toml", "[checkpoints.a]\ntop1 = [0.9, 1.0]\n")
    assert accuracy.main(["--bounds", str(bounds), "--only", "b"]) == 2
    assert "no bounds for b" in capsys.readouterr().err


def test_run_override_checks_another_directory(tiny_run, tmp_path, capsys):
    """CI trains the gate's recipe into a fresh folder and checks it with --run NAME=DIR."""
    run, _ = tiny_run
    bounds = write_bounds(tmp_path / "b.toml", f'[checkpoints.gate_tiny]\ntop1 = [0.5, 1.0]\n'
                                                f'run = "{tmp_path / "not-there"}"\n')
    assert accuracy.main(["--bounds", str(bounds), "--strict"]) == 1
    capsys.readouterr()
    assert accuracy.main(["--bounds", str(bounds), "--strict", "--run", f"gate_tiny={run}"]) == 0
    assert "| ok" in capsys.readouterr().out


@pytest.mark.parametrize(("item", "message"), [("gate_tiny", "must be NAME=DIR"),
                                                ("other=somewhere", "no bounds for 'other'")])
def test_bad_run_override(tmp_path, capsys, item, message):
    bounds = write_bounds(tmp_path / "b.toml", "[checkpoints.gate_tiny]\ntop1 = [0.5, 1.0]\n")
    assert accuracy.main(["--bounds", str(bounds), "--run", item]) == 2
    assert message in capsys.readouterr().err


def test_the_ci_gate_recipe_has_5_seed_bounds():
    """The bounds CI checks come from the spread of at least 5 seeds that the same recipe wrote."""
    import json as _json

    from bench.train.seeds import propose_bounds

    spread = _json.loads((accuracy.REPO_ROOT / "results/train/mnist_tiny/spread.json").read_text())
    assert len(spread["seeds"]) >= 5
    (gate,) = [b for b in accuracy.load_bounds(accuracy.DEFAULT_BOUNDS) if b.name == "mnist_tiny"]
    assert (gate.top1_min, gate.top1_max) == propose_bounds(spread, margin=GATE_MARGIN)
