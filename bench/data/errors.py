"""Errors of the data layer: each says what was wrong and how to fix it."""
from __future__ import annotations


class DataError(RuntimeError):
    """Base class: a dataset could not be loaded as asked."""


class DatasetUnavailable(DataError):
    """The dataset is in none of the places looked and could not be fetched."""


class ChecksumMismatch(DataError):
    """A file's digest differs from the published one; the file is not used."""


class CorruptFile(DataError):
    """A file is truncated, undecodable or holds out-of-range values."""
