"""The one way slsdk writes files: atomically, never over anything it did not create.

Rule (README, "Your files are safe"): slsdk never deletes or overwrites anything it did not create.

* :func:`atomic_write` / :func:`atomic_write_text` / :func:`atomic_copy`: the data goes into a temp file beside
  the target (``.NAME.PID-TOKEN.slsdk-tmp``), is flushed and (``fsync=True``) synced, then renamed over the
  target, and the folder is synced. A kill at any point leaves the old file or the new one, never a torn file.
* :func:`atomic_dir`: a folder (a bundle) is built in a temp container beside it and renamed into place; an
  existing folder is replaced only when ``replace=True`` (the caller checks that it is its own kind of folder).
* :func:`temp_dir`: a scratch folder (``slsdk-bundle-PID-TOKEN`` in the system temp folder) removed when it is
  no longer used, and by the next run if the process was killed.
* Leftovers of a killed run (temp files and folders named as above whose process is gone, and the older
  ``.NAME.XXXXXXXX.tmp`` / ``slsdk-bundle-XXXXXXXX`` names more than an hour old) are removed by the next write
  to the same place: :func:`clean_stale`. Nothing else is ever removed.
* A full disk raises :class:`DiskFullError` naming the file (and the free space), the old file untouched.

Standard library only (the runtime writes nothing with torch). Tests can call :func:`set_write_hook` to
observe or kill the process at each write point (``hook(point, path)``, point ``"before-rename"`` /
``"after-rename"``).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Callable, Iterator

from slsdk.errors import SlsdkError

__all__ = ["WriteError", "DiskFullError", "OutputExistsError", "atomic_write", "atomic_write_text", "atomic_copy",
           "append_text",
           "atomic_dir", "temp_dir", "TempDir", "clean_stale", "fsync_dir", "set_write_hook", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".slsdk-tmp"
OLD_SUFFIX = ".slsdk-old"
OWNER_FILE = ".slsdk-owner"          # inside every temp folder slsdk makes: proves it is slsdk's
LEGACY_AGE_S = 3600.0                # older slsdk temp names carry no pid: removed once this old
SCRATCH_PREFIX = "slsdk-bundle"

_hook: Callable[[str, Path], None] | None = None


class WriteError(SlsdkError, OSError):
    """A file or folder could not be written (the message names it and says what to do)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class DiskFullError(WriteError):
    """No space left on the device holding the file being written."""


class OutputExistsError(SlsdkError, FileExistsError):
    """The output already exists and is not something slsdk may replace (or ``--overwrite`` was not given)."""


def set_write_hook(hook: Callable[[str, Path], None] | None) -> None:
    """Call ``hook(point, path)`` at every write point (tests: count them, or ``os._exit`` at the Nth)."""
    global _hook
    _hook = hook


def _point(point: str, path: Path) -> None:
    if _hook is not None:
        _hook(point, path)


# ------------------------------------------------------------------------------------------------ names
def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _temp_name(target: Path, suffix: str = TEMP_SUFFIX) -> Path:
    return target.with_name(f".{target.name}.{_token()}{suffix}")


_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}(?:\.slsdk-tmp|\.slsdk-old)$")
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?:tmp|old)$")          # tempfile.mkstemp/mkdtemp names
_SCRATCH = re.compile(rf"^{SCRATCH_PREFIX}-(?P<pid>\d+)-[0-9a-f]{{8}}$")
_SCRATCH_LEGACY = re.compile(rf"^{SCRATCH_PREFIX}-[a-z0-9_]{{8}}$")        # tempfile.TemporaryDirectory names


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


def _old_enough(p: Path) -> bool:
    try:
        return time.time() - p.lstat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False


def _remove(p: Path) -> bool:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False


def _is_our_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and (p / OWNER_FILE).is_file()


