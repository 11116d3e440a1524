"""airbench94's optimizer in Keras: PyTorch's SGD update rule with airbench's parameter groups.

airbench (PyTorch) sums its loss over the batch and uses torch.optim.SGD with Nesterov momentum,
*coupled* weight decay (added to the gradient, so it goes through the momentum buffer) and two
parameter groups: BatchNorm biases get 64x the learning rate with the same absolute decay as every
other parameter. Keras averages the loss, its SGD has no parameter groups and its `weight_decay`
is decoupled. `TorchSGD` does PyTorch's update exactly:

    d = s * g + l2 * w          (s: per-variable gradient scale, 64 for BN biases, else 1)
    buf = momentum * buf + d
    w -= lr * switch * (d + momentum * buf)          (Nesterov)

and `airbench_units` converts airbench's hyperparameters (lr and weight decay "per 1024 examples",
for a summed loss) into this rule's `lr` (for a mean loss) and `l2`, so a Keras step is the same
step airbench takes. `switch` is a 0-d variable per frozen group (1: train, 0: frozen): airbench
trains the whitening stem's bias for its first epochs only, and a traced training step cannot see a
changed `layer.trainable`, so a callback sets the switch instead.
"""
from __future__ import annotations

import keras
from keras import ops


def airbench_units(lr: float, weight_decay: float, momentum: float, batch_size: int) -> tuple[float, float]:
    """airbench's (lr, weight_decay, momentum) at `batch_size` -> (Keras lr, coupled L2 coefficient).

    airbench94: kilostep = 1024 * (1 + 1/(1 - momentum)); PyTorch lr = lr / kilostep on a summed
    loss (its gradient is batch_size times the mean loss's), per-step decay wd_t = weight_decay *
    batch_size / kilostep through weight_decay = wd_t / lr_torch. On a mean loss the same step is
    lr_keras = lr / kilostep * batch_size and l2 = wd_t / lr_keras = weight_decay / lr.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    kilostep = 1024.0 * (1.0 + 1.0 / (1.0 - momentum))
    keras_lr = lr / kilostep * batch_size
    return keras_lr, weight_decay / lr


@keras.saving.register_keras_serializable(package="bench.train")
class TorchSGD(keras.optimizers.Optimizer):
    """SGD with PyTorch's semantics (coupled L2 through the momentum buffer, PyTorch's Nesterov).

    `grad_scale`: {path substring: s}, the first match scales a variable's gradient (airbench: BN
    biases, `/beta`, get 64). `switches`: path substrings of variables that a callback may freeze
    through `set_switch(name, 0.0)`. Per-variable settings are resolved by index in `build`
    (update_step may receive raw tf.Variables without a Keras path)."""

    def __init__(self, learning_rate=0.01, momentum: float = 0.9, l2: float = 0.0, nesterov: bool = True,
                 grad_scale: dict[str, float] | None = None, switches=(), name: str = "torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.l2, self.nesterov = float(momentum), float(l2), bool(nesterov)
        self.grad_scale = {str(k): float(v) for k, v in (grad_scale or {}).items()}
        self.switch_names = tuple(switches)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.buffers = [self.add_variable_from_reference(v, "momentum") for v in var_list]
        self.switch = {s: self.add_variable((), initializer="ones", name="switch_" + s.replace("/", "_"))
                       for s in self.switch_names}
        self._scales = [next((s for key, s in self.grad_scale.items() if key in v.path), 1.0) for v in var_list]
        self._switch_of = [next((self.switch[s] for s in self.switch_names if s in v.path), None) for v in var_list]

    def set_switch(self, name: str, value: float) -> None:
        self.switch[name].assign(float(value))

    def switched(self, name: str) -> list[str]:
        """Paths of the variables that switch `name` controls (to check a recipe's name matched)."""
        return [v.path for v, sw in zip(self._trainable_variables, self._switch_of) if sw is self.switch[name]]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        i = self._get_variable_index(variable)
        d = ops.cast(gradient, variable.dtype) * self._scales[i] + self.l2 * variable
        buf = self.buffers[i]
        self.assign(buf, buf * self.momentum + d)
        step = lr * (d + self.momentum * buf) if self.nesterov else lr * buf
        if self._switch_of[i] is not None:
            step = step * ops.cast(self._switch_of[i], variable.dtype)
        self.assign_sub(variable, step)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "l2": self.l2, "nesterov": self.nesterov,
                "grad_scale": self.grad_scale, "switches": list(self.switch_names)}
