"""Datasets, fetched from the registries and verified, as tf.data pipelines and numpy arrays: `load_dataset(name)`."""
from __future__ import annotations

from bench.data.api import dataset_names, load_dataset
from bench.data.errors import ChecksumMismatch, CorruptFile, DataError, DatasetUnavailable

__all__ = ["load_dataset", "dataset_names", "DataError", "DatasetUnavailable", "ChecksumMismatch", "CorruptFile"]
