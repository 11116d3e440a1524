"""The artifact directory: written beside its destination, moved into place only when complete.

A complete artifact has `manifest.json` with status "passed" and the sha256 of every other
file. Anything that fails on the way ends in `<DIR>.failed` (with its report), never in DIR.
The work is done in a hidden `.DIR.pidPID.XXXXXXXX.tmp` beside DIR; a killed export (SIGKILL, power
loss) cannot rename it, so every later export into the same folder removes the ones whose process
is gone, and leaves a running export's alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from bench.plumbing.files import atomic_write_json, check_output_dir, sha256_file

MANIFEST = "manifest.json"
REPORT = "report.txt"


class OutputExistsError(FileExistsError):
    pass


def check_destination(out: str | os.PathLike, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"output directory {out} already exists; pass --overwrite to replace it or choose "
            "another --out"
        )
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory; choose another --out")
    # the artifact is written beside `out` and renamed into place: its parent must take new entries
    check_output_dir(out.parent if out.exists() else out)
    return out


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a fresh temp dir beside `out`; on success it replaces `out`, on error it becomes
    `out.failed` (the exception propagates). The same filesystem makes os.replace atomic."""
    out = check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.pid{os.getpid()}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the artifact is an ordinary directory
    try:
        yield tmp
    except BaseException:
        failed = out.with_name(out.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(tmp, failed)
        raise
    old = None
    if out.exists():  # --overwrite: move the old artifact aside first, delete it after
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".failed"), ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temp_dirs(out: str | os.PathLike) -> list[Path]:
    """Removes the `.OUT.pidPID.*.tmp` directories beside `out` that were made before now by a
    process that no longer runs (a killed export); returns them. A live export's temp directory
    (its pid running) is left alone, as is anything not named by this module."""
    out = Path(out)
    pattern = re.compile(rf"\.{re.escape(out.name)}\.pid(\d+)\.[^.]+\.tmp")
    started = time.time()
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            older = entry.stat().st_mtime < started
        except OSError:
            continue
        if older and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
                print(f"note: removed {entry}, the temp directory of an export that was killed "
                      f"(process {match.group(1)} is gone)", file=sys.stderr)
    return removed


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by POSIX relative path."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != root / MANIFEST
    }


def write_manifest(root: Path, manifest: dict) -> Path:
    manifest = {**manifest, "files": file_hashes(root)}
    return atomic_write_json(root / MANIFEST, manifest, indent=2, default=None)


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{root} is not an export artifact: it has no {MANIFEST}; create one with "
            "`python -m export CHECKPOINT --out DIR`"
        )
    return json.loads(path.read_text())


def verify_files(root: str | os.PathLike, manifest: dict) -> list[str]:
    """Names of files whose sha256 no longer matches the manifest (or that are missing)."""
    root = Path(root)
    bad = []
    for name, digest in manifest.get("files", {}).items():
        path = root / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad
