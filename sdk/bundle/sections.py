"""The manifest's typed sections: ``input`` (:class:`InputSpec`, with its :class:`LandmarkSpec` for landmark models), ``streaming`` (:class:`StreamingSpec` with its
:class:`TensorSpec` inputs / outputs and :class:`StateSpec` state tensors) and ``crop`` (:class:`CropConfig`).

Each field's ``metadata`` says its JSON type and range (``kind`` and bounds from :data:`~slsdk.bundle.limits.LIMITS`);
the manifest check (:mod:`slsdk.bundle.checks`) and the JSON Schema (:mod:`slsdk.bundle.schema`) read them.
A section read from JSON remembers its keys and their order, so it is written back with the same keys (a bundle
written by this slsdk is byte-for-byte what the one before wrote); keys this slsdk does not know are kept.
Sections also answer ``section["key"]`` and ``section.get("key")`` like the JSON object they come from.
Standard library only.
"""
from __future__ import annotations

import copy
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Mapping

from slsdk.bundle.limits import (DIM_NAME_CHARS, INPUT_CROPS, INPUT_MODALITIES, LANDMARK_COORDINATES, LIMITS, MAX_DIMS,
                                 NAME_CHARS, SHORT_TEXT_CHARS, STREAMING_MODES, TENSOR_DTYPES, TEXT_CHARS)

L = LIMITS


def rule(kind: str, *, default: Any = MISSING, factory: Any = MISSING, required: bool = False,
         nullable: bool = False, doc: str = "", **bounds) -> Any:
    """A dataclass field with its JSON rule in ``metadata``: ``kind`` is one of int, number, bool, choice, text,
    numbers, ints (a list of integers), shape, list (of a section class, ``of=``), section (one object of a section
    class, ``of=``), pair (frames_range); bounds as keywords."""
    meta = {"kind": kind, "required": required, "nullable": nullable, "doc": doc, **bounds}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=None if default is MISSING else default, metadata=meta)


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _to_json(v):
    if isinstance(v, Section):
        return v.section_json()
    if isinstance(v, list):
        return [_to_json(x) for x in v]
    return copy.deepcopy(v)


class Section:
    """Base of the typed sections: built from and written to one JSON object of the manifest."""

    _order: tuple = ()      # the keys the JSON object had, in its order ((): built in code, write every field)
    _extra: dict = {}       # keys this slsdk does not know, kept as they were  # noqa: RUF012 - replaced, never mutated

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """The section of JSON object ``d``, as it is: nothing is checked here (see :mod:`slsdk.bundle.checks`)."""
        obj = cls.__new__(cls)
        known = {f.name: f for f in fields(cls)}
        for name, f in known.items():
            v = d.get(name, _default(f)) if name in d else _default(f)
            of = f.metadata.get("of")
            if of is not None and isinstance(v, list):
                v = [of.from_dict(x) if isinstance(x, Mapping) else copy.deepcopy(x) for x in v]
            elif of is not None and isinstance(v, Mapping):
                v = of.from_dict(v)
            elif isinstance(v, (dict, list)):
                v = copy.deepcopy(v)
            setattr(obj, name, v)
        obj._order = tuple(d)
        obj._extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in known}
        return obj

    def keys(self) -> list[str]:
        """The JSON keys this section writes, in order."""
        if not self._order:
            return [f.name for f in fields(self) if not (f.metadata.get("optional") and getattr(self, f.name) is None)]
        extra = [f.name for f in fields(self) if f.name not in self._order and getattr(self, f.name) != _default(f)]
        return [*self._order, *extra]

    def section_json(self) -> dict:
        """The JSON object of this section (the keys it was read with, in their order)."""
        return {k: _to_json(self._extra[k] if k in self._extra else getattr(self, k)) for k in self.keys()}

    def to_dict(self) -> dict:
        """The section as a JSON-ready dict."""
        return self.section_json()

    def __eq__(self, other) -> bool:
        # the same section, field by field (and the same unknown keys)
        if not isinstance(other, Section):
            return NotImplemented
        return type(other) is type(self) and self._extra == other._extra and \
            all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))

    __hash__ = None


