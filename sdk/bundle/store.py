"""Bundles on disk: :func:`write_bundle` (atomic, checksums filled in), :func:`load_bundle` (a folder or a zip,
validated), :class:`Bundle`, and where a bundle goes (:func:`resolve_bundle_dir`). Standard library only."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from slsdk.bundle.archive import _check_zip_target, _extract_bundle_zip, _walk_files, zip_bundle
from slsdk.bundle.checks import check_relpath
from slsdk.bundle.limits import FORMAT, MANIFEST_NAME, BundleError
from slsdk.bundle.manifest import Manifest, read_manifest_dict
from slsdk.bundle.modelcheck import check_model_file
from slsdk.fileio import OutputExistsError, atomic_copy, atomic_dir, atomic_write_text, sha256_file, temp_dir


@dataclass
class Bundle:
    """A validated bundle on disk."""

    root: Path
    manifest: Manifest
    _tmp: Any = field(default=None, repr=False)  # scratch folder (slsdk.fileio.TempDir) of an extracted zip
    replaced: bool = False                       # write_bundle replaced an existing bundle (overwrite=True)

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model_file

    def path(self, name: str) -> Path:
        check_relpath(name, str(self.root))
        return self.root / name

    @property
    def vocab(self) -> list[str]:
        return list(self.manifest.vocab)

    @property
    def target(self) -> str:
        return self.manifest.target

    @property
    def precision(self) -> str:
        return self.manifest.precision

    def verify(self) -> None:
        """Re-check every file's checksum (the load does this already)."""
        _verify_files(self.root, self.manifest)


def _verify_files(root: Path, manifest: Manifest) -> None:
    real_root = root.resolve()
    if not manifest.files:
        raise BundleError(f"{root / MANIFEST_NAME}: lists no files")
    for name, info in manifest.files.items():
        check_relpath(name, str(root / MANIFEST_NAME))
        p = root / name
        # a symlink anywhere on the way may lead outside the bundle
        cur = root
        for part in PurePosixPath(name).parts:
            cur = cur / part
            if cur.is_symlink():
                raise BundleError(f"{cur}: symlinks are not allowed in a bundle (file {name!r})")
        try:
            p.resolve().relative_to(real_root)
        except ValueError:
            raise BundleError(f"{p}: resolves outside the bundle directory {root}") from None
        if not p.is_file():
            raise BundleError(f"{p}: listed in the manifest but missing from the bundle")
        size = p.stat().st_size
        if "bytes" in info and size != info["bytes"]:
            raise BundleError(f"{p}: size {size} bytes differs from the manifest's {info['bytes']} "
                              f"(truncated or modified file)")
        digest = sha256_file(p)
        if digest != info["sha256"]:
            raise BundleError(f"{p}: sha256 checksum mismatch (file modified or corrupted): "
                              f"manifest {info['sha256'][:16]}..., file {digest[:16]}...")
    if not (root / manifest.model_file).exists():
        raise BundleError(f"{root / manifest.model_file}: model file missing from the bundle")


