"""Atomic folders (:func:`atomic_dir`: built beside the target, then exchanged in one step) and scratch folders
(:func:`temp_dir`), both marked as slsdk's so a later run may remove what a killed one left."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Iterator

from slsdk.errors import SlsdkError
from slsdk.fileio.leftovers import clean_stale
from slsdk.fileio.rule import _check_not_input
from slsdk.fileio.state import (OLD_SUFFIX, OWNER_FILE, SCRATCH_PREFIX, TEMP_SUFFIX, _point, _staging, _temp_name, _token,
                                _umask, fsync_dir)
from slsdk.fileio.write_errors import OutputExistsError, _raise_write_error


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
