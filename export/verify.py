"""Validation only (conversion lives in `convert`): reference vs exported outputs, with a verdict.

Each runner maps an NHWC float32 batch to {output name: array}. The reference is the Keras model
as a graph (`keras_runner`, a tf.function); the same model called eagerly (`keras_eager_runner`)
is checked against it like a format (row `keras_eager`), so a path that hides a NaN (a fused or
folded graph) cannot be the only reference. Any NaN or inf in an output, the reference's included,
fails the check (`nonfinite`). Two rules:

- parity (float32 formats): `compare` gathers the figures for one output pair and `Check` judges
  them against the float32 tolerance: max abs diff <= 1e-5 on probabilities (1e-4 on logits) and
  100% top-1 agreement.
- accuracy (reduced precision: float16, bfloat16, int8): `judge_accuracy` compares the top-1 of the
  reduced model with the float32 model's on the same labelled images. It fails when the top-1 drop
  is shown to exceed MAX_TOP1_DROP: when the one-sided 95% lower confidence bound of the drop
  (paired per image) is above it. The bound depends on how many images judged it, so one
  disagreement among 50 images (a 2-point drop) is not a failure, while a model that loses 3
  points on 10,000 images is; the report gives the interval and warns when it is too wide to
  resolve a 1-point drop.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from bench.plumbing.metrics import top1

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


EAGER = "keras_eager"  # the eager model's row among the float32 checks


def keras_eager_runner(model, names: list[str]) -> Runner:
    """model(x, training=False) called eagerly: no graph rewrite (fusion, constant folding) between
    the weights and the outputs."""
    import tensorflow as tf

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        y = model(tf.constant(x), training=False)
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


@dataclass
class Figures:
    """Differences between one exported output and the reference, over `images` inputs."""

    output: str
    images: int
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max
    nonfinite: int = 0             # NaN/inf values in the exported output
    reference_nonfinite: int = 0   # NaN/inf values in the reference output

    @property
    def finite(self) -> bool:
        return self.nonfinite == 0 and self.reference_nonfinite == 0


def compare(reference: np.ndarray, candidate: np.ndarray, output: str = "output") -> Figures:
    if reference.shape != candidate.shape:
        raise ValueError(
            f"output {output!r}: exported shape {candidate.shape} differs from the reference "
            f"{reference.shape}"
        )
    ref, cand = reference.astype("float64"), candidate.astype("float64")
    ref_ok, cand_ok = np.isfinite(ref), np.isfinite(cand)
    # differences over the entries finite in both (the figures stay valid JSON); NaN/inf are counted apart
    diff = np.where(ref_ok & cand_ok, np.abs(np.where(cand_ok, cand, 0.0) - np.where(ref_ok, ref, 0.0)), 0.0)
    return Figures(
        output=output,
        images=int(reference.shape[0]),
        max_abs_diff=float(diff.max(initial=0.0)),
        max_rel_diff=float((diff / np.maximum(np.abs(np.where(ref_ok, ref, 0.0)), REL_FLOOR)).max(initial=0.0)),
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        nonfinite=int(cand.size - cand_ok.sum()),
        reference_nonfinite=int(ref.size - ref_ok.sum()),
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
        return bool(self.figures) and all(_passes(f, self.atol) for f in self.figures)


def _passes(f: Figures, atol: float) -> bool:
    return f.finite and f.max_abs_diff <= atol and f.top1_agreement == 1.0


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

    def all_labels(self) -> np.ndarray:
        return np.concatenate(self.labels)

    def top1(self, fmt: str, output: str) -> float | None:
        if not self.labels:
            return None
        return top1(self.stacked(fmt)[output], self.all_labels())


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


# Reduced-precision models may lose at most this much test top-1 against the float32 model.
MAX_TOP1_DROP = 0.01
Z_ONE_SIDED_95 = 1.6449


@dataclass
class AccuracyJudgement:
    """A reduced-precision output against the float32 one, on the same labelled images."""

    images: int
    top1: float
    top1_reference: float
    top1_drop: float                 # reference - reduced, fraction (0.01 = 1 point)
    top1_drop_low95: float           # one-sided 95% lower confidence bound of the drop
    top1_drop_high95: float          # one-sided 95% upper confidence bound of the drop
    top1_agreement: float            # fraction of images with the same arg-max as the reference
    max_abs_diff: float
    max_top1_drop: float = MAX_TOP1_DROP

    @property
    def passed(self) -> bool:
        return self.top1_drop_low95 <= self.max_top1_drop

    @property
    def resolves_one_point(self) -> bool:
        """Is the interval narrow enough that a drop of max_top1_drop would have been seen?"""
        return self.top1_drop_high95 - self.top1_drop <= self.max_top1_drop

    def verdict(self) -> str:
        if not self.passed:
            return (f"FAIL: top-1 drop {self.top1_drop * 100:+.2f} points, at least "
                    f"{self.top1_drop_low95 * 100:+.2f} with 95% confidence (limit {self.max_top1_drop * 100:.0f})")
        note = "" if self.resolves_one_point else (
            f" (only {self.images} images: the drop could be up to {self.top1_drop_high95 * 100:.1f} points; "
            f"judge on more images to resolve a {self.max_top1_drop * 100:.0f}-point loss)")
        return f"PASS{note}"


def judge_accuracy(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray,
                   max_top1_drop: float = MAX_TOP1_DROP) -> AccuracyJudgement:
    """The accuracy rule, from the two models' scores on the same images and their labels."""
    labels = np.asarray(labels)
    ref_ok = reference.argmax(-1) == labels
    cand_ok = candidate.argmax(-1) == labels
    diff = ref_ok.astype("float64") - cand_ok.astype("float64")  # per image: +1 lost, -1 gained
    n = len(diff)
    if n == 0:
        raise ValueError("the accuracy rule needs labelled images")
    drop = float(diff.mean())
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 1.0
    # a paired difference that is 0 on every image still has sampling uncertainty: at least one
    # image's worth (the rule of three would be stricter; this keeps 1/n as the floor)
    se = max(se, 1.0 / n)
    return AccuracyJudgement(
        images=n, top1=float(cand_ok.mean()), top1_reference=float(ref_ok.mean()), top1_drop=drop,
        top1_drop_low95=drop - Z_ONE_SIDED_95 * se, top1_drop_high95=drop + Z_ONE_SIDED_95 * se,
        top1_agreement=float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        max_abs_diff=float(np.abs(candidate.astype("float64") - reference.astype("float64")).max(initial=0.0)),
        max_top1_drop=max_top1_drop)


