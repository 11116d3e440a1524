"""ONNX int8: onnxruntime static quantization (QDQ, per-channel) calibrated on real images."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from export.convert import INPUT_NAME


class ImageBatches(CalibrationDataReader):
    """Feeds calibration batches (training images, float32 NHWC in [0, 1]) to the calibrator."""

    def __init__(self, batches: Iterable[np.ndarray], input_name: str = INPUT_NAME):
        self._batches: Iterator[np.ndarray] = iter(batches)
        self._input_name = input_name
        self.images = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        batch = np.ascontiguousarray(batch, dtype="float32")
        self.images += len(batch)
        return {self._input_name: batch}


def to_onnx_int8(
    src: str | os.PathLike, dst: str | os.PathLike, calibration: Iterable[np.ndarray],
    reduce_range: bool | None = None,
) -> dict:
    """Writes the int8 model to dst; returns {"calibration_images": N, "reduce_range": bool}.

    QDQ keeps the graph runnable by any onnxruntime provider; int8 weights per output channel
    keep the accuracy of convolutions whose channels have very different ranges.
    reduce_range (default: on where this CPU has no VNNI/AMX int8 dot product): 7-bit weights.
    Without VNNI, x86 int8 GEMMs multiply u8 x s8 with AVX2's vpmaddubsw, whose 16-bit sums
    saturate: measured here, a small MNIST CNN lost 2.95 points of top-1 (2000 test images) with 8-bit
    weights on an AVX2-only CPU and none with 7-bit ones (onnxruntime's quantization guide gives the same advice).
    """
    if reduce_range is None:
        from bench.plumbing.environment import has_int8_dot_product

        reduce_range = not has_int8_dot_product()
    batches = [np.ascontiguousarray(b, dtype="float32") for b in calibration]
    reader = ImageBatches(batches)
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference and graph optimisation first, as onnxruntime recommends.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=_merge_every(len(batches)),
        )
    if reader.images == 0:
        raise ValueError("int8 calibration got no images; the calibration split is empty")
    return {"calibration_images": reader.images, "reduce_range": bool(reduce_range)}


def _merge_every(batches: int) -> dict:
    """Merge activation ranges every few batches instead of holding every intermediate output of
    every calibration batch (8 GB for ResNet-50 with 128 images); min and max merge exactly.
    onnxruntime 1.32 fails ("No data is collected") when the batch count is a multiple of the
    interval, so the interval is one that does not divide it."""
    for every in range(3, 9):
        if batches > every and batches % every:
            return {"CalibMaxIntermediateOutputs": every}
    return {}
