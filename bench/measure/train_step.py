"""Training throughput: a compiled train step in steady state, warm-up steps excluded.

The step is Keras' own `model.train_step` (forward, loss with loss scaling under mixed_float16,
gradients, optimizer update) inside a `tf.function` with a fixed input signature, compiled with or
without XLA, so its tracing count can be checked around the timed steps. It is fed either a batch
already in memory ('synthetic': the compute ceiling) or the next batch of the real tf.data pipeline
('real'); the ratio real/synthetic shows how much the input pipeline limits training.
Each step returns the loss as a numpy value, so the step has finished when the clock stops.
"""
from __future__ import annotations

import numpy as np

from bench.measure.timing import Timing, time_calls

PIPELINES = ("synthetic", "real")


def compile_for_training(model, *, jit_compile: bool, optimizer=None) -> None:
    """Sparse cross-entropy and (default) SGD with momentum; under a mixed_float16 policy Keras wraps
    the optimizer in a LossScaleOptimizer."""
    import keras

    # Softmax outputs (the zoo default) or logits (classifier_activation=None).
    activation = getattr(model.layers[-1], "activation", None)
    from_logits = getattr(activation, "__name__", "") != "softmax"
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        jit_compile=jit_compile,
    )


def compiled_train_step(model, batch_size: int, input_shape: tuple[int, int, int], jit_compile: bool):
    """`step(images, labels) -> loss tensor`: one traced graph for this batch shape."""
    import tensorflow as tf

    model.optimizer.build(model.trainable_variables)  # variables exist before tracing
    specs = [tf.TensorSpec((batch_size, *input_shape), tf.float32), tf.TensorSpec((batch_size,), tf.int64)]

    @tf.function(input_signature=specs, jit_compile=jit_compile, reduce_retracing=False)
    def step(images, labels):
        return model.train_step((images, labels))["loss"]

    return step


def batch_source(pipeline: str, *, dataset, batch_size: int, input_shape: tuple[int, int, int], seed: int = 0):
    """A zero-argument callable returning the next (images, labels) batch."""
    import tensorflow as tf

    if pipeline == "synthetic":
        rng = np.random.default_rng(seed)
        x = tf.constant(rng.random((batch_size, *input_shape), dtype=np.float32))
        y = tf.constant(rng.integers(0, dataset.num_classes, size=batch_size, dtype=np.int64))
        return lambda: (x, y)
    if pipeline == "real":
        h, w, c = input_shape
        ds = dataset.pipeline("train", batch_size, image_size=(h, w), channels=c, shuffle=True, seed=seed,
                              drop_remainder=True).repeat()
        it = iter(ds)
        return lambda: next(it)
    raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}")


def measure_training(train_step, next_batch, *, warmup_steps: int, steps: int | None, time_budget_s: float | None,
                     min_steps: int = 5) -> tuple[Timing, int]:
    """Time `train_step` on successive batches; returns the timing and how many times the step was
    traced during the timed steps (must be 0: a retrace would be timed as a step)."""

    def step(_):
        images, labels = next_batch()
        return train_step(images, labels).numpy()

    counts = []
    timing = time_calls(step, None, warmup=max(warmup_steps, 1),  # at least one: traces the step
                        on_warmed_up=lambda: counts.append(train_step.experimental_get_tracing_count()),
                        repeats=steps, time_budget_s=time_budget_s, min_repeats=min_steps)
    return timing, train_step.experimental_get_tracing_count() - counts[0]
