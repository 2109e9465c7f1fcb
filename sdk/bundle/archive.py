"""Bundle zips: :func:`zip_bundle`, and the safe extraction ``load_bundle`` uses (zip-bomb guard: bounded
directory, sizes checked against the manifest before a byte is written and counted while inflating; only the
members the manifest lists are extracted). Standard library only."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from slsdk.bundle.checks import check_relpath
from slsdk.bundle.limits import FORMAT, LIMITS, MANIFEST_NAME, BundleError, short
from slsdk.bundle.manifest import Manifest, parse_manifest_bytes
from slsdk.fileio import OutputExistsError, WriteError, atomic_write

MAX_ZIP_BYTES = 4 << 30  # refuse zip bombs: 4 GiB uncompressed in all


def _walk_files(root: Path) -> list[Path]:
    """All regular files under root (sorted); refuses symlinks."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                raise BundleError(f"{os.path.join(dirpath, d)}: symlinks are not allowed in a bundle")
        for fn in filenames:
            p = Path(dirpath) / fn
            if p.is_symlink():
                raise BundleError(f"{p}: symlinks are not allowed in a bundle")
            out.append(p)
    return sorted(out)




def _is_bundle_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            top = [n for n in names if n == MANIFEST_NAME or n.endswith("/" + MANIFEST_NAME) and n.count("/") == 1]
            if not top or zf.getinfo(top[0]).file_size > LIMITS["manifest_bytes"]:
                return False
            return json.loads(zf.read(top[0]).decode("utf-8")).get("format") == FORMAT
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def _check_zip_target(zip_path: Path, overwrite: bool) -> None:
    if not zip_path.exists() and not zip_path.is_symlink():
        return
    if zip_path.is_file() and not zip_path.is_symlink() and _is_bundle_zip(zip_path):
        if overwrite:
            return
        raise OutputExistsError(f"{zip_path}: already holds a zipped slsdk bundle; pass --overwrite "
                                "to replace it")
    raise OutputExistsError(f"{zip_path}: exists and is not a zipped slsdk bundle; slsdk does not overwrite it: "
                            "move it away or choose another output folder")


def zip_bundle(bundle_dir: str | os.PathLike, zip_path: str | os.PathLike | None = None, *,
               overwrite: bool = False) -> Path:
    """Zip a bundle directory (files stored at the zip root) atomically; returns the zip path.

    An existing zip is replaced only when it is itself a zipped slsdk bundle and ``overwrite`` is set.
    """
    bundle_dir = Path(bundle_dir)
    zip_path = Path(zip_path) if zip_path else bundle_dir.with_name(bundle_dir.name + ".zip")
    if not (bundle_dir / MANIFEST_NAME).is_file():
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; not a bundle directory")
    _check_zip_target(zip_path, overwrite)
    members = _walk_files(bundle_dir)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in members:
                zf.write(p, p.relative_to(bundle_dir).as_posix())

    return atomic_write(zip_path, write)


# -- reading -----------------------------------------------------------------------------------------------------
def _zip_precheck(zip_path: Path) -> None:
    """Refuse, from the end-of-central-directory record alone, zips whose directory is too large to parse."""
    size = zip_path.stat().st_size
    with open(zip_path, "rb") as f:
        tail_len = min(size, 22 + 65535)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        i = tail.rfind(b"PK\x05\x06")
        if i < 0 or len(tail) - i < 22:
            raise BundleError(f"{zip_path}: not a readable zip file (no end-of-central-directory record; truncated?)")
        _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[i:i + 22])
        if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            j = tail.rfind(b"PK\x06\x07", 0, i)   # zip64 locator
            if j < 0:
                raise BundleError(f"{zip_path}: zip64 record missing; not a readable zip file")
            (eocd64,) = struct.unpack("<Q", tail[j + 8:j + 16])
            if eocd64 + 56 > size:
                raise BundleError(f"{zip_path}: zip64 record points past the end of the file (corrupt zip)")
            f.seek(eocd64)
            rec = f.read(56)
            if rec[:4] != b"PK\x06\x06":
                raise BundleError(f"{zip_path}: zip64 record is corrupt")
            entries, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
    if entries > LIMITS["zip_members"] or cd_size > LIMITS["zip_central_dir_bytes"]:
        raise BundleError(f"{zip_path}: {entries} entries / {cd_size}-byte directory; a bundle zip has at most "
                          f"{LIMITS['zip_members']} entries; refused")
    if cd_size > size or cd_offset > size:
        raise BundleError(f"{zip_path}: the zip directory says {cd_size} bytes at offset {cd_offset} but the file "
                          f"has {size} bytes (truncated or corrupt zip)")


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, ValueError,
               struct.error, OverflowError, UnicodeDecodeError, KeyError, IndexError, TypeError, RuntimeError)


