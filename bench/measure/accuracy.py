"""Top-1 / top-5 accuracy of a model on a dataset's test split, through any engine."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from bench.plumbing.metrics import top_k_correct


def evaluate(predict: Callable[[np.ndarray], np.ndarray], batches: Iterable, num_classes: int) -> dict[str, float]:
    """top1 and top5 (top5 only with more than 5 classes, else NaN) over all `(images, labels)` batches."""
    n = correct1 = correct5 = count = 0
    for images, labels in batches:
        count += 1
        images, labels = np.asarray(images, dtype=np.float32), np.asarray(labels)
        scores = predict(images)
        n += len(labels)
        correct1 += top_k_correct(scores, labels, 1)
        if num_classes > 5:
            correct5 += top_k_correct(scores, labels, 5)
    if n == 0:
        raise ValueError("no test examples to evaluate")
    return {"top1": correct1 / n, "top5": correct5 / n if num_classes > 5 else float("nan"), "examples": n, "batches": count}


def fit_briefly(model, dataset, *, input_shape, steps: int, batch_size: int = 64, seed: int = 0) -> None:
    """Train a few hundred steps so the accuracy cell has a real (if weak) model when no checkpoint
    is given; the row's `checkpoint` column says so."""
    import keras

    from bench.measure.train_step import compile_for_training

    h, w, c = input_shape
    compile_for_training(model, jit_compile=False, optimizer=keras.optimizers.Adam(3e-3))  # fast to converge
    ds = dataset.pipeline("train", batch_size, image_size=(h, w), channels=c, shuffle=True, seed=seed,
                          drop_remainder=True).repeat()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # the pipeline shuffles
