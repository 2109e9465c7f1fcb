"""The errors of writing: what the caller did not allow (an output that exists, one in use) and what the system
refused (a full disk, no permission), each naming the file and what to do."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import IO

from slsdk.errors import SlsdkError


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
