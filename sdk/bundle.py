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
import errno
import json
import math
import os
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from slsdk.errors import SlsdkError
from slsdk.fileio import (OutputExistsError, WriteError, atomic_copy, atomic_dir, atomic_write, atomic_write_text,
                          sha256_file, temp_dir)

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

# What a manifest may say (every number is bounded, so nothing read from it can ask for a huge allocation).
LIMITS = {
    "manifest_bytes": 4 << 20,     # manifest.json size
    "zip_members": 10_000,         # entries in a bundle zip
    "zip_central_dir_bytes": 16 << 20,
    "files": 10_000,               # entries of manifest.files
    "file_bytes": 1 << 40,         # one listed file
    "vocab": 100_000,              # vocabulary entries (incl. blank)
    "gloss_chars": 256,            # characters of one gloss
    "image_side": 4096,            # input height / width
    "resize_shorter": 8192,
    "fps": 1000.0,
    "chunk_frames": 4096,          # streaming chunk / shift / look-ahead frames
    "output_stride": 64,
    "frames": 1 << 20,             # offline frames_range
    "seconds": 3600.0,             # frame_shift_s, algorithmic_latency_s
    "dim": 1 << 20,                # one tensor dimension
    "tensor_elements": 1 << 26,    # elements of one state / io tensor with static shape
    "tensors": 256,                # inputs / outputs / states
    "abs_value": 1e6,              # mean, std, value_range
}

__all__ = [
    "FORMAT", "FORMAT_VERSION", "READABLE_FORMAT_VERSIONS", "MANIFEST_NAME", "BundleError", "Manifest", "Bundle",
    "write_bundle", "load_bundle", "zip_bundle", "inspect_bundle", "sha256_file", "default_input_spec",
    "legacy_resize_shorter", "is_bundle_dir", "bundle_dir_name", "resolve_bundle_dir", "check_model_file", "LIMITS",
]


