"""One run per output: :func:`output_lock` (``.NAME.slsdk-lock`` beside the output, holding the PID)."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from slsdk.fileio.state import LOCK_SUFFIX, _alive, _locks, _mutex, _notice, fcntl
from slsdk.fileio.write_errors import OutputExistsError, OutputLockedError


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
