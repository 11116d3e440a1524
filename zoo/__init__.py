"""zoo builds every network the toolkit trains or times, by name, through one registry.

    import zoo
    model = zoo.build("resnet18", input_shape=(32, 32, 3), num_classes=10)
    zoo.names(); zoo.spec("resnet18"); zoo.flops_per_image(model); zoo.load_model("run/model.keras")

Models are functional ``keras.Model``s taking float32 images in [0, 1]. Importing ``zoo`` loads
nothing heavy; Keras and the families load on first use (``python -m zoo --help`` stays fast).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "build": "zoo.registry", "names": "zoo.registry", "spec": "zoo.registry", "register": "zoo.registry",
    "ModelSpec": "zoo.registry", "flops_per_image": "zoo.flops",
    "load_model": "zoo.checkpoint", "CheckpointError": "zoo.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
