"""`python -m export CHECKPOINT --formats ... --out DIR`: convert, verify, package.

Steps, in order: check the request (nothing is written for bad input), load and prepare the
model, convert every format into a temp dir, verify parity (Keras vs reloaded SavedModel vs
ONNX, real test images and random in-range inputs), judge fp16/int8 by accuracy against the
fp32 ONNX model, then write the manifest and move the directory into place. Exit codes:
0 verified, 1 verification failed (artifact left in DIR.failed), 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from export.package import REPORT, OutputExistsError, atomic_directory, check_destination, write_manifest

FORMATS = ("savedmodel", "onnx", "onnx_fp16", "onnx_int8")
FILES = {"savedmodel": "savedmodel", "onnx": "model.onnx", "onnx_fp16": "model_fp16.onnx",
         "onnx_int8": "model_int8.onnx"}
# Reduced-precision models may lose at most this much test top-1 against the fp32 ONNX model.
MAX_TOP1_DROP = 0.01
TOOLS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxconverter-common", "numpy")


class VerificationFailed(RuntimeError):
    """Parity or accuracy checks failed; the report says which."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Keras model to SavedModel/ONNX and verify numerical parity. "
        "`python -m export predict DIR IMAGE...` classifies images with an artifact.",
    )
    p.add_argument("checkpoint", help="a .keras file from training, or a zoo architecture name "
                   "(untrained; needs --input-shape and --classes)")
    p.add_argument("--formats", default="savedmodel,onnx",
                   help=f"comma-separated, from {', '.join(FORMATS)} (default savedmodel,onnx)")
    p.add_argument("--out", required=True, help="artifact directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--dataset", help="dataset of the model (mnist, cifar10, ...): parity on its "
                   "test images, accuracy, int8 calibration; default: from recipe.json beside "
                   "the checkpoint")
    p.add_argument("--parity-images", default="all",
                   help="test images for parity and accuracy: a number or 'all' (default)")
    p.add_argument("--random-images", type=int, default=32, help="random in-range inputs (default 32)")
    p.add_argument("--calibration-images", type=int, default=512,
                   help="training images for int8 calibration (default 512)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--resize-method", choices=("resize", "pad"),
                   help="how images are brought to the input size (default: the recipe's, else resize)")
    p.add_argument("--locate", action="store_true",
                   help="on a parity failure, find the first layer whose ONNX output diverges")
    p.add_argument("--aux-outputs", action="store_true", help="GoogLeNet: export the auxiliary heads too")
    p.add_argument("--input-shape", help="H,W,C for a zoo name, e.g. 32,32,3")
    p.add_argument("--classes", type=int, help="number of classes for a zoo name")
    p.add_argument("--name", help="model name in the manifest (default: checkpoint file name)")
    return p.parse_args(argv)


