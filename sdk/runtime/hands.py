"""Hand detection and signing-space cropping with MediaPipe Tasks HandLandmarker.

One implementation serves the runtime (video file or camera, frame by frame) and training-time
preprocessing (``make_crop_fn`` -> a picklable ``frames [T,H,W,3] -> frames [T,s,s,3]`` callable), so a
model sees the same crops in training and on device.

Model file: MediaPipe >= 0.10.30 ships no model files, so :func:`resolve_hand_model` finds a
``hand_landmarker.task`` in this order: the ``path`` argument (``--hand-model PATH`` on the CLI) ->
``$SLSDK_HAND_MODEL`` -> the cache (``$XDG_CACHE_HOME/slsdk/hand_landmarker.task``, default
``~/.cache/slsdk``) -> a download from Google's model storage (``$SLSDK_HAND_MODEL_URL`` overrides the
address) written atomically into the cache.

Boxes are ``(x0, y0, x1, y1)`` integer pixels, half-open (``image[y0:y1, x0:x1]``). Landmarks are
``float32 [21, 3]`` per hand: x and y in pixels of the full frame, z as MediaPipe gives it (relative depth,
wrist = 0, same scale as normalised x).
"""
from __future__ import annotations

import atexit
import math
import os
import tempfile
import urllib.error
import urllib.request
import weakref
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_HAND_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/"
    "hand_landmarker.task"
)
HAND_MODEL_FILENAME = "hand_landmarker.task"
HAND_MODEL_MEMBERS = ("hand_detector.tflite", "hand_landmarks_detector.tflite")
ENV_HAND_MODEL = "SLSDK_HAND_MODEL"
ENV_HAND_MODEL_URL = "SLSDK_HAND_MODEL_URL"

# MediaPipe's 21-point hand topology (HandLandmarksConnections.HAND_CONNECTIONS), kept here so drawing
# needs no mediapipe import.
HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)


class HandModelNotFound(FileNotFoundError):
    """No hand_landmarker.task could be found or downloaded."""


class InvalidHandModel(ValueError):
    """A file was given as the hand model but is not a MediaPipe HandLandmarker .task bundle."""


_HOW_TO = (
    f"Provide a MediaPipe HandLandmarker model: pass --hand-model PATH (Python: model_path=PATH) or set "
    f"{ENV_HAND_MODEL}=PATH to a hand_landmarker.task, or put one at {{cache}}. Download it on a machine "
    f"with network access from {DEFAULT_HAND_MODEL_URL}"
)


