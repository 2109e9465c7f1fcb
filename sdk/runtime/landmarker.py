"""MediaPipe HandLandmarker's lifecycle: :class:`Landmarker` (one open landmarker, IMAGE or VIDEO mode, closed
safely), :class:`HandDetector` for photos and the :class:`Hand` they find; the cropper tracks with a VIDEO one. Landmarks are ``float32 [21, 3]`` per hand: x and y in pixels of the full frame, z as MediaPipe
gives it (relative depth, wrist = 0, same scale as normalised x).

MediaPipe runs its graph in C++ threads and releases the GIL while it detects.
"""
from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slsdk.data.video import read_image
from slsdk.quiet import native_stderr
from slsdk.runtime.hand_model import InvalidHandModel, resolve_hand_model


@dataclass(eq=False)
class Hand:
    landmarks: np.ndarray  # float32 [21, 3]: x, y in pixels, z relative
    handedness: str  # "Left" / "Right" as MediaPipe reports it
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        xy = self.landmarks[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())



def _mediapipe():
    # mediapipe is heavy and optional (slsdk[hands]): imported on the first landmarker
    try:
        import mediapipe as mp
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import HandLandmarker, HandLandmarkerOptions, RunningMode
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"hand cropping needs mediapipe: pip install 'slsdk[hands]' ({e})") from None
    return mp, BaseOptions, HandLandmarker, HandLandmarkerOptions, RunningMode


_OPEN: weakref.WeakSet = weakref.WeakSet()
# Every MediaPipe landmarker this process opened and has not closed, held strongly, and the ones whose owner was
# finalized, waiting to be closed. MediaPipe (>= 1.0) runs each landmarker's C calls on its own one-thread
# executor: close() submits to it and waits, holding concurrent.futures' module-wide lock while it submits. A
# close() run by a finalizer can therefore deadlock: the cycle collector may run finalizers in the middle of
# another landmarker's submit (it allocates a thread), on the same thread, which already holds that lock (seen:
# a hung process, two landmarkers in one stack). So no finalizer closes a landmarker: an owner's __del__ only
# hands it to _PENDING (a list append), and it is closed at the next safe point (a landmarker being created or
# run, an explicit close, exit). Held in _LIVE, a landmarker is never garbage itself, so MediaPipe's own __del__
# (which closes) never runs in a collection either.
_LIVE: set = set()
_PENDING: list = []
_LIVE_LOCK = threading.Lock()


def _close_landmarker(lm) -> None:
    """Close a landmarker from ``_create_landmarker`` (once), then any whose owners were finalized."""
    with _LIVE_LOCK:
        mine = lm in _LIVE
        _LIVE.discard(lm)
    if mine:
        lm.close()
    _close_pending()


def _release_later(lm) -> None:
    """From a finalizer: close ``lm`` at the next safe point (never here, see above)."""
    if lm is not None:
        _PENDING.append(lm)


def _close_pending() -> None:
    """Close the landmarkers whose owners were finalized (called where no MediaPipe call is in progress)."""
    while _PENDING:
        try:
            lm = _PENDING.pop()
        except IndexError:
            return
        with _LIVE_LOCK:
            mine = lm in _LIVE
            _LIVE.discard(lm)
        if mine:
            lm.close()


@atexit.register
def _close_all() -> None:
    """Close landmarkers still open at exit (MediaPipe's own __del__ fails once the interpreter tears down)."""
    for obj in list(_OPEN):
        try:
            obj.close()
        except Exception:  # noqa: BLE001
            pass
    for lm in list(_LIVE):
        try:
            _close_landmarker(lm)
        except Exception:  # noqa: BLE001 - concurrent.futures shut its executors down before atexit runs
            lm._handle = None  # the process frees it; spares MediaPipe's __del__ the same failed call at teardown
    _PENDING.clear()


def _create_landmarker(model_path: Path, mode: str, num_hands: int, det: float, pres: float, track: float):
    _close_pending()
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
        with native_stderr():   # TF Lite / glog lines of the graph's start-up
            lm = HandLandmarker.create_from_options(opts)
    except Exception as e:  # noqa: BLE001 - mediapipe raises RuntimeError/ValueError with C++ text
        raise InvalidHandModel(f"MediaPipe could not load the hand model {model_path}: {e}") from None
    with _LIVE_LOCK:
        _LIVE.add(lm)
    return lm


def open_task_landmarker(create, model_path: Path, error: type = InvalidHandModel):
    """Open another MediaPipe Tasks landmarker (``create()``: the face and pose landmarkers of
    :mod:`slsdk.runtime.pose86_landmarks`) under the hand landmarker's lifecycle: start-up lines kept quiet, held in
    ``_LIVE``, closed with :func:`close_task_landmarker` or, from an owner's finalizer, :func:`release_later`."""
    _close_pending()
    try:
        with native_stderr():
            lm = create()
    except Exception as e:  # noqa: BLE001 - mediapipe raises RuntimeError/ValueError with C++ text
        raise error(f"MediaPipe could not load the model {model_path}: {e}") from None
    with _LIVE_LOCK:
        _LIVE.add(lm)
    return lm


