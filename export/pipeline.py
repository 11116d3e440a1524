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
    unavailable: dict[str, str] = field(default_factory=dict)  # pairs this machine cannot compute, and why
    accuracy: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def parity_ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reduced_ok(self) -> bool:
        return all(r.get("passed", True) for r in self.reduced.values())


def run(job: ExportJob, tmp: Path) -> None:
    seconds, calibration, _ = convert_all(job, tmp)
    runners, unavailable, executed = open_runners(job, tmp)
    result = verify_all(job, runners)
    for key, why in unavailable.items():
        result.unavailable[key] = why
        result.lines.append(f"{key}: not verified, not shipped: {why}")
    for name, row in result.reduced.items():
        fmt = name.split("@")[0]
        row.update(calibration.get(fmt) or calibration.get(FORMATS[fmt].made_from or "", {}))
        row["executed"] = executed.get(name, {})
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


def convert_all(job: ExportJob, tmp: Path, keep_going: bool = False, done: Callable[..., None] | None = None
                ) -> tuple[dict[str, float], dict[str, dict], dict[str, str]]:
    """Every requested format into `tmp`, sources first. Returns seconds per format, what each
    calibrated conversion did, and (with keep_going) why a format could not be made — otherwise
    the first failure is raised. A format whose source failed is not attempted. `done(seconds,
    calibration, failed)` is called after each format (to keep partial results)."""
    seconds: dict[str, float] = {}
    calibration: dict[str, dict] = {}
    failed: dict[str, str] = {}
    names = ordered(job.request.formats)
    if job.equalized is None and any(FORMATS[n].calibrated for n in names):
        # int8 quantizes a tensor with one scale: give the channels before each BatchNorm unit scale
        # first (the same function; export.equalize), so every format of the artifact is made from it
        from export.equalize import equalize

        job.equalized = equalize(job.model)
    with progress.task("converting", total=len(names), unit="formats") as bar:
        for name in names:
            bar.update(description=f"converting to {name}")
            try:
                _convert_one(job, tmp, name, keep_going, seconds, calibration, failed)
            finally:
                if done is not None:
                    done(seconds, calibration, failed)
            bar.advance()
        bar.update(description=f"converted to {', '.join(n for n in names if n in seconds)}")
    return seconds, calibration, failed


def _convert_one(job: ExportJob, tmp: Path, name: str, keep_going: bool, seconds: dict, calibration: dict,
                 failed: dict) -> None:
    """One format into `tmp`, recording its seconds, calibration or (with keep_going) failure."""
    source = FORMATS[name].made_from
    if source in failed:
        failed[name] = f"not made: its source {source} failed ({failed[source]})"
        return
    start = time.perf_counter()
    try:
        info = CONVERTERS[name](job, tmp)
    except Exception as exc:
        if not keep_going:
            raise
        failed[name] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    else:
        seconds[name] = round(time.perf_counter() - start, 3)
        if info:
            calibration[name] = info


def ordered(formats: list[str]) -> list[str]:
    """Sources before the formats made from them."""
    done: list[str] = []

    def add(name: str) -> None:
        source = FORMATS[name].made_from
        if source and source in formats and source not in done:
            add(source)
        if name not in done:
            done.append(name)

    for name in formats:
        add(name)
    return done


def _path(tmp: Path, fmt: str) -> Path:
    return tmp / FORMATS[fmt].file


def _int8_onnx(job: ExportJob, tmp: Path) -> dict:
    from export.quantize import to_onnx_int8

    return to_onnx_int8(_path(tmp, "onnx"), _path(tmp, "onnx_int8"), calibration_images(job))


def _litert_int8(job: ExportJob, tmp: Path) -> dict:
    return convert.to_litert(job.model, _path(tmp, "litert_int8"), job.kind, calibration_images(job))


CONVERTERS: dict[str, Callable[[ExportJob, Path], dict | None]] = {
    "savedmodel": lambda job, tmp: convert.to_savedmodel(job.model, _path(tmp, "savedmodel"), job.kind) and None,
    "onnx": lambda job, tmp: convert.to_onnx(job.model, _path(tmp, "onnx"), job.request.opset, job.kind) and None,
    "onnx_fp16": lambda job, tmp: convert.to_onnx_fp16(_path(tmp, "onnx"), _path(tmp, "onnx_fp16")) and None,
    "onnx_int8": _int8_onnx,
    "openvino": lambda job, tmp: convert.to_openvino(job.model, _path(tmp, "openvino"), job.kind) and None,
    "openvino_int8": lambda job, tmp: convert.to_openvino_int8(_path(tmp, "openvino"), _path(tmp, "openvino_int8"),
                                                               calibration_images(job)),
    "litert": lambda job, tmp: convert.to_litert(job.model, _path(tmp, "litert"), job.kind) or None,
    "litert_int8": _litert_int8,
}


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


def open_runners(job: ExportJob, tmp: Path, formats: list[str] | None = None
                 ) -> tuple[dict[str, verify.Runner], dict[str, str], dict[str, dict]]:
    """A runner per (format, precision); the pairs this machine cannot compute (a bfloat16 hint on a
    CPU without bfloat16) apart with the reason, neither verified nor shipped; and what each runtime
    reports it computes with (OpenVINO's kernel precisions, onnxruntime's quantized ops)."""
    from export import runtimes

    runners: dict[str, verify.Runner] = {}
    unavailable: dict[str, str] = {}
    executed: dict[str, dict] = {}
    for fmt, precision in pairs(formats if formats is not None else job.request.formats):
        path = tmp / FORMATS[fmt].file
        if FORMATS[fmt].runtime == "tensorflow":
            runners[key(fmt, precision)] = verify.savedmodel_runner(path)
            continue
        # a float16 file is verified for its float16 weights even where onnxruntime computes it in float32
        options = {"strict": False} if FORMATS[fmt].runtime == "onnxruntime" else {}
        try:
            session = runtimes.open_session(path, FORMATS[fmt].runtime, precision, names=job.output_names, **options)
        except runtimes.PrecisionUnavailable as exc:
            unavailable[key(fmt, precision)] = str(exc)
            continue
        runners[key(fmt, precision)] = session.run
        executed[key(fmt, precision)] = getattr(session, "executed", {})
    return runners, unavailable, executed


def verify_all(job: ExportJob, runners: dict[str, verify.Runner]) -> Verification:
    """float32 pairs by parity on the test images (when there is a dataset) and on random in-range
    inputs; reduced pairs by the accuracy rule on the test images, or only reported without them.
    The reference is the Keras model as a graph; the eager model is checked against it first (row
    `keras_eager`), so a graph that hides a NaN fails the parity instead of agreeing with a SavedModel
    that hides it the same way."""
    request, names = job.request, job.output_names
    runners = {verify.EAGER: verify.keras_eager_runner(job.model, names), **runners}
    float32 = [verify.EAGER] + [key(f, p) for f, p in pairs(request.formats) if p == "float32" and key(f, p) in runners]
    reduced = [key(f, p) for f, p in pairs(request.formats) if p != "float32" and key(f, p) in runners]
    result = Verification()
    real = None
    if job.data is not None:
        real = verify.Collector(verify.keras_runner(job.model, names), runners)
        test_images = job.data.ds.split_sizes["test"]
        total = None if job.data.subset else min(request.parity_images or test_images, test_images)
        batches = job.data.batches("test", request.batch_size, request.parity_images)
        count = verify.collect(real, progress.iterate(batches, f"parity of {len(runners) - 1} format(s) on test images",
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
