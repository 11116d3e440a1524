"""`python -m export predict DIR IMAGE...`: classify image files with an exported artifact.

Deployment-side code: the runtimes (onnxruntime, OpenVINO, LiteRT's interpreter), PIL and numpy
only, never TensorFlow (a test checks that).
It applies the manifest's preprocessing, which reproduces the training pipeline's
`tf.image.resize` (bilinear, half-pixel centres, no antialias) and `resize_with_pad`.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from export.package import read_manifest, verify_files
from export.runtimes import open_session

def bilinear_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """tf.image.resize(method="bilinear", antialias=False) for one HWC float image."""
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        return image

    def axis(out_size: int, in_size: int):
        pos = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
        low = np.floor(pos)
        frac = (pos - low)[:, None]
        lo = np.clip(low, 0, in_size - 1).astype(int)
        hi = np.clip(np.ceil(pos), 0, in_size - 1).astype(int)
        return lo, hi, frac

    y0, y1, fy = axis(height, in_h)
    x0, x1, fx = axis(width, in_w)
    top = image[y0] + (image[y1] - image[y0]) * fy[:, :, None]
    return top[:, x0] + (top[:, x1] - top[:, x0]) * fx[None, :, :]


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """tf.image.resize_with_pad: keep the aspect ratio, centre, pad with zeros."""
    in_h, in_w = image.shape[:2]
    ratio = max(in_w / width, in_h / height)
    new_h, new_w = int(math.floor(in_h / ratio)), int(math.floor(in_w / ratio))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    out[top : top + new_h, left : left + new_w] = bilinear_resize(image, new_h, new_w)
    return out


# tf.image.rgb_to_grayscale's weights (ITU-R 601), so a colour photo for an MNIST model is
# converted as in training.
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype="float32")


def preprocess(path: str | Path, preprocessing: dict) -> np.ndarray:
    """One image file -> float32 HWC in [0, 1], as bench.data's pipeline prepares test images:
    scale, then channels, then resize (or pad), then clip interpolation overshoot."""
    from PIL import Image

    scale = np.float32(preprocessing["scale"])  # for 8-bit pixels (1/255)
    x = None
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):
                # 16-bit grayscale (PIL opens a 16-bit PNG as I;16, or I): convert("L") would clip
                # every value above 255; scale 0..65535 to [0, 1] as TensorFlow's decoder does
                x = np.asarray(img, dtype="float32") * (scale * np.float32(255 / 65535))
            elif mode not in ("I", "F"):
                x = np.asarray(img.convert("L" if mode in ("1", "L", "LA") else "RGB"), dtype="float32") * scale
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable image: {exc}") from None
    if x is None:  # 32-bit integer or float pixels (TIFF)
        raise ValueError(f"{path}: {'32-bit integer' if mode == 'I' else 'floating-point'} pixels have no "
                         "fixed range to scale to [0, 1]; save it as an 8- or 16-bit PNG")
    return prepare(x, preprocessing)


def prepare(x: np.ndarray, preprocessing: dict) -> np.ndarray:
    """A decoded HWC (or HW) float image already scaled to [0, 1] -> the model's input: channels,
    then resize (or pad), then clip interpolation overshoot."""
    height, width = preprocessing["size"]
    channels = preprocessing["channels"]
    if x.ndim == 2:
        x = x[:, :, None]
    if channels == 3 and x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif channels == 1 and x.shape[2] == 3:
        x = (x @ GRAY_WEIGHTS)[:, :, None]
    if preprocessing["resize_method"] == "pad":
        x = resize_with_pad(x, height, width)
    else:
        x = bilinear_resize(x, height, width)
    return np.clip(x, 0.0, 1.0).astype("float32")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classify(artifact: str | Path, images: list[str], fmt: str = "onnx", top_k: int = 5,
             precision: str | None = None, threads: int = 0) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) per image, by the artifact's `fmt` model computing in
    `precision` (default: the first one the export verified for it)."""
    manifest = read_manifest(artifact)
    if manifest.get("status") != "passed":
        raise ValueError(f"{artifact} is not a verified artifact (status {manifest.get('status')!r})")
    formats = manifest.get("formats", {})
    if fmt not in formats:
        raise ValueError(f"{artifact} has no {fmt} model; it has: {', '.join(formats)}")
    entry = formats[fmt]
    if entry.get("runtime", "onnxruntime") == "tensorflow":
        raise ValueError(f"{fmt} needs TensorFlow; predict runs the formats a deployment runs without it: "
                         f"{', '.join(f for f, e in formats.items() if e.get('runtime') != 'tensorflow')}")
    verified = list(entry.get("precisions", {"float32": "parity"}))
    precision = precision or verified[0]
    if precision not in verified:
        why = entry.get("unavailable", {}).get(precision, "the export did not verify it")
        raise ValueError(f"{fmt} was verified in {', '.join(verified)}, not {precision}: {why}")
    changed = verify_files(artifact, manifest)
    if changed:
        raise ValueError(f"{artifact}: files changed since export (sha256 mismatch): {', '.join(changed)}")
    main = manifest["outputs"][0]
    session = open_session(Path(artifact) / entry["file"], entry.get("runtime", "onnxruntime"), precision,
                           threads, names=[o["name"] for o in manifest["outputs"]])
    batch = np.stack([preprocess(p, manifest["preprocessing"]) for p in images])
    scores = session.main(batch)
    probs = scores if main["kind"] == "probabilities" else softmax(scores)
    names = manifest["class_names"]
    k = min(top_k, probs.shape[-1])
    return [[(names[i], float(row[i])) for i in np.argsort(-row)[:k]] for row in probs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export predict", description="Classify images with an exported artifact."
    )
    parser.add_argument("artifact", help="artifact directory written by python -m export")
    parser.add_argument("images", nargs="+", help="image files (any format PIL reads)")
    parser.add_argument("--format", default="onnx",
                        help="which of the artifact's models: onnx, onnx_fp16, onnx_int8, openvino, openvino_int8, "
                             "litert, litert_int8 (default onnx)")
    parser.add_argument("--precision", help="what the runtime computes in, from those the export verified "
                                            "(openvino: float32 or bfloat16); default the format's first")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (default 0: all cores)")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        results = classify(args.artifact, args.images, args.format, args.top_k, args.precision, args.threads)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image, top in zip(args.images, results):
        print(image)
        for name, p in top:
            print(f"  {p:7.2%}  {name}")
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