def _zip_read_error(zip_path: Path, name: str, e: BaseException) -> BundleError:
    if isinstance(e, OSError) and not isinstance(e, zipfile.BadZipFile):
        # a header offset the OS cannot seek to (EINVAL), a read past the end
        return BundleError(f"{zip_path}: member {short(name)} cannot be read: its local header is not where the "
                           f"zip directory says ({e.strerror or e}); corrupt zip")
    return BundleError(f"{zip_path}: member {short(name)} cannot be read: its headers lie about its sizes or its "
                       f"data is corrupt ({type(e).__name__}: {short(str(e), 160)}); re-download or re-zip the bundle")


def _zip_member_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, zip_path: Path) -> bytes:
    """A small member read whole (the manifest), never more than ``limit`` bytes inflated."""
    if info.file_size > limit:
        raise BundleError(f"{zip_path}/{info.filename}: {info.file_size} bytes; a manifest is at most {limit} bytes")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (OSError, *_ZIP_ERRORS) as e:
        raise _zip_read_error(zip_path, info.filename, e) from None
    if len(data) != info.file_size:
        raise BundleError(f"{zip_path}: member {short(info.filename)} has {len(data)} bytes, its header says "
                          f"{info.file_size} (corrupt zip)")
    return data


def _extract_bundle_zip(zip_path: Path, dest: Path) -> tuple[Path, Manifest]:
    """Extract a bundle zip into ``dest``: the manifest first, then only the files it lists.

    Every member name is checked (relative, inside ``dest``, no symlink, no duplicate) before anything is
    written. ``manifest.json`` (at the top, or in the zip's one top-level folder) is read and validated first;
    a member the manifest does not list is refused (a bundle zip holds exactly the manifest and its files, so
    one more member means it was altered or not made by slsdk; nothing is extracted). Each listed member's size
    in the zip header must equal the manifest's ``bytes``; their sum is bounded (``MAX_ZIP_BYTES`` and the free
    space of ``dest``) before the first byte is written, and each member's inflated bytes are counted while it
    streams out, so no member yields more than it declared. Files are written with ``slsdk.fileio.atomic_write``.
    Returns the bundle root (``dest`` or its one folder) and the validated manifest.
    """
    _zip_precheck(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, *_ZIP_ERRORS) as e:
        raise BundleError(f"{zip_path}: not a readable zip file ({short(str(e), 200)})") from None
    with zf:
        size = zip_path.stat().st_size
        infos = zf.infolist()
        seen: set[str] = set()
        real_dest = dest.resolve()
        for info in infos:
            name = info.filename
            if not name.rstrip("/"):
                raise BundleError(f"{zip_path}: a member has an empty name (corrupt zip)")
            check_relpath(name.rstrip("/"), str(zip_path))
            if name in seen:
                raise BundleError(f"{zip_path}: member {short(name)} appears twice; corrupt or tampered zip, refused")
            seen.add(name)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == stat.S_IFLNK:
                raise BundleError(f"{zip_path}: member {name!r} is a symlink; refused")
            if info.file_size < 0 or info.compress_size < 0:
                raise BundleError(f"{zip_path}: member {name!r} has negative sizes (corrupt zip)")
            if not 0 <= info.header_offset < size:
                raise BundleError(f"{zip_path}: member {name!r} starts at byte {info.header_offset}, outside the "
                                  f"file's {size} bytes (corrupt zip)")
            try:
                (dest / name).resolve().relative_to(real_dest)
            except ValueError:
                raise BundleError(f"{zip_path}: member {name!r} escapes the extraction directory") from None
        # the manifest: at the top of the zip, or in its one top-level folder
        top = [i for i in infos if i.filename == MANIFEST_NAME]
        nested = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/" + MANIFEST_NAME)]
        if top:
            minfo = top[0]
        elif len(nested) == 1:
            minfo = nested[0]
        else:
            raise BundleError(f"{zip_path}: no {MANIFEST_NAME} at the top of the zip or in its one top-level "
                              "folder (not an slsdk bundle)")
        prefix = minfo.filename[: -len(MANIFEST_NAME)]
        msource = f"{zip_path}/{minfo.filename}"
        raw = _zip_member_bytes(zf, minfo, LIMITS["manifest_bytes"], zip_path)
        manifest = Manifest.from_dict(parse_manifest_bytes(raw, msource), source=msource)
        listed = {prefix + n: info for n, info in manifest.files.items()}
        dirs = {prefix} if prefix else set()
        for n in listed:
            parts = n.split("/")[:-1]
            dirs.update("/".join(parts[:k]) + "/" for k in range(1, len(parts) + 1))
        members: list[tuple[zipfile.ZipInfo, int]] = []
        total = 0
        for info in infos:
            name = info.filename
            if info is minfo or (info.is_dir() and name in dirs):
                continue
            if name not in listed:
                what = "folder" if info.is_dir() else f"{info.file_size}-byte file"
                raise BundleError(f"{zip_path}: member {short(name)} (a {what}) is not listed in {minfo.filename}; "
                                  "a bundle zip holds only its manifest and the files the manifest lists, so this "
                                  "zip was altered or not made by slsdk: refused, nothing extracted (re-zip the "
                                  "bundle folder with slsdk, or remove the member)")
            declared = listed[name].get("bytes")
            if declared is not None and declared != info.file_size:
                raise BundleError(f"{zip_path}: member {short(name)}: its zip headers lie about its size: they say "
                                  f"{info.file_size} bytes, {minfo.filename} says {declared}; corrupt or tampered "
                                  "zip, refused")
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise BundleError(f"{zip_path}: the listed files hold more than {MAX_ZIP_BYTES} bytes uncompressed; "
                                  "refused")
            members.append((info, info.file_size))
        free = shutil.disk_usage(dest).free
        if total + len(raw) > free:
            raise BundleError(f"{zip_path}: extracting needs {total} bytes but {dest.parent} has only {free} bytes "
                              "free; free some space or point TMPDIR to a larger disk")
        for d in sorted(dirs):
            (dest / d).mkdir(parents=True, exist_ok=True)
        _write_member(dest / minfo.filename, lambda f: f.write(raw), minfo.filename, zip_path)
        for info, limit in members:
            _write_member(dest / info.filename, _member_copier(zf, info, limit, zip_path), info.filename, zip_path)
    return (dest / prefix if prefix else dest), manifest