# --------------------------------------------------------------------------------------------------
# model file
# --------------------------------------------------------------------------------------------------
def hand_model_cache_path() -> Path:
    """Where a downloaded model is kept: ``$XDG_CACHE_HOME/slsdk/hand_landmarker.task`` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slsdk" / HAND_MODEL_FILENAME


def validate_hand_model(path: str | Path) -> Path:
    """Check that ``path`` is a zip holding hand_detector.tflite + hand_landmarks_detector.tflite."""
    path = Path(path)
    if not path.is_file():
        raise HandModelNotFound(f"hand model {path} does not exist or is not a file. "
                                + _HOW_TO.format(cache=hand_model_cache_path()))
    if not zipfile.is_zipfile(path):
        raise InvalidHandModel(
            f"{path} is not a MediaPipe HandLandmarker .task file (a .task is a zip archive holding "
            f"{' + '.join(HAND_MODEL_MEMBERS)}; this file is not a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
    except zipfile.BadZipFile as e:
        raise InvalidHandModel(f"{path} is a corrupt zip archive ({e}); expected a hand_landmarker.task") from None
    missing = [m for m in HAND_MODEL_MEMBERS if not sizes.get(m)]
    if missing:
        raise InvalidHandModel(
            f"{path} is a zip archive but lacks {', '.join(missing)} (found: {', '.join(sorted(sizes)) or 'nothing'}); "
            f"a HandLandmarker .task holds {' + '.join(HAND_MODEL_MEMBERS)}")
    return path


def _download(url: str, dest: Path, timeout: float) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hand_landmarker.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310
            while chunk := r.read(1 << 20):
                f.write(chunk)
        try:
            validate_hand_model(tmp)
        except InvalidHandModel as e:
            raise InvalidHandModel(f"the file downloaded from {url} is not a hand model: {e}") from None
        os.replace(tmp, dest)  # atomic: a reader never sees a half-written model
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve_hand_model(path: str | Path | None = None, *, download: bool = True, url: str | None = None,
                       timeout: float = 30.0) -> Path:
    """Find the HandLandmarker model: ``path`` -> $SLSDK_HAND_MODEL -> cache -> download into the cache.

    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else $SLSDK_HAND_MODEL_URL, else Google's model storage) is where a download comes from.
    Raises :class:`HandModelNotFound` when offline and :class:`InvalidHandModel` for a wrong file.
    """
    if path is not None:
        return validate_hand_model(Path(path).expanduser())
    env = os.environ.get(ENV_HAND_MODEL)
    if env:
        try:
            return validate_hand_model(Path(env).expanduser())
        except HandModelNotFound:
            raise HandModelNotFound(f"${ENV_HAND_MODEL}={env} does not exist. "
                                    + _HOW_TO.format(cache=hand_model_cache_path())) from None
    cache = hand_model_cache_path()
    if cache.exists():
        try:
            return validate_hand_model(cache)
        except InvalidHandModel as e:
            raise InvalidHandModel(f"cached hand model is invalid, delete it to download again: {e}") from None
    how = _HOW_TO.format(cache=cache)
    if not download:
        raise HandModelNotFound(f"no hand model found (download disabled). {how}")
    url = url or os.environ.get(ENV_HAND_MODEL_URL) or DEFAULT_HAND_MODEL_URL
    try:
        return _download(url, cache, timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, InvalidHandModel):
            raise
        reason = getattr(e, "reason", None) or e
        raise HandModelNotFound(f"no hand model found and downloading {url} failed ({reason}); "
                                f"are you offline? {how}") from None


# --------------------------------------------------------------------------------------------------
# configuration and results
# --------------------------------------------------------------------------------------------------
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
class Hand:
    landmarks: np.ndarray  # float32 [21, 3]: x, y in pixels, z relative
    handedness: str  # "Left" / "Right" as MediaPipe reports it
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        xy = self.landmarks[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


@dataclass(eq=False)
class CropResult:
    image: np.ndarray  # uint8 [s, s, 3] crop (resized when the cropper has a size)
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in frame pixels
    hands_found: int
    landmarks: list[np.ndarray] = field(default_factory=list)  # per hand float32 [21, 3], frame pixels
    handedness: list[str] = field(default_factory=list)
    status: str = "hands"  # "hands" | "held" | "fallback" | "full"
    raw_box: tuple[int, int, int, int] | None = None  # this frame's hands box before smoothing


@dataclass
class CropStats:
    frames: int = 0
    frames_with_hands: int = 0
    total_hands: int = 0
    held_frames: int = 0
    fallback_frames: int = 0
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    keep_boxes: bool = True  # False for live streams: counts only, memory stays bounded

    def add(self, res: CropResult) -> None:
        """Count one frame's crop."""
        self.frames += 1
        self.frames_with_hands += res.hands_found > 0
        self.total_hands += res.hands_found
        self.held_frames += res.status == "held"
        self.fallback_frames += res.status == "fallback"
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


# --------------------------------------------------------------------------------------------------
# MediaPipe wrappers
# --------------------------------------------------------------------------------------------------
def _mediapipe():
    try:
        import mediapipe as mp
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import HandLandmarker, HandLandmarkerOptions, RunningMode
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"hand cropping needs mediapipe: pip install 'slsdk[hands]' ({e})") from None
    return mp, BaseOptions, HandLandmarker, HandLandmarkerOptions, RunningMode