class BundleError(SlsdkError, ValueError):
    """A bundle or its manifest is malformed, tampered with, or unsafe (the message names the file)."""


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
        """Check the schema and every value against :data:`LIMITS`; raise :class:`BundleError` naming ``source``."""
        def bad(msg: str):
            raise BundleError(f"{source}: {msg}")

        from slsdk.targets import check_precision, get_target

        L = LIMITS
        if self.format != FORMAT:
            bad(f"format must be {FORMAT!r}, got {_short(self.format)}")
        if self.format_version not in READABLE_FORMAT_VERSIONS or isinstance(self.format_version, bool):
            bad(f"format_version must be one of {list(READABLE_FORMAT_VERSIONS)}, got {_short(self.format_version)}")
        for k in ("target", "precision", "model_kind", "model_file", "slsdk_version", "created"):
            if not isinstance(getattr(self, k), str) or len(getattr(self, k)) > 1000:
                bad(f"{k} must be a string, got {_short(getattr(self, k))}")
        try:
            tgt = get_target(self.target)
            check_precision(tgt, self.precision)
        except ValueError as e:
            bad(str(e))
        if self.model_kind not in MODEL_KINDS:
            bad(f"model_kind must be one of {list(MODEL_KINDS)}, got {self.model_kind!r}")
        if not isinstance(self.vocab, list) or not self.vocab or not all(isinstance(g, str) for g in self.vocab):
            bad("vocab must be a non-empty list of gloss strings")
        if len(self.vocab) > L["vocab"] or any(len(g) > L["gloss_chars"] for g in self.vocab):
            bad(f"vocab has {len(self.vocab)} entries (at most {L['vocab']}, each at most {L['gloss_chars']} "
                "characters)")
        if len(self.vocab) < 2:
            bad("vocab needs the blank and at least one gloss")
        if self.blank_id != 0 or isinstance(self.blank_id, bool):
            bad(f"blank_id must be 0 (slsdk convention), got {_short(self.blank_id)}")
        if len(set(self.vocab)) != len(self.vocab):
            bad("vocab has duplicate entries")
        for k in ("model_config", "fidelity", "extra", "files"):
            if not isinstance(getattr(self, k), dict):
                bad(f"{k} must be an object, got {type(getattr(self, k)).__name__}")
        if self.quantization is not None and not isinstance(self.quantization, dict):
            bad("quantization must be an object or null")
        inp = self.input
        if not isinstance(inp, dict):
            bad("input must be an object")
        for k in ("height", "width", "channels", "layout", "mean", "std", "colour", "value_range", "resize_shorter",
                  "crop"):
            if k not in inp:
                bad(f"input.{k} is missing")
        if not (_int_in(inp["height"], 1, L["image_side"]) and _int_in(inp["width"], 1, L["image_side"])):
            bad(f"input.height/width must be integers in 1..{L['image_side']}, got "
                f"{_short(inp['height'])}x{_short(inp['width'])}")
        if not _int_in(inp["resize_shorter"], max(inp["height"], inp["width"]), L["resize_shorter"]):
            bad(f"input.resize_shorter must be an integer >= max(height, width) = {max(inp['height'], inp['width'])} "
                f"and <= {L['resize_shorter']} (the shorter side is resized to it, then the "
                f"{inp['height']}x{inp['width']} crop is cut), "
                f"got {_short(inp['resize_shorter'])}")
        if inp["crop"] not in INPUT_CROPS:
            bad(f"input.crop must be one of {list(INPUT_CROPS)}, got {_short(inp['crop'])}")
        if inp["channels"] != 3 or isinstance(inp["channels"], bool):
            bad("input.channels must be 3")
        for k in ("layout", "colour"):
            if not isinstance(inp[k], str) or len(inp[k]) > 16:
                bad(f"input.{k} must be a short string, got {_short(inp[k])}")
        for k, n in (("mean", 3), ("std", 3), ("value_range", 2)):
            v = inp[k]
            if not isinstance(v, list) or len(v) != n or \
                    not all(_num_in(x, -L["abs_value"], L["abs_value"]) for x in v):
                bad(f"input.{k} must be {n} finite numbers (|x| <= {L['abs_value']:g}), got {_short(v)}")
        if any(s <= 0 for s in inp["std"]):
            bad(f"input.std must be positive, got {inp['std']!r}")
        if not inp["value_range"][0] < inp["value_range"][1]:
            bad(f"input.value_range must be [low, high] with low < high, got {_short(inp['value_range'])}")
        if "dtype" in inp and inp["dtype"] not in TENSOR_DTYPES:
            bad(f"input.dtype must be one of {list(TENSOR_DTYPES)}, got {_short(inp['dtype'])}")
        if not _num_in(self.fps, 0, L["fps"]) or self.fps <= 0:
            bad(f"fps must be a finite number in (0, {L['fps']:g}], got {_short(self.fps)}")
        if not isinstance(self.crop, dict) or not isinstance(self.crop.get("policy"), str):
            bad("crop must be an object with a 'policy'")
        why = _crop_problem(self.crop)
        if why:
            bad(why)
        why = _fidelity_problem(self.fidelity)
        if why:
            bad(why)
        prep = self.extra.get("preparation")
        if prep is not None:   # how the training data was prepared: the runtime compares it with its crop
            if not isinstance(prep, dict):
                bad(f"extra.preparation must be an object, got {_short(prep)}")
            if prep.get("crop") is not None:
                why = (_crop_problem(prep["crop"], "extra.preparation.crop") if isinstance(prep["crop"], dict)
                       else f"extra.preparation.crop must be an object, got {_short(prep['crop'])}")
                if why:
                    bad(why)
            if prep.get("size") is not None and not _int_in(prep["size"], 1, L["resize_shorter"]):
                bad(f"extra.preparation.size must be an integer in 1..{L['resize_shorter']} or null, "
                    f"got {_short(prep['size'])}")
            if prep.get("fps") is not None and not (_num_in(prep["fps"], 0, L["fps"]) and prep["fps"] > 0):
                bad(f"extra.preparation.fps must be a number in (0, {L['fps']:g}] or null, got {_short(prep['fps'])}")
        s = self.streaming
        if not isinstance(s, dict):
            bad("streaming must be an object")
        for k in ("mode", "output_stride", "inputs", "outputs", "state"):
            if k not in s:
                bad(f"streaming.{k} is missing")
        if s["mode"] not in ("streaming", "offline"):
            bad(f"streaming.mode must be 'streaming' or 'offline', got {_short(s['mode'])}")
        if not _int_in(s["output_stride"], 1, L["output_stride"]):
            bad(f"streaming.output_stride must be an integer in 1..{L['output_stride']}, "
                f"got {_short(s['output_stride'])}")
        if s["mode"] == "streaming":
            c = s.get("chunk_frames")
            if not _int_in(c, 1, L["chunk_frames"]) or c % s["output_stride"]:
                bad(f"streaming.chunk_frames must be a multiple of output_stride in 1..{L['chunk_frames']}, "
                    f"got {_short(c)}")
            sh = s.get("shift_frames", c)
            if not _int_in(sh, 1, c):
                bad(f"streaming.shift_frames must be an integer in 1..chunk_frames ({c}), got {_short(sh)}")
            la = s.get("lookahead_frames", 0)
            if not _int_in(la, 0, L["chunk_frames"]):
                bad(f"streaming.lookahead_frames must be an integer in 0..{L['chunk_frames']}, got {_short(la)}")
        else:
            fr = s.get("frames_range")
            if fr is not None:
                if (not isinstance(fr, list) or len(fr) != 2
                        or not all(x is None or _int_in(x, 1, L["frames"]) for x in fr)
                        or (None not in fr and fr[0] > fr[1])):
                    bad(f"streaming.frames_range must be [min, max] frame counts in 1..{L['frames']}, got {_short(fr)}")
        for k in ("frame_shift_s", "algorithmic_latency_s"):
            v = s.get(k)
            if v is not None and not _num_in(v, 0, L["seconds"]):
                bad(f"streaming.{k} must be a finite number of seconds in 0..{L['seconds']:g}, got {_short(v)}")
        for group in ("inputs", "outputs"):
            if not isinstance(s[group], list) or not s[group] or len(s[group]) > L["tensors"]:
                bad(f"streaming.{group} must be a non-empty list (at most {L['tensors']})")
            seen = set()
            for io in s[group]:
                if not isinstance(io, dict) or not isinstance(io.get("name"), str) or "shape" not in io:
                    bad(f"streaming.{group} entries need a name and a shape, got {_short(io)}")
                if not io["name"] or len(io["name"]) > 256 or io["name"] in seen:
                    bad(f"streaming.{group} name {_short(io['name'])} is empty, too long or repeated")
                seen.add(io["name"])
                if io.get("dtype", "float32") not in TENSOR_DTYPES:
                    bad(f"streaming.{group} {io['name']!r}: dtype must be one of {list(TENSOR_DTYPES)}, "
                        f"got {_short(io.get('dtype'))}")
                why = _shape_problem(io["shape"], symbolic=True)
                if why:
                    bad(f"streaming.{group} {io['name']!r}: shape {why}")
        frames = s["inputs"][0]["shape"]
        if len(frames) == 5:   # [N, T, C, H, W]: the picture the input section describes, T the chunk
            want = [None, s.get("chunk_frames") if s["mode"] == "streaming" else None, 3, inp["height"], inp["width"]]
            for i, (got, w) in enumerate(zip(frames, want)):
                if w is not None and isinstance(got, int) and got > 0 and got != w:
                    bad(f"streaming.inputs {s['inputs'][0]['name']!r} shape {frames} disagrees with "
                        f"{['', 'chunk_frames', 'input.channels', 'input.height', 'input.width'][i]} = {w}")
        io_names = {io["name"] for io in s["inputs"]} | {io["name"] for io in s["outputs"]}
        if not isinstance(s["state"], list) or len(s["state"]) > L["tensors"]:
            bad(f"streaming.state must be a list (at most {L['tensors']})")
        if s["mode"] == "offline" and s["state"]:
            bad("streaming.state must be empty for an offline model")
        shapes = {io["name"]: io["shape"] for io in s["inputs"] + s["outputs"]}
        for st in s["state"]:
            if not isinstance(st, dict):
                bad(f"streaming.state entries must be objects, got {_short(st)}")
            for k in ("name", "input", "output", "shape"):
                if k not in st:
                    bad(f"streaming.state entry {_short(st)} is missing {k!r}")
            why = _shape_problem(st["shape"], symbolic=False)
            if why:
                bad(f"streaming.state {_short(st['name'])} shape {why}")
            for k in ("input", "output"):
                if not isinstance(st[k], str) or st[k] not in io_names:
                    bad(f"streaming.state {_short(st['name'])}: {k} {_short(st[k])} is not among the inputs/outputs")
                if list(shapes[st[k]]) != list(st["shape"]):
                    bad(f"streaming.state {st['name']!r}: shape {st['shape']} differs from {k} {st[k]!r} "
                        f"{shapes[st[k]]}")
        state_outputs = {st["output"] for st in s["state"]}
        logits = next((io for io in s["outputs"] if io["name"] not in state_outputs), None)
        if logits is None:
            bad("streaming.outputs has no output besides the state outputs (the class scores)")
        classes = logits["shape"][-1] if logits["shape"] else None
        if isinstance(classes, int) and classes > 0 and classes != len(self.vocab):
            bad(f"vocab has {len(self.vocab)} entries but output {logits['name']!r} has {classes} classes "
                f"(shape {logits['shape']})")
        if not isinstance(self.files, dict) or len(self.files) > L["files"]:
            bad(f"files must be an object mapping paths to checksums (at most {L['files']})")
        for name, info in self.files.items():
            _check_relpath(name, source)
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or len(info["sha256"]) != 64:
                bad(f"files[{name!r}] needs a sha256 hex digest")
            if "bytes" in info and not _int_in(info["bytes"], 0, L["file_bytes"]):
                bad(f"files[{name!r}].bytes must be an integer in 0..{L['file_bytes']}, got {_short(info['bytes'])}")
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

