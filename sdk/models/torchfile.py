"""The one door through which slsdk opens a torch checkpoint file: bounded checks first, then ``torch.load``.

Every ``torch.load`` of a file a user hands to slsdk (CLIP state dicts, AdaptSign checkpoints, slsdk checkpoints,
the EfficientNet-Lite weights, ``train --resume``) goes through :func:`load_torch_file`. Before torch reads a
byte of tensor data, and before anything is unpickled, the file's container is inspected (nothing is inflated,
nothing is allocated from a declared size):

* **torch.save zip** (the default format). The end-of-central-directory record must list at most
  ``MAX_RECORDS`` records in at most ``MAX_CENTRAL_DIRECTORY_BYTES``; every record must lie inside the file, and
  the records together must not occupy more bytes than the file has (records sharing bytes are refused). Storage
  records (``<archive>/data/*``, ``<archive>/constants/*``) must be *stored*: torch.save and torch.jit.save never
  compress a record, torch's reader would inflate a compressed one whole into memory before any check (a 1 MB
  record can declare 1 GB), and ``torch.load(mmap=True)`` needs stored records anyway. Other records may be
  compressed only up to ``MAX_PICKLE_BYTES`` (Python's zipfile inflates at most the declared size). The declared
  storage bytes together must stay under :func:`max_checkpoint_bytes` (``MAX_CHECKPOINT_BYTES`` = 4 GiB, the fp32
  ViT-L/14 CLIP tower with its text half and an optimizer state fit; ``SLSDK_MAX_CHECKPOINT_BYTES`` overrides).
  ``data.pkl`` must be at most ``MAX_PICKLE_BYTES``.
* **legacy torch.save** (``_use_new_zipfile_serialization=False``): the pickles at the head must end within
  ``MAX_PICKLE_BYTES``; the storage sizes they declare must sum to what the rest of the file holds, record by
  record (each record's own element count is read and compared), and stay under the cap.

Then the pickle's global names are read by scanning its opcodes with :mod:`pickletools` (nothing is unpickled):
any callable torch's ``weights_only`` loader does not allow (``os.system``, ``builtins.exec``, a custom class) is
refused as code, naming it. Next the pickle is replayed with stand-ins for every global (nothing of the file's
is imported or called) to collect the storages it declares: each storage's element count x element size must fit
its record. Only then does ``torch.load(weights_only=True)`` run, on the same open file.

Errors are one line naming the file, raised as the caller's error class (an ``SlsdkError``); torch's own advice to
re-run with ``weights_only`` off is never relayed.
"""
from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch

from slsdk.errors import SlsdkError

__all__ = ["MAX_CHECKPOINT_BYTES", "MAX_PICKLE_BYTES", "MAX_RECORDS", "MAX_CENTRAL_DIRECTORY_BYTES",
           "MAX_PICKLE_GLOBALS", "CAP_ENV", "TorchFileError", "max_checkpoint_bytes", "load_torch_file",
           "check_torch_file", "check_zip_archive", "zip_names", "pickle_globals"]

#: Default cap on the storage bytes one checkpoint may declare (sum over its storage records): 4 GiB.
MAX_CHECKPOINT_BYTES = 4 << 30
#: Environment variable that overrides MAX_CHECKPOINT_BYTES (a number of bytes).
CAP_ENV = "SLSDK_MAX_CHECKPOINT_BYTES"
#: Largest pickle (``data.pkl``, or the legacy format's head) and largest compressed non-storage record: 16 MiB.
#: A ViT-L training checkpoint's data.pkl is a few hundred KB (about 100 bytes per tensor).
MAX_PICKLE_BYTES = 16 << 20
#: Most records one archive may list, and the largest central directory (parsed before anything else).
MAX_RECORDS = 100_000
MAX_CENTRAL_DIRECTORY_BYTES = 16 << 20

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class TorchFileError(SlsdkError, ValueError):
    """A torch checkpoint file refused before or while loading (callers usually pass their own error class)."""


