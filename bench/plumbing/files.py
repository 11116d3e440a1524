"""Files: where the cache lives, content digests, and writes that are all or nothing.

Every file the toolkit writes for keeps (results, checkpoints, downloads, manifests) goes through
`atomic_path`: it is written under a temporary name in its destination folder and renamed into
place only when complete, so an interrupted process never leaves half a file under the real name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

CHUNK = 1 << 20


def cache_root() -> Path:
    """Datasets and converted weights: `$IMGCLS_CACHE`, default `~/.cache/imgcls`."""
    return Path(os.environ.get("IMGCLS_CACHE") or "~/.cache/imgcls").expanduser()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `dest` (same suffixes, so `model.save` and `np.savez` accept
    it); when the block succeeds it replaces `dest`, when it fails it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part" + "".join(dest.suffixes),
                                dir=dest.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared file from other users
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Readers see the old file or the new one, never a partial one (flushed to disk first: a
    backup pointer or a results file must survive the process being killed right after)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """JSON with indent 1 and `default=str` unless told otherwise."""
    dumps.setdefault("indent", 1)
    dumps.setdefault("default", str)
    return atomic_write_text(path, json.dumps(data, **dumps) + "\n")


class OutputPathError(ValueError):
    """An output directory that cannot be written; the message says what to do instead."""


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Checks, before any work, that `path` is a directory this process can write into, or one it
    can create: an existing file, a path under /proc or under a file, a read-only directory each
    raise OutputPathError with a one-line message. Writability is probed (a temporary directory is
    made and removed at once), not guessed from permission bits, which root and ACLs overrule."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file, not a directory; choose a directory path for {flag} "
                              "(it is created if missing)")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{flag} {path} cannot be created: {existing} is a file, not a directory; "
                              f"choose another {flag}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if existing == path:
            raise OutputPathError(f"{flag} {path} is a directory this process cannot write to ({why}); make it "
                                  f"writable (chmod u+w {path}) or choose another {flag}") from None
        raise OutputPathError(f"{flag} {path} cannot be created: {existing} does not accept new files ({why}); "
                              f"choose a {flag} under a directory you can write to") from None
    return path