# The manifest's crop section: every field of slsdk.runtime.crop.CropConfig (a test checks that they agree), each
# with its type and range. ("number", lo, hi, lo_open): a finite int or float; ("int", lo, hi); ("bool",);
# ("choice", values). Checked at load, so `bundle inspect` and `run` refuse the same bundles.
CROP_FIELDS: dict[str, tuple] = {
    "policy": ("choice", ("hands", "full")),
    "margin": ("number", 1.0, 100.0, False),
    "min_size": ("number", 0.0, 1.0, False),
    "square": ("bool",),
    "smoothing": ("number", 0.0, 1.0, True),
    "hold_frames": ("int", 0, 1_000_000),
    "fallback": ("choice", ("center", "last")),
    "include_face": ("bool",),
    "face_extent": ("number", 0.0, 100.0, False),
    "num_hands": ("int", 1, 16),
    "min_detection_confidence": ("number", 0.0, 1.0, False),
    "min_presence_confidence": ("number", 0.0, 1.0, False),
    "min_tracking_confidence": ("number", 0.0, 1.0, False),
    "detect_every": ("int", 1, 10_000),
    "detect_policy": ("choice", ("search", "hold")),
}

# The fidelity figures other code reads (bench, demos, inspect): numbers, flags and texts of known type; any other
# key holds a number, a flag, a short text, null, or an object / list (only shown as JSON).
FIDELITY_NUMBERS = ("max_abs_err", "mean_abs_err", "cosine", "min_cosine", "argmax_agreement", "frames", "videos",
                    "wer", "wer_torch", "wer_delta", "hyp_agreement", "wer_budget")