def max_checkpoint_bytes() -> int:
    """The storage-byte cap in force: ``SLSDK_MAX_CHECKPOINT_BYTES`` if set, else ``MAX_CHECKPOINT_BYTES``."""
    raw = os.environ.get(CAP_ENV, "").strip()
    if not raw:
        return MAX_CHECKPOINT_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise TorchFileError(f"{CAP_ENV}={raw!r}: expected a positive number of bytes (default "
                             f"{MAX_CHECKPOINT_BYTES})")
    return value


def _gib(n: int) -> str:
    return f"{n} bytes ({n / 2**30:.2f} GiB)"


# --------------------------------------------------------------------------------------------- zip archives
def _storage_record(name: str, prefix: str) -> bool:
    return name.startswith((prefix + "data/", prefix + "constants/"))


def _open_zip(f, path, error) -> zipfile.ZipFile:
    """ZipFile over ``f`` after a bounded look at the end-of-central-directory record."""
    size = os.fstat(f.fileno()).st_size
    find_end = getattr(zipfile, "_EndRecData", None)   # private but long-standing; without it ZipFile checks alone
    try:
        f.seek(0)
        endrec = find_end(f) if find_end else ()           # the EOCD (and zip64 EOCD) record only: 64 KiB at most
    except (OSError, struct.error):
        endrec = None
    if endrec is None:
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt zip archive (no central "
                    "directory); re-download or re-save it") from None
    entries, cd_size, cd_offset = (endrec[4], endrec[5], endrec[6]) if endrec else (0, 0, 0)
    if entries > MAX_RECORDS or cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise error(f"{path}: refused: its zip directory lists {entries} records in {cd_size} bytes, more than a "
                    f"checkpoint needs (at most {MAX_RECORDS} records, {MAX_CENTRAL_DIRECTORY_BYTES} bytes)")
    if cd_size + cd_offset > size:
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt zip archive (its "
                    f"directory ends at byte {cd_size + cd_offset}, the file has {size})")
    try:
        f.seek(0)
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as e:
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt zip archive "
                    f"({_first_line(e)})") from None


