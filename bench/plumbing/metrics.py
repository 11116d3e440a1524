"""Top-1 / top-k: the one definition every layer scores with (training, export, benchmark)."""
from __future__ import annotations

import numpy as np


def top_k_correct(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> int:
    """How many rows have their label among their k highest scores. `labels` are class indices,
    or one-hot rows (then their arg-max is the label)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if labels.ndim == scores.ndim:  # one-hot targets
        labels = labels.argmax(-1)
    if k == 1:
        return int(np.sum(scores.argmax(-1) == labels))
    top = np.argpartition(-scores, kth=min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is their label."""
    n = len(labels)
    if n == 0:
        raise ValueError("top-1 of no examples")
    return top_k_correct(scores, labels, 1) / n