FIDELITY_FLAGS = ("finite", "meets_int8_budget")
FIDELITY_TEXTS = ("status", "reason", "reference", "mode", "runtime")
_TEXT_CHARS = 1000


def _crop_problem(crop: dict, where: str = "crop") -> str | None:
    """Why the crop section is not a valid CropConfig (None when it is)."""
    unknown = sorted(set(crop) - set(CROP_FIELDS), key=str)
    if unknown:
        return f"{where} has unknown fields {_short(unknown)} (known: {', '.join(CROP_FIELDS)})"
    for k, v in crop.items():
        kind, *arg = CROP_FIELDS[k]
        if kind == "choice" and v not in arg[0]:
            return f"{where}.{k} must be one of {list(arg[0])}, got {_short(v)}"
        if kind == "bool" and not isinstance(v, bool):
            return f"{where}.{k} must be true or false, got {_short(v)}"
        if kind == "int" and not _int_in(v, arg[0], arg[1]):
            return f"{where}.{k} must be an integer in {arg[0]}..{arg[1]}, got {_short(v)}"
        if kind == "number":
            lo, hi, open_lo = arg
            if not _num_in(v, lo, hi) or (open_lo and v <= lo):
                return (f"{where}.{k} must be a number in {'(' if open_lo else '['}{lo:g}, {hi:g}], "
                        f"got {_short(v)}")
    return None


