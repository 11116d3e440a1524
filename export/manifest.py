"""manifest.json: everything a deployment needs to run the artifact and to trust it."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.plumbing.environment import cpu_flags, cpu_model, tool_versions
from export.formats import FORMATS

if TYPE_CHECKING:
    from export.job import ExportJob
    from export.pipeline import Verification

TOOLS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxconverter-common", "openvino",
         "ai-edge-litert", "numpy")


def build_manifest(job: "ExportJob", seconds: dict[str, float], result: "Verification", passed: bool) -> dict:
    from export import verify
    from export.convert import INPUT_NAME, SAVEDMODEL_SIGNATURE
    from export.pipeline import key as pipeline_key

    request = job.request
    h, w, c = job.shape
    formats: dict[str, dict[str, Any]] = {}
    for name in request.formats:
        fmt = FORMATS[name]
        verified = [p for p in fmt.precisions if pipeline_key(name, p) not in result.unavailable]
        formats[name] = {"file": fmt.file, "runtime": fmt.runtime,
                         "precisions": {p: fmt.rule(p) for p in verified},
                         "unavailable": {p: result.unavailable[pipeline_key(name, p)] for p in fmt.precisions
                                         if pipeline_key(name, p) in result.unavailable}}
        if fmt.runtime == "tensorflow":
            formats[name]["signature"] = SAVEDMODEL_SIGNATURE
        if fmt.runtime == "onnxruntime":
            formats[name]["opset"] = request.opset
    return {
        "status": "passed" if passed else "failed",
        "model": job.name,
        "architecture": job.architecture,
        "dataset": request.dataset,
        "class_names": job.data.class_names if job.data else [str(i) for i in range(job.num_classes)],
        "input": {"name": INPUT_NAME, "shape": [None, h, w, c], "dtype": "float32", "layout": "NHWC"},
        "outputs": [{"name": n, "kind": job.kind if i == 0 else f"auxiliary {job.kind}",
                     "shape": [None, job.num_classes]} for i, n in enumerate(job.output_names)],
        "preprocessing": {
            "channels": c,
            "size": [h, w],
            "resize_method": request.resize_method,
            "interpolation": "bilinear",
            "scale": 1 / 255,
            "input_range": [0.0, 1.0],
            "normalization": _normalization(job.model),
        },
        "formats": formats,
        "rebuilt_from_mixed_precision": job.was_mixed_precision,
        # the same function re-parametrised for int8 (export.equalize): these BatchNorms' inputs
        "equalized_batchnorm_inputs": job.equalized or [],
        "recipe": request.recipe.name,
        "accuracy": result.accuracy,
        "parity": {"atol": verify.ATOL[job.kind], "checks": verify.as_dict(result.checks)},
        "reduced_precision": result.reduced,
        "conversion_seconds": seconds,
        "opset": request.opset,
        "tools": {**tool_versions(TOOLS), "python": platform.python_version()},
        # reduced-precision kernels differ by CPU (int8 without VNNI saturates): where this was verified
        "verified_on": {"cpu": cpu_model(), "cpu_flags": cpu_flags()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _normalization(model) -> dict:
    """Mean/std or rescaling layers live inside the model; recorded so readers know not to
    apply them again."""
    import keras

    from zoo.inference import all_layers

    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Normalization):
            mean = np.asarray(layer.mean).reshape(-1)
            std = np.sqrt(np.asarray(layer.variance).reshape(-1))
            return {"inside_model": True, "layer": layer.name, "mean": mean.tolist(), "std": std.tolist()}
        if isinstance(layer, keras.layers.Rescaling):
            return {"inside_model": True, "layer": layer.name,
                    "scale": np.asarray(layer.scale).tolist(), "offset": np.asarray(layer.offset).tolist()}
    return {"inside_model": True, "layer": None, "note": "the model takes [0, 1] images as they are"}
