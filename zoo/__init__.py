"""Classic image-classification architectures, built by name.

    import zoo
    model = zoo.build("resnet18", input_shape=(32, 32, 3), num_classes=10)
    zoo.names(); zoo.spec("resnet18"); zoo.flops_per_image(model)

Models are functional ``keras.Model``s taking float32 images in [0, 1].
"""
from __future__ import annotations

import importlib
import importlib.util

from zoo.flops import flops_per_image
from zoo.registry import ModelSpec, build, names, register, spec

# Importing a family module registers its builders.
from zoo import alexnet, googlenet, inception, resnet, vgg  # noqa: E402,F401  isort: skip

# Families maintained alongside (pretrained backbones); registered when present.
for _module in ("zoo.efficientnet_lite", "zoo.transfer"):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)

__all__ = ["ModelSpec", "build", "flops_per_image", "names", "register", "spec"]
