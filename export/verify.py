"""Validation only (conversion lives in `convert`): reference vs exported outputs, with a verdict.

Each runner maps an NHWC float32 batch to {output name: array}. `compare` gathers the figures
for one output pair; `Parity` judges them against the float32 tolerance:
max abs diff <= 1e-5 on probabilities (1e-4 on logits) and 100% top-1 agreement.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]

ATOL = {"probabilities": 1e-5, "logits": 1e-4}
# Relative differences are taken against |reference|, floored so near-zero entries do not explode.
REL_FLOOR = 1e-6


def keras_runner(model, names: list[str]) -> Runner:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def call(x):
        return model(x, training=False)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        y = call(tf.constant(x))
        y = list(y) if isinstance(y, (list, tuple)) else [y]
        return {name: np.asarray(t) for name, t in zip(names, y)}

    return run


def savedmodel_runner(path: str | os.PathLike) -> Runner:
    """Reloads the SavedModel from disk (not the object that wrote it) and calls its signature."""
    import tensorflow as tf

    from export.convert import INPUT_NAME, SAVEDMODEL_SIGNATURE

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SAVEDMODEL_SIGNATURE]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out = signature(**{INPUT_NAME: tf.constant(x)})
        return {name: t.numpy() for name, t in out.items()}

    run.loaded = loaded  # keeps the restored variables alive as long as the runner
    return run


def onnx_session(path: str | os.PathLike, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: str | os.PathLike) -> Runner:
    session = onnx_session(path)
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: x})))

    run.session = session
    return run


@dataclass
class Figures:
    """Differences between one exported output and the reference, over `images` inputs."""

    output: str
    images: int
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max


def compare(reference: np.ndarray, candidate: np.ndarray, output: str = "output") -> Figures:
    if reference.shape != candidate.shape:
        raise ValueError(
            f"output {output!r}: exported shape {candidate.shape} differs from the reference "
            f"{reference.shape}"
        )
    ref = reference.astype("float64")
    diff = np.abs(candidate.astype("float64") - ref)
    return Figures(
        output=output,
        images=int(reference.shape[0]),
        max_abs_diff=float(diff.max(initial=0.0)),
        max_rel_diff=float((diff / np.maximum(np.abs(ref), REL_FLOOR)).max(initial=0.0)),
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
    )


@dataclass
class Check:
    """One format on one input set (`real` test images or `random` in-range inputs)."""

    format: str
    inputs: str
    atol: float
    figures: list[Figures] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.figures) and all(
            f.max_abs_diff <= self.atol and f.top1_agreement == 1.0 for f in self.figures
        )


class Collector:
    """Runs the reference and each candidate on the same batches and keeps every output."""

    def __init__(self, reference: Runner, candidates: dict[str, Runner]):
        self.reference = reference
        self.candidates = candidates
        self.outputs: dict[str, dict[str, list[np.ndarray]]] = {"reference": {}}
        self.outputs.update({name: {} for name in candidates})
        self.labels: list[np.ndarray] = []

    def add(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        x = np.ascontiguousarray(x, dtype="float32")
        runs = {"reference": self.reference, **self.candidates}
        for fmt, run in runs.items():
            for name, value in run(x).items():
                self.outputs[fmt].setdefault(name, []).append(np.asarray(value))
        if y is not None:
            self.labels.append(np.asarray(y))

    def stacked(self, fmt: str) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.outputs[fmt].items()}

    def checks(self, inputs: str, kind: str, formats: list[str] | None = None) -> list[Check]:
        ref = self.stacked("reference")
        out = []
        for fmt in formats if formats is not None else self.candidates:
            cand = self.stacked(fmt)
            missing = sorted(set(ref) - set(cand))
            if missing:
                raise ValueError(f"{fmt} lacks output(s) {missing}; it has {sorted(cand)}")
            check = Check(format=fmt, inputs=inputs, atol=ATOL[kind])
            check.figures = [compare(ref[name], cand[name], name) for name in ref]
            out.append(check)
        return out

    def top1(self, fmt: str, output: str) -> float | None:
        if not self.labels:
            return None
        labels = np.concatenate(self.labels)
        return float(np.mean(self.stacked(fmt)[output].argmax(-1) == labels))


def collect(collector: Collector, batches: Iterable[tuple[np.ndarray, np.ndarray | None]]) -> int:
    count = 0
    for x, y in batches:
        collector.add(np.asarray(x), None if y is None else np.asarray(y))
        count += len(x)
    return count


def random_batches(shape: tuple[int, int, int], count: int, batch_size: int = 16, seed: int = 0):
    """Uniform inputs over the model's whole input range [0, 1]."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        yield rng.uniform(0.0, 1.0, (n, *shape)).astype("float32"), None


def report(checks: list[Check]) -> str:
    """A table a person can read: one row per format, input set and output, then a verdict."""
    lines = [
        f"{'format':<12}{'inputs':<8}{'output':<15}{'images':>7}{'max_abs':>11}{'max_rel':>11}"
        f"{'mean_abs':>11}{'top1_agree':>12}{'atol':>9}  verdict"
    ]
    for check in checks:
        for f in check.figures:
            ok = f.max_abs_diff <= check.atol and f.top1_agreement == 1.0
            lines.append(
                f"{check.format:<12}{check.inputs:<8}{f.output:<15}{f.images:>7}"
                f"{f.max_abs_diff:>11.2e}{f.max_rel_diff:>11.2e}{f.mean_abs_diff:>11.2e}"
                f"{f.top1_agreement:>11.2%} {check.atol:>9.0e}  {'PASS' if ok else 'FAIL'}"
            )
    passed = all(c.passed for c in checks)
    lines.append(
        "parity: PASS (float32 exports match the Keras model within tolerance, same top-1 "
        "on every input)"
        if passed
        else "parity: FAIL (see rows marked FAIL: max_abs above atol or top-1 disagreement)"
    )
    return "\n".join(lines)


def as_dict(checks: list[Check]) -> list[dict]:
    return [
        {"format": c.format, "inputs": c.inputs, "atol": c.atol, "passed": c.passed,
         "outputs": [asdict(f) for f in c.figures]}
        for c in checks
    ]
