"""Signing-space cropping: one implementation for the runtime (frame by frame, video or camera) and for
training-time preparation (``make_crop_fn`` -> a picklable ``frames [T,H,W,3] -> frames [T,s,s,3]`` callable,
``slsdk data prepare``), so a model sees the same crops in training and on device.

Boxes are ``(x0, y0, x1, y1)`` integer pixels, half-open (``image[y0:y1, x0:x1]``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from slsdk.runtime.hand_model import resolve_hand_model
from slsdk.runtime.landmarker import (Hand, _OPEN, _as_mp_image, _close_landmarker, _close_pending, _create_landmarker,
                                     _release_later, _to_hands)

@dataclass
class CropConfig:
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
                   webcam clip (benchmarks/bench_hands.py, README): "search" N=2 keeps the crop boxes of
                   every-frame detection exactly (IoU 1.0) with 29% fewer landmarker calls; "hold" N=2 drops
                   the IoU to 0.83 mean / 0.50 min, because MediaPipe's tracker loses a moving hand when it
                   skips frames.
    """

    policy: str = "hands"
    margin: float = 1.5
    min_size: float = 0.5
    square: bool = True
    smoothing: float = 0.3
    hold_frames: int = 15
    fallback: str = "center"
    include_face: bool = False
    face_extent: float = 2.5
    num_hands: int = 2
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detect_every: int = 2
    detect_policy: str = "search"

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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CropConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CropConfig keys: {sorted(unknown)}")
        return cls(**d)



@dataclass(eq=False)
class CropResult:
    image: np.ndarray  # uint8 [s, s, 3] crop (resized when the cropper has a size)
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in frame pixels
    hands_found: int
    landmarks: list[np.ndarray] = field(default_factory=list)  # per hand float32 [21, 3], frame pixels
    handedness: list[str] = field(default_factory=list)
    status: str = "hands"  # "hands" | "held" | "fallback" | "full"
    raw_box: tuple[int, int, int, int] | None = None  # this frame's hands box before smoothing
    detected: bool = True  # False: the landmarker skipped this frame (detect_every > 1), its hands are held


@dataclass
class CropStats:
    frames: int = 0
    frames_with_hands: int = 0
    total_hands: int = 0
    held_frames: int = 0
    fallback_frames: int = 0
    detections: int = 0  # frames the landmarker ran on (fewer than frames with detect_every > 1)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    keep_boxes: bool = True  # False for live streams: counts only, memory stays bounded

    def add(self, res: CropResult) -> None:
        """Count one frame's crop."""
        self.frames += 1
        self.frames_with_hands += res.hands_found > 0
        self.total_hands += res.hands_found
        self.held_frames += res.status == "held"
        self.fallback_frames += res.status == "fallback"
        self.detections += res.detected
        if self.keep_boxes:
            self.boxes.append(res.box)

    @property
    def mean_hands(self) -> float:
        return self.total_hands / self.frames if self.frames else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("keep_boxes")
        d["mean_hands"] = self.mean_hands
        return d