_OPEN: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Close landmarkers still open at exit (MediaPipe's own __del__ fails once the interpreter tears down)."""
    for obj in list(_OPEN):
        try:
            obj.close()
        except Exception:  # noqa: BLE001
            pass


def _create_landmarker(model_path: Path, mode: str, num_hands: int, det: float, pres: float, track: float):
    _, BaseOptions, HandLandmarker, HandLandmarkerOptions, RunningMode = _mediapipe()
    opts = HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=getattr(RunningMode, mode),
        num_hands=num_hands,
        min_hand_detection_confidence=det,
        min_hand_presence_confidence=pres,
        min_tracking_confidence=track,
    )
    try:
        return HandLandmarker.create_from_options(opts)
    except Exception as e:  # noqa: BLE001 - mediapipe raises RuntimeError/ValueError with C++ text
        raise InvalidHandModel(f"MediaPipe could not load the hand model {model_path}: {e}") from None


def _as_mp_image(frame: np.ndarray):
    mp = _mediapipe()[0]
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB frame uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))


def _to_hands(result, width: int, height: int) -> list[Hand]:
    hands = []
    for lms, cats in zip(result.hand_landmarks, result.handedness):
        arr = np.array([[p.x * width, p.y * height, p.z] for p in lms], dtype=np.float32)
        cat = cats[0] if cats else None
        hands.append(Hand(arr, cat.category_name if cat else "", float(cat.score) if cat else 0.0))
    return hands


def _load_image(image) -> np.ndarray:
    if isinstance(image, (str, Path)):
        from slsdk.data.video import _read_image

        return _read_image(Path(image))
    return np.asarray(image)


class HandDetector:
    """HandLandmarker in IMAGE mode for independent photos (no tracking between calls)."""

    def __init__(self, model_path: str | Path | None = None, *, num_hands: int = 2,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5):
        self.model_path = resolve_hand_model(model_path)
        self._lm = _create_landmarker(self.model_path, "IMAGE", num_hands, min_detection_confidence,
                                      min_presence_confidence, 0.5)
        _OPEN.add(self)

    def detect(self, image) -> list[Hand]:
        """Hands in one RGB image (array ``uint8 [H,W,3]`` or a path)."""
        if self._lm is None:
            raise RuntimeError("HandDetector is closed")
        frame = _load_image(image)
        res = self._lm.detect(_as_mp_image(frame))
        return _to_hands(res, frame.shape[1], frame.shape[0])

    def close(self) -> None:
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
            self._lm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def detect_hands(image, model_path: str | Path | None = None, **kwargs) -> list[Hand]:
    """One-shot IMAGE-mode detection (loads the model each call: use :class:`HandDetector` for many)."""
    with HandDetector(model_path, **kwargs) as det:
        return det.detect(image)


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
        hands = self.detect(frame, timestamp_ms)
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
                         [x.handedness for x in hands], status, raw)
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
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
            self._lm = None

    def close(self) -> None:
        self._close_landmarker()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class CropFn:
    """Picklable training-time hook ``frames [T,H,W,3] uint8 -> [T,size,size,3] uint8``.

    The MediaPipe cropper is created lazily in the process that calls it (DataLoader workers each get
    their own) and is not pickled.
    """

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


def make_crop_fn(config: CropConfig | dict | None = None, size: int = 224, fps: float = 25.0,
                 model_path: str | Path | None = None) -> CropFn:
    return CropFn(config, size, fps, model_path)


# --------------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------------
_FONT_3x5 = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    " ": "000000000000000", "-": "000000111000000", ".": "000000000000010", ":": "000010000010000",
    "/": "001001010100100", "_": "000000000000111", "=": "000111000111000", "%": "101001010100101",
    "?": "111001010000010", "(": "010100100100010", ")": "010001001001010", ",": "000000000010100",
    "+": "000010111010000", "|": "010010010010010", "'": "010010000000000", "#": "101111101111101",
}


