"""How long a matrix will take, for `--dry-run`: a ballpark from the models' FLOPs and this machine's
measured float32 matmul rate, so a profile can be sized before hours are spent on it.

Per cell: warm-up calls plus the timed calls (a time budget, but never fewer than min_repeats),
each call taking batch x FLOPs / (the matmul rate x the engine's usual fraction of it) plus the
engine's per-call overhead; per (model, engine, precision): the check on the verification images;
per model: building, FLOPs counting, conversion of each format and int8 calibration. The fractions
below are rough typical values on CPUs (not measurements of this run): the estimate is good to
about a factor of 1.5, and says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# the machine-speed yardstick and the reference class live with the environment (layer 0): training
# records measure it too
from bench.plumbing.environment import REFERENCE_RATE, matmul_rate  # noqa: F401

# Typical fraction of the float32 matmul rate an engine reaches on a convolutional network, by
# precision (int8 and bfloat16 run above 1 where the CPU has VNNI / AVX512-BF16).
EFFICIENCY = {"float32": 0.45, "mixed_float16": 0.15, "mixed_bfloat16": 0.25, "float16": 0.4, "bfloat16": 0.7,
              "int8": 0.9}
ENGINE_FACTOR = {"keras_predict": 0.8, "tf_function": 1.0, "xla": 1.0, "savedmodel": 1.0, "onnxruntime": 1.3,
                 "onnxruntime_cuda": 5.0, "openvino": 1.4, "litert": 1.1}
OVERHEAD_S = {"keras_predict": 0.025}  # model.predict's per-call cost (ms-scale tf.data set-up)
CONVERT_S = {"onnx": (3.0, 0.08), "onnx_fp16": (1.0, 0.02), "onnx_int8": (5.0, 0.05), "openvino": (1.0, 0.02),
             "openvino_int8": (1.0, 0.02), "litert": (4.0, 0.1), "litert_int8": (6.0, 0.2), "savedmodel": (3.0, 0.05)}


def activation_bytes(model) -> int:
    """A lower bound on the float32 activation memory one image needs in any engine: the largest
    layer output together with its input (taken as twice the largest output), nested models included."""
    import keras

    largest = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer never called symbolically (a nested model's inner layer)
            continue
        for out in outputs:
            dims = [d for d in out.shape[1:] if d is not None]
            if dims:
                largest = max(largest, int(np.prod(dims)))
    return 2 * largest * 4


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_warnings(cells, costs: dict, available: int | None) -> list[str]:
    """One line per (model, batch size) whose activations and weights cannot fit in `available`
    bytes, naming the largest batch size that could."""
    if not available:
        return []
    lines, seen = [], set()
    for cell in cells:
        flops, params, act = costs[(cell.dataset, cell.model)]
        key = (cell.model.name, cell.batch_size)
        if act is None or key in seen:
            continue
        seen.add(key)
        need = cell.batch_size * act + 4 * (params or 0)
        if need > available:
            fits = max(int((available - 4 * (params or 0)) // act), 0)
            lines.append(f"warning: batch {cell.batch_size} of {cell.model.name} needs at least "
                         f"{need / 2**30:.1f} GiB for its activations and weights, more than the "
                         f"{available / 2**30:.1f} GiB available here: it will fail out of memory; use "
                         f"--batch-sizes of at most {fits}" + (" (not even batch 1 fits)" if fits < 1 else ""))
    return lines


def model_costs(matrix, cells) -> dict:
    """(dataset, model) -> (FLOPs per image, parameters, activation bytes per image) of each model
    the cells use."""
    import zoo
    from bench.data import load_dataset

    out = {}
    for cell in cells:
        key = (cell.dataset, cell.model)
        if key in out:
            continue
        if cell.model.source == "artifact" or (cell.model.source == "checkpoint"
                                                and not Path(cell.model.name).is_file()):
            out[key] = (None, None, None)  # unknown (or skipped: a missing checkpoint)
            continue
        if cell.model.source == "checkpoint":
            model = zoo.load_model(cell.model.name)
        else:
            ds = load_dataset(cell.dataset)
            h, w, c = ds.image_shape
            size = cell.model.image_size
            model = zoo.build(cell.model.name, input_shape=(size or h, size or w, cell.model.channels or c),
                              num_classes=cell.model.classes or ds.num_classes, **cell.model.options)
        try:
            flops = float(zoo.flops_per_image(model))
        except Exception:  # a model the profiler cannot freeze: no estimate for it
            flops = None
        out[key] = (flops, int(model.count_params()), activation_bytes(model))
    return out


def estimate_seconds(matrix, cells, rate: float, costs: dict) -> float:
    from bench.measure.engines import ENGINES

    total, verified, converted = 0.0, set(), set()
    for cell in cells:
        flops, params, _ = costs[(cell.dataset, cell.model)]
        if cell.task == "train":
            total += (matrix.train_time_budget_s or 5.0) + 10.0
            continue
        speed = rate * EFFICIENCY.get(cell.precision, 0.45) * ENGINE_FACTOR.get(cell.engine, 1.0)
        if cell.threads == 1:
            speed /= 1.8
        per_image = (flops or 1e8) / speed
        call = cell.batch_size * per_image + OVERHEAD_S.get(cell.engine, 0.0005)
        if cell.task == "accuracy":
            total += 10_000 * per_image + 20.0
        else:
            if matrix.repeats is None:
                timed = max(matrix.time_budget_s or 0.0, matrix.min_repeats * call)
            else:
                timed = matrix.repeats * call
            total += matrix.warmup * call + timed + 1.0
        check = (cell.dataset, cell.model, cell.engine, cell.precision, cell.threads)
        if check not in verified:
            verified.add(check)
            total += matrix.verify_images * per_image * 2
        cls = ENGINES[cell.engine]
        if cls.artifact and cell.model.source != "artifact":
            fmt = cls.formats[cell.precision]
            if (cell.dataset, cell.model, fmt) not in converted:
                converted.add((cell.dataset, cell.model, fmt))
                base, per_million = CONVERT_S.get(fmt, (3.0, 0.05))
                total += base + per_million * (params or 1e6) / 1e6
                if fmt.endswith("int8"):
                    total += 256 * per_image * 3  # calibration passes over 256 training images
    models = {(c.dataset, c.model) for c in cells}
    total += 15.0 * len(models)  # build, FLOPs count, reference outputs
    return total


def describe(matrix, cells) -> str:
    if not cells:
        return "nothing to measure"
    rate = matmul_rate()
    costs = model_costs(matrix, cells)
    seconds = estimate_seconds(matrix, cells, rate, costs)
    missing = {c.model.name for c in cells if costs[(c.dataset, c.model)][1] is None and c.model.source == "checkpoint"}
    note = f"; {len(missing)} missing checkpoint(s) will be skipped rows" if missing else ""
    warnings = "".join(line + "\n" for line in memory_warnings(cells, costs, available_memory_bytes()))
    return warnings + (f"estimated time: about {seconds / 60:.0f} min here (good to about a factor of 1.5), from the models' "
            f"FLOPs and this machine's float32 matmul rate of {rate / 1e9:.0f} GFLOP/s; about "
            f"{seconds * rate / REFERENCE_RATE / 60:.0f} min on a 2-core machine of {REFERENCE_RATE / 1e9:.0f} GFLOP/s"
            f"{note}")