def _shown(name: str) -> str:
    """A record name for a one-line message: control characters escaped, at most 120 characters."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 120 else text[:117] + "..."


def check_zip_archive(f, path, error=TorchFileError, *, pickle_cap: int = MAX_PICKLE_BYTES) -> dict:
    """Check a torch.save / torch.jit.save zip open as ``f`` (see the module doc); nothing is inflated.

    Returns {"zip": ZipFile, "prefix": "<archive>/", "records": {name: ZipInfo}, "storage_bytes": int}.
    """
    size = os.fstat(f.fileno()).st_size
    z = _open_zip(f, path, error)
    infos = z.infolist()
    if len(infos) > MAX_RECORDS:
        raise error(f"{path}: refused: its zip directory lists {len(infos)} records, more than a checkpoint needs "
                    f"(at most {MAX_RECORDS})")
    if not infos or "/" not in infos[0].filename:
        raise error(f"{path}: cannot be read as a torch checkpoint: a zip archive, but not one torch.save wrote "
                    "(its first record is not inside an archive folder)")
    prefix = infos[0].filename.split("/", 1)[0] + "/"
    records: dict[str, zipfile.ZipInfo] = {}
    occupied = storage_bytes = 0
    cap = max_checkpoint_bytes()
    for info in infos:
        name = info.filename
        shown = _shown(name)
        if name in records:
            raise error(f"{path}: refused: its zip directory lists {shown} twice (a torch archive never does)")
        records[name] = info
        if info.flag_bits & 0x1:
            raise error(f"{path}: refused: record {shown} is encrypted")
        storage = _storage_record(name, prefix)
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise error(f"{path}: cannot be read as a torch checkpoint: corrupt zip archive (stored record "
                            f"{shown} declares {info.file_size} bytes but occupies {info.compress_size})")
        elif storage:
            raise error(f"{path}: refused: storage record {shown} is compressed ({info.compress_size} bytes "
                        f"declaring {info.file_size} once inflated); torch.save never compresses a record, and it "
                        "is not inflated here; re-save the checkpoint with torch.save")
        elif info.compress_type != zipfile.ZIP_DEFLATED:
            raise error(f"{path}: refused: record {shown} uses zip compression method {info.compress_type}; "
                        "torch.save writes stored records")
        elif info.file_size > pickle_cap:
            raise error(f"{path}: refused: compressed record {shown} declares {info.file_size} bytes once "
                        f"inflated (at most {pickle_cap} for a compressed record); re-save it with torch.save")
        if info.header_offset + 30 + len(name.encode()) + info.compress_size > size:
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt zip archive (record "
                        f"{shown} ends past the end of the file)")
        occupied += info.compress_size
        if storage:
            storage_bytes += info.file_size
    if occupied > size:
        raise error(f"{path}: refused: its zip records declare {occupied} bytes, more than the file's {size} "
                    "(records share bytes: a torch archive never does)")
    if storage_bytes > cap:
        raise error(f"{path}: refused: its storages declare {_gib(storage_bytes)}, more than the cap of "
                    f"{_gib(cap)} (set {CAP_ENV} to raise it for a checkpoint you trust)")
    return {"zip": z, "prefix": prefix, "records": records, "storage_bytes": storage_bytes}


def zip_names(path: str | os.PathLike, error=TorchFileError) -> list[str]:
    """The record names of a zip archive, read within the directory bounds (``MAX_RECORDS`` ...)."""
    with open(path, "rb") as f:
        z = _open_zip(f, path, error)
        if len(z.infolist()) > MAX_RECORDS:
            raise error(f"{path}: refused: its zip directory lists more than {MAX_RECORDS} records")
        return z.namelist()


# ------------------------------------------------------------------------------------------- pickle scans
def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
               "BINUNICODE8"}


def _fix_name(module: str, name: str) -> str:

    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


#: Most distinct globals a checkpoint's pickle may name (torch.save writes a few dozen at most).
MAX_PICKLE_GLOBALS = 1000


def pickle_globals(data: bytes) -> list[str]:
    """The global names (``module.name``) a pickle refers to, found by scanning its opcodes; nothing is unpickled.

    Raises ``ValueError`` for bytes that are not a pickle, or that name more than ``MAX_PICKLE_GLOBALS`` globals.
    """
    names: dict[str, None] = {}
    memo: dict = {}
    last: object = None            # the value the previous opcode pushed, when it was a string
    strings: list[str] = []        # strings pushed so far (STACK_GLOBAL takes the last two)
    for op, arg, _pos in pickletools.genops(data):
        pushed = None
        if op.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            names.setdefault(_fix_name(module, name), None)
        elif op.name == "STACK_GLOBAL":
            names.setdefault(_fix_name(*strings[-2:]) if len(strings) >= 2 else "<unknown>.<unknown>", None)
        elif op.name in _STRING_OPS:
            pushed = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = last
            pushed = last
        elif op.name == "MEMOIZE":
            memo[len(memo)] = last
            pushed = last
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed = memo.get(arg)
        if isinstance(pushed, str):
            strings.append(pushed)
            strings[:] = strings[-2:]
        last = pushed
        if len(names) > MAX_PICKLE_GLOBALS:
            raise ValueError(f"it names more than {MAX_PICKLE_GLOBALS} distinct globals")
    return list(names)


def _allowed_names(safe_globals: Iterable) -> set[str] | None:
    """Global names torch's weights_only loader accepts (plus ``safe_globals``); None if torch does not say."""
    try:
        from torch import _weights_only_unpickler as wo  # noqa: PLC0415  (private to torch: may be missing)

        allowed = set(wo._get_allowed_globals())
        with torch.serialization.safe_globals(list(safe_globals)):
            allowed |= set(wo._get_user_allowed_globals())
        return allowed
    except Exception:  # noqa: BLE001 - a private API: without it torch's own refusal is the check
        return None