def _fidelity_problem(fid: dict) -> str | None:
    """Why the fidelity section has a value of the wrong type (None when every value is right)."""
    for k, v in fid.items():
        if not isinstance(k, str) or len(k) > 256:
            return f"fidelity key {_short(k)} is too long"
        if k in FIDELITY_NUMBERS:
            if v is not None and not _num_in(v, -1e12, 1e12):
                return f"fidelity.{k} must be a finite number or null, got {_short(v)}"
        elif k in FIDELITY_FLAGS:
            if v is not None and not isinstance(v, bool):
                return f"fidelity.{k} must be true, false or null, got {_short(v)}"
        elif k in FIDELITY_TEXTS or isinstance(v, str):
            if v is not None and (not isinstance(v, str) or len(v) > _TEXT_CHARS):
                return f"fidelity.{k} must be a text of at most {_TEXT_CHARS} characters or null, got {_short(v)}"
        elif not (v is None or isinstance(v, (bool, dict, list)) or _num_in(v, -math.inf, math.inf)):
            return f"fidelity.{k} must be a number, true/false, a text, null, an object or a list, got {_short(v)}"
    return None


def _posint(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _int_in(x, lo, hi) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def _num_in(x, lo, hi) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and lo <= x <= hi


def _short(v, n: int = 60) -> str:
    """``repr(v)`` cut to ``n`` characters (messages never echo a huge value)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _shape_problem(shape, *, symbolic: bool) -> str | None:
    """Why ``shape`` is not a bounded tensor shape (None when it is). Symbolic dims are names (or None/-1)."""
    L = LIMITS
    if not isinstance(shape, list) or len(shape) > 8:
        return f"must be a list of at most 8 dimensions, got {_short(shape)}"
    n = 1
    for d in shape:
        if isinstance(d, int) and not isinstance(d, bool):
            if not (1 <= d <= L["dim"]) and not (symbolic and d == -1):
                return f"dimension {d} is outside 1..{L['dim']}"
            n *= max(d, 1)
        elif symbolic and (d is None or (isinstance(d, str) and 0 < len(d) <= 64)):
            continue
        else:
            return f"dimension {_short(d)} is not {'an integer or a name' if symbolic else 'a positive integer'}"
    if n > L["tensor_elements"]:
        return f"has {n} elements (at most {L['tensor_elements']})"
    return None


def _check_relpath(name: str, source: str) -> PurePosixPath:
    """Refuse any bundle path that is absolute or climbs out of the bundle."""
    if not isinstance(name, str) or not name or len(name) > 1024 or "\x00" in name:
        raise BundleError(f"{source}: empty, over-long or non-string file path {_short(name)}")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{source}: file path {_short(name)} is absolute; bundle paths must be relative")
    if any(part in ("..",) for part in p.parts) or "\\" in name:
        raise BundleError(f"{source}: file path {_short(name)} escapes the bundle directory")
    return p


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
    _tmp: Any = field(default=None, repr=False)  # scratch folder (slsdk.fileio.TempDir) of an extracted zip
    replaced: bool = False                       # write_bundle replaced an existing bundle (overwrite=True)

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


# -- what the model file itself says ---------------------------------------------------------------------------
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}
_ET_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64"}


def _onnx_signature(path: Path) -> dict | None:
    """{"inputs"/"outputs": [(name, shape, dtype)], "meta": metadata_props} of an .onnx/.ort, without running it."""
    if path.suffix == ".onnx":
        try:
            import onnx
        except ImportError:
            onnx = None
        if onnx is not None:
            try:
                m = onnx.load(str(path), load_external_data=False)
            except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
                raise BundleError(f"{path}: not a readable ONNX model ({type(e).__name__}: {_short(str(e), 200)})") \
                    from None

            def vi(v):
                t = v.type.tensor_type
                shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
                return v.name, shape, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))

            inits = {i.name for i in m.graph.initializer}
            return {"inputs": [vi(v) for v in m.graph.input if v.name not in inits],
                    "outputs": [vi(v) for v in m.graph.output],
                    "meta": {p.key: p.value for p in m.metadata_props}, "names": True}
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise BundleError(f"{path}: onnxruntime cannot read the model ({_short(str(e).strip(), 200)})") from None

    def args(xs):
        return [(x.name, [d if isinstance(d, int) else (d or None) for d in x.shape], _ORT_DTYPES.get(x.type, x.type))
                for x in xs]

    return {"inputs": args(sess.get_inputs()), "outputs": args(sess.get_outputs()),
            "meta": dict(sess.get_modelmeta().custom_metadata_map), "names": True}


def _pte_signature(path: Path) -> dict | None:
    """The ExecuTorch program's ``forward`` method meta (counts, static shapes, dtypes; a .pte has no names)."""
    try:
        from executorch.runtime import Runtime, Verification
    except Exception:  # noqa: BLE001 - not installed, or its native part does not load here
        return None
    try:
        program = Runtime.get().load_program(str(path), verification=Verification.Minimal)
        if "forward" not in program.method_names:
            raise BundleError(f"{path}: the ExecuTorch program has no 'forward' method "
                              f"(methods: {sorted(program.method_names)})")
        meta = program.metadata("forward")

        def tm(t):
            return None, list(t.sizes()), _ET_DTYPES.get(int(t.dtype()), str(t.dtype()))

        return {"inputs": [tm(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
                "outputs": [tm(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())],
                "meta": {}, "names": False}
    except BundleError:
        raise
    except Exception as e:  # noqa: BLE001 - the runtime raises RuntimeError / ValueError
        raise BundleError(f"{path}: not a readable ExecuTorch program ({_short(str(e).strip(), 200)})") from None


def _model_signature(path: Path, target: str) -> dict | None:
    from slsdk.targets import get_target

    backend = get_target(target).backend  # the table says which runtime reads the file
    if backend == "onnxruntime":
        return _onnx_signature(path)
    if backend == "executorch":
        return _pte_signature(path)
    return None          # Core ML packages: validated by coremltools at conversion (no runtime on Linux)


def _dims_agree(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int) and x > 0 and y > 0) or x == y for x, y in zip(a, b))


def check_model_file(root: str | os.PathLike, manifest: Manifest, *, source: str | None = None) -> dict | None:
    """Check the manifest against what its model file declares, without running the model.

    Inputs and outputs (names where the format has them, else their number and order), static shapes and
    dtypes, the vocabulary size against the model's class count (last dimension of the first non-state
    output), and for ONNX the ``metadata_props`` the converter wrote (``vocab``, ``vocab_size``,
    ``chunk_frames``, ``output_stride``, ``blank_id``). Returns the signature read (None where no reader is
    installed for the format); raises :class:`BundleError` naming the file and the disagreement.
    """
    path = Path(root) / manifest.model_file
    sig = _model_signature(path, manifest.target)
    if sig is None:
        return None
    s = manifest.streaming
    where = source or str(Path(root) / MANIFEST_NAME)
    for group in ("inputs", "outputs"):
        declared = [(io["name"], list(io["shape"]), io.get("dtype", "float32")) for io in s[group]]
        real = sig[group]
        if sig["names"]:
            dn, rn = [d[0] for d in declared], [r[0] for r in real]
            if sorted(dn) != sorted(rn):
                raise BundleError(f"{where}: streaming.{group} {dn} differ from the model's {group} {rn} "
                                  f"({path.name}); the manifest does not describe this model")
            real = sorted(real, key=lambda r: dn.index(r[0]))
        elif len(declared) != len(real):
            raise BundleError(f"{where}: streaming.{group} lists {len(declared)} tensors but {path.name} has "
                              f"{len(real)}; the manifest does not describe this model")
        for (name, dshape, ddtype), (_, rshape, rdtype) in zip(declared, real):
            if not _dims_agree(dshape, rshape):
                raise BundleError(f"{where}: {group[:-1]} {name!r} has shape {dshape} in the manifest but "
                                  f"{rshape} in {path.name}")
            if rdtype in TENSOR_DTYPES and ddtype != rdtype:
                raise BundleError(f"{where}: {group[:-1]} {name!r} has dtype {ddtype} in the manifest but "
                                  f"{rdtype} in {path.name}")
    state_outputs = {st["output"] for st in s["state"]}
    logits = next((io for io in s["outputs"] if io["name"] not in state_outputs), None)
    if logits is not None:
        idx = [io["name"] for io in s["outputs"]].index(logits["name"])
        rshape = next(r[1] for r in sig["outputs"] if r[0] == logits["name"]) if sig["names"] else sig["outputs"][idx][1]
        classes = rshape[-1] if rshape else None
        if isinstance(classes, int) and classes > 0 and classes != len(manifest.vocab):
            raise BundleError(f"{where}: vocab has {len(manifest.vocab)} entries but the model {path.name} "
                              f"outputs {classes} classes ({logits['name']!r}); the vocabulary does not belong to "
                              "this model")
    meta = sig.get("meta") or {}
    if "vocab" in meta and meta["vocab"].split("\n") != list(manifest.vocab):
        mv = meta["vocab"].split("\n")
        diff = next((i for i, (a, b) in enumerate(zip(mv, manifest.vocab)) if a != b), min(len(mv), len(manifest.vocab)))
        raise BundleError(f"{where}: vocab differs from the vocabulary stored in {path.name} (metadata_props "
                          f"'vocab', {len(mv)} entries) from entry {diff} on; the bundle would decode wrong glosses")
    checks = {"vocab_size": len(manifest.vocab), "blank_id": manifest.blank_id,
              "output_stride": s.get("output_stride"), "chunk_frames": s.get("chunk_frames")}
    for key, value in checks.items():
        if key in meta and value is not None and meta[key] != str(value):
            raise BundleError(f"{where}: {key} is {value} in the manifest but {meta[key]!r} in {path.name} "
                              "(metadata_props)")
    return sig


# -- writing -----------------------------------------------------------------------------------------------------
def _read_manifest_dict(mpath: Path) -> dict:
    """manifest.json as a dict, bounded in size and depth; NaN/Infinity and huge numbers refused."""
    try:
        size = mpath.stat().st_size
    except OSError as e:
        raise BundleError(f"{mpath}: cannot read ({e.strerror})") from None
    if size > LIMITS["manifest_bytes"]:
        raise BundleError(f"{mpath}: {size} bytes; a manifest is at most {LIMITS['manifest_bytes']} bytes")

    try:
        raw = mpath.read_bytes()
    except OSError as e:
        raise BundleError(f"{mpath}: cannot read ({e.strerror})") from None
    return _parse_manifest_bytes(raw, str(mpath))


def _parse_manifest_bytes(raw: bytes, source: str):
    """The JSON of a manifest (at most ``LIMITS["manifest_bytes"]``): NaN/Infinity, huge numbers and over-deep
    nesting refused with a :class:`BundleError` naming ``source``."""
    if len(raw) > LIMITS["manifest_bytes"]:
        raise BundleError(f"{source}: {len(raw)} bytes; a manifest is at most {LIMITS['manifest_bytes']} bytes")

    def no_constant(name):
        raise ValueError(f"{name} is not allowed (numbers must be finite)")

    def finite_float(text):
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(f"number {_short(text, 30)} is out of range (not finite as a float)")
        return v

    def bounded_int(text):
        if len(text) > 19:
            raise ValueError(f"integer {_short(text, 30)} is out of range")
        return int(text)

    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=no_constant, parse_float=finite_float, parse_int=bounded_int)
    except UnicodeDecodeError as e:
        raise BundleError(f"{source}: not UTF-8 text (byte offset {e.start}); re-create the bundle") from None
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{source}: invalid JSON ({_short(str(e), 200)})") from None


