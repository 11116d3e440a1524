"""Faults inside cells: out of memory, a model that cannot be built, retracing in the timed loop.
Each becomes a failed row with its reason, and the run goes on."""
from __future__ import annotations

import pandas as pd

from bench.harness import run
from bench.measure.engines import ENGINES, TfFunction

MODEL = "reference_cnn"


def oom_model(input_shape, num_classes, **_):
    """Upsamples 28x28 by 2048 per side: hundreds of GB at batch 32, a real allocation failure."""
    import keras

    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.UpSampling2D(size=2048)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


class RetracingEngine(TfFunction):
    """A broken system under test: a fresh Python value per call retraces its tf.function."""

    name = "retracing"

    def prepare(self, model, batch_shape):
        import tensorflow as tf

        self.calls = 0

        @tf.function
        def infer(images, call):
            return model(images, training=False)

        self._fn = infer

    def __call__(self, batch):
        self.calls += 1
        return self._fn(batch, self.calls).numpy()


def test_failures_become_rows_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(ENGINES, RetracingEngine.name, RetracingEngine)
    matrix = tmp_path / "faults.toml"
    matrix.write_text(f'''
datasets = ["mnist"]
engines = ["tf_function", "retracing"]
batch_sizes = [32]
warmup = 2
repeats = 3
overhead_check = false
matmul_n = 64
models = ["tests.test_bench_faults:oom_model", "vgg11", "{MODEL}"]
''')
    out = tmp_path / "out"
    assert run.main(["--matrix", str(matrix), "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False).set_index(["model", "engine"])
    assert len(df) == 6
    oom = df.loc[("tests.test_bench_faults:oom_model", "tf_function")]
    assert oom["status"] == "failed" and "out of memory at batch size 32" in oom["reason"]
    too_small = df.loc[("vgg11", "tf_function")]
    assert too_small["status"] == "failed" and "28" in too_small["reason"]  # zoo's own message: the size
    assert df.loc[(MODEL, "tf_function"), "status"] == "ok"
    retraced = df.loc[(MODEL, "retracing")]
    assert retraced["status"] == "failed" and "retraced 3x inside the timed loop" in retraced["reason"]
    assert "out of memory" in (out / "report.md").read_text()