def _member_copier(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, zip_path: Path):
    """``write(f)`` for :func:`slsdk.fileio.atomic_write`: inflate ``info`` into ``f``, at most ``limit`` bytes."""
    def copy(f) -> None:
        written = 0
        try:
            src = zf.open(info)
        except (OSError, *_ZIP_ERRORS) as e:
            raise _zip_read_error(zip_path, info.filename, e) from None
        with src:
            while True:
                try:
                    block = src.read(1 << 20)
                except (OSError, *_ZIP_ERRORS) as e:
                    raise _zip_read_error(zip_path, info.filename, e) from None
                if not block:
                    break
                written += len(block)
                if written > limit:   # zipfile stops at the header's size; never trust it blindly
                    raise BundleError(f"{zip_path}: member {short(info.filename)} holds more than the {limit} bytes "
                                      "its header and the manifest declare; refused")
                f.write(block)
        if written != limit:
            raise BundleError(f"{zip_path}: member {short(info.filename)} has {written} bytes, its header says "
                              f"{limit} (corrupt zip)")
    return copy


def _write_member(target: Path, write, name: str, zip_path: Path) -> None:
    """Write one member with :func:`slsdk.fileio.atomic_write` (into a fresh folder: nothing is replaced)."""
    if target.is_dir():
        raise BundleError(f"{zip_path}: member {short(name)} clashes with another member (a folder of that name); "
                          "corrupt bundle zip")
    if target.exists() or target.is_symlink():
        raise BundleError(f"{target}: exists already; a bundle zip is extracted into an empty folder "
                          f"(member {short(name)} of {zip_path})")
    try:
        atomic_write(target, write, fsync=False)
    except OutputExistsError as e:   # a member where another one made a folder, or under another one's file
        raise BundleError(f"{zip_path}: member {short(name)} clashes with another member ({e}); corrupt bundle "
                          "zip") from None
    except WriteError as e:
        if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            raise BundleError(f"{zip_path}: member {short(name)} clashes with another member ({e.strerror}); "
                              "corrupt bundle zip") from None
        raise