def is_bundle_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding an slsdk bundle manifest (``format: slsdk-bundle``)."""
    p = Path(path)
    m = p / MANIFEST_NAME
    if not p.is_dir() or not m.is_file() or m.is_symlink():
        return False
    try:
        d = _read_manifest_dict(m)
    except BundleError:
        return False
    return isinstance(d, dict) and d.get("format") == FORMAT


def bundle_dir_name(manifest: Manifest) -> str:
    """The subfolder name a bundle gets inside an existing folder: ``<kind>-<target>-<precision>``."""
    return f"{manifest.model_kind}-{manifest.target}-{manifest.precision}"


def _foreign_files(path: Path) -> list[str]:
    """Files in a bundle folder that its manifest does not list (someone else's: never deleted)."""
    try:
        listed = set(_read_manifest_dict(path / MANIFEST_NAME).get("files") or {})
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
        d = _read_manifest_dict(p / MANIFEST_NAME)
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
                                    "(overwrite=True) to replace it, or choose another output folder")
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
            _check_relpath(name, str(out_dir))
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
                                "(overwrite=True) to replace it")
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
        return BundleError(f"{zip_path}: member {_short(name)} cannot be read: its local header is not where the "
                           f"zip directory says ({e.strerror or e}); corrupt zip")
    return BundleError(f"{zip_path}: member {_short(name)} cannot be read: its headers lie about its sizes or its "
                       f"data is corrupt ({type(e).__name__}: {_short(str(e), 160)}); re-download or re-zip the bundle")


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
        raise BundleError(f"{zip_path}: member {_short(info.filename)} has {len(data)} bytes, its header says "
                          f"{info.file_size} (corrupt zip)")
    return data


