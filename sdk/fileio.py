"""The one way slsdk writes and deletes files: nothing the user has is ever lost.

The rule (README, "Your files are safe"), enforced here and only here (a test fails on any direct write or
deletion elsewhere in the package):

* slsdk writes a **new** path. It replaces a path only when it can prove that it wrote what is there, and
  only when asked (``overwrite=True``: ``--overwrite`` / ``--resume``), or when this very process wrote it.
  Proof is by content, never by name: the **ledger** ``.slsdk-files.jsonl`` in the folder records the size and
  SHA-256 of every file slsdk wrote there (a file whose bytes changed since is the user's), or an ``owned``
  check the caller passes (a checkpoint or bundle recognised by what it holds).
* It never writes onto one of the command's inputs (:func:`reading` declares them), never replaces a
  symbolic link, never replaces a folder with a file or a file with a folder.
* Every write goes to a temp name beside the target (``.NAME.PID-TOKEN.slsdk-tmp``), is synced, then
  renamed: a kill at any point leaves the old output or the new one. A folder is replaced by an atomic
  exchange (``renameat2(RENAME_EXCHANGE)`` on Linux); where that is missing, a kill between the two renames
  leaves the old folder parked beside the target, and the next write there puts it back.
* One run per output at a time: :func:`output_lock` takes an exclusive lock (``.NAME.slsdk-lock`` beside
  the output, holding the PID); a second run is refused naming the holder; a dead holder's lock is taken
  over, and said so.
* Leftovers: only names this module makes (its prefix, a PID and a random token) whose process is gone are
  removed, and a folder only when it holds the owner mark this module wrote into it. Nothing else is ever
  removed, and nothing recursively outside slsdk's own temp folders.
* A full disk raises :class:`DiskFullError` naming the file and the free space, the old file untouched.

Standard library only (the runtime writes without torch). :func:`set_write_hook` lets tests observe or kill
the process at each write point (``hook(point, path)``).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from slsdk.errors import SlsdkError

try:
    import fcntl
except ImportError:  # Windows: locks fall back to exclusive creation
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriteError", "DiskFullError", "OutputExistsError", "OutputLockedError",
           "atomic_write", "atomic_write_text", "atomic_copy", "atomic_path", "append_text", "atomic_dir",
           "remove", "output_lock", "reading", "is_ours", "check_output", "check_replace", "temp_dir", "TempDir", "clean_stale", "fsync_dir",
           "set_write_hook", "discard", "sha256_file", "TEMP_SUFFIX", "LEDGER"]

TEMP_SUFFIX = ".slsdk-tmp"
OLD_SUFFIX = ".slsdk-old"
LOCK_SUFFIX = ".slsdk-lock"
LEDGER = ".slsdk-files.jsonl"         # per folder: a line {"name", "bytes", "sha256"} per file slsdk wrote there
OWNER_FILE = ".slsdk-owner"           # inside every temp folder slsdk makes: proves it is slsdk's
SCRATCH_PREFIX = "slsdk-bundle"

Owned = Callable[[Path], bool]
_hook: Callable[[str, Path], None] | None = None
_mutex = threading.RLock()
_written: dict[Path, tuple[int, int]] = {}      # files this process wrote -> (st_dev, st_ino)
_inputs: list[Path] = []                         # the running command's inputs (resolved)
_locks: dict[Path, list] = {}                    # output -> [fd, lock file, depth, overwrite]
_staging: set[Path] = set()                      # folders being built (atomic_dir, scratch): no ledger inside


class WriteError(SlsdkError, OSError):
    """A file or folder could not be written (the message names it and says what to do)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class DiskFullError(WriteError):
    """No space left on the device holding the file being written."""


class OutputExistsError(SlsdkError, FileExistsError):
    """The output exists and slsdk may not replace it (not its own, an input, or ``--overwrite`` not given)."""


