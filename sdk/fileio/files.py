"""Atomic files: written to a temp name beside the target, synced, recorded in the ledger, renamed; logs
appended to; files removed (only those slsdk proves it wrote) and a failed command's output discarded."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import IO, Callable, Iterator

from slsdk.fileio.leftovers import clean_stale
from slsdk.fileio.ledger import _entry, _read_ledger, _record, _remember, _written_here, is_ours
from slsdk.fileio.rule import _check_not_input, _check_target
from slsdk.fileio.state import LEDGER, Owned, _point, _staged, _temp_name, _umask, _written, fsync_dir
from slsdk.fileio.write_errors import OutputExistsError, WriteError, _Guard, _raise_write_error


def _commit_file(tmp: Path, path: Path, fsync: bool) -> None:
    """Give the written temp file the user's permissions (``0o666 & ~umask``, as any file they make: some writers
    make theirs 0600), record it in the ledger and rename it onto ``path``; every atomic file write ends here."""
    os.chmod(tmp, 0o666 & ~_umask())
    if not _staged(path.parent):
        _record(path.parent, {path.name: _entry(tmp)})      # before the rename: a kill after it still proves it
    _point("before-rename", path)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)
    _remember(path)
    _point("after-rename", path)


def _check_writable(path: Path, overwrite: bool, owned: Owned | None) -> None:
    """Check that the file ``path`` may be written (the rule); a system error checking it names the file."""
    try:
        _check_target(path, overwrite, owned)
    except OutputExistsError:
        raise
    except OSError as e:
        _raise_write_error(path, e)


def _start_write(path: Path, overwrite: bool, owned: Owned | None) -> Path:
    """Check that ``path`` may be written (the rule), clear slsdk's leftovers for it; its temp name."""
    _check_writable(path, overwrite, owned)
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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    _check_writable(path, overwrite, owned)
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
