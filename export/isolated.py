"""Conversion in a child process, for the benchmark's artifacts.

Converters can need far more memory than the model: tf2onnx took over 16 GB for VGG-16 at 224x224
(528 MB of weights), onnxruntime's calibration several GB for ResNet-50. In a child process that
memory goes back to the system when it ends, and if the kernel kills it for lack of memory the
benchmark loses the formats that were not finished (each one is recorded as it completes), not the
run. `python -m export.isolated SPEC.json` is the child; `convert_isolated` the parent's side.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from bench.plumbing.files import atomic_write_json


def convert_isolated(model, formats: list[str], out: Path, *, dataset: str, resize_method: str = "resize",
                     train_classes: tuple[int, ...] | None = None, calibration_images: int = 256,
                     batch_size: int = 32, opset: int = 17, timeout_s: float = 3600.0,
                     foreign_labels: bool = False) -> tuple[dict[str, float], dict[str, dict], dict[str, str]]:
    """Converts `model` (a float32 keras.Model) to `formats` in `out` in a child process; returns
    (seconds, calibration, failed) like pipeline.convert_all with keep_going. `foreign_labels`: see
    export.job.ExportData."""
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "source.keras"
    model.save(model_path)
    spec = {"model": str(model_path), "formats": formats, "out": str(out), "dataset": dataset,
            "resize_method": resize_method, "train_classes": list(train_classes) if train_classes else None,
            "calibration_images": calibration_images, "batch_size": batch_size, "opset": opset,
            "foreign_labels": foreign_labels, "result": str(out / "conversion.json")}
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    try:
        proc = subprocess.run([sys.executable, "-m", "export.isolated", str(spec_path)], timeout=timeout_s)
        why = _death(proc.returncode)
    except subprocess.TimeoutExpired:
        why = f"the conversion process did not finish within {timeout_s:.0f} s"
    result = json.loads(Path(spec["result"]).read_text()) if Path(spec["result"]).exists() else {}
    seconds, calibration, failed = result.get("seconds", {}), result.get("calibration", {}), result.get("failed", {})
    for fmt in formats:
        if fmt not in seconds and fmt not in failed:
            failed[fmt] = why or "the conversion process ended before this format"
    model_path.unlink(missing_ok=True)
    return seconds, calibration, failed


def _death(code: int) -> str:
    if code == 0:
        return ""
    if code < 0 and -code == signal.SIGKILL:
        return "the conversion process was killed (SIGKILL: most likely out of memory)"
    if code < 0:
        return f"the conversion process died of signal {signal.Signals(-code).name}"
    return f"the conversion process failed (exit status {code})"


def main(argv: list[str] | None = None) -> int:
    import zoo
    from export import pipeline
    from export.convert import input_shape
    from export.job import ExportData, ExportJob, ExportRequest, RecipeInfo

    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    model = zoo.load_model(spec["model"])
    shape, num_classes = input_shape(model), int(model.outputs[0].shape[-1])
    classes = tuple(spec["train_classes"]) if spec["train_classes"] else None
    data = ExportData(spec["dataset"], shape, num_classes, spec["resize_method"], classes,
                      foreign_labels=bool(spec.get("foreign_labels")))
    request = ExportRequest(checkpoint=spec["model"], out=Path(spec["out"]), formats=spec["formats"],
                            dataset=spec["dataset"], recipe=RecipeInfo(train_classes=classes),
                            calibration_images=spec["calibration_images"], batch_size=spec["batch_size"],
                            opset=spec["opset"])
    job = ExportJob.of_model(request, model, data)

    def done(seconds, calibration, failed):
        atomic_write_json(spec["result"], {"seconds": seconds, "calibration": calibration, "failed": failed})

    pipeline.convert_all(job, Path(spec["out"]), keep_going=True, done=done)
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
