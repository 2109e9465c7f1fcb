"""The bundle manifest (``manifest.json``): :class:`Manifest` with its typed sections, read from and written to
JSON, checked in one place (:func:`slsdk.bundle.checks.check_manifest`).

    manifest = Manifest(target="onnx", precision="fp32", model_kind="student", model_file="model.onnx",
                        vocab=[...], input=InputSpec(...), fps=25.0, streaming=StreamingSpec(...))
    manifest.streaming.chunk_frames, manifest.input.height, manifest.crop.policy

Standard library only: runtimes load bundles without torch.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from slsdk.bundle.checks import check_manifest, crop_problem
from slsdk.bundle.limits import (
    FIDELITY_FLAGS,
    FIDELITY_NUMBERS,
    FIDELITY_TEXTS,
    FORMAT,
    FORMAT_VERSION,
    INPUT_CROPS,
    LIMITS,
    MANIFEST_NAME,
    MODEL_KINDS,
    READABLE_FORMAT_VERSIONS,
    TENSOR_DTYPES,
    BundleError,
    posint,
    short,
)
from slsdk.bundle.sections import CropConfig, InputSpec, Section, StateSpec, StreamingSpec, TensorSpec
from slsdk.version import __version__

__all__ = [
    "FORMAT", "FORMAT_VERSION", "READABLE_FORMAT_VERSIONS", "MANIFEST_NAME", "MODEL_KINDS", "INPUT_CROPS",
    "TENSOR_DTYPES", "LIMITS", "FIDELITY_NUMBERS", "FIDELITY_FLAGS", "FIDELITY_TEXTS", "BundleError", "Manifest",
    "CropConfig", "InputSpec", "TensorSpec", "StateSpec", "StreamingSpec", "default_input_spec",
    "legacy_resize_shorter", "parse_manifest_bytes", "read_manifest_dict",
]


def _slsdk_version() -> str:
    return __version__


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
    if isinstance(inp, Mapping) and posint(inp.get("height")) and posint(inp.get("width")):
        inp = dict(inp)
        inp.setdefault("resize_shorter", legacy_resize_shorter(inp["height"], inp["width"]))
        inp.setdefault("crop", "center")
        d = {**d, "input": inp}
    return d


def _crop_section(crop):
    """The crop section as a CropConfig (a malformed one stays as given, for the check to name the field)."""
    if isinstance(crop, Mapping) and not isinstance(crop, Section) and crop_problem(dict(crop)) is None:
        return CropConfig.from_dict(crop)
    return crop


_IDENTITY = ("format", "format_version", "slsdk_version", "created", "target", "precision", "model_kind",
             "model_file")


@dataclass
class Manifest:
    """Everything a runtime needs to use the bundle's model; :func:`~slsdk.bundle.checks.check_manifest` is the
    schema. ``input``, ``streaming`` and ``crop`` may be given as JSON objects: they become the typed sections."""

    target: str
    precision: str
    model_kind: str
    model_file: str
    vocab: list
    input: InputSpec
    fps: float
    streaming: StreamingSpec
    model_config: dict = field(default_factory=dict)
    blank_id: int = 0
    crop: CropConfig = field(default_factory=lambda: CropConfig.from_dict({"policy": "full"}))
    fidelity: dict = field(default_factory=dict)
    quantization: dict | None = None
    files: dict = field(default_factory=dict)  # relative posix path -> {"sha256": hex, "bytes": n}
    extra: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    slsdk_version: str = field(default_factory=_slsdk_version)
    created: str = field(default_factory=_now)

    def __post_init__(self):
        if isinstance(self.input, Mapping) and not isinstance(self.input, Section):
            self.input = InputSpec.from_dict(self.input)
        if isinstance(self.streaming, Mapping) and not isinstance(self.streaming, Section):
            self.streaming = StreamingSpec.from_dict(self.streaming)
        self.crop = _crop_section(self.crop)

    # --- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The manifest's JSON object: identity first, then the fields in order; sections as they were read."""
        d = {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}
        return {**{k: d[k] for k in _IDENTITY}, **{k: v for k, v in d.items() if k not in _IDENTITY}}

    def to_json(self) -> str:
        """``manifest.json``'s text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "manifest") -> "Manifest":
        """The validated manifest of a JSON object (a version-1 one upgraded); :class:`BundleError` naming
        ``source`` when it is not one."""
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
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise BundleError(f"{source}: manifest is missing required keys {missing}")
        m = cls(**{k: d[k] for k in d})
        m.validate(source=source)
        return m

    def validate(self, *, source: str = "manifest") -> "Manifest":
        """Check the schema and every value against :data:`LIMITS`; raise :class:`BundleError` naming ``source``."""
        check_manifest(self.to_dict(), source)
        return self

    @property
    def state_specs(self) -> list[StateSpec]:
        """The streaming model's state tensors."""
        return list(self.streaming.state)


REQUIRED = ("target", "precision", "model_kind", "model_file", "vocab", "input", "fps", "streaming")


def _json_value(v):
    if isinstance(v, Section):
        return v.section_json()
    return copy.deepcopy(v)


def read_manifest_dict(mpath: Path) -> dict:
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
    return parse_manifest_bytes(raw, str(mpath))


def parse_manifest_bytes(raw: bytes, source: str):
    """The JSON of a manifest (at most ``LIMITS["manifest_bytes"]``): NaN/Infinity, huge numbers and over-deep
    nesting refused with a :class:`BundleError` naming ``source``."""
    if len(raw) > LIMITS["manifest_bytes"]:
        raise BundleError(f"{source}: {len(raw)} bytes; a manifest is at most {LIMITS['manifest_bytes']} bytes")

    def no_constant(name):
        raise ValueError(f"{name} is not allowed (numbers must be finite)")

    def finite_float(text):
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(f"number {short(text, 30)} is out of range (not finite as a float)")
        return v

    def bounded_int(text):
        if len(text) > 19:
            raise ValueError(f"integer {short(text, 30)} is out of range")
        return int(text)

    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=no_constant, parse_float=finite_float, parse_int=bounded_int)
    except UnicodeDecodeError as e:
        raise BundleError(f"{source}: not UTF-8 text (byte offset {e.start}); re-create the bundle") from None
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{source}: invalid JSON ({short(str(e), 200)})") from None
