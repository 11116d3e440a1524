"""The 1000 ImageNet-1k class names in the standard index order (285 Egyptian cat, 967 espresso).

Fetched at run time from the npm package `@tensorflow-models/mobilenet@2.1.1`
(`dist/imagenet_classes.js`, pinned by sha256) and cached as a plain text file, one name a line,
rather than committing 1000 names to the repository.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from bench.plumbing import registry
from bench.plumbing.files import atomic_path, cache_root

NPM_PACKAGE = "@tensorflow-models/mobilenet@2.1.1"
MEMBER = "package/dist/imagenet_classes.js"
MEMBER_SHA256 = "2b077246aef6959d0714d3a454aac148aa71581236ba3233c839ca50307cee1b"
NUM_CLASSES = 1000

_ENTRY = re.compile(r"^\s*(\d+):\s*((?:'(?:[^'\\]|\\.)*'\s*\+?\s*)+),?\s*$", re.MULTILINE)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")


def cache_path() -> Path:
    return cache_root() / "labels" / "imagenet_classes.txt"


@functools.cache
def class_names() -> list[str]:
    """The 1000 names; the first call may run `npm pack` to fetch them."""
    path = cache_path()
    if not path.exists():
        _fetch(path)
    names = path.read_text(encoding="utf-8").splitlines()
    if len(names) != NUM_CLASSES:
        raise ValueError(f"{path} has {len(names)} lines, expected {NUM_CLASSES}; delete it to refetch.")
    return names


def short_name(index: int) -> str:
    """First synonym only, e.g. 'Egyptian cat', 'espresso'."""
    return class_names()[index].split(",")[0].strip()


def parse_js(source: str) -> list[str]:
    """Names from the `IMAGENET_CLASSES = {0: 'tench, Tinca tinca', ...}` object literal,
    where long names are split into 'a' + 'b' pieces and quotes are backslash-escaped."""
    by_index: dict[int, str] = {}
    for match in _ENTRY.finditer(source):
        pieces = _LITERAL.findall(match.group(2))
        by_index[int(match.group(1))] = re.sub(r"\\(.)", r"\1", "".join(pieces))
    if sorted(by_index) != list(range(NUM_CLASSES)):
        raise ValueError(
            f"expected class indices 0..{NUM_CLASSES - 1} in {MEMBER}, found {len(by_index)} entries"
        )
    return [by_index[i] for i in range(NUM_CLASSES)]


def _fetch(dest: Path) -> None:
    downloads = cache_root() / "downloads"
    cached = sorted(downloads.glob("tensorflow-models-mobilenet-2.1.1.tgz"))
    archive = cached[0] if cached else registry.npm_pack(NPM_PACKAGE, downloads)
    js = registry.extract_member(archive, MEMBER, dest.with_suffix(".js"), sha256=MEMBER_SHA256)
    names = parse_js(js.read_text(encoding="utf-8"))
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(names) + "\n", encoding="utf-8")
