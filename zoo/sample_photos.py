"""A handful of real photos for classifier checks, fetched from registry packages into the cache.

Not a data set: a few well-known pictures (scikit-image's sample data and the photos that
Debian's `darknet` package ships) to see that a pretrained classifier says "espresso" to a cup
of coffee. Each file is pinned by its sha256.

    from zoo import sample_photos
    img = sample_photos.load("chelsea")                     # uint8 RGB, HxWx3
    x = sample_photos.imagenet_eval_crop(img)               # float32 224x224x3 in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.plumbing import registry
from bench.plumbing.files import cache_root

SKIMAGE_WHEEL = "scikit-image==0.25.2"
DARKNET_DEB = "darknet"


@dataclass(frozen=True)
class Photo:
    name: str
    source: str  # "scikit-image" (PyPI wheel) or "darknet" (Debian package)
    member: str  # path inside the package
    sha256: str


def _skimage(name: str, file: str, sha256: str) -> Photo:
    return Photo(name, "scikit-image", f"skimage/data/{file}", sha256)


def _darknet(name: str, sha256: str) -> Photo:
    return Photo(name, "darknet", f"usr/share/darknet/data/{name}.jpg", sha256)


PHOTOS: dict[str, Photo] = {p.name: p for p in [
    _skimage("chelsea", "chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    _skimage("coffee", "coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    _skimage("astronaut", "astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    _skimage("rocket", "rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    _darknet("dog", "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866"),
    _darknet("eagle", "f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0"),
    _darknet("giraffe", "00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1"),
    _darknet("horses", "c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4"),
    _darknet("kite", "87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e"),
    _darknet("person", "cdcbab947e46110fc2b77784ac54ddbbab2640f1e44cb5e91fc8984a9793a7d1"),
]}


class PhotoUnavailable(RuntimeError):
    """A sample photo could not be fetched."""


def names(source: str | None = None) -> list[str]:
    return [p.name for p in PHOTOS.values() if source is None or p.source == source]


def photos_dir() -> Path:
    return cache_root() / "photos"


def path(name: str) -> Path:
    """Local path of a sample photo, fetching its package into the cache the first time."""
    if name not in PHOTOS:
        raise KeyError(f"unknown sample photo {name!r}; known: {', '.join(PHOTOS)}")
    photo = PHOTOS[name]
    dest = photos_dir() / Path(photo.member).name
    if dest.exists():
        return dest
    try:
        archive = _package_archive(photo.source)
        return registry.extract_member(archive, photo.member, dest, sha256=photo.sha256)
    except registry.FetchError as e:
        raise PhotoUnavailable(
            f"sample photo {name!r} is unavailable: {e}\n"
            f"It comes from {_describe(photo.source)}; fetch it by hand and put "
            f"{Path(photo.member).name} in {photos_dir()} to go on."
        ) from e


def load(name: str) -> np.ndarray:
    """The photo as uint8 RGB, shape (H, W, 3)."""
    from PIL import Image

    with Image.open(path(name)) as im:
        return np.asarray(im.convert("RGB"))


def imagenet_eval_crop(image: np.ndarray, resize_short: int = 256, crop: int = 224) -> np.ndarray:
    """ImageNet evaluation view: resize the short side to `resize_short` (bilinear), centre-crop
    `crop` x `crop`; returns float32 in [0, 1] as every zoo model takes."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = resize_short / min(h, w)
    size = (max(crop, round(w * scale)), max(crop, round(h * scale)))  # PIL wants (W, H)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    top, left = (resized.shape[0] - crop) // 2, (resized.shape[1] - crop) // 2
    return resized[top:top + crop, left:left + crop].astype(np.float32) / 255.0


def _package_archive(source: str) -> Path:
    downloads = cache_root() / "downloads"
    pattern = {"scikit-image": "scikit_image-0.25.2-*.whl", "darknet": "darknet_*.deb"}[source]
    cached = sorted(downloads.glob(pattern))
    if cached:
        return cached[0]
    if source == "scikit-image":
        return registry.pip_download(SKIMAGE_WHEEL, downloads)
    return registry.apt_download(DARKNET_DEB, downloads)


def _describe(source: str) -> str:
    if source == "scikit-image":
        return f"the PyPI wheel {SKIMAGE_WHEEL} (`pip download --no-deps {SKIMAGE_WHEEL}`)"
    return f"the Debian package {DARKNET_DEB} (`apt-get download {DARKNET_DEB}`, then `dpkg -x`)"
