"""The write rule's checks: a new path, or a file slsdk proves it wrote (and may replace); never a link, a folder
replaced by a file, or one of the command's inputs (:func:`reading` declares them)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from slsdk.fileio.ledger import _written_here, is_ours
from slsdk.fileio.locks import _granted
from slsdk.fileio.state import Owned, _inputs
from slsdk.fileio.write_errors import OutputExistsError


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
                                    "to replace it, or choose another output")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise OutputExistsError(f"{path.parent}: is a file, not a folder; choose another output path")