def _extract_bundle_zip(zip_path: Path, dest: Path) -> tuple[Path, Manifest]:
    """Extract a bundle zip into ``dest``: the manifest first, then only the files it lists.

    Every member name is checked (relative, inside ``dest``, no symlink, no duplicate) before anything is
    written. ``manifest.json`` (at the top, or in the zip's one top-level folder) is read and validated first;
    a member the manifest does not list is refused (a bundle zip holds exactly the manifest and its files, so
    one more member means it was altered or not made by slsdk; nothing is extracted). Each listed member's size
    in the zip header must equal the manifest's ``bytes``; their sum is bounded (``_MAX_ZIP_BYTES`` and the free
    space of ``dest``) before the first byte is written, and each member's inflated bytes are counted while it
    streams out, so no member yields more than it declared. Files are written with ``slsdk.fileio.atomic_write``.
    Returns the bundle root (``dest`` or its one folder) and the validated manifest.
    """
    _zip_precheck(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, *_ZIP_ERRORS) as e:
        raise BundleError(f"{zip_path}: not a readable zip file ({_short(str(e), 200)})") from None
    with zf:
        size = zip_path.stat().st_size
        infos = zf.infolist()
        seen: set[str] = set()
        real_dest = dest.resolve()
        for info in infos:
            name = info.filename
            if not name.rstrip("/"):
                raise BundleError(f"{zip_path}: a member has an empty name (corrupt zip)")
            _check_relpath(name.rstrip("/"), str(zip_path))
            if name in seen:
                raise BundleError(f"{zip_path}: member {_short(name)} appears twice; corrupt or tampered zip, refused")
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
        manifest = Manifest.from_dict(_parse_manifest_bytes(raw, msource), source=msource)
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
                raise BundleError(f"{zip_path}: member {_short(name)} (a {what}) is not listed in {minfo.filename}; "
                                  "a bundle zip holds only its manifest and the files the manifest lists, so this "
                                  "zip was altered or not made by slsdk: refused, nothing extracted (re-zip the "
                                  "bundle folder with slsdk, or remove the member)")
            declared = listed[name].get("bytes")
            if declared is not None and declared != info.file_size:
                raise BundleError(f"{zip_path}: member {_short(name)}: its zip headers lie about its size: they say "
                                  f"{info.file_size} bytes, {minfo.filename} says {declared}; corrupt or tampered "
                                  "zip, refused")
            total += info.file_size
            if total > _MAX_ZIP_BYTES:
                raise BundleError(f"{zip_path}: the listed files hold more than {_MAX_ZIP_BYTES} bytes uncompressed; "
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
                    raise BundleError(f"{zip_path}: member {_short(info.filename)} holds more than the {limit} bytes "
                                      "its header and the manifest declare; refused")
                f.write(block)
        if written != limit:
            raise BundleError(f"{zip_path}: member {_short(info.filename)} has {written} bytes, its header says "
                              f"{limit} (corrupt zip)")
    return copy


def _write_member(target: Path, write, name: str, zip_path: Path) -> None:
    """Write one member with :func:`slsdk.fileio.atomic_write` (into a fresh folder: nothing is replaced)."""
    if target.is_dir():
        raise BundleError(f"{zip_path}: member {_short(name)} clashes with another member (a folder of that name); "
                          "corrupt bundle zip")
    if target.exists() or target.is_symlink():
        raise BundleError(f"{target}: exists already; a bundle zip is extracted into an empty folder "
                          f"(member {_short(name)} of {zip_path})")
    try:
        atomic_write(target, write, fsync=False)
    except OutputExistsError as e:   # a member where another one made a folder, or under another one's file
        raise BundleError(f"{zip_path}: member {_short(name)} clashes with another member ({e}); corrupt bundle "
                          "zip") from None
    except WriteError as e:
        if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            raise BundleError(f"{zip_path}: member {_short(name)} clashes with another member ({e.strerror}); "
                              "corrupt bundle zip") from None
        raise


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
        data = _read_manifest_dict(mpath)
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
    prep = (m.extra or {}).get("preparation")
    if isinstance(prep, dict):  # how the training data was prepared (`slsdk data prepare`); the runtime checks it
        crop_policy = (prep.get("crop") or {}).get("policy") if isinstance(prep.get("crop"), dict) else None
        rows.insert(rows.index(("crop", json.dumps(m.crop))) + 1,
                    ("trained on", f"`slsdk data prepare` frames: crop {crop_policy}, size {prep.get('size')}, "
                                   f"fps {prep.get('fps')}"))
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
    from slsdk.terminal import visible   # text from the bundle shown as plain characters, one per row

    rows = [(visible(k), visible(v)) for k, v in rows]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)
