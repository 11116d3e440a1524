"""`python -m export CHECKPOINT --formats ... --out DIR`: convert, verify, package.

Steps, in order (export.pipeline): check the request (nothing is written for bad input), load
and prepare the model (export.job), convert every format into a temp dir, verify float32 formats
by parity with the Keras model (real test images and random in-range inputs) and reduced-precision
ones by the accuracy rule, then write the manifest and move the directory into place. Speed is
not measured here: `python -m bench run --models DIR` times an artifact's formats. Exit codes:
0 verified, 1 verification failed (artifact left in DIR.failed), 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.plumbing import progress
from bench.plumbing.console import interrupt_note, interrupted
from bench.plumbing.files import OutputPathError
from export.formats import FORMATS
from export.job import ExportRequest
from export.package import OutputExistsError, atomic_directory, check_destination


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
    p.add_argument("--name", help="model name in the manifest (default: the training run's name, "
                   "runs/NAME/model.keras, else the checkpoint file name)")
    p.add_argument("--quiet", action="store_true", help="no progress display (none is drawn when stderr "
                   "is not a terminal)")
    p.add_argument("--custom-objects", metavar="MODULE",
                   help="a module (package.module) that defines and registers the model's custom layers")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    progress.set_quiet(args.quiet)
    try:
        request = ExportRequest.from_args(args)
        check_destination(request.out, request.overwrite)
        from export.job import prepare

        job = prepare(request)
    except (ValueError, OutputExistsError, OutputPathError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from export import pipeline

    try:
        with interrupt_note(lambda: f"nothing was written to {args.out}; {_partial(args.out)}"), \
                atomic_directory(request.out, request.overwrite) as tmp:
            pipeline.run(job, tmp)
            # Ctrl-C that a library swallowed (CI: printed as a SystemError inside TensorFlow, after
            # which the export ran on to the end): nothing is committed
            if interrupted():
                raise KeyboardInterrupt
    except pipeline.VerificationFailed as exc:
        print(f"FAILED: {exc}; nothing was written to {args.out}, the failed artifact and its "
              f"report are in {args.out}.failed", file=sys.stderr)
        return 1
    except Exception as exc:  # conversion errors of any library: report, keep DIR untouched
        print(f"error: export failed: {exc}\nnothing was written to {args.out}; {_partial(args.out)}",
              file=sys.stderr)
        return 2 if _is_bad_input(exc) else 1
    print(f"artifact verified and written to {args.out}")
    return 0


def _partial(out: str) -> str:
    """Where the partial files are, said only when they are there."""
    failed = Path(f"{out}.failed")
    return f"partial files are in {failed}" if failed.is_dir() else "no partial files were kept"


def _is_bad_input(exc: Exception) -> bool:
    from export.convert import ConversionError

    return isinstance(exc, ConversionError)
