"""OpenAI's CLIP TorchScript archive read as data: a restricted unpickler rebuilds the module tree's tensors from the
archive's storages, so the archive's own TorchScript code never runs."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch

from slsdk.models.errors import CheckpointError
from slsdk.models.torchfile import check_zip_archive

__all__ = ["load_torchscript_tensors"]

# OpenAI's TorchScript archive is read as data: its data.pkl pickles the module tree (``__torch__.*`` objects whose
# state holds the tensors). torch.jit.load would run the archive's own TorchScript (``__setstate__``) while loading;
# here a restricted unpickler resolves only the names below and rebuilds the tensors from the archive's storages.
_TS_STORAGES = {f"{n}Storage": d for n, d in (
    ("Float", torch.float32), ("Half", torch.float16), ("BFloat16", torch.bfloat16), ("Double", torch.float64),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}
_TS_MAX_PICKLE = 64 << 20


class _TSObject:
    """Stand-in for a ``__torch__.*`` class: keeps the pickled state, runs nothing."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _TSStorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _ts_identity(x, *args):
    return x


def _ts_rebuild_tensor(storage, offset, size, stride, *rest):
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without storage")
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    if len(size) != len(stride) or any(v < 0 for v in size + stride) or offset < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    if all(size):
        extent = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1
        if extent > storage.numel():
            raise pickle.UnpicklingError(f"tensor of size {size} reaches element {extent} of a storage of "
                                         f"{storage.numel()}")
    return storage.as_strided(size, stride, int(offset))


class _TorchScriptUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(file)
        self._zip, self._prefix, self._source, self._storages = archive, prefix, source, {}
        self._classes: dict[str, type] = {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            if key not in self._classes:
                self._classes[key] = type(name, (_TSObject,), {"qualified_name": key})
            return self._classes[key]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _ts_rebuild_tensor
        if module == "torch" and name in _TS_STORAGES:
            return _TSStorageType(_TS_STORAGES[name])
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_tensorlist", "build_doublelist",
                                                      "build_boollist", "build_list", "restore_type_tag"):
            return _ts_identity
        raise pickle.UnpicklingError(f"refused global {module}.{name} (only tensors and module attributes are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _TSStorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        if key not in self._storages:
            name = f"{self._prefix}data/{key}"
            try:
                info = self._zip.getinfo(name)
            except KeyError:
                raise pickle.UnpicklingError(f"storage {name} is missing from the archive") from None
            itemsize = torch.empty((), dtype=stype.dtype).element_size()
            if info.file_size != int(numel) * itemsize:
                raise pickle.UnpicklingError(f"storage {name} has {info.file_size} bytes, expected {numel} x "
                                             f"{itemsize}")
            data = bytearray(self._zip.read(info))
            self._storages[key] = torch.frombuffer(data, dtype=stype.dtype) if data else \
                torch.empty(0, dtype=stype.dtype)
        return self._storages[key]


#: Most module-tree entries `_collect_tensors` visits (shared submodules counted at every visit): a ViT-L tower
#: has a few thousand; a 60 KB pickle of shared references can name 10**12.
_TS_MAX_NODES = 1_000_000


def _collect_tensors(obj, prefix: str, out: dict, depth: int = 0, budget: list | None = None,
                     source: str = "archive") -> None:
    budget = [_TS_MAX_NODES] if budget is None else budget
    if depth > 64 or not isinstance(obj, _TSObject) or not isinstance(obj.state, dict):
        return          # a module with its own __getstate__ (tuple state) carries no named parameters
    budget[0] -= len(obj.state)
    if budget[0] < 0:
        raise CheckpointError(f"{source}: TorchScript archive refused: its module tree has more than "
                              f"{_TS_MAX_NODES} entries (shared submodules counted at each use); it is read as "
                              "data, never run")
    for k, v in obj.state.items():
        if not isinstance(k, str):
            continue    # attribute names are strings; anything else is not a parameter
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
        elif isinstance(v, _TSObject):
            _collect_tensors(v, f"{prefix}{k}.", out, depth + 1, budget, source)


def load_torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, read without running any of its code."""
    try:
        with open(path, "rb") as f, check_zip_archive(f, path, CheckpointError)["zip"] as z:
            pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkls) != 1:
                raise CheckpointError(f"{path}: TorchScript archive has {len(pkls)} top-level data.pkl entries "
                                      "(expected one); corrupt archive")
            prefix = pkls[0][: -len("data.pkl")]
            byteorder = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in z.namelist() \
                else "little"
            if byteorder != "little":
                raise CheckpointError(f"{path}: TorchScript archive is {byteorder}-endian; re-save it on a "
                                      "little-endian machine")
            info = z.getinfo(pkls[0])
            if info.file_size > _TS_MAX_PICKLE:
                raise CheckpointError(f"{path}: {pkls[0]} is {info.file_size} bytes, more than a module tree needs")
            root = _TorchScriptUnpickler(io.BytesIO(z.read(info)), z, prefix, str(path)).load()
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: TorchScript archive refused: {e}; it is read as data, never run") from None
    except Exception as e:  # noqa: BLE001 - truncated zips / bad pickles raise many types
        raise CheckpointError(f"{path}: cannot read TorchScript archive (truncated or corrupt?): "
                              f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    out: dict[str, torch.Tensor] = {}
    _collect_tensors(root, "", out, source=str(path))
    if not out:
        raise CheckpointError(f"{path}: TorchScript archive holds no module tensors")
    return out