#: Globals torch's weights_only loader refuses that are plain types, not code (an empty ``bytes`` pickles as one).
_PLAIN_TYPES = {f"builtins.{n}" for n in ("bytes", "frozenset", "slice", "range", "int", "float", "str", "tuple",
                                          "list", "dict", "bool")}


def _refuse_code(path, error, names: list[str]):
    shown = ", ".join(_shown(n) for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if all(n in _PLAIN_TYPES for n in names):
        raise error(f"{path}: refused: the checkpoint pickles {shown}, a type torch's safe loader does not rebuild "
                    "(found by scanning its pickle's opcodes; nothing was unpickled), so it was not loaded; re-save "
                    "it with tensors, lists, dicts, strings and numbers only") from None
    raise error(f"{path}: refused: the checkpoint pickles {shown}: it holds code, not only tensors and plain "
                "values (found by scanning its pickle's opcodes; nothing was unpickled or executed), so it was "
                "not loaded") from None


def _check_globals(data: bytes, path, error, safe_globals) -> list[str] | None:
    """Refuse a pickle naming globals torch's weights_only loader does not allow.

    Returns None when they were judged here, else (torch gave no allowlist) every global the pickle names."""
    try:
        names = pickle_globals(data)
    except Exception as e:  # noqa: BLE001 - pickletools raises ValueError / struct.error / ... on junk
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt pickle "
                    f"({_first_line(e)})") from None
    allowed = _allowed_names(safe_globals)
    if allowed is None:
        return names
    foreign = [n for n in names if n not in allowed]
    if foreign:
        _refuse_code(path, error, foreign)
    return None


class _Stub:
    """Stand-in for every global of a replayed pickle: accepts any call / state / items, runs nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def add(self, value):
        pass


class _StorageType(_Stub):
    def __init__(self, name: str, itemsize: int | None):
        self.name, self.itemsize = name, itemsize


def _itemsize(name: str) -> int | None:

    if name == "UntypedStorage":
        return 1
    try:
        return torch.serialization._get_dtype_from_pickle_storage_type(name).itemsize
    except Exception:  # noqa: BLE001 - unknown storage type
        return None


class _SizeScanner(pickle.Unpickler):
    """Replays a torch pickle with stand-ins to collect the storages it declares: key -> (type, itemsize, numel)."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, tuple[str, int | None, int]] = {}
        self.conflicts: list[str] = []
        self._types: dict[str, _StorageType] = {}

    def find_class(self, module, name):
        if module in ("torch", "torch.cuda", "torch.storage") and name.endswith("Storage"):
            if name not in self._types:
                if len(self._types) > 64:
                    raise pickle.UnpicklingError("more than 64 storage types")
                self._types[name] = _StorageType(name, _itemsize(name))
            return self._types[name]
        return _Stub          # one class for every name: nothing of the file's is imported or called

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            stype, key, numel = pid[1], str(pid[2]), pid[4]
            if not isinstance(stype, _StorageType):
                raise pickle.UnpicklingError(f"storage {key} has no storage type")
            if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
                raise pickle.UnpicklingError(f"storage {key} declares {numel!r} elements")
            entry = (stype.name, stype.itemsize, numel)
            old = self.storages.setdefault(key, entry)
            if old != entry:
                self.conflicts.append(key)
        return _Stub()


def _declared_storages(f, path, error) -> tuple[dict, _SizeScanner]:
    scanner = _SizeScanner(f)
    try:
        scanner.load()
    except Exception as e:  # noqa: BLE001 - junk pickles raise many types
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt pickle "
                    f"({_first_line(e)})") from None
    if scanner.conflicts:
        raise error(f"{path}: refused: its pickle declares storage {scanner.conflicts[0]} twice with different "
                    "types or sizes")
    for key, (stype, itemsize, _numel) in scanner.storages.items():
        if itemsize is None:
            raise error(f"{path}: cannot be read as a torch checkpoint: storage {_shown(key)} has unknown type "
                        f"{_shown(stype)}")
    return scanner.storages, scanner


