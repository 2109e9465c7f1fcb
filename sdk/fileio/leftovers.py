"""Leftovers of killed runs: only names slsdk makes (a PID and a random token) whose process is gone, a folder
only with slsdk's owner mark; a folder a killed overwrite parked goes back to its place."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from slsdk.fileio.state import OLD_SUFFIX, OWNER_FILE, SCRATCH_PREFIX, _alive, _notice


_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.slsdk-tmp|\.slsdk-old)"
                   r"(?:\.[A-Za-z0-9]{1,8})?$")
_SCRATCH = re.compile(rf"^{SCRATCH_PREFIX}-(?P<pid>\d+)-[0-9a-f]{{8}}$")


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