def report(checks: list[Check]) -> str:
    """A table a person can read: one row per format, input set and output, then a verdict."""
    lines = [
        f"{'format':<12}{'inputs':<8}{'output':<15}{'images':>7}{'max_abs':>11}{'max_rel':>11}"
        f"{'mean_abs':>11}{'top1_agree':>12}{'atol':>9}  verdict"
    ]
    for check in checks:
        for f in check.figures:
            ok = _passes(f, check.atol)
            lines.append(
                f"{check.format:<12}{check.inputs:<8}{f.output:<15}{f.images:>7}"
                f"{f.max_abs_diff:>11.2e}{f.max_rel_diff:>11.2e}{f.mean_abs_diff:>11.2e}"
                f"{f.top1_agreement:>11.2%} {check.atol:>9.0e}  {'PASS' if ok else 'FAIL'}"
            )
    passed = all(c.passed for c in checks)
    lines += _nonfinite_lines(checks)
    lines.append(
        "parity: PASS (float32 exports match the Keras model within tolerance, same top-1 "
        "on every input)"
        if passed
        else "parity: FAIL (see rows marked FAIL: max_abs above atol, top-1 disagreement or NaN/inf outputs)"
    )
    return "\n".join(lines)


def _nonfinite_lines(checks: list[Check]) -> list[str]:
    """Which path gave NaN/inf, the reference's own once per input set."""
    lines, seen = [], set()
    for check in checks:
        for f in check.figures:
            if f.reference_nonfinite and (check.inputs, f.output) not in seen:
                seen.add((check.inputs, f.output))
                lines.append(f"non-finite: the Keras model (graph) gave {f.reference_nonfinite} NaN/inf value(s) "
                             f"in {f.output!r} on the {check.inputs} inputs")
            if f.nonfinite:
                lines.append(f"non-finite: {check.format} gave {f.nonfinite} NaN/inf value(s) in {f.output!r} "
                             f"on the {check.inputs} inputs")
    return lines


def as_dict(checks: list[Check]) -> list[dict]:
    return [
        {"format": c.format, "inputs": c.inputs, "atol": c.atol, "passed": c.passed,
         "outputs": [asdict(f) for f in c.figures]}
        for c in checks
    ]