close_task_landmarker = _close_landmarker     # close a landmarker of open_task_landmarker (now, once)
release_later = _release_later                # from a finalizer: close it at the next safe point
close_pending = _close_pending                # before a MediaPipe call: close the finalized owners' landmarkers


def track_owner(owner) -> None:
    """Close ``owner`` (anything with ``close()``) at exit if it is still open (as the hand landmarkers are)."""
    _OPEN.add(owner)


def _as_mp_image(frame: np.ndarray):
    mp = _mediapipe()[0]
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB frame uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))


as_mp_image = _as_mp_image     # an RGB frame uint8 [H, W, 3] as a mediapipe.Image (the face and pose landmarkers)


def _to_hands(result, width: int, height: int) -> list[Hand]:
    hands = []
    for lms, cats in zip(result.hand_landmarks, result.handedness):
        arr = np.array([[p.x * width, p.y * height, p.z] for p in lms], dtype=np.float32)
        cat = cats[0] if cats else None
        hands.append(Hand(arr, cat.category_name if cat else "", float(cat.score) if cat else 0.0))
    return hands


def _load_image(image) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return read_image(Path(image))
    return np.asarray(image)


class Landmarker:
    """One open MediaPipe HandLandmarker (``mode`` "IMAGE" for photos, "VIDEO" for tracking), closed once.

    ``close()`` closes it now; an owner that is garbage-collected instead hands it on to be closed at the next
    safe point (never in a finalizer: see ``_PENDING``). In VIDEO mode timestamps must increase: a repeated or
    earlier one is moved to 1 ms after the previous one.
    """

    def __init__(self, model_path: str | Path, mode: str = "VIDEO", num_hands: int = 2,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        self.mode = mode
        self._lm = _create_landmarker(Path(model_path), mode, num_hands, min_detection_confidence,
                                      min_presence_confidence, min_tracking_confidence)
        self._last_ts = -1
        self._first_call = True   # its native warnings print once, on the first inference
        _OPEN.add(self)

    @property
    def closed(self) -> bool:
        return self._lm is None

    def detect(self, frame: np.ndarray) -> list[Hand]:
        """Hands in one RGB frame ``uint8 [H, W, 3]`` (IMAGE mode)."""
        lm = self._open_landmarker()
        with self._first_call_quiet():
            result = lm.detect(_as_mp_image(frame))
        return _to_hands(result, frame.shape[1], frame.shape[0])

    def detect_for_video(self, frame: np.ndarray, timestamp_ms: int) -> list[Hand]:
        """Hands in the next frame of a video at ``timestamp_ms`` (VIDEO mode: tracks between calls)."""
        lm = self._open_landmarker()
        ts = max(int(timestamp_ms), self._last_ts + 1)
        self._last_ts = ts
        with self._first_call_quiet():
            result = lm.detect_for_video(_as_mp_image(frame), ts)
        return _to_hands(result, frame.shape[1], frame.shape[0])

    def _first_call_quiet(self):
        """The first inference inside :func:`slsdk.quiet.native_stderr` (MediaPipe prints its native warnings
        then); later calls run as they are (no stderr capture, no lock: streams' trackers run in parallel)."""
        if not self._first_call:
            return contextlib.nullcontext()
        self._first_call = False
        return native_stderr()

    def _open_landmarker(self):
        if self._lm is None:
            raise RuntimeError("the hand landmarker is closed")
        _close_pending()  # landmarkers of finalized owners (cheap when there are none)
        return self._lm

    def close(self) -> None:
        lm, self._lm = getattr(self, "_lm", None), None
        if lm is not None:
            _close_landmarker(lm)

    def __del__(self):  # never closes here (a finalizer may run inside another MediaPipe call): see _PENDING
        _release_later(getattr(self, "_lm", None))
        self._lm = None


class HandDetector:
    """HandLandmarker in IMAGE mode for independent photos (no tracking between calls)."""

    def __init__(self, model_path: str | Path | None = None, *, num_hands: int = 2,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5):
        self.model_path = resolve_hand_model(model_path)
        self._landmarker: Landmarker | None = Landmarker(self.model_path, "IMAGE", num_hands,
                                                         min_detection_confidence, min_presence_confidence, 0.5)

    def detect(self, image) -> list[Hand]:
        """Hands in one RGB image (array ``uint8 [H,W,3]`` or a path)."""
        if self._landmarker is None:
            raise RuntimeError("HandDetector is closed")
        return self._landmarker.detect(_load_image(image))

    def close(self) -> None:
        landmarker, self._landmarker = getattr(self, "_landmarker", None), None
        if landmarker is not None:
            landmarker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def detect_hands(image, model_path: str | Path | None = None, **kwargs) -> list[Hand]:
    """One-shot IMAGE-mode detection (loads the model each call: use :class:`HandDetector` for many)."""
    with HandDetector(model_path, **kwargs) as det:
        return det.detect(image)


__all__ = ["Hand", "Landmarker", "HandDetector", "detect_hands"]
