"""What the write modules share: the names slsdk gives its files, this process's record of its writes, inputs,
locks and folders being built, the test hook, and small helpers (temp names, liveness of a PID, folder sync)."""
from __future__ import annotations

import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows: locks fall back to exclusive creation
    fcntl = None  # type: ignore[assignment]


TEMP_SUFFIX = ".slsdk-tmp"
OLD_SUFFIX = ".slsdk-old"
LOCK_SUFFIX = ".slsdk-lock"
LEDGER = ".slsdk-files.jsonl"         # per folder: a line {"name", "bytes", "sha256"} per file slsdk wrote there
OWNER_FILE = ".slsdk-owner"           # inside every temp folder slsdk makes: proves it is slsdk's
SCRATCH_PREFIX = "slsdk-bundle"

Owned = Callable[[Path], bool]                   # a caller's content check (a checkpoint, a bundle)
_hook: Callable[[str, Path], None] | None = None
_mutex = threading.RLock()
_written: dict[Path, tuple[int, int]] = {}      # files this process wrote -> (st_dev, st_ino)
_inputs: list[Path] = []                         # the running command's inputs (resolved)
_locks: dict[Path, list] = {}                    # output -> [fd, lock file, depth, overwrite]
_staging: set[Path] = set()                      # folders being built (atomic_dir, scratch): no ledger inside


def set_write_hook(hook: Callable[[str, Path], None] | None) -> None:
    """Call ``hook(point, path)`` at every write point (tests: count them, or ``os._exit`` at the Nth)."""
    global _hook
    _hook = hook


def _point(point: str, path: Path) -> None:
    if _hook is not None:
        _hook(point, path)


def _notice(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _temp_name(target: Path, suffix: str = TEMP_SUFFIX) -> Path:
    return target.with_name(f".{target.name}.{_token()}{suffix}")


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


def _umask() -> int:
    with _mutex:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _staged(directory: Path) -> bool:
    return any(directory.resolve().is_relative_to(s) for s in _staging)


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


def forget_writes() -> None:
    """Forget which files this process wrote: replacing them then needs the ledger's proof, as in a later run."""
    _written.clear()