def is_bundle_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding an slsdk bundle manifest (``format: slsdk-bundle``)."""
    p = Path(path)
    m = p / MANIFEST_NAME
    if not p.is_dir() or not m.is_file() or m.is_symlink():
        return False
    try:
        d = read_manifest_dict(m)
    except BundleError:
        return False
    return isinstance(d, dict) and d.get("format") == FORMAT


def bundle_dir_name(manifest: Manifest) -> str:
    """The subfolder name a bundle gets inside an existing folder: ``<kind>-<target>-<precision>``."""
    return f"{manifest.model_kind}-{manifest.target}-{manifest.precision}"


def _foreign_files(path: Path) -> list[str]:
    """Files in a bundle folder that its manifest does not list (someone else's: never deleted)."""
    try:
        listed = set(read_manifest_dict(path / MANIFEST_NAME).get("files") or {})
    except (BundleError, AttributeError):
        listed = set()
    out = []
    for p in _walk_files_lenient(path):
        rel = p.relative_to(path).as_posix()
        if rel != MANIFEST_NAME and rel not in listed:
            out.append(rel)
    return out


def _walk_files_lenient(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        out += [Path(dirpath) / f for f in filenames]
        out += [Path(dirpath) / d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
    return sorted(out)


def _listing(p: Path, n: int = 5) -> str:
    try:
        names = sorted(x.name for x in p.iterdir())
    except OSError:
        return "unreadable"
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "") if names else "empty"


def _bundle_summary(p: Path) -> str:
    try:
        d = read_manifest_dict(p / MANIFEST_NAME)
        return f"{d.get('model_kind')} {d.get('target')}/{d.get('precision')}, created {d.get('created')}"
    except BundleError:
        return "unreadable manifest"


def resolve_bundle_dir(out_dir: str | os.PathLike, manifest: Manifest | str, *,
                       overwrite: bool = False) -> tuple[Path, bool]:
    """Where a bundle for ``manifest`` goes when asked to write it at ``out_dir``: ``(folder, replaces_bundle)``.

    ``manifest`` may also be the subfolder name itself (``"student-onnx-fp32"``), so a converter can check the
    destination before any work.

    * ``out_dir`` does not exist: the bundle is created there.
    * ``out_dir`` is an slsdk bundle: replaced only with ``overwrite`` (and only if it holds no files its
      manifest does not list); otherwise :class:`~slsdk.fileio.OutputExistsError`.
    * ``out_dir`` is any other folder (``.``, ``bundles``, a folder of bundles): the bundle goes into the fresh
      subfolder ``out_dir/<kind>-<target>-<precision>`` by the same rules; a subfolder of that name that is not a
      bundle is refused.
    * ``out_dir`` is a file: refused.
    """
    out = Path(os.fspath(out_dir) or ".")

    def as_bundle(p: Path) -> tuple[Path, bool]:
        if not overwrite:
            raise OutputExistsError(f"{p}: already holds an slsdk bundle ({_bundle_summary(p)}); pass --overwrite "
                                    "to replace it, or choose another output folder")
        foreign = _foreign_files(p)
        if foreign:
            raise OutputExistsError(f"{p}: is an slsdk bundle but also holds files it did not write "
                                    f"({', '.join(foreign[:5])}); move them out first, nothing was replaced")
        return p, True

    if out.is_symlink() and not out.exists():
        raise OutputExistsError(f"{out}: is a broken symbolic link; choose another output folder")
    if not out.exists():
        return out, False
    if not out.is_dir():
        raise OutputExistsError(f"{out}: is a file, not a folder; a bundle is a folder: choose a folder name "
                                f"(e.g. -o {out.parent / (out.stem + '-bundle')})")
    if is_bundle_dir(out):
        return as_bundle(out)
    sub = out / (manifest if isinstance(manifest, str) else bundle_dir_name(manifest))
    if not sub.exists() and not sub.is_symlink():
        return sub, False
    if sub.is_dir() and not sub.is_symlink() and is_bundle_dir(sub):
        return as_bundle(sub)
    raise OutputExistsError(f"{sub}: exists and is not an slsdk bundle ({_listing(sub) if sub.is_dir() else 'a file'}); "
                            "slsdk does not overwrite it: move it away or choose another output folder")


def write_bundle(out_dir: str | os.PathLike, manifest: Manifest,
                 files: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike], *,
                 overwrite: bool = False, zip: bool = False) -> Bundle:
    """Write ``files`` and the manifest (with checksums filled in) as a bundle, atomically.

    Where it goes: see :func:`resolve_bundle_dir` (an existing folder that is not a bundle gets a
    ``<kind>-<target>-<precision>`` subfolder; an existing bundle is replaced only with ``overwrite``; the
    returned ``Bundle.root`` says where it went and ``Bundle.replaced`` whether a bundle was replaced).
    ``files`` maps bundle-relative names to source paths (a file or a directory such as an ``.mlpackage``);
    a plain list uses each source's base name. The manifest is checked against the model file
    (:func:`check_model_file`). Everything is built in a temporary sibling folder and renamed into place, so
    the folder never holds half a bundle. ``zip=True`` also writes ``<folder>.zip`` (atomically) next to it.
    """
    if not isinstance(files, Mapping):
        files = {Path(f).name: f for f in files}
    if not files:
        raise BundleError(f"{out_dir}: a bundle needs at least one model file")
    out_dir, replaced = resolve_bundle_dir(out_dir, manifest, overwrite=overwrite)
    zip_path = out_dir.with_name(out_dir.name + ".zip")
    if zip:
        _check_zip_target(zip_path, overwrite)
    with atomic_dir(out_dir, replace=replaced) as tmp:
        for name, src in files.items():
            check_relpath(name, str(out_dir))
            if name == MANIFEST_NAME:
                raise BundleError(f"{out_dir}: {MANIFEST_NAME} is reserved for the manifest")
            src = Path(src)
            dst = tmp / name
            if src.is_dir() and not src.is_symlink():
                _copy_tree(src, dst)
            elif src.is_file():
                atomic_copy(src, dst, fsync=False)     # atomic_dir syncs the whole folder before the rename
            else:
                raise BundleError(f"{src}: file for bundle entry {name!r} does not exist")
        table = {}
        for p in _walk_files(tmp):
            rel = p.relative_to(tmp).as_posix()
            table[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        manifest.files = table
        manifest.validate(source=str(out_dir / MANIFEST_NAME))
        check_model_file(tmp, manifest, source=str(out_dir / MANIFEST_NAME))
        atomic_write_text(tmp / MANIFEST_NAME, manifest.to_json() + "\n", fsync=False)
    bundle = Bundle(out_dir, manifest, replaced=replaced)
    if zip:
        zip_bundle(out_dir, zip_path, overwrite=overwrite)
    return bundle


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` (an ``.mlpackage``) to ``dst`` file by file through ``slsdk.fileio``; a symlink
    in it is refused (a bundle holds none)."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        out = dst / here.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for n in dirnames + filenames:
            if (here / n).is_symlink():
                raise BundleError(f"{here / n}: symlinks are not allowed in a bundle")
        for n in filenames:
            atomic_copy(here / n, out / n, fsync=False)


def load_bundle(path: str | os.PathLike, *, verify: bool = True,
                extract_to: str | os.PathLike | None = None) -> Bundle:
    """Load and validate a bundle directory or ``.zip``.

    Checks the manifest schema, its bounds (:data:`LIMITS`) and format version, refuses paths that escape the
    bundle (absolute, ``..``, symlinks) and, with ``verify`` (default), every file's size and sha256 and the
    manifest against the model file (:func:`check_model_file`). Every problem is a :class:`BundleError` naming
    the file. A zip is extracted safely into ``extract_to`` or a scratch folder (``slsdk-bundle-*`` in the
    system temp folder) that lives as long as the returned Bundle; scratch folders of killed runs are removed.
    """
    path = Path(path)
    tmp = None
    if path.is_file() and zipfile.is_zipfile(path):
        if extract_to is None:
            tmp = temp_dir()
            root = tmp.path / "bundle"
            root.mkdir()
        else:
            root = Path(extract_to)
            root.mkdir(parents=True, exist_ok=True)
        try:
            root, _ = _extract_bundle_zip(path, root)   # the manifest first, then only the files it lists
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
    elif path.is_dir():
        root = path
    elif path.exists():
        raise BundleError(f"{path}: neither a bundle directory nor a zip file")
    else:
        raise BundleError(f"{path}: no such bundle")
    mpath = root / MANIFEST_NAME
    if not mpath.is_file() or mpath.is_symlink():
        raise BundleError(f"{path}: no {MANIFEST_NAME} (not an slsdk bundle)")
    try:
        data = read_manifest_dict(mpath)
        manifest = Manifest.from_dict(data, source=str(mpath))
        if verify:
            _verify_files(root, manifest)
            check_model_file(root, manifest)
    except BundleError as e:
        if root == path:
            raise
        if tmp is not None:
            tmp.cleanup()
        # name the zip the user gave, not the scratch folder it was extracted to: "bundle.zip/manifest.json: ..."
        raise BundleError(str(e).replace(str(root), str(path))) from None
    return Bundle(root, manifest, tmp)

