"""Read a PyTorch state_dict (`.pth`) into numpy arrays without importing torch.

A `.pth` written by `torch.save` is one of two layouts:
- zip (torch >= 1.6): `*/data.pkl` plus one raw little-endian file per storage, `*/data/<key>`;
- legacy (older torch, e.g. the EfficientNet-Lite weights): a stream of pickles (magic number,
  protocol version, system info, the object, the list of storage keys) followed by each
  storage as an int64 element count and its raw bytes.
In both, the object pickle names tensors as `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)` and storages through persistent ids. A restricted Unpickler maps exactly those
globals to numpy and refuses every other one, so a `.pth` cannot run code while being read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype (little-endian, as torch writes on x86/ARM)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchFileError(ValueError):
    """The file is not a PyTorch state_dict this reader understands."""


@dataclass
class _Storage:
    dtype: np.dtype
    key: str
    numel: int
    data: np.ndarray | None = None  # filled once the raw bytes are read


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    view_offset: int = field(default=0)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise TorchFileError(f"storage {self.storage.key} was never read")
        if not self.size:
            return flat[self.view_offset + self.offset].copy()
        start = self.view_offset + self.offset
        last = start + sum((n - 1) * st for n, st in zip(self.size, self.stride))
        if min(self.size) > 0 and last >= flat.size:
            raise TorchFileError(f"tensor of size {self.size} runs past its storage {self.storage.key}")
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[start:], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False
        )
        return np.array(view)  # own the memory, C-contiguous


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if isinstance(storage, tuple):  # legacy view: (root storage, element offset)
        root, view_offset = storage
        return _Tensor(root, storage_offset, tuple(size), tuple(stride), view_offset)
    return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Knows OrderedDict, the tensor rebuild functions and the storage types; nothing else."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage], source: Path):
        super().__init__(file)
        self.storages = storages
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(
            f"{self.source}: refusing to load {module}.{name}; only plain state_dicts of tensors "
            f"can be read without torch (save `model.state_dict()`, not the whole model)."
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFileError(f"{self.source}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self.source}: unsupported storage type {storage_type!r}")
        storage = self.storages.setdefault(key, _Storage(STORAGE_DTYPES[storage_type.name], key, numel))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy views: (view_key, element offset, view size)
            _view_key, view_offset, _view_size = view
            return (storage, view_offset)
        return storage


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a `.pth` state_dict as numpy arrays, in the file's order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such PyTorch weights file: {path}")
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        obj = _load_legacy(path)
    if not isinstance(obj, dict):
        raise TorchFileError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    return {k: v.to_numpy() for k, v in obj.items() if isinstance(v, _Tensor)}


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        pickles = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise TorchFileError(f"{path}: a zip but not a torch.save archive (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(z.read(pickles[0])), storages, path).load()
        for key, storage in storages.items():
            raw = z.read(f"{prefix}data/{key}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
    return obj


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as f:
        storages: dict[str, _Storage] = {}
        unpickler = _RestrictedUnpickler(f, storages, path)  # even the header pickles run no code
        try:
            magic = unpickler.load()
        except Exception as e:
            raise TorchFileError(f"{path}: not a PyTorch file ({e})") from e
        if magic != LEGACY_MAGIC:
            raise TorchFileError(f"{path}: not a PyTorch file (wrong magic number)")
        _protocol, sys_info = unpickler.load(), unpickler.load()
        if not sys_info.get("little_endian", True):
            raise TorchFileError(f"{path}: written on a big-endian machine; not supported")
        obj = unpickler.load()
        keys = unpickler.load()
        for key in keys:
            storage = storages[key]
            numel = int(np.frombuffer(f.read(8), dtype="<i8")[0])
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise TorchFileError(f"{path}: truncated (storage {key} is short of data)")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return obj
