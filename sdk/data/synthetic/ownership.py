"""The proof that slsdk wrote a synthetic data set folder: the marker listing every file with its size and SHA-256,
and the rule for when a folder may be written into or replaced."""
from __future__ import annotations

import json
import os
from pathlib import Path

from slsdk import fileio


_MARK = ".slsdk-synthetic"   # the listing of every file of a data set slsdk data synth wrote (its proof of ownership)
_MARK_FORMAT = "slsdk-synthetic-files-1"


def _listing(root: Path) -> dict[str, dict]:
    """``relative path -> {"bytes", "sha256"}`` of every file under ``root`` (the marker itself excepted)."""
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if rel != _MARK:
                files[rel] = {"bytes": p.stat().st_size, "sha256": fileio.sha256_file(p)}
    return dict(sorted(files.items()))


def write_mark(root: Path) -> None:
    text = json.dumps({"format": _MARK_FORMAT, "about": "a synthetic data set written by slsdk data synth: "
                       "every file it wrote, with its size and SHA-256 (--overwrite replaces the set only "
                       "while it holds exactly these files, unchanged)", "files": _listing(root)}, indent=0)
    fileio.atomic_write_text(root / _MARK, text + "\n", fsync=False)


def _listed(out: Path) -> dict | None:
    """The files the marker of ``out`` lists (None: no marker with a listing, e.g. a set of an older slsdk)."""
    mark = out / _MARK
    try:
        if mark.is_symlink() or mark.stat().st_size > 256 << 20:
            return None
        d = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    listed = d.get("files") if isinstance(d, dict) and d.get("format") == _MARK_FORMAT else None
    return listed if isinstance(listed, dict) else None


def unproven_files(out: Path) -> list[str]:
    """Files under ``out`` that the marker does not prove slsdk data synth wrote (all of them when there is no
    listing); empty when the folder holds exactly the set slsdk wrote, unchanged."""
    listed = _listed(out) or {}
    bad = []
    for dirpath, dirs, names in os.walk(out):
        for n in [*names, *(x for x in dirs if (Path(dirpath) / x).is_symlink())]:
            p = Path(dirpath) / n
            rel = p.relative_to(out).as_posix()
            if rel == _MARK:
                continue
            entry = listed.get(rel)
            try:
                ok = (isinstance(entry, dict) and not p.is_symlink() and p.is_file()
                      and entry.get("bytes") == p.stat().st_size and entry.get("sha256") == fileio.sha256_file(p))
            except OSError:
                ok = False
            if not ok:
                bad.append(rel)
    return sorted(bad)


def claim_folder(out: Path, spec_path: Path, overwrite: bool) -> bool:
    """Whether ``out`` holds a synthetic data set of slsdk's to replace (False: ``out`` is new or empty).

    Refuses a folder holding anything but a synthetic data set slsdk wrote; another settings' set needs
    ``overwrite``, and is replaced only while it holds exactly the files slsdk wrote there, unchanged."""
    if out.is_symlink():
        raise fileio.OutputExistsError(f"{out}: is a symbolic link; slsdk never replaces links: choose another folder")
    if out.exists() and not out.is_dir():
        raise fileio.OutputExistsError(f"{out}: is a file, not a folder; choose a folder for the data set")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not names:
        return False
    try:
        ours = (out / _MARK).is_file() or json.loads(spec_path.read_text())["format"].startswith("slsdk-synthetic")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ours = False
    if not ours:
        raise fileio.OutputExistsError(f"{out}: holds another data set or other files ({', '.join(names[:5])}"
                                       f"{' ...' if len(names) > 5 else ''}); slsdk data synth writes only into a new or empty "
                                "folder or one it made before: choose another folder")
    if not overwrite:
        raise fileio.OutputExistsError(f"{out}: holds a synthetic data set made with other settings (or an unfinished "
                                "one); pass --overwrite to replace it, or choose another folder")
    if _listed(out) is None:
        raise fileio.OutputExistsError(f"{out}: holds a synthetic data set without the list of the files slsdk wrote "
                                f"there ({_MARK}; made by an older slsdk or unfinished), so slsdk cannot prove the "
                                "folder holds nothing else: delete it yourself, or choose another folder")
    bad = unproven_files(out)
    if bad:
        raise fileio.OutputExistsError(f"{out}: holds files slsdk data synth did not write or that changed since "
                                f"({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}); slsdk replaces the data "
                                "set only as it wrote it: move those files away (or the folder) or choose another "
                                "folder")
    return True
