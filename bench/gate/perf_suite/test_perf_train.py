"""One training step (forward, loss, backward, SGD-momentum update) of a small zoo model."""
import pytest

import perf_systems


@pytest.mark.parametrize("batch", [32], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("key", ["resnet18"])
def test_train_step(measure, key, batch):
    run = perf_systems.make_train_step(perf_systems.build_model(key), batch)
    measure(run, model=key, batch=batch, code_root=perf_systems.code_root())