class OutputLockedError(SlsdkError):
    """Another slsdk process is writing the same output."""


def set_write_hook(hook: Callable[[str, Path], None] | None) -> None:
    """Call ``hook(point, path)`` at every write point (tests: count them, or ``os._exit`` at the Nth)."""
    global _hook
    _hook = hook


def _point(point: str, path: Path) -> None:
    if _hook is not None:
        _hook(point, path)


def _notice(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ names
def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _temp_name(target: Path, suffix: str = TEMP_SUFFIX) -> Path:
    return target.with_name(f".{target.name}.{_token()}{suffix}")


_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.slsdk-tmp|\.slsdk-old)"
                   r"(?:\.[A-Za-z0-9]{1,8})?$")
_SCRATCH = re.compile(rf"^{SCRATCH_PREFIX}-(?P<pid>\d+)-[0-9a-f]{{8}}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True      # exists (another user's) or cannot tell: keep it
    return True


def _is_our_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and (p / OWNER_FILE).is_file()


def _remove_ours(p: Path) -> bool:
    """Remove a temp file or an owner-marked temp folder of slsdk's (nothing else)."""
    try:
        if _is_our_dir(p):
            shutil.rmtree(p)
        elif p.is_file() or p.is_symlink():
            p.unlink()
        else:
            return False
        return True
    except OSError:
        return False


def _restore_parked(container: Path, target: Path) -> bool:
    """A folder parked by an overwrite that was killed between its renames goes back to its place."""
    parked = container / "b"
    if target.exists() or target.is_symlink() or not parked.is_dir():
        return False
    try:
        os.rename(parked, target)
    except OSError:
        return False
    _notice(f"{target}: put back the previous version, which a killed overwrite had left beside it")
    return True


def clean_stale(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove slsdk's own leftovers in ``directory`` (only those for the output ``name``, when given).

    Leftovers are names this module makes (``.NAME.PID-TOKEN.slsdk-tmp|.slsdk-old``, ``PREFIX-PID-TOKEN``
    scratch folders) whose process is gone; a folder must also hold the owner mark. A folder parked by a
    killed overwrite is put back when its target is missing. Returns what was removed.
    """
    d = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(d))
    except OSError:
        return removed
    for e in entries:
        p = Path(e.path)
        m = _OURS.match(e.name)
        if m:
            if (name is None or m["name"] == name) and not _alive(int(m["pid"])):
                if m["suffix"] == OLD_SUFFIX and _is_our_dir(p):
                    _restore_parked(p, d / m["name"])
                if _remove_ours(p):
                    removed.append(p)
            continue
        if name is None or not name.startswith("."):
            pattern = _SCRATCH if name is None else re.compile(rf"^{re.escape(name)}-(?P<pid>\d+)-[0-9a-f]{{8}}$")
            m = pattern.match(e.name)
            if m and not _alive(int(m["pid"])) and _is_our_dir(p) and _remove_ours(p):
                removed.append(p)
    return removed


# ------------------------------------------------------------------------------------------------ errors
def _free_bytes(d: Path) -> int | None:
    try:
        return shutil.disk_usage(d).free
    except OSError:
        return None


def _is_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _raise_write_error(path: Path, exc: BaseException, recorded: BaseException | None = None) -> None:
    if isinstance(exc, SlsdkError):
        raise exc
    if _is_disk_full(recorded) or _is_disk_full(exc):
        free = _free_bytes(path.parent)
        raise DiskFullError(errno.ENOSPC, f"{path}: no space left on device (ENOSPC"
                            + (f", {free} bytes free" if free is not None else "") + f" in {path.parent}); "
                            "free some space or write to another folder; any previous version of the file is "
                            "untouched") from None
    if isinstance(exc, PermissionError):
        raise WriteError(exc.errno, f"{path}: permission denied ({exc.strerror}); choose a folder you can "
                         "write to") from None
    if isinstance(exc, OSError):
        raise WriteError(exc.errno, f"{path}: cannot write ({exc.strerror or exc}); check the folder "
                         f"{path.parent}") from None
    raise exc


class _Guard:
    """A binary file wrapper that remembers the first OSError of a write (torch hides it behind RuntimeError)."""

    def __init__(self, f: IO[bytes]):
        self._f = f
        self.error: OSError | None = None

    def write(self, b) -> int:
        try:
            return self._f.write(b)
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


# ------------------------------------------------------------------------------------------------ the ledger
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


# ------------------------------------------------------------------------------------------------ inputs
@contextlib.contextmanager
def reading(*paths: str | os.PathLike | None) -> Iterator[None]:
    """Declare the running command's inputs: nothing is written onto them, nor replaced inside them."""
    added = [Path(p).resolve() for p in paths if p is not None and os.fspath(p) != ""]
    _inputs.extend(added)
    try:
        yield
    finally:
        for p in added:
            _inputs.remove(p)


def _check_not_input(path: Path, replacing: bool) -> None:
    r = path.resolve()
    for i in _inputs:
        if r == i:
            raise OutputExistsError(f"{path}: is one of this command's inputs; slsdk never writes onto its input: "
                                    "choose another output")
        if i.is_relative_to(r):       # (a new path cannot hold anything: this refuses only existing ones)
            raise OutputExistsError(f"{path}: holds this command's input {i}; slsdk never writes its output over "
                                    "its input: choose another output")
        if replacing and r.is_relative_to(i) and i.is_dir():
            raise OutputExistsError(f"{path}: lies inside this command's input {i}; slsdk never replaces files "
                                    "there: choose an output outside it")


def check_output(path: str | os.PathLike) -> None:
    """Refuse an output that is one of the command's inputs or holds one (before any work is done)."""
    _check_not_input(Path(path), replacing=False)


def check_replace(path: str | os.PathLike, *, overwrite: bool = False, owned: Owned | None = None) -> None:
    """Raise :class:`OutputExistsError` now if writing the file ``path`` later would be refused (check every
    output of a command before its work, so nothing is half-written)."""
    _check_target(Path(path), overwrite, owned)


def _check_target(path: Path, overwrite: bool, owned: Owned | None) -> None:
    """Whether ``path`` may be written as a file now (raises :class:`OutputExistsError` if not)."""
    if path.is_symlink():
        raise OutputExistsError(f"{path}: is a symbolic link; slsdk never replaces links: choose another output")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; give a file name (slsdk does not replace folders with files)")
    exists = path.exists()
    _check_not_input(path, exists)
    if exists and not _written_here(path):
        if not is_ours(path, owned):
            raise OutputExistsError(f"{path}: exists and slsdk did not write it; slsdk never replaces it: move it "
                                    "away or choose another output")
        if not (overwrite or _granted(path)):
            raise OutputExistsError(f"{path}: already exists (written by slsdk earlier); pass --overwrite "
                                    "(overwrite=True) to replace it, or choose another output")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise OutputExistsError(f"{path.parent}: is a file, not a folder; choose another output path")


# ------------------------------------------------------------------------------------------------ files
def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in ``directory`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    with _mutex:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _staged(directory: Path) -> bool:
    return any(directory.resolve().is_relative_to(s) for s in _staging)


def _commit_file(tmp: Path, path: Path, fsync: bool) -> None:
    if not _staged(path.parent):
        _record(path.parent, {path.name: _entry(tmp)})      # before the rename: a kill after it still proves it
    _point("before-rename", path)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)
    _remember(path)
    _point("after-rename", path)


def _start_write(path: Path, overwrite: bool, owned: Owned | None) -> Path:
    """Check that ``path`` may be written (the rule), clear slsdk's leftovers for it; its temp name."""
    try:
        _check_target(path, overwrite, owned)
    except OutputExistsError:
        raise
    except OSError as e:
        _raise_write_error(path, e)
    clean_stale(path.parent, path.name)
    return _temp_name(path)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object] | bytes, *,
                 fsync: bool = True, overwrite: bool = False, owned: Owned | None = None) -> Path:
    """Write ``path`` atomically: ``write(f)`` (or the bytes) into a temp file beside it, then rename.

    ``path`` may exist only if this process wrote it, or slsdk can prove it wrote it (ledger, or ``owned``)
    and ``overwrite`` is set. ``fsync``: sync the file and its folder (checkpoints, manifests, model files).
    Errors name the file; a full disk raises :class:`DiskFullError`.
    """
    path = Path(path)
    tmp = _start_write(path, overwrite, owned)
    guard = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            guard = _Guard(f)
            if isinstance(write, (bytes, bytearray, memoryview)):
                guard.write(write)
            else:
                write(guard)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        _commit_file(tmp, path, fsync)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, Exception):
            _raise_write_error(path, e, guard.error if guard else None)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False,
                      overwrite: bool = False, owned: Owned | None = None) -> Path:
    """:func:`atomic_write` of a text (JSON, CSV, logs)."""
    return atomic_write(path, text.encode(encoding), fsync=fsync, overwrite=overwrite, owned=owned)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, fsync: bool = True,
                overwrite: bool = False, owned: Owned | None = None) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    src = Path(src)

    def copy(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    return atomic_write(dst, copy, fsync=fsync, overwrite=overwrite, owned=owned)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True, overwrite: bool = False,
                owned: Owned | None = None, suffix: str = "") -> Iterator[Path]:
    """For writers that take a file name (``onnx.save``, ``savefig``, ``np.save``): ``with atomic_path(p) as
    tmp: save(tmp)``; then ``tmp`` becomes ``p`` by the rules of :func:`atomic_write`. ``suffix`` is kept at
    the end of the temp name for writers that choose the format by it (``.png``, ``.npy``)."""
    path = Path(path)
    tmp = _start_write(path, overwrite, owned)
    tmp = tmp.with_name(tmp.name + suffix)      # writers that pick the format by the suffix see it last
    try:
        yield tmp
        if not tmp.is_file():
            raise WriteError(errno.ENOENT, f"{path}: the writer produced no file")
        os.chmod(tmp, 0o666 & ~_umask())      # as any file the user makes (some writers make theirs 0600)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _commit_file(tmp, path, fsync)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, Exception):
            _raise_write_error(path, e)
        raise


def append_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", overwrite: bool = False,
                owned: Owned | None = None) -> Path:
    """Append to a log (``metrics.jsonl``) slsdk wrote; a kill may cut the last line, which the writer's next
    run rewrites. A log slsdk cannot prove it wrote is never appended to."""
    path = Path(path)
    try:
        _check_target(path, overwrite, owned)
    except OutputExistsError:
        raise
    except OSError as e:
        _raise_write_error(path, e)
    if path.is_file():
        _record(path.parent, {path.name: _entry(path, log=True)})   # what is there now: a cut append keeps it ours
    _point("before-append", path)
    try:
        with open(path, "a", encoding=encoding) as f:
            f.write(text)
    except OSError as e:
        _raise_write_error(path, e)
    _remember(path)
    _record(path.parent, {path.name: _entry(path, log=True)})
    _point("after-append", path)
    return path


def remove(path: str | os.PathLike, *, owned: Owned | None = None) -> bool:
    """Delete the file ``path`` if slsdk can prove it wrote it (see :func:`is_ours`); never a folder, a link or
    a file slsdk did not write (:class:`OutputExistsError`). Returns whether something was removed."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return False
    if p.is_symlink() or not p.is_file():
        raise OutputExistsError(f"{p}: is not a file slsdk wrote; slsdk does not remove it")
    _check_not_input(p, True)
    if not is_ours(p, owned):
        raise OutputExistsError(f"{p}: slsdk did not write it; slsdk does not remove it: move it away yourself")
    try:
        p.unlink()
    except OSError as e:
        _raise_write_error(p, e)
    _written.pop(p.resolve(), None)
    _record(p.parent, {p.name: None})
    return True


def discard(folder: str | os.PathLike) -> None:
    """Undo a failed command's output: remove the files this process wrote under ``folder`` (nothing else), then
    the folder's ledger and the folder itself if nothing else is left there."""
    root = Path(folder).absolute()
    mine = [p for p in list(_written) if p.is_relative_to(root.resolve())]
    for p in mine:
        if _written_here(p):
            with contextlib.suppress(OSError):
                p.unlink()
        _written.pop(p, None)
    for d in sorted({p.parent for p in mine} | {root.resolve()}, key=lambda d: len(d.parts), reverse=True):
        led = d / LEDGER
        with contextlib.suppress(OSError):
            files = _read_ledger(d)
            if all(not (d / n).exists() for n in files) and led.is_file() and not led.is_symlink():
                led.unlink()
            if d.is_relative_to(root.resolve()) and not any(d.iterdir()):
                d.rmdir()


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(dirpath, fn), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(dirpath)


def _make_container(target: Path, suffix: str) -> Path:
    c = _temp_name(target, suffix)
    c.mkdir()
    with open(c / OWNER_FILE, "w", encoding="utf-8") as f:
        f.write(f"slsdk temporary folder of process {os.getpid()} for {target.name}\n")
    return c


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False          # the file system cannot exchange: fall back to two renames
    raise OSError(e, os.strerror(e), str(b))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Build a folder atomically: ``with atomic_dir(p) as tmp: <write into tmp>``; then ``tmp`` becomes ``p``.

    ``p`` must not exist, or be an empty folder, or (``replace=True``) be a folder the caller has proven is
    its own kind and holds nothing else (e.g. an slsdk bundle whose manifest lists every file): the two are
    exchanged atomically and the old one removed. Never a symbolic link or an input. On an error nothing is
    left behind; after a kill the next call removes the temp folders (and puts a parked folder back).
    """
    path = Path(path)
    if path.is_symlink():
        raise OutputExistsError(f"{path}: is a symbolic link; slsdk never replaces links: choose another output")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder; choose another output path")
    _check_not_input(path, path.exists())
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, path.name)
    container = _make_container(path, TEMP_SUFFIX)
    work = container / "b"
    work.mkdir()
    _staging.add(container.resolve())
    try:
        yield work
        os.chmod(work, 0o777 & ~_umask())
        if fsync:
            _fsync_tree(work)
        _point("before-rename", path)
        if path.exists():
            if not replace and any(path.iterdir()):
                raise OutputExistsError(f"{path}: exists and is not empty; nothing was written")
            if not replace:
                path.rmdir()          # an empty folder: nothing is lost
                os.replace(work, path)
            elif _exchange(work, path):
                pass                  # ``work`` now holds the old folder, removed with the container
            else:
                old = _make_container(path, OLD_SUFFIX)
                os.replace(path, old / "b")
                _point("between-renames", path)
                os.replace(work, path)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, path)
        if fsync:
            fsync_dir(path.parent)
        _point("after-rename", path)
    except BaseException as e:
        shutil.rmtree(container, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, SlsdkError):
            _raise_write_error(path, e)
        raise
    finally:
        _staging.discard(container.resolve())
    shutil.rmtree(container, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ locks
def _granted(path: Path) -> bool:
    """Whether a held :func:`output_lock` with ``overwrite=True`` covers ``path``."""
    p = path.absolute()
    with _mutex:
        return any(held[3] and (p == out or p.is_relative_to(out)) for out, held in _locks.items())


def _lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}{LOCK_SUFFIX}")


def _holder(lock: Path) -> tuple[int | None, str]:
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")[:4096]
        pid, _, what = text.partition("\n")
        return int(pid), what.strip()
    except (OSError, ValueError):
        return None, ""


def _locked_elsewhere(output: Path, lock: Path) -> OutputLockedError:
    pid, what = _holder(lock)
    who = f"slsdk process {pid}" + (f" ({what})" if what else "") if pid else "another slsdk process"
    return OutputLockedError(f"{output}: in use by {who}; wait for it to finish or choose another output "
                             f"(lock file {lock})")


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``output`` (a file or folder) while writing it; reentrant in one process.

    A second run into it is refused with :class:`OutputLockedError` naming the holder's PID; a lock left by
    a process that is gone is taken over and said so. ``overwrite=True`` (``--overwrite``, ``--resume``)
    lets the writes under ``output`` replace files slsdk proves it wrote, as ``overwrite=True`` on each would.
    """
    out = Path(output).absolute()
    with _mutex:
        held = _locks.get(out)
        if held is not None:
            held[2] += 1
            was, held[3] = held[3], held[3] or overwrite
    if held is not None:
        try:
            yield out
        finally:
            with _mutex:
                held[2] -= 1
                held[3] = was
        return
    made = [d for d in [out.parent, *out.parent.parents] if not d.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(out)
    if lock.is_symlink():
        raise OutputExistsError(f"{lock}: is a symbolic link where slsdk keeps its lock; remove it")
    try:
        fd = _acquire(out, lock)
    except BaseException:
        for d in made:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    with _mutex:
        _locks[out] = [fd, lock, 1, overwrite]
    try:
        yield out
    finally:
        with _mutex:
            del _locks[out]
        with contextlib.suppress(OSError):
            os.unlink(lock)       # still held: a racing opener re-checks the inode and retries
        os.close(fd)
        for d in made:            # folders made only to hold the lock (a refused run): not left behind
            with contextlib.suppress(OSError):
                d.rmdir()


def _acquire(out: Path, lock: Path) -> int:
    what = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv[:6]))[:200]
    for _ in range(50):
        if fcntl is None:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid, _ = _holder(lock)
                if pid is not None and not _alive(pid):
                    with contextlib.suppress(OSError):
                        os.unlink(lock)
                    _notice(f"{out}: took over the lock of slsdk process {pid}, which is gone")
                    continue
                raise _locked_elsewhere(out, lock) from None
            prev = None
        else:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise _locked_elsewhere(out, lock) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:       # the holder removed it as we opened it: try again on the new file
                os.close(fd)
                continue
            prev, _ = _holder(lock)
            if prev is not None and prev != os.getpid():
                _notice(f"{out}: took over the lock of slsdk process {prev}, which is gone")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{what}\n".encode(), 0)
        return fd
    raise OutputLockedError(f"{out}: could not take the lock {lock}; try again")


# ------------------------------------------------------------------------------------------------ scratch
class TempDir:
    """A scratch folder removed by :meth:`cleanup`, at garbage collection or exit, or by the next run."""

    def __init__(self, prefix: str = SCRATCH_PREFIX, dir: str | os.PathLike | None = None):
        base = Path(dir) if dir is not None else Path(tempfile.gettempdir())
        clean_stale(base, prefix)
        self.path = base / f"{prefix}-{_token()}"
        self.path.mkdir(mode=0o700)
        with open(self.path / OWNER_FILE, "w", encoding="utf-8") as f:
            f.write(f"slsdk scratch folder of process {os.getpid()}\n")
        self.name = str(self.path)
        _staging.add(self.path.resolve())
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def cleanup(self) -> None:
        self._finalizer()

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.cleanup()


def temp_dir(prefix: str = SCRATCH_PREFIX, dir: str | os.PathLike | None = None) -> TempDir:
    """A :class:`TempDir` (``slsdk-bundle-PID-TOKEN`` under the system temp folder by default)."""
    return TempDir(prefix, dir)
