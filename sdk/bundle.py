"""The slsdk bundle: a directory (optionally zipped) of model file(s) plus ``manifest.json``.

The bundle is the contract with runtimes and phone apps: the manifest carries everything needed to
feed the model and decode its output (vocabulary, pixel normalisation, chunking, state tensors,
output stride) plus the file checksums and the fidelity figures measured at conversion.

    manifest = Manifest(target="onnx", precision="fp32", ...)
    bundle = write_bundle("out/student-onnx", manifest, {"model.onnx": "/tmp/model.onnx"})
    bundle = load_bundle("out/student-onnx")          # or a .zip; validates schema and checksums
    bundle.model_path                                 # Path of the main model file (or .mlpackage dir)

Only the standard library is imported here: runtimes load bundles without torch.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

FORMAT = "slsdk-bundle"
# 2: input.resize_shorter + input.crop (the resize before the centre crop) and the real tensor dtypes of the
#    model file (a Core ML fp16 package returns float16). Version 1 bundles still load: their input section
#    gets the rule every v1 bundle was made with (shorter side to round(S * 256 / 224), centre crop).
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
INPUT_CROPS = ("center",)
TENSOR_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8")
MANIFEST_NAME = "manifest.json"
MODEL_KINDS = ("student", "teacher")
_MAX_ZIP_BYTES = 4 << 30  # refuse zip bombs: 4 GiB uncompressed in all

__all__ = [
    "FORMAT", "FORMAT_VERSION", "READABLE_FORMAT_VERSIONS", "MANIFEST_NAME", "BundleError", "Manifest", "Bundle",
    "write_bundle", "load_bundle", "zip_bundle", "inspect_bundle", "sha256_file", "default_input_spec",
    "legacy_resize_shorter",
]


class BundleError(ValueError):
    """A bundle or its manifest is malformed, tampered with, or unsafe."""


def _slsdk_version() -> str:
    try:
        from slsdk import __version__

        return __version__
    except Exception:  # pragma: no cover - only when imported outside the package
        return "unknown"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def legacy_resize_shorter(height: int, width: int) -> int:
    """The resize every format-version-1 bundle was made with: the shorter side to ``round(S * 256 / 224)``
    (``S`` the crop size, never below it), as ``slsdk.data.transforms.VideoTransform`` does by default."""
    size = max(int(height), int(width))
    return max(size, int(round(size * 256 / 224)))


def default_input_spec(height: int, width: int, mean, std, layout: str = "NTCHW", *,
                       resize_shorter: int | None = None, crop: str = "center") -> dict:
    """The ``input`` section: how to turn camera frames into the model's input tensor.

    A frame's shorter side is resized to ``resize_shorter`` pixels (aspect ratio kept, antialiased), then
    ``crop`` ("center": the middle ``height x width``) is cut out, then the pixels are scaled and normalised.
    """
    return {
        "height": int(height), "width": int(width), "channels": 3, "layout": layout,
        "colour": "RGB", "dtype": "float32",
        "resize_shorter": int(resize_shorter if resize_shorter is not None else legacy_resize_shorter(height, width)),
        "crop": crop,
        # pixels are scaled to value_range first, then normalised: (x - mean) / std per channel
        "value_range": [0.0, 1.0], "mean": [float(m) for m in mean], "std": [float(s) for s in std],
    }


def _upgrade_v1(d: dict) -> dict:
    """A version-1 manifest with the fields version 2 added, at the values every v1 bundle was made with."""
    inp = d.get("input")
    if isinstance(inp, Mapping) and _posint(inp.get("height")) and _posint(inp.get("width")):
        inp = dict(inp)
        inp.setdefault("resize_shorter", legacy_resize_shorter(inp["height"], inp["width"]))
        inp.setdefault("crop", "center")
        d = {**d, "input": inp}
    return d


@dataclass
class Manifest:
    """Everything a runtime needs to use the bundle's model. See ``validate`` for the schema."""

    target: str
    precision: str
    model_kind: str
    model_file: str
    vocab: list
    input: dict
    fps: float
    streaming: dict
    model_config: dict = field(default_factory=dict)
    blank_id: int = 0
    crop: dict = field(default_factory=lambda: {"policy": "full"})
    fidelity: dict = field(default_factory=dict)
    quantization: dict | None = None
    files: dict = field(default_factory=dict)  # relative posix path -> {"sha256": hex, "bytes": n}
    extra: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    slsdk_version: str = field(default_factory=_slsdk_version)
    created: str = field(default_factory=_now)

    # --- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        # stable, readable order: identity first
        order = ["format", "format_version", "slsdk_version", "created", "target", "precision",
                 "model_kind", "model_file"]
        return {**{k: d[k] for k in order}, **{k: v for k, v in d.items() if k not in order}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "manifest") -> "Manifest":
        if not isinstance(d, Mapping):
            raise BundleError(f"{source}: manifest must be a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise BundleError(f"{source}: not an slsdk bundle manifest (format={d.get('format')!r}, "
                              f"expected {FORMAT!r})")
        version = d.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"{source}: format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise BundleError(f"{source}: bundle format_version {version} is newer than this slsdk "
                              f"({_slsdk_version()}) supports ({FORMAT_VERSION}); upgrade slsdk")
        if version not in READABLE_FORMAT_VERSIONS:
            raise BundleError(f"{source}: invalid format_version {version} (this slsdk reads "
                              f"{list(READABLE_FORMAT_VERSIONS)})")
        if version == 1:
            d = _upgrade_v1(dict(d))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BundleError(f"{source}: unknown manifest keys {unknown}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise BundleError(f"{source}: manifest is missing required keys {missing}")
        m = cls(**{k: d[k] for k in d})
        m.validate(source=source)
        return m

    # --- schema -------------------------------------------------------------------------------
    def validate(self, *, source: str = "manifest") -> "Manifest":
        def bad(msg: str):
            raise BundleError(f"{source}: {msg}")

        from slsdk.convert.targets import check_precision, get_target

        if self.format != FORMAT:
            bad(f"format must be {FORMAT!r}, got {self.format!r}")
        if self.format_version not in READABLE_FORMAT_VERSIONS or isinstance(self.format_version, bool):
            bad(f"format_version must be one of {list(READABLE_FORMAT_VERSIONS)}, got {self.format_version!r}")
        try:
            tgt = get_target(self.target)
            check_precision(tgt, self.precision)
        except ValueError as e:
            bad(str(e))
        if self.model_kind not in MODEL_KINDS:
            bad(f"model_kind must be one of {list(MODEL_KINDS)}, got {self.model_kind!r}")
        if not isinstance(self.vocab, list) or not self.vocab or not all(isinstance(g, str) for g in self.vocab):
            bad("vocab must be a non-empty list of gloss strings")
        if self.blank_id != 0:
            bad(f"blank_id must be 0 (slsdk convention), got {self.blank_id!r}")
        if len(set(self.vocab)) != len(self.vocab):
            bad("vocab has duplicate entries")
        inp = self.input
        if not isinstance(inp, dict):
            bad("input must be an object")
        for k in ("height", "width", "channels", "layout", "mean", "std", "colour", "value_range", "resize_shorter",
                  "crop"):
            if k not in inp:
                bad(f"input.{k} is missing")
        if not (_posint(inp["height"]) and _posint(inp["width"])):
            bad(f"input.height/width must be positive integers, got {inp['height']!r}x{inp['width']!r}")
        if not _posint(inp["resize_shorter"]) or inp["resize_shorter"] < max(inp["height"], inp["width"]):
            bad(f"input.resize_shorter must be an integer >= max(height, width) = {max(inp['height'], inp['width'])} "
                f"(the shorter side is resized to it, then the {inp['height']}x{inp['width']} crop is cut), "
                f"got {inp['resize_shorter']!r}")
        if inp["crop"] not in INPUT_CROPS:
            bad(f"input.crop must be one of {list(INPUT_CROPS)}, got {inp['crop']!r}")
        if inp["channels"] != 3 or len(inp["mean"]) != 3 or len(inp["std"]) != 3:
            bad("input must have 3 channels with 3 mean and 3 std values")
        if any((not isinstance(s, (int, float))) or s <= 0 for s in inp["std"]):
            bad(f"input.std must be positive, got {inp['std']!r}")
        if not isinstance(self.fps, (int, float)) or self.fps <= 0:
            bad(f"fps must be positive, got {self.fps!r}")
        if not isinstance(self.crop, dict) or "policy" not in self.crop:
            bad("crop must be an object with a 'policy'")
        s = self.streaming
        if not isinstance(s, dict):
            bad("streaming must be an object")
        for k in ("mode", "output_stride", "inputs", "outputs", "state"):
            if k not in s:
                bad(f"streaming.{k} is missing")
        if s["mode"] not in ("streaming", "offline"):
            bad(f"streaming.mode must be 'streaming' or 'offline', got {s['mode']!r}")
        if not _posint(s["output_stride"]):
            bad(f"streaming.output_stride must be a positive integer, got {s['output_stride']!r}")
        if s["mode"] == "streaming":
            c = s.get("chunk_frames")
            if not _posint(c) or c % s["output_stride"]:
                bad(f"streaming.chunk_frames must be a positive multiple of output_stride, got {c!r}")
        for group in ("inputs", "outputs"):
            if not isinstance(s[group], list) or not s[group]:
                bad(f"streaming.{group} must be a non-empty list")
            for io in s[group]:
                if not isinstance(io, dict) or not isinstance(io.get("name"), str) or "shape" not in io:
                    bad(f"streaming.{group} entries need a name and a shape, got {io!r}")
                if io.get("dtype", "float32") not in TENSOR_DTYPES:
                    bad(f"streaming.{group} {io['name']!r}: dtype must be one of {list(TENSOR_DTYPES)}, "
                        f"got {io.get('dtype')!r}")
        io_names = {io["name"] for io in s["inputs"]} | {io["name"] for io in s["outputs"]}
        for st in s["state"]:
            for k in ("name", "input", "output", "shape"):
                if k not in st:
                    bad(f"streaming.state entry {st!r} is missing {k!r}")
            if not all(_posint(n) for n in st["shape"]):
                bad(f"streaming.state {st['name']!r} shape must be positive integers, got {st['shape']!r}")
            for k in ("input", "output"):
                if st[k] not in io_names:
                    bad(f"streaming.state {st['name']!r}: {k} {st[k]!r} is not among the inputs/outputs")
        if not isinstance(self.files, dict):
            bad("files must be an object mapping paths to checksums")
        for name, info in self.files.items():
            _check_relpath(name, source)
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or len(info["sha256"]) != 64:
                bad(f"files[{name!r}] needs a sha256 hex digest")
        _check_relpath(self.model_file, source)
        if self.files and not any(n == self.model_file or n.startswith(self.model_file.rstrip("/") + "/")
                                  for n in self.files):
            bad(f"model_file {self.model_file!r} is not among the bundle files")
        if tgt.suffix and not self.model_file.endswith(tgt.suffix):
            bad(f"model_file {self.model_file!r} does not end with {tgt.suffix!r} (target {tgt.name})")
        return self

    # convenience
    @property
    def state_specs(self) -> list[dict]:
        return list(self.streaming.get("state", []))


_REQUIRED = ("target", "precision", "model_kind", "model_file", "vocab", "input", "fps", "streaming")


def _posint(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _check_relpath(name: str, source: str) -> PurePosixPath:
    """Refuse any bundle path that is absolute or climbs out of the bundle."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{source}: empty or non-string file path {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{source}: file path {name!r} is absolute; bundle paths must be relative")
    if any(part in ("..",) for part in p.parts) or "\\" in name:
        raise BundleError(f"{source}: file path {name!r} escapes the bundle directory")
    return p


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


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


@dataclass
class Bundle:
    """A validated bundle on disk."""

    root: Path
    manifest: Manifest
    _tmp: Any = field(default=None, repr=False)  # TemporaryDirectory for an extracted zip

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model_file

    def path(self, name: str) -> Path:
        _check_relpath(name, str(self.root))
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
        _check_relpath(name, str(root / MANIFEST_NAME))
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


def write_bundle(out_dir: str | os.PathLike, manifest: Manifest,
                 files: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike], *,
                 overwrite: bool = True, zip: bool = False) -> Bundle:
    """Write ``files`` and the manifest (with checksums filled in) into ``out_dir`` atomically.

    ``files`` maps bundle-relative names to source paths (a file or a directory such as an
    ``.mlpackage``); a plain list uses each source's base name. Everything is written into a
    temporary sibling directory first and renamed into place, so ``out_dir`` never holds half a
    bundle. ``zip=True`` also writes ``out_dir.zip`` (atomically) next to it.
    """
    out_dir = Path(out_dir)
    if not isinstance(files, Mapping):
        files = {Path(f).name: f for f in files}
    if not files:
        raise BundleError(f"{out_dir}: a bundle needs at least one model file")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not overwrite:
        raise BundleError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for name, src in files.items():
            _check_relpath(name, str(out_dir))
            if name == MANIFEST_NAME:
                raise BundleError(f"{out_dir}: {MANIFEST_NAME} is reserved for the manifest")
            src = Path(src)
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            elif src.is_file():
                shutil.copyfile(src, dst)
            else:
                raise BundleError(f"{src}: file for bundle entry {name!r} does not exist")
        table = {}
        for p in _walk_files(tmp):
            rel = p.relative_to(tmp).as_posix()
            table[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        manifest.files = table
        manifest.validate(source=str(out_dir / MANIFEST_NAME))
        (tmp / MANIFEST_NAME).write_text(manifest.to_json() + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / "b")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle = Bundle(out_dir, manifest)
    if zip:
        zip_bundle(out_dir)
    return bundle


def zip_bundle(bundle_dir: str | os.PathLike, zip_path: str | os.PathLike | None = None) -> Path:
    """Zip a bundle directory (files stored at the zip root) atomically; returns the zip path."""
    bundle_dir = Path(bundle_dir)
    zip_path = Path(zip_path) if zip_path else bundle_dir.with_name(bundle_dir.name + ".zip")
    if not (bundle_dir / MANIFEST_NAME).is_file():
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; not a bundle directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in _walk_files(bundle_dir):
                zf.write(p, p.relative_to(bundle_dir).as_posix())
        os.replace(tmp, zip_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return zip_path


def _safe_extract(zip_path: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{zip_path}: not a readable zip file ({e})") from None
    with zf:
        total = 0
        for info in zf.infolist():
            name = info.filename
            _check_relpath(name.rstrip("/") or ".", str(zip_path))
            mode = (info.external_attr >> 16) & 0o170000
            if mode == stat.S_IFLNK:
                raise BundleError(f"{zip_path}: member {name!r} is a symlink; refused")
            total += info.file_size
            if total > _MAX_ZIP_BYTES:
                raise BundleError(f"{zip_path}: uncompressed size exceeds {_MAX_ZIP_BYTES} bytes; refused")
            target = (dest / name).resolve()
            try:
                target.relative_to(dest.resolve())
            except ValueError:
                raise BundleError(f"{zip_path}: member {name!r} escapes the extraction directory") from None
        for info in zf.infolist():
            if info.is_dir():
                (dest / info.filename).mkdir(parents=True, exist_ok=True)
                continue
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def load_bundle(path: str | os.PathLike, *, verify: bool = True,
                extract_to: str | os.PathLike | None = None) -> Bundle:
    """Load and validate a bundle directory or ``.zip``.

    Checks the manifest schema and format version, refuses paths that escape the bundle
    (absolute, ``..``, symlinks) and, with ``verify`` (default), every file's size and sha256.
    A zip is extracted safely into ``extract_to`` or a temporary directory that lives as long as
    the returned Bundle.
    """
    path = Path(path)
    tmp = None
    if path.is_file() and zipfile.is_zipfile(path):
        if extract_to is None:
            tmp = tempfile.TemporaryDirectory(prefix="slsdk-bundle-")
            root = Path(tmp.name)
        else:
            root = Path(extract_to)
            root.mkdir(parents=True, exist_ok=True)
        _safe_extract(path, root)
        # tolerate a zip whose files sit in one top-level folder
        if not (root / MANIFEST_NAME).exists():
            subs = [p for p in root.iterdir() if p.is_dir()]
            if len(subs) == 1 and (subs[0] / MANIFEST_NAME).exists():
                root = subs[0]
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
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath}: invalid JSON ({e})") from None
    manifest = Manifest.from_dict(data, source=str(mpath))
    if verify:
        _verify_files(root, manifest)
    return Bundle(root, manifest, tmp)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def inspect_bundle(path: str | os.PathLike) -> str:
    """A human-readable summary of a bundle (for ``slsdk bundle inspect``)."""
    b = load_bundle(path)
    m = b.manifest
    s = m.streaming
    rows = [
        ("bundle", str(path)),
        ("format", f"{m.format} v{m.format_version} (slsdk {m.slsdk_version}, created {m.created})"),
        ("target / precision", f"{m.target} / {m.precision}"),
        ("model", f"{m.model_kind}: {m.model_file}"),
        ("vocabulary", f"{len(m.vocab)} entries (blank id {m.blank_id}): "
                       + ", ".join(m.vocab[1:6]) + (" ..." if len(m.vocab) > 6 else "")),
        ("input", f"{m.input['channels']}x{m.input['height']}x{m.input['width']} {m.input['colour']} "
                  f"{m.input['layout']}, mean {m.input['mean']}, std {m.input['std']}"),
        ("preprocess", f"resize shorter side to {m.input['resize_shorter']} px, {m.input['crop']} crop "
                       f"{m.input['height']}x{m.input['width']}"
                       + (" (format v1 default)" if m.format_version == 1 else "")),
        ("fps", f"{_fmt(m.fps)} (the runtime resamples sources to it by timestamp)"),
        ("crop", json.dumps(m.crop)),
        ("mode", s["mode"]),
    ]
    if s["mode"] == "streaming":
        rows += [("chunk / shift / lookahead", f"{s.get('chunk_frames')} / {s.get('shift_frames')} / "
                                               f"{s.get('lookahead_frames')} frames"),
                 ("output stride", str(s["output_stride"])),
                 ("latency", f"{_fmt(s.get('algorithmic_latency_s'))} s algorithmic")]
    for io in s["inputs"]:
        rows.append((f"input {io['name']}", f"{io.get('dtype', 'float32')} {io['shape']}"))
    for io in s["outputs"]:
        rows.append((f"output {io['name']}", f"{io.get('dtype', 'float32')} {io['shape']}"))
    for k, v in (m.fidelity or {}).items():
        if not isinstance(v, (dict, list)):
            rows.append((f"fidelity.{k}", _fmt(v)))
    if m.quantization:
        rows.append(("quantization", json.dumps(m.quantization)))
    for name, info in m.files.items():
        rows.append((f"file {name}", f"{info.get('bytes', '?')} bytes sha256 {info['sha256'][:16]}..."))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)