def _draw_text(img: np.ndarray, text: str, x: int, y: int, scale: int, color) -> None:
    h, w = img.shape[:2]
    for i, ch in enumerate(text.upper()):
        glyph = _FONT_3x5.get(ch, _FONT_3x5["?"])
        for k, bit in enumerate(glyph):
            if bit == "1":
                r, c = divmod(k, 3)
                y0, x0 = y + r * scale, x + (i * 4 + c) * scale
                if y0 < h and x0 < w:
                    img[max(y0, 0):y0 + scale, max(x0, 0):x0 + scale] = color


def _draw_line(img: np.ndarray, p, q, color, thickness: int) -> None:
    h, w = img.shape[:2]
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
    xs = np.rint(np.linspace(p[0], q[0], n)).astype(int)
    ys = np.rint(np.linspace(p[1], q[1], n)).astype(int)
    r = thickness // 2
    for dx in range(-r, thickness - r):
        for dy in range(-r, thickness - r):
            xx, yy = xs + dx, ys + dy
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            img[yy[ok], xx[ok]] = color


def draw_overlay(frame: np.ndarray, result: CropResult | None, text: str | None = None, *,
                 box_color=(0, 255, 0), landmark_color=(255, 0, 0), bone_color=(255, 255, 0)) -> np.ndarray:
    """A copy of ``frame`` with the crop box, hand skeletons and optional text (numpy only)."""
    out = np.array(frame, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    t = max(1, round(min(h, w) / 200))
    if result is not None:
        for pts in result.landmarks:
            for a, b in HAND_CONNECTIONS:
                _draw_line(out, pts[a, :2], pts[b, :2], bone_color, t)
            for x, y in pts[:, :2]:
                xi, yi = int(round(x)), int(round(y))
                out[max(yi - t, 0):max(yi + t + 1, 0), max(xi - t, 0):max(xi + t + 1, 0)] = landmark_color
        x0, y0, x1, y1 = result.box
        color = box_color if result.status in ("hands", "full") else (255, 128, 0)
        for p, q in (((x0, y0), (x1 - 1, y0)), ((x1 - 1, y0), (x1 - 1, y1 - 1)),
                     ((x1 - 1, y1 - 1), (x0, y1 - 1)), ((x0, y1 - 1), (x0, y0))):
            _draw_line(out, p, q, color, 2 * t)
    if text:
        scale = max(2, min(h, w) // 120)
        bar = 7 * scale
        out[:bar] = (out[:bar].astype(np.uint16) // 3).astype(np.uint8)
        _draw_text(out, text, scale, scale, scale, (255, 255, 255))
    return out


def save_overlay_png(path: str | Path, frames_with_results, *, cols: int | None = None, dpi: int = 80,
                     title: str | None = None) -> Path:
    """Contact sheet (matplotlib, Agg) of ``(frame, CropResult[, caption])`` items with overlays drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = list(frames_with_results)
    if not items:
        raise ValueError("save_overlay_png: nothing to draw")
    n = len(items)
    cols = cols or min(n, 6)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.4 * cols, 2.8 * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, item in enumerate(items):
        frame, res = item[0], item[1]
        caption = item[2] if len(item) > 2 else (
            f"{i}: {res.hands_found} hand(s), {res.status}" if res is not None else str(i))
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(draw_overlay(frame, res))
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = [
    "DEFAULT_HAND_MODEL_URL", "HandModelNotFound", "InvalidHandModel", "hand_model_cache_path",
    "validate_hand_model", "resolve_hand_model", "CropConfig", "Hand", "CropResult", "CropStats",
    "HandDetector", "detect_hands", "HandCropper", "CropFn", "make_crop_fn", "resize_square",
    "pad_to_square", "extract_crop", "center_box", "hands_box_params", "draw_overlay", "save_overlay_png",
]