def clean_stale(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove slsdk's own leftovers in ``directory`` (only those for the file ``name``, when given).

    Leftovers are temp files/folders named by this module whose process is gone (folders must also hold the
    owner mark), and the names older slsdk versions used (``.NAME.XXXXXXXX.tmp``, ``.NAME.XXXXXXXX.old``,
    ``.NAME.tmp``, ``slsdk-bundle-XXXXXXXX``) once they are an hour old. Returns what was removed.
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
        if m and (name is None or m["name"] == name):
            if not _alive(int(m["pid"])) and (p.is_file() or _is_our_dir(p)) and _remove(p):
                removed.append(p)
            continue
        m = _LEGACY.match(e.name)
        if (m and (name is None or m["name"] == name)) or (name is not None and e.name == f".{name}.tmp"):
            if _old_enough(p) and _remove(p):
                removed.append(p)
            continue
        if name is None or not name.startswith("."):
            pattern = _SCRATCH if name is None else re.compile(rf"^{re.escape(name)}-(?P<pid>\d+)-[0-9a-f]{{8}}$")
            m = pattern.match(e.name)
            if m:
                if not _alive(int(m["pid"])) and _is_our_dir(p) and _remove(p):
                    removed.append(p)
            elif (name in (None, SCRATCH_PREFIX) and _SCRATCH_LEGACY.match(e.name) and p.is_dir()
                  and _old_enough(p) and _remove(p)):
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
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_target(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        raise OutputExistsError(f"{path}: is a folder; give a file name (slsdk does not replace folders with files)")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise OutputExistsError(f"{path.parent}: is a file, not a folder; choose another output path")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object] | bytes, *,
                 fsync: bool = True) -> Path:
    """Write ``path`` atomically: ``write(f)`` (or the bytes) into a temp file beside it, then rename.

    ``fsync``: sync the file and its folder (checkpoints, manifests, model files); off for logs and plots that
    the next run rewrites anyway. Errors name the file; a full disk raises :class:`DiskFullError`.
    """
    path = Path(path)
    try:
        _check_target(path)
    except OSError as e:
        _raise_write_error(path, e)
    clean_stale(path.parent, path.name)
    tmp = _temp_name(path)
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
        _point("before-rename", path)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, Exception):
            _raise_write_error(path, e, guard.error if guard else None)
        raise
    if fsync:
        fsync_dir(path.parent)
    _point("after-rename", path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """:func:`atomic_write` of a text (JSON, CSV, logs)."""
    return atomic_write(path, text.encode(encoding), fsync=fsync)


def append_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Append to a log (``metrics.jsonl``); a kill may cut the last line, which the writer's next run rewrites."""
    path = Path(path)
    _point("before-append", path)
    try:
        with open(path, "a", encoding=encoding) as f:
            f.write(text)
    except OSError as e:
        _raise_write_error(path, e)
    _point("after-append", path)
    return path


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, fsync: bool = True) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    src = Path(src)

    def copy(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    return atomic_write(dst, copy, fsync=fsync)


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
    (c / OWNER_FILE).write_text(f"slsdk temporary folder of process {os.getpid()} for {target.name}\n")
    return c


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Build a folder atomically: ``with atomic_dir(p) as tmp: <write into tmp>``; then ``tmp`` becomes ``p``.

    ``p`` must not exist, or be an empty folder, or (``replace=True``) be a folder the caller has checked is its
    own kind (e.g. an slsdk bundle): it is swapped out and removed only after the new folder is in place. On an
    error nothing is left behind; after a kill the next call removes the temp folders.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, path.name)
    container = _make_container(path, TEMP_SUFFIX)
    work = container / "b"
    work.mkdir()
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
            else:
                old = _make_container(path, OLD_SUFFIX)
                os.replace(path, old / "b")
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
    shutil.rmtree(container, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ scratch
class TempDir:
    """A scratch folder removed by :meth:`cleanup`, at garbage collection or exit, or by the next run."""

    def __init__(self, prefix: str = SCRATCH_PREFIX, dir: str | os.PathLike | None = None):
        base = Path(dir) if dir is not None else Path(tempfile.gettempdir())
        clean_stale(base, prefix)
        self.path = base / f"{prefix}-{_token()}"
        self.path.mkdir(mode=0o700)
        (self.path / OWNER_FILE).write_text(f"slsdk scratch folder of process {os.getpid()}\n")
        self.name = str(self.path)
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
