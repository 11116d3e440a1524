"""Every engine is checked against the float32 Keras model before it is timed, with export's rules.

The reference outputs of the float32 Keras model on real test images are computed once per model;
each engine (at the precision it computes in) is run on the same images:
- float32: parity within export's tolerance (max abs diff on probabilities 1e-5, logits 1e-4) and
  the same top-1 on every image;
- reduced precision (mixed_*, float16, bfloat16, int8) of a trained model: export's accuracy rule
  (the top-1 drop against float32 must not be shown above 1 point with 95% confidence);
- reduced precision of an untrained model (zoo weights at random: labels mean nothing to it), or of
  a model whose classes are not the dataset's (an ImageNet model shown CIFAR-10 photos): its top-1
  agreement with float32 is recorded, not judged.
A failed check becomes a failed row whose reason is the measured difference, never a number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from export import verify as rules


@dataclass(frozen=True)
class Verdict:
    status: str      # ok | failed
    verified: str    # parity | accuracy | agreement
    check: str       # the figures, for the row's `check` column (or its reason when failed)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Verifier:
    """Reference outputs of `model` on `batches` of real test images (with their labels)."""

    def __init__(self, model, batches: list[tuple[np.ndarray, np.ndarray]], kind: str, trained: bool,
                 unjudged: str = "untrained weights"):
        import tensorflow as tf

        from bench.measure.engines import _first_output

        @tf.function(reduce_retracing=True)
        def call(x):
            return _first_output(model(x, training=False))

        self.batches = batches
        self.kind, self.trained, self.unjudged = kind, trained, unjudged
        self.reference = np.concatenate([np.asarray(call(tf.constant(x))) for x, _ in batches])
        self.labels = np.concatenate([y for _, y in batches])

    @property
    def images(self) -> int:
        return len(self.labels)

    def outputs(self, run: Callable[[np.ndarray], np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """`run` over the verification images, in batches of `batch_size` (engines with a fixed
        batch shape) or as they come."""
        # copies: a runtime may return a view of its output buffer, which the next call overwrites
        if batch_size is None:
            return np.concatenate([np.array(run(np.ascontiguousarray(x, dtype="float32")), copy=True)
                                   for x, _ in self.batches])
        images = np.concatenate([x for x, _ in self.batches]).astype("float32")
        outs = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            pad = batch_size - len(chunk)
            if pad:  # the last batch padded to the fixed shape with copies of its first image
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
            outs.append(np.array(run(chunk), copy=True)[: batch_size - pad])
        return np.concatenate(outs)

    def judge(self, candidate: np.ndarray, precision: str) -> Verdict:
        n = self.images
        if not np.all(np.isfinite(candidate)):
            bad = int((~np.isfinite(candidate)).any(axis=-1).sum())
            return Verdict("failed", "parity" if precision == "float32" else "accuracy",
                           f"non-finite outputs (NaN/inf) on {bad} of {n} images")
        if precision == "float32":
            fig = rules.compare(self.reference, candidate, "output")
            atol = rules.ATOL[self.kind]
            text = (f"parity: max abs diff {fig.max_abs_diff:.1e} (atol {atol:.0e}), top-1 agreement "
                    f"{fig.top1_agreement:.2%} on {n} images")
            ok = fig.max_abs_diff <= atol and fig.top1_agreement == 1.0
            return Verdict("ok" if ok else "failed", "parity", text)
        if not self.trained:
            agree = float(np.mean(self.reference.argmax(-1) == candidate.argmax(-1)))
            diff = float(np.abs(candidate.astype("float64") - self.reference).max())
            return Verdict("ok", "agreement", f"{self.unjudged}, accuracy not judged: top-1 agreement with "
                                              f"float32 {agree:.2%}, max abs diff {diff:.1e} on {n} images")
        j = rules.judge_accuracy(self.reference, candidate, self.labels)
        text = (f"accuracy: top-1 {j.top1:.2%} vs float32 {j.top1_reference:.2%}, drop {j.top1_drop * 100:+.2f} "
                f"points (95% interval {j.top1_drop_low95 * 100:+.2f}..{j.top1_drop_high95 * 100:+.2f}) on {n} images")
        return Verdict("ok" if j.passed else "failed", "accuracy", text)