# --------------------------------------------------------------------------------------------------
# geometry and resizing (numpy only)
# --------------------------------------------------------------------------------------------------
def _square_box(cx: float, cy: float, side: float, w: int, h: int) -> tuple[int, int, int, int]:
    """Integer square box of ~``side`` centred near (cx, cy), shifted (not shrunk) to lie in the frame."""
    s = int(min(max(1, math.ceil(side - 1e-6)), w, h))
    x0 = int(round(cx - s / 2))
    y0 = int(round(cy - s / 2))
    x0 = min(max(x0, 0), w - s)
    y0 = min(max(y0, 0), h - s)
    return x0, y0, x0 + s, y0 + s


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` frame."""
    return _square_box(width / 2, height / 2, min(width, height), width, height)


def hands_box_params(hands: Sequence[Hand], width: int, height: int, config: CropConfig) -> tuple[float, float, float]:
    """(cx, cy, side) of the signing-space square for these hands (landmarks clipped to the frame)."""
    pts = np.concatenate([h.landmarks[:, :2] for h in hands], axis=0).astype(np.float64)
    pts[:, 0] = np.clip(pts[:, 0], 0, width)
    pts[:, 1] = np.clip(pts[:, 1], 0, height)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if config.include_face:
        palm = max(float(np.linalg.norm(h.landmarks[9, :2] - h.landmarks[0, :2])) for h in hands)
        y0 = max(0.0, y0 - config.face_extent * palm)
    short = min(width, height)
    side = max(x1 - x0, y1 - y0) * config.margin
    side = min(max(side, config.min_size * short, 1.0), short)
    cx = min(max((x0 + x1) / 2, side / 2), width - side / 2)
    cy = min(max((y0 + y1) / 2, side / 2), height - side / 2)
    return cx, cy, side


@lru_cache(maxsize=64)
def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] antialiased bilinear (triangle filter) weights, half-pixel centres (as PIL/torch)."""
    scale = n_in / n_out
    if scale <= 1.0:  # upsampling: plain bilinear, border pixels replicated (as torch)
        return _plain_bilinear(n_in, n_out)
    centers = (np.arange(n_out) + 0.5) * scale
    src = np.arange(n_in) + 0.5
    wts = np.clip(1.0 - np.abs(src[None, :] - centers[:, None]) / scale, 0.0, None)
    wts /= wts.sum(axis=1, keepdims=True)
    return wts.astype(np.float32)


def pad_to_square(img: np.ndarray, value: int = 0) -> np.ndarray:
    """Centre ``[..., H, W, C]`` in a square canvas (letterbox) filled with ``value``."""
    h, w = img.shape[-3], img.shape[-2]
    if h == w:
        return img
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    pad = [(0, 0)] * (img.ndim - 3) + [(top, s - h - top), (left, s - w - left), (0, 0)]
    return np.pad(img, pad, mode="constant", constant_values=value)


def resize_square(img: np.ndarray, size: int, *, antialias: bool = True) -> np.ndarray:
    """Resize ``uint8 [H,W,C]`` or ``[T,H,W,C]`` to ``size`` x ``size`` (non-square input is letterboxed).

    Bilinear with a triangle filter widened by the downscale factor (antialias, like PIL and
    ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``); numpy only, so the runtime
    needs no torch for preprocessing.
    """
    img = np.asarray(img)
    if img.ndim not in (3, 4):
        raise ValueError(f"resize_square expects [H,W,C] or [T,H,W,C], got shape {img.shape}")
    img = pad_to_square(img)
    n = img.shape[-2]
    if n == size:
        return img.copy()
    if img.dtype == np.uint8 and img.shape[-1] == 3 and (antialias or size > n):
        # RGB frames: PIL's bilinear is the same triangle filter (widened when shrinking), in C without the GIL,
        # 4-30x faster than the numpy path below and within 1 grey level of it (tested)
        from PIL import Image

        def one(f):
            return np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((size, size), Image.BILINEAR))

        return one(img) if img.ndim == 3 else np.stack([one(f) for f in img]) if len(img) else \
            np.zeros((0, size, size, 3), np.uint8)
    idx, wts = _taps(n, size, antialias or size > n)
    x = img.astype(np.float32)
    rows = sum(wts[:, j, None, None] * np.take(x, idx[:, j], axis=-3) for j in range(idx.shape[1]))
    out = sum(wts[None, :, j, None] * np.take(rows, idx[:, j], axis=-2) for j in range(idx.shape[1]))
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


@lru_cache(maxsize=64)
def _taps(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """The dense weights as (indices, weights) ``[n_out, k]`` of the k non-zero taps per output."""
    dense = _resize_weights(n_in, n_out) if antialias else _plain_bilinear(n_in, n_out)
    nz = dense > 0
    k = int(nz.sum(axis=1).max())
    first = nz.argmax(axis=1)
    pos = first[:, None] + np.arange(k)[None, :]
    idx = np.minimum(pos, n_in - 1)
    wts = np.where(pos < n_in, np.take_along_axis(dense, idx, axis=1), 0.0).astype(np.float32)
    return idx, wts


def _plain_bilinear(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    centers = np.clip((np.arange(n_out) + 0.5) * scale, 0.5, n_in - 0.5)
    src = np.arange(n_in) + 0.5
    wts = np.clip(1.0 - np.abs(src[None, :] - centers[:, None]), 0.0, None)
    return (wts / wts.sum(axis=1, keepdims=True)).astype(np.float32)


def extract_crop(frame: np.ndarray, box: Sequence[int], size: int | None = None, *, square: bool = True) -> np.ndarray:
    """``frame[y0:y1, x0:x1]``, letterboxed to a square when ``square``, resized when ``size`` is given."""
    x0, y0, x1, y1 = (int(v) for v in box)
    crop = frame[y0:y1, x0:x1]
    if square:
        crop = pad_to_square(crop)
    if size is not None:
        return resize_square(crop, size)
    return np.ascontiguousarray(crop)



class HandCropper:
    """Signing-space cropper over a frame sequence (HandLandmarker in VIDEO mode, with tracking).

    ``crop(frame, timestamp_ms)`` per frame; ``crop_video(frames, fps)`` for a whole clip (starts a fresh
    tracker, so the result does not depend on what was cropped before). Timestamps must increase; a
    repeated or earlier timestamp is moved to 1 ms after the previous one.
    """

    def __init__(self, config: CropConfig | None = None, model_path: str | Path | None = None, *,
                 size: int | None = None, keep_boxes: bool = True):
        self.config = config or CropConfig()
        self.size = size
        self.keep_boxes = keep_boxes  # False for live streams: stats keep counts only (bounded memory)
        self.model_path = resolve_hand_model(model_path) if self.config.policy == "hands" else None
        self._lm = None
        self._new_landmarker()
        self.reset_state()
        _OPEN.add(self)

    # -- state ----------------------------------------------------------------------------------
    def _new_landmarker(self) -> None:
        self._close_landmarker()
        if self.model_path is not None:
            c = self.config
            self._lm = _create_landmarker(self.model_path, "VIDEO", c.num_hands, c.min_detection_confidence,
                                          c.min_presence_confidence, c.min_tracking_confidence)
        self._last_ts = -1

    def reset_state(self) -> None:
        """Forget the smoothed box and the hold counter (the tracker keeps running)."""
        self._state: tuple[float, float, float] | None = None
        self._missing = 0
        self._held_hands: list[Hand] = []
        self._frame_no = 0
        self._since_empty: int | None = None  # frames since the last detection that found no hands ("search")
        self.stats = CropStats(keep_boxes=self.keep_boxes)

    def reset(self) -> None:
        """Start over as for a new video: fresh tracker, timestamps and box state."""
        self._new_landmarker()
        self.reset_state()

    # -- per frame ------------------------------------------------------------------------------
    def detect(self, frame: np.ndarray, timestamp_ms: int) -> list[Hand]:
        if self._lm is None:
            if self.model_path is None:
                return []
            raise RuntimeError("HandCropper is closed")
        ts = max(int(timestamp_ms), self._last_ts + 1)
        self._last_ts = ts
        _close_pending()  # landmarkers of finalized croppers (cheap when there are none)
        res = self._lm.detect_for_video(_as_mp_image(frame), ts)
        return _to_hands(res, frame.shape[1], frame.shape[0])

    def crop(self, frame: np.ndarray, timestamp_ms: int) -> CropResult:
        frame = np.asarray(frame)
        h, w = frame.shape[:2]
        c = self.config
        if c.policy == "full":
            box = (0, 0, w, h)
            res = CropResult(extract_crop(frame, box, self.size, square=c.square), box, 0, status="full")
            self._record(res)
            return res
        every = int(c.detect_every)
        if every <= 1:
            detected = True
        elif c.detect_policy == "hold":
            detected = self._frame_no % every == 0
        else:  # "search": every frame while tracking; every N-th frame after one without hands
            detected = self._since_empty is None or self._since_empty >= every
        self._frame_no += 1
        if detected:
            hands = self.detect(frame, timestamp_ms)
            self._held_hands = hands
        else:  # the last detection's hands stand for this frame (none, under "search")
            hands = self._held_hands
        if detected:
            self._since_empty = None if hands else 1
        else:
            self._since_empty = (self._since_empty or 0) + 1
        raw = None
        if hands:
            target = hands_box_params(hands, w, h, c)
            raw = _square_box(*target, w, h)
            self._missing = 0
            status = "hands"
        else:
            self._missing += 1
            if self._state is not None and (self._missing <= c.hold_frames or c.fallback == "last"):
                target, status = self._state, ("held" if self._missing <= c.hold_frames else "fallback")
            else:
                s = min(w, h)
                target, status = (w / 2, h / 2, float(s)), "fallback"
        if self._state is None or status == "held":
            state = target
        else:
            a = c.smoothing
            state = tuple(a * t + (1 - a) * p for t, p in zip(target, self._state))
        side = min(state[2], w, h)
        cx = min(max(state[0], side / 2), w - side / 2)
        cy = min(max(state[1], side / 2), h - side / 2)
        self._state = (cx, cy, side)
        box = _square_box(cx, cy, side, w, h)
        res = CropResult(extract_crop(frame, box, self.size), box, len(hands), [x.landmarks for x in hands],
                         [x.handedness for x in hands], status, raw, detected)
        self._record(res)
        return res

    def _record(self, res: CropResult) -> None:
        self.stats.add(res)

    # -- whole videos -----------------------------------------------------------------------------
    def crop_video(self, frames: Iterable[np.ndarray], fps: float = 25.0, *, size: int | None = None,
                   return_results: bool = False):
        """Crop every frame of a clip (array ``[T,H,W,3]`` or any iterable of frames).

        Returns ``(crops, stats)``: ``crops`` is ``uint8 [T, size, size, 3]`` when ``size`` (or the
        cropper's size) is set, else a list of raw square crops. With ``return_results`` a third item,
        the list of :class:`CropResult`, is returned (crops inside are those of ``crops``).
        """
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.reset()
        size = size if size is not None else self.size
        old, self.size = self.size, size
        crops, results = [], []
        try:
            for i, frame in enumerate(frames):
                r = self.crop(frame, int(round(i * 1000.0 / fps)))
                crops.append(r.image)
                if return_results:
                    results.append(r)
        finally:
            self.size = old
        if size is not None:
            crops = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
        stats = self.stats
        return (crops, stats, results) if return_results else (crops, stats)

    def crop_fn(self, size: int, fps: float = 25.0) -> Callable[[np.ndarray], np.ndarray]:
        """``frames [T,H,W,3] -> crops [T,size,size,3]`` using this cropper (see also make_crop_fn)."""
        return lambda frames: self.crop_video(frames, fps, size=size)[0]

    # -- lifetime -------------------------------------------------------------------------------
    def _close_landmarker(self) -> None:
        lm, self._lm = getattr(self, "_lm", None), None
        if lm is not None:
            _close_landmarker(lm)

    def close(self) -> None:
        self._close_landmarker()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # never closes here (a finalizer may run inside another MediaPipe call): see landmarker._PENDING
        _release_later(getattr(self, "_lm", None))
        self._lm = None


class CropFn:
    """Picklable training-time hook ``frames [T,H,W,3] uint8 -> [T,size,size,3] uint8``.

    The MediaPipe cropper is created lazily in the process that calls it (DataLoader workers each get
    their own) and is not pickled. It also takes any iterable of frames (``accepts_iterable``), so a dataset
    can stream a clip through it without holding the full-resolution frames.
    """

    accepts_iterable = True

    def __init__(self, config: CropConfig | dict | None = None, size: int = 224, fps: float = 25.0,
                 model_path: str | Path | None = None):
        self.config = CropConfig.from_dict(config) if isinstance(config, dict) else (config or CropConfig())
        self.size, self.fps = int(size), float(fps)
        self.model_path = str(resolve_hand_model(model_path)) if self.config.policy == "hands" else None
        self._cropper: HandCropper | None = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self._cropper is None:
            self._cropper = HandCropper(self.config, self.model_path)
        return self._cropper.crop_video(frames, self.fps, size=self.size)[0]

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_cropper"] = None
        return d

    def close(self) -> None:
        if self._cropper is not None:
            self._cropper.close()
            self._cropper = None


# keys of CropConfig that only change how often the landmarker runs, not the box rule (the runtime's speed settings)
SPEED_KEYS = ("detect_every", "detect_policy")


def preparation_mismatch(preparation: dict | None, crop: dict | None, resize: int | None = None) -> list[str]:
    """Where serving (a crop dict, the resize the model's preprocessing lands on) differs from how the training
    data was prepared (``slsdk data prepare`` settings, as checkpoints and bundle manifests record them).

    Empty when they agree or nothing is known. The crop policy and box geometry are compared; the landmarker's
    schedule (:data:`SPEED_KEYS`) is not. ``resize``: reported when the prepared frames are smaller than it (the
    model was trained on upscaled crops); a larger prepared size is only scaled down the same way.
    """
    if not preparation:
        return []
    out = []
    prep = dict(preparation.get("crop") or {})
    crop = dict(crop or {"policy": "full"})
    for k in sorted(set(prep) | set(crop)):
        if k in SPEED_KEYS:
            continue
        if k in prep and k in crop and prep[k] != crop[k]:
            out.append(f"crop.{k}: prepared {prep[k]!r}, served {crop[k]!r}")
    if "policy" in prep and "policy" not in crop:
        out.append(f"crop.policy: prepared {prep['policy']!r}, served 'full'")
    size = preparation.get("size")
    if resize is not None and size is not None and int(size) < int(resize):
        out.append(f"size: prepared {size} px, the model resizes to {resize} (trained on upscaled frames)")
    return out


def make_crop_fn(config: CropConfig | dict | None = None, size: int = 224, fps: float = 25.0,
                 model_path: str | Path | None = None) -> CropFn:
    return CropFn(config, size, fps, model_path)


__all__ = ["CropConfig", "CropResult", "CropStats", "HandCropper", "CropFn", "make_crop_fn", "resize_square", "box_iou",
           "pad_to_square", "extract_crop", "center_box", "hands_box_params", "preparation_mismatch", "SPEED_KEYS"]