def _request(args: argparse.Namespace) -> dict:
    """Checks everything that can be checked before loading TensorFlow; raises ValueError."""
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or formats}; choose from {', '.join(FORMATS)}")
    if any(f in formats for f in ("onnx_fp16", "onnx_int8")) and "onnx" not in formats:
        raise ValueError("onnx_fp16 and onnx_int8 are made from (and judged against) the fp32 "
                         "ONNX model: add onnx to --formats")
    if args.parity_images != "all" and not (args.parity_images.isdigit() and int(args.parity_images) > 0):
        raise ValueError(f"--parity-images must be a positive number or 'all', got {args.parity_images!r}")
    for flag, value in (("--random-images", args.random_images), ("--batch-size", args.batch_size),
                        ("--calibration-images", args.calibration_images)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
            assert len(shape) == 3 and min(shape) > 0
        except (ValueError, AssertionError):
            raise ValueError(f"--input-shape must be H,W,C with positive integers, e.g. 32,32,3; "
                             f"got {args.input_shape!r}") from None
    recipe = _recipe_beside(Path(args.checkpoint))
    dataset = args.dataset or recipe.get("dataset")
    if "onnx_int8" in formats and not dataset:
        raise ValueError("onnx_int8 is calibrated on real training images: pass --dataset NAME")
    check_destination(args.out, args.overwrite)
    return {
        "formats": formats,
        "input_shape": shape,
        "dataset": dataset,
        "recipe": recipe,
        "resize_method": args.resize_method or recipe.get("resize_method") or "resize",
        "parity_images": None if args.parity_images == "all" else int(args.parity_images),
    }


def _recipe_beside(checkpoint: Path) -> dict:
    """The recipe of a training run: `bench train` writes recipe.json next to model.keras, with
    the recipe (dataset, resize method, class subset) under "recipe" and the test top-1 it
    measured. Flattened here to the fields export uses."""
    path = checkpoint.parent / "recipe.json"
    if not (checkpoint.is_file() and path.is_file()):
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    recipe = record.get("recipe", {}) if isinstance(record.get("recipe"), dict) else {}
    return {
        "dataset": recipe.get("dataset"),
        "resize_method": recipe.get("resize_method"),
        "train_classes": recipe.get("train_classes"),
        "name": recipe.get("name"),
        "test_top1": record.get("test_top1"),
        "precision": record.get("precision"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        request = _request(args)
        job = _prepare(args, request)
    except (ValueError, OutputExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with atomic_directory(args.out, args.overwrite) as tmp:
            _export(job, tmp)
    except VerificationFailed as exc:
        print(f"FAILED: {exc}; nothing was written to {args.out}, the failed artifact and its "
              f"report are in {args.out}.failed", file=sys.stderr)
        return 1
    except Exception as exc:  # conversion errors of any library: report, keep DIR untouched
        print(f"error: export failed: {exc}\nnothing was written to {args.out}; partial files "
              f"are in {args.out}.failed", file=sys.stderr)
        return 2 if _is_bad_input(exc) else 1
    print(f"artifact verified and written to {args.out}")
    return 0


def _is_bad_input(exc: Exception) -> bool:
    from export.convert import ConversionError

    return isinstance(exc, ConversionError)


def _prepare(args: argparse.Namespace, request: dict) -> dict:
    """Loads the model and dataset and converts nothing yet; raises ValueError on bad input."""
    from export import checkpoint, convert

    if any(f.startswith("onnx") for f in request["formats"]):
        convert.check_opset(args.opset)
    options = {"aux_outputs": True} if args.aux_outputs and not Path(args.checkpoint).exists() else {}
    model = checkpoint.load(args.checkpoint, request["input_shape"], args.classes, **options)
    mixed = checkpoint.is_mixed_precision(model)
    model = checkpoint.inference_outputs(checkpoint.as_float32(model), args.aux_outputs)
    shape = convert.input_shape(model)
    num_classes = int(model.outputs[0].shape[-1])
    data = _Data(request, shape, num_classes) if request["dataset"] else None
    kind = convert.output_kind(model)
    path = Path(args.checkpoint)
    return {
        "args": args,
        "request": request,
        "model": model,
        "was_mixed_precision": mixed,
        "architecture": model.name,
        "name": args.name or (path.stem if path.is_file() else args.checkpoint),
        "shape": shape,
        "kind": kind,
        "num_classes": num_classes,
        "data": data,
    }


class _Data:
    """The model's dataset through bench.data, at the model's input size and channels."""

    def __init__(self, request: dict, shape: tuple[int, int, int], num_classes: int):
        from bench.data import load_dataset
        from bench.data.errors import DataError

        try:
            self.ds = load_dataset(request["dataset"])
        except DataError as exc:  # missing or corrupt files: bench.data says where to put them
            raise ValueError(f"dataset {request['dataset']!r} is not available: {exc}") from None
        self.shape = shape
        self.resize_method = request["resize_method"]
        subset = request["recipe"].get("train_classes")
        # training keeps only these labels and renumbers them 0..k-1 in this order
        self.subset = [int(c) for c in subset] if subset else None
        names = list(self.ds.class_names)
        self.class_names = [names[c] for c in self.subset] if self.subset else names
        if len(self.class_names) != num_classes:
            raise ValueError(
                f"the model has {num_classes} outputs but dataset {self.ds.name!r} has "
                f"{len(self.class_names)} classes; pass the --dataset the model was trained on"
            )

    def batches(self, split: str, batch_size: int, limit: int | None, shuffle: bool = False):
        """(images, labels) numpy batches; a class subset is filtered and relabelled 0..k-1."""
        h, w, c = self.shape
        pipe = self.ds.pipeline(split, batch_size, image_size=(h, w), resize_method=self.resize_method,
                                channels=c, shuffle=shuffle, seed=0 if shuffle else None,
                                limit=None if self.subset else limit)
        taken = 0
        for x, y in pipe.as_numpy_iterator():
            if self.subset:
                keep = np.isin(y, self.subset)
                remap = {c: i for i, c in enumerate(self.subset)}
                x, y = x[keep], np.array([remap[int(c)] for c in y[keep]], dtype="int64")
            if limit is not None:
                x, y = x[: limit - taken], y[: limit - taken]
            if len(x):
                yield x, y
                taken += len(x)
            if limit is not None and taken >= limit:
                return


def _export(job: dict, tmp: Path) -> None:
    from export import convert, verify

    args, request, model = job["args"], job["request"], job["model"]
    formats, kind, data = request["formats"], job["kind"], job["data"]
    seconds: dict[str, float] = {}

    def timed(fmt: str, fn, *a):
        start = time.perf_counter()
        out = fn(*a)
        seconds[fmt] = round(time.perf_counter() - start, 3)
        return out

    if "savedmodel" in formats:
        timed("savedmodel", convert.to_savedmodel, model, tmp / FILES["savedmodel"], kind)
    if "onnx" in formats:
        timed("onnx", convert.to_onnx, model, tmp / FILES["onnx"], args.opset, kind)
    if "onnx_fp16" in formats:
        timed("onnx_fp16", convert.to_onnx_fp16, tmp / FILES["onnx"], tmp / FILES["onnx_fp16"])
    calibration = None
    if "onnx_int8" in formats:
        from export.quantize import to_onnx_int8

        images = (x for x, _ in data.batches("train", args.batch_size, args.calibration_images, shuffle=True))
        calibration = timed("onnx_int8", to_onnx_int8, tmp / FILES["onnx"], tmp / FILES["onnx_int8"], images)

    names = convert.output_names(model, kind)
    fp32 = [f for f in ("savedmodel", "onnx") if f in formats]
    reduced = [f for f in ("onnx_fp16", "onnx_int8") if f in formats]
    loaders = {"savedmodel": verify.savedmodel_runner, "onnx": verify.onnx_runner,
               "onnx_fp16": verify.onnx_runner, "onnx_int8": verify.onnx_runner}
    runners = {f: loaders[f](tmp / FILES[f]) for f in fp32 + reduced}

    checks, lines = [], []
    real = None
    if data is not None:
        real = verify.Collector(verify.keras_runner(model, names), runners)
        count = verify.collect(real, data.batches("test", args.batch_size, request["parity_images"]))
        if count == 0:
            raise ValueError(f"the test split of {data.ds.name!r} gave no images")
        checks += real.checks("real", kind, fp32)
    # the reduced formats are compared on random inputs only when there are no real ones
    rand = verify.Collector(verify.keras_runner(model, names),
                            runners if real is None else {f: runners[f] for f in fp32})
    verify.collect(rand, verify.random_batches(job["shape"], args.random_images, args.batch_size))
    checks += rand.checks("random", kind, fp32)
    lines.append(verify.report(checks))
    parity_ok = all(c.passed for c in checks)

    accuracy, quality = None, {}
    if real is not None:
        accuracy = {
            "split": "test",
            "images": int(sum(len(y) for y in real.labels)),
            **{f"top1_{f}": real.top1(f, names[0]) for f in ["onnx", "savedmodel"] if f in formats},
            "top1_keras": real.top1("reference", names[0]),
            # what `bench train` measured on the test split, when the checkpoint has a recipe.json
            "top1_training_run": request["recipe"].get("test_top1"),
        }
    quality_ok = True
    if reduced:
        quality, quality_lines, quality_ok = _judge_reduced(reduced, real, rand, runners, names[0], job, args)
        lines += quality_lines
    if calibration is not None:
        quality["onnx_int8"]["calibration_images"] = calibration

    locate_text = None
    if not parity_ok and args.locate and "onnx" in formats:
        from export.locate import locate

        sample = next(verify.random_batches(job["shape"], 8)) if data is None else \
            next(data.batches("test", 8, 8))
        locate_text = locate(model, sample[0], args.opset)
        lines.append(locate_text)

    passed = parity_ok and quality_ok
    (tmp / REPORT).write_text("\n".join(lines) + "\n")
    write_manifest(tmp, _manifest(job, seconds, checks, accuracy, quality, passed, data))
    print("\n".join(lines))
    if not passed:
        what = [] if parity_ok else ["float32 parity"]
        what += [] if quality_ok else ["reduced-precision accuracy"]
        raise VerificationFailed(f"{' and '.join(what)} check failed")


def _judge_reduced(reduced, real, rand, runners, main, job, args) -> tuple[dict, list[str], bool]:
    """fp16/int8 against the fp32 ONNX model: top-1 drop, agreement, max abs diff, speed.
    Judged on the test images; without a dataset only reported, on the random inputs."""
    from export import speed, verify

    quality, lines, ok = {}, [], True
    batch = next(verify.random_batches(job["shape"], args.batch_size, args.batch_size))[0]
    base_speed = speed.latency(runners["onnx"], batch)
    lines.append(f"{'format':<12}{'top1':>8}{'drop_pp':>9}{'agree_fp32':>12}{'max_abs':>10}"
                 f"{'ms/batch':>10}{'img/s':>9}  verdict")
    lines.append(f"{'onnx':<12}{_pct(real and real.top1('onnx', main)):>8}{'':>9}{'':>12}{'':>10}"
                 f"{base_speed['latency_ms_p50']:>10.1f}{base_speed['images_per_sec']:>9.0f}")
    for fmt in reduced:
        row = {"speed": speed.latency(runners[fmt], batch), "speed_onnx_fp32": base_speed}
        verdict = "not judged (no --dataset; figures on random inputs)"
        fig = verify.compare((real or rand).stacked("onnx")[main], (real or rand).stacked(fmt)[main], main)
        row.update(inputs="real" if real else "random", images=fig.images,
                   top1_agreement_with_fp32=fig.top1_agreement, max_abs_diff=fig.max_abs_diff)
        if real is not None:
            top1, base = real.top1(fmt, main), real.top1("onnx", main)
            drop = base - top1
            passed = drop <= MAX_TOP1_DROP
            ok &= passed
            verdict = "PASS" if passed else f"FAIL (drop above {MAX_TOP1_DROP:.0%} points)"
            row.update(top1=top1, top1_onnx_fp32=base, top1_drop=drop, max_top1_drop=MAX_TOP1_DROP,
                       passed=passed)
        lines.append(
            f"{fmt:<12}{_pct(row.get('top1')):>8}{_pp(row.get('top1_drop')):>9}"
            f"{_pct(row.get('top1_agreement_with_fp32')):>12}{_sci(row.get('max_abs_diff')):>10}"
            f"{row['speed']['latency_ms_p50']:>10.1f}{row['speed']['images_per_sec']:>9.0f}  {verdict}"
        )
        quality[fmt] = row
    return quality, lines, ok


def _pct(v):
    return "-" if v is None else f"{v:.2%}"


def _pp(v):
    return "-" if v is None else f"{v * 100:+.2f}"


def _sci(v):
    return "-" if v is None else f"{v:.1e}"


def _manifest(job, seconds, checks, accuracy, quality, passed, data) -> dict:
    from export import verify
    from export.convert import INPUT_NAME, SAVEDMODEL_SIGNATURE, output_names

    args, request, model = job["args"], job["request"], job["model"]
    h, w, c = job["shape"]
    names = output_names(model, job["kind"])
    formats = {f: {"file": FILES[f]} for f in request["formats"]}
    if "savedmodel" in formats:
        formats["savedmodel"]["signature"] = SAVEDMODEL_SIGNATURE
    for f in ("onnx", "onnx_fp16", "onnx_int8"):
        if f in formats:
            formats[f]["opset"] = args.opset
    return {
        "status": "passed" if passed else "failed",
        "model": job["name"],
        "architecture": job["architecture"],
        "dataset": request["dataset"],
        "class_names": data.class_names if data else [str(i) for i in range(job["num_classes"])],
        "input": {"name": INPUT_NAME, "shape": [None, h, w, c], "dtype": "float32", "layout": "NHWC"},
        "outputs": [{"name": n, "kind": job["kind"] if i == 0 else f"auxiliary {job['kind']}",
                     "shape": [None, job["num_classes"]]} for i, n in enumerate(names)],
        "preprocessing": {
            "channels": c,
            "size": [h, w],
            "resize_method": request["resize_method"],
            "interpolation": "bilinear",
            "scale": 1 / 255,
            "input_range": [0.0, 1.0],
            "normalization": _normalization(model),
        },
        "formats": formats,
        "rebuilt_from_mixed_precision": job["was_mixed_precision"],
        "recipe": request["recipe"].get("name"),
        "accuracy": accuracy,
        "parity": {"atol": verify.ATOL[job["kind"]], "checks": verify.as_dict(checks)},
        "reduced_precision": quality,
        "conversion_seconds": seconds,
        "opset": args.opset,
        "tools": {**{t: _version(t) for t in TOOLS}, "python": platform.python_version()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _normalization(model) -> dict:
    """Mean/std or rescaling layers live inside the model; recorded so readers know not to
    apply them again."""
    import keras

    from export.checkpoint import all_layers

    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Normalization):
            mean = np.asarray(layer.mean).reshape(-1)
            std = np.sqrt(np.asarray(layer.variance).reshape(-1))
            return {"inside_model": True, "layer": layer.name, "mean": mean.tolist(), "std": std.tolist()}
        if isinstance(layer, keras.layers.Rescaling):
            return {"inside_model": True, "layer": layer.name,
                    "scale": np.asarray(layer.scale).tolist(), "offset": np.asarray(layer.offset).tolist()}
    return {"inside_model": True, "layer": None, "note": "the model takes [0, 1] images as they are"}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
