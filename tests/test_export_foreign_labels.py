"""A model whose classes are not the dataset's (an ImageNet model given CIFAR-10 photos): refused by
default, its images used and its labels ignored when the benchmark asks for it."""
from __future__ import annotations

import pytest

from export.job import ExportData


def test_other_class_counts_are_refused_unless_foreign_labels(cifar10):
    with pytest.raises(ValueError, match="1000 outputs but dataset 'cifar10' has 10 classes"):
        ExportData("cifar10", (32, 32, 3), 1000)
    data = ExportData("cifar10", (32, 32, 3), 1000, foreign_labels=True)
    assert not data.labels_match and len(data.class_names) == 1000
    x, _ = next(data.batches("test", 8, 8))
    assert x.shape == (8, 32, 32, 3)
    same = ExportData("cifar10", (32, 32, 3), 10, foreign_labels=True)
    assert same.labels_match and same.class_names[3] == "cat"