@dataclass(kw_only=True, eq=False)
class CropConfig(Section):
    """How the signing space is cropped; stored in the bundle manifest (``to_dict``/``from_dict``).

    policy:        "hands" (box around the detected hands) or "full" (whole frame, no detection).
    margin:        the box side is ``margin`` x the larger side of the hands' landmark box.
    min_size:      the box side is at least this fraction of the frame's shorter side.
    square:        square box (always for "hands"; for "full" the frame is padded to a square).
    smoothing:     EMA weight of the newest box (1.0 = no smoothing, smaller = steadier).
    hold_frames:   frames the last box is kept after the hands vanish, before the fallback.
    fallback:      "center" (move to the largest centred square) or "last" (keep the last box).
    include_face:  extend the box upward by ``face_extent`` palm lengths to take in the head.
    detect_every:  skip the hand landmarker on some frames (1 = run it on every frame), by ``detect_policy``:
    detect_policy: "search" (default): while hands are tracked the landmarker runs on every frame; once a
                   frame has none, it runs on every ``detect_every``-th frame until hands come back (the box is
                   held meanwhile, so only re-acquisition is up to N-1 frames late). "hold": it runs on every
                   N-th frame whatever it found, the last hands are held in between. Measured on the real
                   webcam clip (benchmarks/bench_hands.py, docs/guide.md): "search" N=2 keeps the crop boxes of
                   every-frame detection exactly (IoU 1.0) with 29% fewer landmarker calls; "hold" N=2 drops
                   the IoU to 0.83 mean / 0.50 min, because MediaPipe's tracker loses a moving hand when it
                   skips frames.

    The manifest's ``crop`` section holds the fields it was written with (``{"policy": "full"}`` by default);
    each field's ``metadata`` is its range in a manifest (checked at load, so `bundle inspect` and `run` refuse
    the same bundles).
    """

    policy: str = rule("choice", default="hands", values=("hands", "full"), required=True)
    margin: float = rule("number", default=1.5, lo=1.0, hi=100.0, open_lo=False)
    min_size: float = rule("number", default=0.5, lo=0.0, hi=1.0, open_lo=False)
    square: bool = rule("bool", default=True)
    smoothing: float = rule("number", default=0.3, lo=0.0, hi=1.0, open_lo=True)
    hold_frames: int = rule("int", default=15, lo=0, hi=1_000_000)
    fallback: str = rule("choice", default="center", values=("center", "last"))
    include_face: bool = rule("bool", default=False)
    face_extent: float = rule("number", default=2.5, lo=0.0, hi=100.0, open_lo=False)
    num_hands: int = rule("int", default=2, lo=1, hi=16)
    min_detection_confidence: float = rule("number", default=0.5, lo=0.0, hi=1.0, open_lo=False)
    min_presence_confidence: float = rule("number", default=0.5, lo=0.0, hi=1.0, open_lo=False)
    min_tracking_confidence: float = rule("number", default=0.5, lo=0.0, hi=1.0, open_lo=False)
    detect_every: int = rule("int", default=2, lo=1, hi=10_000)
    detect_policy: str = rule("choice", default="search", values=("search", "hold"))

    def __post_init__(self):
        if self.policy not in ("hands", "full"):
            raise ValueError(f"CropConfig.policy must be 'hands' or 'full', got {self.policy!r}")
        if self.fallback not in ("center", "last"):
            raise ValueError(f"CropConfig.fallback must be 'center' or 'last', got {self.fallback!r}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"CropConfig.smoothing (EMA weight of the newest box) must be in (0, 1], got {self.smoothing}")
        if self.margin < 1.0:
            raise ValueError(f"CropConfig.margin must be >= 1.0, got {self.margin}")
        if not 0.0 <= self.min_size <= 1.0:
            raise ValueError(f"CropConfig.min_size must be in [0, 1], got {self.min_size}")
        if int(self.detect_every) != self.detect_every or self.detect_every < 1:
            raise ValueError(f"CropConfig.detect_every must be an integer >= 1, got {self.detect_every!r}")
        if self.detect_policy not in ("search", "hold"):
            raise ValueError(f"CropConfig.detect_policy must be 'search' or 'hold', got {self.detect_policy!r}")
        if self.hold_frames < 0 or self.num_hands < 1:
            raise ValueError("CropConfig.hold_frames must be >= 0 and num_hands >= 1")

    def to_dict(self) -> dict:
        """Every field (the manifest writes only the fields its crop section was read with: ``section_json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CropConfig:
        """The config of ``d`` (missing fields at their defaults); unknown keys and bad values raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CropConfig keys: {sorted(unknown)}")
        cfg = cls(**{k: d[k] for k in d})
        cfg._order = tuple(d)
        return cfg


@dataclass(kw_only=True, eq=False)
class LandmarkPart(Section):
    """One part of a landmark layout, in order: ``count`` points taken from ``source``'s landmarks ``indices``."""

    name: str = rule("text", max=NAME_CHARS, min=1, required=True)
    source: str = rule("text", max=NAME_CHARS, required=True,
                       doc="the landmarker the points come from (mediapipe-hand-right, mediapipe-face, mediapipe-pose)")
    count: int = rule("int", lo=1, hi=L["landmark_points"], required=True)
    indices: list = rule("ints", factory=list, lo=0, hi=L["landmark_points"], max=L["landmark_points"],
                         doc="the source's landmark ids, in this part's order (empty: 0..count-1)")


@dataclass(kw_only=True, eq=False)
class LandmarkSpec(Section):
    """The ``input.landmarks`` section: the landmark tensor a landmark model takes, per frame ``[points, dims]``.

    The points are the ``parts`` in order; each frame's points are normalised by ``normalisation`` (a name the
    runtime implements: ``isharah-pose86``, each part relative to its first point, shifted to its minimum and
    scaled to +-0.5, a missing part copied from the previous frame) from ``coordinates`` (``pixels``: x times
    the frame width, y times its height; a part not found is all zeros).
    """

    tensor: str = rule("text", max=NAME_CHARS, min=1, required=True, doc="the streaming input that takes them")
    layout: str = rule("text", max=NAME_CHARS, min=1, required=True)
    points: int = rule("int", lo=1, hi=L["landmark_points"], required=True)
    dims: int = rule("int", lo=2, hi=3, required=True)
    normalisation: str = rule("text", max=NAME_CHARS, min=1, required=True)
    coordinates: str = rule("choice", default="pixels", values=LANDMARK_COORDINATES, required=True)
    parts: list = rule("list", factory=list, of=LandmarkPart, min=1, max=L["landmark_points"], required=True)


@dataclass(kw_only=True, eq=False)
class InputSpec(Section):
    """The ``input`` section: how to turn camera frames into the model's input tensor.

    A frame's shorter side is resized to ``resize_shorter`` pixels (aspect ratio kept, antialiased), then
    ``crop`` ("center": the middle ``height x width``) is cut out, then the pixels are scaled to ``value_range``
    and normalised: ``(x - mean) / std`` per channel. ``modality`` (absent: ``frames``) says what the model
    takes: ``frames``, ``landmarks`` (only ``landmarks``, the points per frame; the picture fields then
    describe the frame landmarks are found in) or ``fusion`` (both).
    """

    height: int = rule("int", lo=1, hi=L["image_side"], required=True)
    width: int = rule("int", lo=1, hi=L["image_side"], required=True)
    channels: int = rule("int", default=3, lo=3, hi=3, required=True)
    layout: str = rule("text", default="NTCHW", max=SHORT_TEXT_CHARS, required=True)
    colour: str = rule("text", default="RGB", max=SHORT_TEXT_CHARS, required=True)
    dtype: str | None = rule("choice", values=TENSOR_DTYPES, optional=True)
    resize_shorter: int = rule("int", lo=1, hi=L["resize_shorter"], required=True,
                               doc="the shorter side is resized to it (>= max(height, width)), then the crop is cut")
    crop: str = rule("choice", default="center", values=INPUT_CROPS, required=True)
    value_range: list = rule("numbers", factory=lambda: [0.0, 1.0], count=2, abs=L["abs_value"], required=True)
    mean: list = rule("numbers", factory=list, count=3, abs=L["abs_value"], required=True)
    std: list = rule("numbers", factory=list, count=3, abs=L["abs_value"], required=True)
    modality: str | None = rule("choice", values=INPUT_MODALITIES, optional=True,
                                doc="what the model takes: frames (the default), landmarks, or fusion (both)")
    landmarks: LandmarkSpec | None = rule("section", of=LandmarkSpec, optional=True,
                                          doc="the landmark input (modality landmarks or fusion)")


@dataclass(kw_only=True, eq=False)
class TensorSpec(Section):
    """One model input or output: its name, shape (integers, or names / null for dynamic dims) and dtype."""

    name: str = rule("text", max=NAME_CHARS, min=1, required=True)
    shape: list = rule("shape", factory=list, symbolic=True, required=True)
    dtype: str = rule("choice", default="float32", values=TENSOR_DTYPES)


@dataclass(kw_only=True, eq=False)
class StateSpec(Section):
    """A recurrent state tensor of a streaming model: fed as input ``input``, read back from output ``output``."""

    name: str = rule("text", max=NAME_CHARS, required=True)
    input: str = rule("text", max=NAME_CHARS, required=True)
    output: str = rule("text", max=NAME_CHARS, required=True)
    shape: list = rule("shape", factory=list, symbolic=False, required=True)
    dtype: str = rule("choice", default="float32", values=TENSOR_DTYPES)
    init: str = rule("text", default="zeros", max=TEXT_CHARS)


@dataclass(kw_only=True, eq=False)
class StreamingSpec(Section):
    """The ``streaming`` section: how the model is stepped (chunks of frames, or a whole clip offline).

    ``max_batch`` / ``batch_sizes`` (optional): how many streams one call may stack along axis 0 (a server's
    ``Recognizer.decode_streams``); batch 1 (the shapes as listed) always runs, so phones and the web page need
    neither key.
    """

    mode: str = rule("choice", default="streaming", values=STREAMING_MODES, required=True)
    chunk_frames: int | None = rule("int", lo=1, hi=L["chunk_frames"], nullable=True,
                                    doc="frames per step (a multiple of output_stride); null offline")
    shift_frames: int | None = rule("int", lo=1, hi=L["chunk_frames"], nullable=True)
    lookahead_frames: int | None = rule("int", lo=0, hi=L["chunk_frames"], nullable=True)
    output_stride: int = rule("int", default=1, lo=1, hi=L["output_stride"], required=True)
    frame_shift_s: float | None = rule("number", lo=0.0, hi=L["seconds"], open_lo=False, nullable=True)
    algorithmic_latency_s: float | None = rule("number", lo=0.0, hi=L["seconds"], open_lo=False, nullable=True)
    padding: str | None = rule("text", max=TEXT_CHARS, optional=True)
    output_frames: str | None = rule("text", max=TEXT_CHARS, optional=True)
    frames_range: list | None = rule("pair", lo=1, hi=L["frames"], nullable=True, optional=True)
    inputs: list = rule("list", factory=list, of=TensorSpec, min=1, max=L["tensors"], required=True)
    outputs: list = rule("list", factory=list, of=TensorSpec, min=1, max=L["tensors"], required=True)
    state: list = rule("list", factory=list, of=StateSpec, min=0, max=L["tensors"], required=True)
    max_batch: int | None = rule("int", lo=1, hi=L["batch"], optional=True,
                                 doc="the most streams one call takes, stacked on axis 0 of every input, state and "
                                     "output (the shapes above are one stream's, batch 1); absent: 1")
    batch_sizes: list | None = rule("ints", lo=1, hi=L["batch"], min=1, max=L["batch_sizes"], optional=True,
                                    doc="the only batch sizes the file takes (increasing, from 1 to max_batch; "
                                        "ExecuTorch: method 'forward' for 1, 'forward_b<n>' for n); absent: any "
                                        "size from 1 to max_batch")


SHAPE_RULE = {"max_dims": MAX_DIMS, "dim": L["dim"], "dim_name": DIM_NAME_CHARS}
