"""The artifact formats: which file each one is, which runtime runs it, what it computes in.

A format's `precisions` are what its runtime can compute it in here; each one is verified before the
artifact is written (float32 by output parity with the Keras model, the others by the accuracy
rule) and each verified one can be shipped and benchmarked. `made_from` names the format a file
is converted from (the int8 ONNX model is the fp32 ONNX model, quantized), so both are exported
together.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    file: str                     # path inside the artifact directory
    runtime: str                  # tensorflow | onnxruntime | openvino | litert
    precisions: tuple[str, ...]   # what the runtime computes it in, each verified (bench.plumbing.precision)
    made_from: str | None = None  # the format this one is converted from
    calibrated: bool = False      # int8 from real training images

    def rule(self, precision: str) -> str:
        """How a (format, precision) pair is verified: 'parity' for float32, else 'accuracy'."""
        return "parity" if precision == "float32" else "accuracy"


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("savedmodel", "savedmodel", "tensorflow", ("float32",)),
    Format("onnx", "model.onnx", "onnxruntime", ("float32",)),
    Format("onnx_fp16", "model_fp16.onnx", "onnxruntime", ("float16",), made_from="onnx"),
    Format("onnx_int8", "model_int8.onnx", "onnxruntime", ("int8",), made_from="onnx", calibrated=True),
    # OpenVINO IR converted from the Keras model by OpenVINO itself; its CPU plugin computes it in
    # float32 or, on CPUs with AVX512-BF16/AMX, bfloat16 (a runtime setting, verified like a format)
    Format("openvino", "openvino/model.xml", "openvino", ("float32", "bfloat16")),
    # OpenVINO's own int8 of that IR (NNCF, calibrated on the training images onnx_int8 uses): it runs
    # faster than the QDQ model made for onnxruntime (export.convert.to_openvino_int8)
    Format("openvino_int8", "openvino_int8/model.xml", "openvino", ("int8",), made_from="openvino", calibrated=True),
    Format("litert", "model.tflite", "litert", ("float32",)),
    Format("litert_int8", "model_int8.tflite", "litert", ("int8",), calibrated=True),
)}


def parse_formats(text: str) -> list[str]:
    """`--formats a,b,c` checked: known names, and each format's source included."""
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or formats}; choose from {', '.join(FORMATS)}")
    for name in formats:
        source = FORMATS[name].made_from
        if source and source not in formats:
            raise ValueError(f"{name} is made from (and judged beside) the {source} model: add {source} to --formats")
    return formats