def _check_zip_storages(data: bytes, prefix: str, records: dict, path, error) -> None:
    storages, _ = _declared_storages(io.BytesIO(data), path, error)
    for key, (stype, itemsize, numel) in storages.items():
        name = f"{prefix}data/{key}"
        info = records.get(name)
        name = _shown(name)
        if info is None:
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt (its pickle refers to "
                        f"storage record {name}, which the archive lacks)")
        want = numel * itemsize
        if want > info.file_size:
            raise error(f"{path}: refused: its pickle declares storage {name} of {numel} x {itemsize} = {want} "
                        f"bytes, but the record holds {info.file_size}")


# ------------------------------------------------------------------------------------------- legacy format
def _check_legacy(f, size: int, path, error, safe_globals) -> list[str] | None:
    head = f.read(min(size, MAX_PICKLE_BYTES))
    buf = io.BytesIO(head)

    def small(what):
        try:
            return _SizeScanner(buf).load()
        except Exception as e:  # noqa: BLE001
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt legacy file "
                        f"({what}: {_first_line(e)})") from None

    if small("header") != _LEGACY_MAGIC or small("protocol") != _LEGACY_PROTOCOL:
        raise error(f"{path}: cannot be read as a torch checkpoint: a pickle, but not one torch.save wrote "
                    "(no torch magic number)")
    small("system info")
    start = buf.tell()
    # find the main pickle's end without building it, then scan its globals before replaying it
    try:
        for op, _arg, pos in pickletools.genops(buf):
            end = pos
        end += 1
    except Exception as e:  # noqa: BLE001
        if len(head) >= MAX_PICKLE_BYTES:
            raise error(f"{path}: refused: its pickle is longer than {MAX_PICKLE_BYTES} bytes, more than a "
                        "checkpoint needs") from None
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt legacy file "
                    f"({_first_line(e)})") from None
    main = head[start:end]
    names = _check_globals(main, path, error, safe_globals)
    storages, _ = _declared_storages(io.BytesIO(main), path, error)
    buf.seek(end)
    keys = small("storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise error(f"{path}: cannot be read as a torch checkpoint: corrupt legacy file (bad storage key list)")
    pos, cap = buf.tell(), max_checkpoint_bytes()
    unknown = [k for k in keys if k not in storages]
    if unknown or len(set(keys)) != len(keys):
        raise error(f"{path}: cannot be read as a torch checkpoint: corrupt legacy file (storage key list does not "
                    "match its pickle)")
    total = sum(storages[k][1] * storages[k][2] for k in keys)
    if total > cap:
        raise error(f"{path}: refused: its storages declare {_gib(total)}, more than the cap of {_gib(cap)} (set "
                    f"{CAP_ENV} to raise it for a checkpoint you trust)")
    if total + 8 * len(keys) > size - pos:
        raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt (its pickle declares "
                    f"storages of {total} bytes, more than the file holds after it: {size - pos} bytes)")
    for key in keys:
        _stype, itemsize, numel = storages[key]
        if pos + 8 > size:
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated (storage {_shown(key)} starts "
                        "past the end of the file)")
        f.seek(pos)
        (in_file,) = struct.unpack("<q", f.read(8))
        if in_file != numel:
            raise error(f"{path}: refused: its pickle declares storage {_shown(key)} of {numel} elements, its record "
                        f"{in_file}")
        pos += 8 + numel * itemsize
        if pos > size:
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated (storage {_shown(key)} of "
                        f"{numel * itemsize} bytes ends past the end of the file, {size} bytes)")
    missing = set(storages) - set(keys)
    if missing:
        raise error(f"{path}: cannot be read as a torch checkpoint: corrupt legacy file (storages "
                    f"{[_shown(k) for k in sorted(missing)[:3]]} have no record)")
    return names


# ------------------------------------------------------------------------------------------------- loading
def check_torch_file(f, path, error=TorchFileError,
                     safe_globals: Iterable = ()) -> tuple[str, list[str] | None]:
    """Run every check of the module doc on the open file ``f``; -> ("zip" or "legacy", the pickle's globals
    when torch gave no allowlist to judge them by, else None)."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise error(f"{path}: empty file (0 bytes), not a checkpoint")
    f.seek(0)
    head = f.read(4)
    f.seek(0)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        arc = check_zip_archive(f, path, error)
        z, prefix, records = arc["zip"], arc["prefix"], arc["records"]
        info = records.get(prefix + "data.pkl")
        if info is None:
            raise error(f"{path}: cannot be read as a torch checkpoint: a zip archive without {prefix}data.pkl "
                        "(not a torch.save file)")
        if info.file_size > MAX_PICKLE_BYTES:
            raise error(f"{path}: refused: {info.filename} is {info.file_size} bytes, more than a checkpoint's "
                        f"pickle needs (at most {MAX_PICKLE_BYTES})")
        try:
            data = z.read(info)        # at most the declared size: checked above
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as e:
            raise error(f"{path}: cannot be read as a torch checkpoint: truncated or corrupt zip archive "
                        f"({_first_line(e)})") from None
        names = _check_globals(data, path, error, safe_globals)
        _check_zip_storages(data, prefix, records, path, error)
        f.seek(0)
        return "zip", names
    if head[:1] == b"\x80":
        names = _check_legacy(f, size, path, error, safe_globals)
        f.seek(0)
        return "legacy", names
    raise error(f"{path}: cannot be read as a torch checkpoint: neither a torch.save zip nor a legacy torch pickle "
                f"(starts with {head!r})")


_DATA_GLOBALS = ("torch.", "collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.bytearray",
                 "builtins.complex", "_codecs.encode")


def _load_error(e: BaseException, names: list[str] | None, path, error):

    text = str(e)
    if "weights_only" in text or "Unsupported global" in text or "Weights only load failed" in text:
        code = [n for n in names or () if not n.startswith(_DATA_GLOBALS)]
        if code:
            _refuse_code(path, error, code)
        reason = text.split("WeightsUnpickler error:", 1)[1].strip() if "WeightsUnpickler error:" in text else ""
        reason = reason.splitlines()[0][:200] if reason else ""
        reason = re.sub(r",? ?(or types )?allowlisted via `[^`]*`", "", reason)
        if "weights_only" in reason or "safe_globals" in reason:     # torch's advice is never relayed
            reason = ""
        raise error(f"{path}: refused: its pickle holds objects other than tensors and plain values"
                    + (f" ({reason})" if reason else "") + "; it was not loaded") from None
    raise error(f"{path}: cannot be read as a torch checkpoint (truncated or corrupt?): "
                f"{type(e).__name__}: {_first_line(e)}") from None


def load_torch_file(path: str | os.PathLike, *, error=TorchFileError, safe_globals: Iterable = (),
                    map_location="cpu", mmap: bool = False):
    """``torch.load(path, weights_only=True)`` after the bounded checks of the module doc.

    ``error``: the exception class to raise (the caller's ``SlsdkError`` subclass), always one line naming the
    file. ``safe_globals``: extra globals allowed as in ``torch.serialization.safe_globals``. ``mmap``: map the
    storages instead of reading them (zip files only).
    """

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise error(f"{p}: is a folder, not a checkpoint file")
    safe_globals = list(safe_globals)
    with open(p, "rb") as f:
        kind, names = check_torch_file(f, p, error, safe_globals)
        if mmap and kind != "zip":
            raise error(f"{p}: cannot be memory-mapped: a legacy (non-zip) torch.save file")
        try:
            with torch.serialization.safe_globals(safe_globals):
                if mmap:
                    return torch.load(p, map_location=map_location, weights_only=True, mmap=True)
                f.seek(0)
                return torch.load(f, map_location=map_location, weights_only=True)
        except error:
            raise
        except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError / EOFError ...
            _load_error(e, names, p, error)
