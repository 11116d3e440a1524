"""TensorFlow ops that tf2onnx 1.17 has no handler for, written as standard ONNX ops.

Importing this module registers the handlers with tf2onnx (its `tf_op` decorator is global).

- `Erfc`: Keras 3's exact GELU (`keras.activations.gelu(x, approximate=False)`, also the
  `"gelu"` activation string) computes 0.5 * x * erfc(-x / sqrt(2)) with TF's Erfc. ONNX has Erf
  (opset 9+) but no Erfc, so it becomes 1 - Erf(x). Where erfc is tiny (x > ~4) the subtraction
  loses its relative precision, but GELU multiplies it by 0.5 * x on the side where x < -4, so the
  absolute error stays below float32 resolution of the activation.
"""
from __future__ import annotations

import numpy as np
from tf2onnx import utils
from tf2onnx.handler import tf_op


@tf_op("Erfc")
class Erfc:
    @classmethod
    def version_9(cls, ctx, node, **kwargs):
        x = node.input[0]
        dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
        one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
        erf = ctx.make_node("Erf", [x], name=utils.make_name(f"{node.name}_erf"))
        ctx.copy_shape(x, erf.output[0])
        node.type = "Sub"
        ctx.replace_inputs(node, [one.output[0], erf.output[0]])
