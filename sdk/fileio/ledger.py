"""Proof of ownership: the ledger ``.slsdk-files.jsonl`` (size and SHA-256 of each file slsdk wrote in a folder)
and this process's own record of what it wrote; :func:`is_ours` answers from both."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

from slsdk.fileio.state import LEDGER, Owned, _mutex, _staged, _temp_name, _written, fcntl


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (the ledger's, a bundle's and a data set's proof)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _folder_locked(directory: Path) -> Iterator[None]:
    """Serialise ledger updates of one folder between processes (flock on the folder itself)."""
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(directory, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with _mutex:
            yield
    finally:
        if fd is not None:
            os.close(fd)


_ledgers: dict[Path, tuple[tuple, dict]] = {}     # folder -> (the ledger's stat, name -> [entries, newest last])
MAX_LEDGER_BYTES = 64 << 20


def _read_ledger(directory: Path) -> dict[str, list[dict]]:
    """name -> the last two entries the ledger records for it (the newest last): appended lines, read once per
    change of the file (a cut last line, from a kill, is skipped)."""
    p = directory / LEDGER
    try:
        st = p.lstat()
        if not p.is_file() or p.is_symlink() or st.st_size > MAX_LEDGER_BYTES:
            return {}
    except OSError:
        return {}
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _ledgers.get(directory)
    if cached is not None and cached[0] == key:
        return cached[1]
    files: dict[str, list[dict]] = {}
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                    continue
                if e.get("removed"):
                    files.pop(e["name"], None)
                else:
                    files[e["name"]] = (files.get(e["name"], []) + [e])[-2:]
    except OSError:
        return {}
    _ledgers[directory] = (key, files)
    return files


def _entry(data: Path, log: bool = False) -> dict:
    st = data.stat()
    return {"bytes": st.st_size, "sha256": sha256_file(data), **({"log": True} if log else {})}


def _record(directory: Path, changes: dict[str, dict | None]) -> None:
    """Append to the ledger of ``directory``: name -> entry (the bytes slsdk wrote), or None (removed). The
    entry before stays valid, so a kill between the ledger line and the rename proves either file. One line
    per write (appended under a lock); the file is compacted when it holds far more lines than names."""
    if _staged(directory):
        return      # a folder being built (a bundle): its own manifest proves it, no ledger inside
    ledger = directory / LEDGER
    if ledger.is_symlink() or (ledger.exists() and not ledger.is_file()):
        return      # not ours to touch: ownership then rests on this process's own record
    lines = "".join(json.dumps({"name": n, **(e if e is not None else {"removed": True})}) + "\n"
                    for n, e in changes.items())
    with _folder_locked(directory):
        try:
            with open(ledger, "a", encoding="utf-8") as f:
                if f.tell() == 0:
                    f.write(json.dumps({"about": "files slsdk wrote in this folder: it replaces only these, and "
                                                 "only while their bytes are unchanged"}) + "\n")
                f.write(lines)
                size = f.tell()
        except OSError:
            return
        files = _read_ledger(directory)
        if size > 4096 and size > 8 * (1 + sum(len(json.dumps(e)) for v in files.values() for e in v)):
            tmp = _temp_name(ledger)
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(json.dumps({"about": "files slsdk wrote in this folder"}) + "\n")
                    f.write("".join(json.dumps({**e, "name": n}) + "\n" for n, v in files.items() for e in v))
                os.replace(tmp, ledger)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _matches(p: Path, entry) -> bool:
    """Whether the file ``p`` holds the bytes a ledger entry records (a log: starts with them)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int):
        return False
    size = p.stat().st_size
    if entry.get("log"):
        if size < entry["bytes"]:
            return False
        h = hashlib.sha256()
        with open(p, "rb") as f:
            left = entry["bytes"]
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    return False
                h.update(block)
                left -= len(block)
        return h.hexdigest() == entry.get("sha256")
    return size == entry["bytes"] and sha256_file(p) == entry.get("sha256")


def _remember(path: Path) -> None:
    with contextlib.suppress(OSError):
        st = path.stat()
        _written[path.resolve()] = (st.st_dev, st.st_ino)


def _written_here(path: Path) -> bool:
    try:
        st = path.stat()
        return _written.get(path.resolve()) == (st.st_dev, st.st_ino)
    except OSError:
        return False


def is_ours(path: str | os.PathLike, owned: Owned | None = None) -> bool:
    """Whether slsdk can prove it wrote the file ``path``: by this process, by the ledger (same bytes), or by
    ``owned(path)`` (a content check of the caller's)."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    if _written_here(p):
        return True
    try:
        if any(_matches(p, e) for e in _read_ledger(p.parent).get(p.name, ())):
            return True
    except OSError:
        return False
    return bool(owned is not None and owned(p))
