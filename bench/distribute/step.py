"""The distributed training step, for timing: Keras' own `train_step` on every replica.

    step = distributed_train_step(strategy, model, dataset_batched_with_the_global_batch)
    loss = step()   # one synchronous step; returns when every replica is done

The same thing `model.fit` does per step (`strategy.run(train_step)` on the next distributed batch,
gradients all-reduced inside the optimizer update), minus the callbacks, so a benchmark can time
it with `bench.measure.timing.time_calls`. Build and compile the model under `strategy.scope()`.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from bench.distribute.strategy import shard_dataset


def distributed_train_step(strategy: tf.distribute.Strategy, model, dataset: tf.data.Dataset,
                           shard_policy: str = "data") -> Callable[[], float]:
    """`step() -> mean loss over replicas`, traced once, on the repeated, sharded `dataset`."""
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)  # variables exist before tracing
    iterator = iter(strategy.experimental_distribute_dataset(shard_dataset(dataset.repeat(), strategy,
                                                                           policy=shard_policy)))

    @tf.function
    def step(it):
        logs = strategy.run(model.train_step, args=(next(it),))
        return strategy.reduce("MEAN", logs["loss"], axis=None)

    return lambda: float(step(iterator).numpy())
