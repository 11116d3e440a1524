"""The export, step by step: convert every format, verify each (format, precision) pair, locate a
divergence, write the report and the manifest. `run(job, tmp)` does them in order into a temporary
directory that `package.atomic_directory` moves into place only when all of them passed."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.plumbing import progress
from export import convert, verify
from export.formats import FORMATS
from export.job import ExportJob
from export.manifest import build_manifest
from export.package import REPORT, write_manifest


class VerificationFailed(RuntimeError):
    """Parity or accuracy checks failed; the report says which."""


@dataclass
class Verification:
    checks: list[verify.Check] = field(default_factory=list)         # float32 parity
    reduced: dict[str, dict[str, Any]] = field(default_factory=dict)  # "format" or "format@precision" -> figures
    accuracy: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def parity_ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reduced_ok(self) -> bool:
        return all(r.get("passed", True) for r in self.reduced.values())


def run(job: ExportJob, tmp: Path) -> None:
    seconds, calibration = convert_all(job, tmp)
    runners = open_runners(job, tmp)
    result = verify_all(job, runners)
    if calibration is not None:
        for key, row in result.reduced.items():
            if FORMATS[key.split("@")[0]].calibrated:
                row.update(calibration)
    if not result.parity_ok and job.request.locate and "onnx" in job.request.formats:
        result.lines.append(locate_divergence(job))
    passed = result.parity_ok and result.reduced_ok
    (tmp / REPORT).write_text("\n".join(result.lines) + "\n")
    write_manifest(tmp, build_manifest(job, seconds, result, passed))
    print("\n".join(result.lines))
    if not passed:
        what = [] if result.parity_ok else ["float32 parity"]
        what += [] if result.reduced_ok else ["reduced-precision accuracy"]
        raise VerificationFailed(f"{' and '.join(what)} check failed")


# ---------------------------------------------------------------- convert


def convert_all(job: ExportJob, tmp: Path) -> tuple[dict[str, float], dict | None]:
    """Every requested format into `tmp`; seconds per format, and how int8 was calibrated."""
    request, model, kind = job.request, job.model, job.kind
    seconds: dict[str, float] = {}
    calibration = None

    def timed(fmt: str, fn: Callable, *args):
        bar.update(description=f"converting to {fmt}")
        start = time.perf_counter()
        out = fn(*args)
        seconds[fmt] = round(time.perf_counter() - start, 3)
        bar.advance()
        return out

    path = {f: tmp / FORMATS[f].file for f in request.formats}
    with progress.task("converting", total=len(path), unit="formats") as bar:
        if "savedmodel" in path:
            timed("savedmodel", convert.to_savedmodel, model, path["savedmodel"], kind)
        if "onnx" in path:
            timed("onnx", convert.to_onnx, model, path["onnx"], request.opset, kind)
        if "onnx_fp16" in path:
            timed("onnx_fp16", convert.to_onnx_fp16, path["onnx"], path["onnx_fp16"])
        if "onnx_int8" in path:
            from export.quantize import to_onnx_int8

            calibration = timed("onnx_int8", to_onnx_int8, path["onnx"], path["onnx_int8"], calibration_images(job))
        bar.update(description=f"converted to {', '.join(path)}")
    return seconds, calibration


def calibration_images(job: ExportJob):
    """Training images (never test images) for int8 calibration, shuffled with a fixed seed."""
    request = job.request
    total = None if job.data.subset else min(request.calibration_images, job.data.ds.split_sizes["train"])
    batches = job.data.batches("train", request.batch_size, request.calibration_images, shuffle=True)
    return (x for x in progress.iterate((x for x, _ in batches), "int8 calibration on training images", total,
                                        "images", weight=len))


# ---------------------------------------------------------------- verify


def pairs(formats: list[str]) -> list[tuple[str, str]]:
    """Every (format, precision) the export verifies."""
    return [(f, p) for f in formats for p in FORMATS[f].precisions]


def key(fmt: str, precision: str) -> str:
    """The name a (format, precision) pair goes by: the format itself for its first precision."""
    return fmt if precision == FORMATS[fmt].precisions[0] else f"{fmt}@{precision}"


def open_runners(job: ExportJob, tmp: Path) -> dict[str, verify.Runner]:
    from export import runtimes

    runners: dict[str, verify.Runner] = {}
    for fmt, precision in pairs(job.request.formats):
        path = tmp / FORMATS[fmt].file
        if FORMATS[fmt].runtime == "tensorflow":
            runners[key(fmt, precision)] = verify.savedmodel_runner(path)
        else:
            runners[key(fmt, precision)] = runtimes.open_session(path, FORMATS[fmt].runtime, precision).run
    return runners


def verify_all(job: ExportJob, runners: dict[str, verify.Runner]) -> Verification:
    """float32 pairs by parity on the test images (when there is a dataset) and on random in-range
    inputs; reduced pairs by the accuracy rule on the test images, or only reported without them."""
    request, names = job.request, job.output_names
    float32 = [key(f, p) for f, p in pairs(request.formats) if p == "float32"]
    reduced = [key(f, p) for f, p in pairs(request.formats) if p != "float32"]
    result = Verification()
    real = None
    if job.data is not None:
        real = verify.Collector(verify.keras_runner(job.model, names), runners)
        test_images = job.data.ds.split_sizes["test"]
        total = None if job.data.subset else min(request.parity_images or test_images, test_images)
        batches = job.data.batches("test", request.batch_size, request.parity_images)
        count = verify.collect(real, progress.iterate(batches, f"parity of {len(runners)} format(s) on test images",
                                                      total, "images", weight=lambda b: len(b[1])))
        if count == 0:
            raise ValueError(f"the test split of {job.data.ds.name!r} gave no images")
        result.checks += real.checks("real", job.kind, float32)
    # reduced pairs run on random inputs only when there are no real ones
    rand = verify.Collector(verify.keras_runner(job.model, names),
                            runners if real is None else {k: runners[k] for k in float32})
    verify.collect(rand, verify.random_batches(job.shape, request.random_images, request.batch_size))
    result.checks += rand.checks("random", job.kind, float32)
    result.lines.append(verify.report(result.checks))
    if real is not None:
        result.accuracy = {
            "split": "test",
            "images": int(sum(len(y) for y in real.labels)),
            **{f"top1_{k}": real.top1(k, names[0]) for k in float32},
            "top1_keras": real.top1("reference", names[0]),
            # what `bench train` measured on the test split, when the checkpoint has a recipe.json
            "top1_training_run": request.recipe.test_top1,
        }
    if reduced:
        result.reduced, lines = judge_reduced(reduced, real, rand, names[0])
        result.lines += lines
    return result


def judge_reduced(reduced: list[str], real: verify.Collector | None, rand: verify.Collector,
                  main: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each reduced pair against the float32 Keras model by the accuracy rule on the test images;
    without a dataset its agreement on random inputs is only reported."""
    rows: dict[str, dict[str, Any]] = {}
    lines = [f"{'format':<22}{'images':>7}{'top1':>8}{'fp32':>8}{'drop_pp':>9}{'95% interval':>17}"
             f"{'agree':>8}{'max_abs':>10}  verdict"]
    for name in reduced:
        fmt, _, precision = name.partition("@")
        precision = precision or FORMATS[fmt].precisions[0]
        if real is None:
            fig = verify.compare(rand.stacked("reference")[main], rand.stacked(name)[main], main)
            rows[name] = {"precision": precision, "inputs": "random", "images": fig.images,
                          "top1_agreement_with_fp32": fig.top1_agreement, "max_abs_diff": fig.max_abs_diff,
                          "verdict": "not judged: no --dataset (figures on random inputs)"}
            lines.append(f"{name:<22}{fig.images:>7}{'-':>8}{'-':>8}{'-':>9}{'-':>17}"
                         f"{fig.top1_agreement:>8.2%}{fig.max_abs_diff:>10.1e}  {rows[name]['verdict']}")
            continue
        labels = real.all_labels()
        j = verify.judge_accuracy(real.stacked("reference")[main], real.stacked(name)[main], labels)
        rows[name] = {"precision": precision, "inputs": "real", "images": j.images, "top1": j.top1,
                      "top1_fp32": j.top1_reference, "top1_drop": j.top1_drop,
                      "top1_drop_low95": j.top1_drop_low95, "top1_drop_high95": j.top1_drop_high95,
                      "top1_agreement_with_fp32": j.top1_agreement, "max_abs_diff": j.max_abs_diff,
                      "max_top1_drop": j.max_top1_drop, "passed": j.passed, "verdict": j.verdict()}
        interval = f"[{j.top1_drop_low95 * 100:+.2f}, {j.top1_drop_high95 * 100:+.2f}]"
        lines.append(f"{name:<22}{j.images:>7}{j.top1:>8.2%}{j.top1_reference:>8.2%}{j.top1_drop * 100:>+9.2f}"
                     f"{interval:>17}{j.top1_agreement:>8.2%}{j.max_abs_diff:>10.1e}  {j.verdict()}")
    lines.append(f"accuracy rule: a reduced-precision model fails when its top-1 drop against the float32 model "
                 f"is above {verify.MAX_TOP1_DROP * 100:.0f} point with 95% confidence (paired over the images)")
    return rows, lines


def locate_divergence(job: ExportJob) -> str:
    from export.locate import locate

    sample = next(verify.random_batches(job.shape, 8)) if job.data is None else next(job.data.batches("test", 8, 8))
    return locate(job.model, sample[0], job.request.opset)
