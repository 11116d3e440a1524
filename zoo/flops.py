"""FLOPs per image, counted by TensorFlow's graph profiler (not a hand formula).

The model is traced at batch 1 in inference mode, its variables are frozen into constants,
and ``tf.compat.v1.profiler`` sums the ``flops`` statistic TensorFlow registers per op
(Conv2D, MatMul, BiasAdd, Add, pooling, ...). TensorFlow counts a multiply-add as 2 FLOPs,
so ResNet-50 at 224x224 (about 4.1 G multiply-adds) is reported as about 8.2 GFLOPs.
Ops without a registered count (e.g. fused batch norm, ReLU) add nothing.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)


def flops_per_image(model: keras.Model) -> int:
    """Floating-point operations for one image through ``model`` (multiply-add = 2)."""
    input_shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise ValueError(
            f"flops_per_image needs a fixed input size; {model.name} takes {input_shape}. "
            "Build the model with a concrete input_shape, e.g. (224, 224, 3)."
        )
    spec = tf.TensorSpec((1, *input_shape), model.inputs[0].dtype)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()  # the profiler otherwise prints a table to stdout
        .build()
    )
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler logs a deprecation warning on every call
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops)
