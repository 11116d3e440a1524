"""Where datasets live on disk, and how files get there safely.

Every file enters the cache the same way: written to a temporary name in the
destination folder, checked against its published digest, then renamed.  A
file that fails its check is deleted, so a half-written or tampered download
is never found under its real name.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from bench.data.errors import ChecksumMismatch, DataError
from bench.plumbing import progress
from bench.plumbing.files import CHUNK, atomic_path, cache_root, file_digest

__all__ = ["cache_root", "datasets_dir", "keras_datasets_dir", "offline", "digest", "check_digests",
           "install_file", "download", "arrays_sha256", "save_arrays", "load_arrays"]


def datasets_dir() -> Path:
    return cache_root() / "datasets"


def keras_datasets_dir() -> Path:
    """Keras' own download cache (`$KERAS_HOME/datasets`, default `~/.keras/datasets`)."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


def offline() -> bool:
    """`IMGCLS_OFFLINE=1` skips every network source (registry clients and URLs)."""
    return os.environ.get("IMGCLS_OFFLINE", "").strip() not in ("", "0", "false", "no")


def digest(data: bytes | Path, algorithm: str) -> str:
    """Hex digest of bytes or of a file's content, read in chunks."""
    if isinstance(data, Path):
        return file_digest(data, algorithm)
    return hashlib.new(algorithm, data).hexdigest()


def check_digests(data: bytes | Path, expected: Mapping[str, str], what: str | Path) -> None:
    """Raise ChecksumMismatch naming `what` unless every expected digest matches."""
    for algorithm, want in expected.items():
        got = digest(data, algorithm)
        if got != want.lower():
            raise ChecksumMismatch(
                f"{what}: {algorithm} is {got}, expected {want}. The file is corrupt or not "
                f"the published one; delete it and fetch again (python -m bench data fetch ...)."
            )


@contextlib.contextmanager
def _cache_file(dest: Path) -> Iterator[Path]:
    """`atomic_path` for the cache: an unwritable cache folder is a DataError that says what to do."""
    created = False
    try:
        with atomic_path(dest) as tmp:
            created = True
            yield tmp
    except OSError as exc:
        if created:
            raise
        raise DataError(f"cannot write to the cache folder {dest.parent} ({exc}); "
                        f"set IMGCLS_CACHE to a writable folder") from exc


def install_file(src: Path, dest: Path, expected: Mapping[str, str], what: str | None = None) -> Path:
    """Copy `src` into the cache as `dest`, renamed into place only if its digests match.
    `what` names the file in errors (default: `src`)."""
    with _cache_file(dest) as tmp:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            for chunk in iter(lambda: fin.read(CHUNK), b""):
                fout.write(chunk)
        check_digests(tmp, expected, what or src)
    return dest


def download(url: str, dest: Path, expected: Mapping[str, str], timeout_s: float = 60.0) -> Path:
    """Download `url` to `dest` through a temporary file; rename only after the checksum passes."""
    if not expected:
        raise ValueError(f"refusing to download {url} without a checksum to verify it")
    with _cache_file(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as f:
            size = int(response.headers.get("Content-Length") or 0) or None
            with progress.task(f"downloading {dest.name}", total=size, unit="bytes") as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    f.write(chunk)
                    bar.advance(len(chunk))
        check_digests(tmp, expected, f"{url} (downloaded to {tmp})")
    return dest


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """One sha256 over the named arrays (name, dtype, shape and bytes, in sorted order)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray], meta_json: str) -> None:
    """Write an uncompressed .npz (fast to read back) atomically, with `meta_json` inside."""
    with _cache_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(meta_json), **arrays)


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Read an .npz written by save_arrays; raise DataError if it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = str(z["meta"])
    except Exception as exc:  # any damage (truncation, bad zip, bad header) means: rebuild
        raise DataError(f"{path}: unreadable cached arrays ({exc})") from exc
    return arrays, meta

