"""The signing-space tracker: :class:`HandCropper` follows the hands through a video (MediaPipe HandLandmarker in
VIDEO mode) and crops a smoothed square box around them; :class:`CropFn` / :func:`make_crop_fn` are the same
cropper as a picklable training-time hook (``slsdk data prepare``), so a model sees the same crops in training
and on device; :class:`CropperPool` lends trackers to a recognizer's streams.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from slsdk.runtime.crop import CropConfig, CropResult, CropStats
from slsdk.runtime.geometry import extract_crop, hands_box_params, square_box
from slsdk.runtime.hand_model import resolve_hand_model
from slsdk.runtime.landmarker import Hand, Landmarker


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
        self._landmarker: Landmarker | None = None
        self._new_landmarker()
        self.reset_state()

    # -- state ----------------------------------------------------------------------------------
    def _new_landmarker(self) -> None:
        self._close_landmarker()
        if self.model_path is not None:
            c = self.config
            self._landmarker = Landmarker(self.model_path, "VIDEO", c.num_hands, c.min_detection_confidence,
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
        """The hands the tracker finds in this frame (none under the "full" policy)."""
        if self._landmarker is None:
            if self.model_path is None:
                return []
            raise RuntimeError("HandCropper is closed")
        ts = max(int(timestamp_ms), self._last_ts + 1)  # the landmarker's timestamps must increase
        self._last_ts = ts
        return self._landmarker.detect_for_video(frame, ts)

    @property
    def last_timestamp_ms(self) -> int:
        """The timestamp the latest detection ran at (moved past the previous one; -1 before the first)."""
        return self._last_ts

    def crop(self, frame: np.ndarray, timestamp_ms: int) -> CropResult:
        """Crop one frame (the next of the video) around the signing hands."""
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
            raw = square_box(*target, w, h)
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
        box = square_box(cx, cy, side, w, h)
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
        landmarker, self._landmarker = getattr(self, "_landmarker", None), None
        if landmarker is not None:
            landmarker.close()

    def close(self) -> None:
        """Close the landmarker (a garbage-collected cropper's is closed at the next safe point: see Landmarker)."""
        self._close_landmarker()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def make_crop_fn(config: CropConfig | dict | None = None, size: int = 224, fps: float = 25.0,
                 model_path: str | Path | None = None) -> CropFn:
    """The training-time crop hook (:class:`CropFn`): ``frames [T,H,W,3] -> crops [T,size,size,3]``."""
    return CropFn(config, size, fps, model_path)


def cores() -> int:
    """CPU cores this process may run on (its affinity where the OS says, else the machine's count)."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class CropperPool:
    """The hand trackers of a recognizer: each stream takes one on its first frame and gives it back when it closes,
    so the next stream reuses it (a fresh box state on the same landmarker). ``config`` applies to every tracker,
    those lent out included.

    :meth:`run_all` runs one task per stream (``Recognizer.accept_streams``: a round's front ends, each with its
    own tracker) on a thread pool of ``workers`` threads (default: the cores). MediaPipe releases the GIL while a
    landmarker detects, so the trackers of a round use every core. Thread rule (as sherpa-onnx's streams): a
    tracker belongs to one stream and a stream is fed by one thread at a time, so each task touches only its own
    stream; the pool's lending (take / give back) is behind a lock.
    """

    def __init__(self, config: CropConfig, model_path: str | Path | None = None, *, size: int | None = None,
                 workers: int | None = None):
        self._config = config
        self._model_path = model_path
        self._size = size
        self._idle: list[HandCropper] = []
        self._all: list[HandCropper] = []
        self._lock = threading.Lock()
        self.workers = int(workers) if workers else cores()
        self._executor: ThreadPoolExecutor | None = None
        self.first = self.take()  # resolves and loads the hand model now: a missing model fails early
        self.give_back(self.first)

    @property
    def config(self) -> CropConfig:
        return self._config

    @config.setter
    def config(self, config: CropConfig) -> None:
        """Change the crop settings of every tracker; one whose landmarker settings change gets a fresh one."""
        with self._lock:
            old, self._config = self._config, config
            croppers = list(self._all)
        for c in croppers:
            c.config = config
            if any(getattr(old, k) != getattr(config, k) for k in LANDMARKER_KEYS):
                c.reset()

    def take(self) -> HandCropper:
        """An idle tracker with a fresh box state, or a new one (crops square at the pool's size)."""
        with self._lock:
            if self._idle:
                c = self._idle.pop()
                c.reset_state()
                return c
        c = HandCropper(self._config, model_path=self._model_path, size=self._size, keep_boxes=False)
        with self._lock:
            self._all.append(c)
        return c

    def give_back(self, cropper: HandCropper | None) -> None:
        """Return a tracker taken with :meth:`take` (None: nothing to return)."""
        if cropper is not None:
            with self._lock:
                self._idle.append(cropper)

    def run_all(self, fn: Callable, items: Iterable) -> list:
        """``[fn(x) for x in items]``, the calls spread over the pool's threads (one thread: in this one); waits for
        every call, then raises the first error (in the items' order) if any failed."""
        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="slsdk-hands")
            executor = self._executor
        futures = [executor.submit(fn, x) for x in items]
        wait(futures)
        return [f.result() for f in futures]

    def shutdown(self) -> None:
        """Stop the pool's threads (a later :meth:`run_all` starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


# the CropConfig fields a landmarker is created with
LANDMARKER_KEYS = ("num_hands", "min_detection_confidence", "min_presence_confidence", "min_tracking_confidence")


__all__ = ["HandCropper", "CropFn", "make_crop_fn", "CropperPool", "LANDMARKER_KEYS", "cores"]
