"""Landmarks from video frames: a landmark bundle's front end (``input.modality == "landmarks"``).

A stream of a landmark bundle turns RGB frames into the model's input as ``slsdk data prepare --landmarks`` turned
the training videos into ``.pose`` files, with the same code:

* resampled to the manifest's fps by timestamp (:class:`~slsdk.runtime.frontend.FrontEnd`'s ``push`` / ``flush``:
  the video front end's :class:`~slsdk.runtime.sources.FrameResampler`; a repeated frame is extracted once),
* the hands from the crop pass's HandLandmarker (the recognizer's hand trackers when it crops hands; otherwise a
  pool of trackers of the landmarks' own, default :class:`~slsdk.runtime.crop.CropConfig` as ``data prepare``
  uses): one hand pass per frame, never two,
* lips (FaceLandmarker) and body (PoseLandmarker) by :class:`~slsdk.runtime.pose86_landmarks.Pose86Landmarker`,
  one per stream, with the model-frame timestamps ``data prepare`` gives them,
* pixel keypoints ``[86, 2]`` (multiplied by :attr:`LandmarkFrontEnd.point_scale` when the frames were decoded
  smaller than the video's display size, as ``data prepare`` writes display pixels),
* normalised by the kit's rule (:mod:`slsdk.landmarks`), in one of two forms:

  - ``look_ahead=True`` (files): :class:`Pose86LookAhead`, the numbers of :func:`~slsdk.landmarks.normalize_pose86`
    over the whole recording (so ``slsdk run BUNDLE clip.mp4`` feeds the model what ``slsdk run BUNDLE clip.pose``
    feeds it, the ``.pose`` made from that clip by ``data prepare --landmarks``). A frame waits only while a hand
    is not settled: the kit fills a hand missing from the start with the first frame that has it (its backward
    pass), so frames before a hand is first seen wait for it (to the end of the file if it never shows);
  - ``look_ahead=False`` (cameras, and a stream's ``accept_frames`` unless asked): the causal
    :class:`~slsdk.landmarks.Pose86Normalizer`, nothing held back. A part not seen yet is zeros (a leading gap is
    not filled from the future), a part missed later repeats its last normalised frame: from the frame where
    both hands have been seen on, the same numbers as the offline form.

Serving layer: numpy at import; MediaPipe with the first landmark models (opened on a stream's first frame, or by
:meth:`LandmarkPool.check`).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from slsdk.landmarks import NUM_POINTS, PARTS, POSE86, Pose86Normalizer, part_missing
from slsdk.preprocess import Preprocess
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.frontend import FrontEnd
from slsdk.runtime.hand_tracker import CropperPool
from slsdk.runtime.landmark_source import check_landmark_bundle
from slsdk.runtime.pose86_landmarks import PARTS_ALL, Pose86Landmarker
from slsdk.runtime.results import Timing

__all__ = ["Pose86LookAhead", "LandmarkPool", "LandmarkFrontEnd", "FusionFrontEnd", "display_scale", "HAND_SIZE"]

HAND_SIZE = 8        # crop side of the landmarks' own hand trackers: only their landmarks are used (as data prepare)
_HANDS = (PARTS["right_hand"].slice, PARTS["left_hand"].slice)


class Pose86LookAhead:
    """:func:`~slsdk.landmarks.normalize_pose86` on a stream: :meth:`push` one pixel frame ``[86, 2]`` and get the
    normalised frames that are settled now (``[n, 86, 2]`` float32, n >= 0, in order); :meth:`finish` gives the
    rest. The frames out are those of normalising the whole recording at once.

    The kit's rule per part: a found part is normalised on its own, a missing one repeats the previous normalised
    frame (the causal :class:`~slsdk.landmarks.Pose86Normalizer` gives these), and then, for the hands only, a
    frame whose normalised hand sums to exactly zero takes the next frame's (back to front). So a frame is settled
    once each hand has a frame at or after it whose hand does not sum to zero: until then it is held.
    """

    def __init__(self):
        self._causal = Pose86Normalizer(np.float32)
        self.reset()

    def reset(self) -> None:
        self._causal.reset()
        self._held: list[np.ndarray] = []
        self._open = [0] * len(_HANDS)      # per hand: the first held frame whose hand is not settled

    @property
    def held(self) -> int:
        """Frames pushed and not given out yet."""
        return len(self._held)

    def push(self, frame) -> np.ndarray:
        f = self._causal.push(frame)        # a new array: the forward-filled frame
        self._held.append(f)
        k = len(self._held) - 1
        for j, sl in enumerate(_HANDS):
            if np.ascontiguousarray(f[sl]).sum() != 0:   # the kit's test, on the frame's [21, 2] block
                for i in range(self._open[j], k):
                    self._held[i][sl] = f[sl]
                self._open[j] = k + 1
        return self._release(min(self._open))

    def finish(self) -> np.ndarray:
        """End of the recording: the held frames (a hand never settled takes the last frame's, as the kit's
        backward pass does), and a fresh start."""
        if self._held:
            last = self._held[-1]
            for j, sl in enumerate(_HANDS):
                for i in range(self._open[j], len(self._held) - 1):
                    self._held[i][sl] = last[sl]
        out = self._release(len(self._held))
        self.reset()
        return out

    def _release(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros((0, NUM_POINTS, 2), np.float32)
        out, self._held = self._held[:n], self._held[n:]
        self._open = [o - n for o in self._open]
        return np.stack(out)


def display_scale(reader) -> np.ndarray | None:
    """``[sx, sy]`` float32 from a :class:`~slsdk.data.video.VideoReader`'s decoded size to the video's display size
    (what ``data prepare --landmarks`` multiplies its points by); None when they agree or are unknown."""
    try:
        (ow, oh), w, h = reader.out_size, int(reader.info.width), int(reader.info.height)
    except (AttributeError, TypeError, ValueError):
        return None
    if ow <= 0 or oh <= 0 or w <= 0 or h <= 0 or (ow, oh) == (w, h):
        return None
    return np.array([w / ow, h / oh], np.float32)


class LandmarkPool:
    """A recognizer's landmark models, lent to its streams as :class:`~slsdk.runtime.hand_tracker.CropperPool`
    lends hand trackers: one :class:`Pose86Landmarker` (face + pose) per stream, taken on its first frame, given
    back when it closes, reset (fresh trackers) when the next stream takes it. ``hands``: the hand trackers the
    streams take their hands from: the recognizer's crop pool when it crops hands, else one of the pool's own
    (default :class:`CropConfig`, crops of :data:`HAND_SIZE` px), made with the first landmarker.

    Nothing is opened until a stream's first frame or :meth:`check` (serving a ``.pose`` file needs none of it);
    then a missing or wrong model file is an error naming it and the option that gives it.
    """

    def __init__(self, manifest, croppers: CropperPool | None = None, *, hand_model: str | Path | None = None,
                 face_model: str | Path | None = None, pose_model: str | Path | None = None,
                 parts=PARTS_ALL, where: str = "bundle"):
        self.manifest, self.where = manifest, where
        self.hand_model, self.face_model, self.pose_model = hand_model, face_model, pose_model
        self.parts = tuple(parts)
        self._croppers = croppers
        self._own_hands = croppers is None
        self._hand_config = CropConfig()
        self._idle: list[Pose86Landmarker] = []
        self._fresh: set[int] = set()     # ids of idle landmarkers no stream has used yet
        self._lock = threading.Lock()
        self._opened = False

    @property
    def hands(self) -> CropperPool:
        """The hand trackers the streams' landmarks come from (opened with the first landmarker)."""
        self.check()
        return self._croppers

    @property
    def hand_config(self) -> CropConfig:
        return self._croppers.config if self._croppers is not None else self._hand_config

    @hand_config.setter
    def hand_config(self, config: CropConfig) -> None:
        """The crop settings of the landmarks' own hand trackers (e.g. ``detect_every``)."""
        if not self._own_hands:
            raise ValueError("the landmarks take the hands of the recognizer's crop pass: set its crop_config")
        self._hand_config = config
        if self._croppers is not None:
            self._croppers.config = config

    def check(self) -> None:
        """Open the first landmark models now (a bundle this runtime cannot feed, or a missing model, fails here)."""
        if not self._opened:
            self.give_back(self.take(), used=False)

    def take(self) -> Pose86Landmarker:
        """An idle landmarker, fresh (reset) if a stream used it before, or a new one."""
        with self._lock:
            if self._idle:
                lm = self._idle.pop()
                fresh = id(lm) in self._fresh
                self._fresh.discard(id(lm))
            else:
                lm = None
        if lm is not None:
            if not fresh:
                lm.reset()
            return lm
        with self._lock:
            first = not self._opened
        if first:
            check_landmark_bundle(self.manifest, self.where)
        lm = Pose86Landmarker(parts=self.parts, face_model=self.face_model, pose_model=self.pose_model,
                              hand_model=self.hand_model)
        with self._lock:
            if not self._opened:
                # the models found once (option, env, cache or download) serve every later stream
                self.face_model, self.pose_model = lm.face_model, lm.pose_model
                if self._own_hands and "hands" in self.parts and self._croppers is None:
                    self._croppers = CropperPool(self._hand_config, self.hand_model, size=HAND_SIZE)
                self._opened = True
        return lm

    def give_back(self, lm: Pose86Landmarker | None, used: bool = True) -> None:
        """Return a landmarker taken with :meth:`take` (None: nothing to return; ``used=False``: no frame went
        through it, so the next taker need not reset it)."""
        if lm is not None:
            with self._lock:
                self._idle.append(lm)
                if not used:
                    self._fresh.add(id(lm))


class LandmarkFrontEnd(FrontEnd):
    """One stream's frames on their way to a landmark model (see the module doc): the video front end's resampler
    and clock, then hands, lips and body per frame and the normalisation; out come ``float32 [N, 86, 2]`` model
    frames. ``look_ahead``: :class:`Pose86LookAhead` (a file) or the causal normaliser (a live source).

    ``timing.crop`` gets the landmark extraction (hands, lips, body), ``timing.preprocess`` the normalisation;
    :attr:`landmark_seconds` splits them, :attr:`found` counts the extracted frames with each part found.
    """

    def __init__(self, fps: float, landmarkers: LandmarkPool, timing: Timing, max_gap: float | None = None,
                 look_ahead: bool = False, preprocess: Preprocess | None = None):
        super().__init__(fps, preprocess, None, timing, max_gap=max_gap)
        self.landmarkers = landmarkers
        self.look_ahead = bool(look_ahead)
        self.normalizer = Pose86LookAhead() if self.look_ahead else Pose86Normalizer(np.float32)
        self.landmarker: Pose86Landmarker | None = None
        self.point_scale: np.ndarray | None = None     # decoded -> display pixels (display_scale), None: as decoded
        self.landmark_seconds = {"hands": 0.0, "lips": 0.0, "body": 0.0, "normalise": 0.0}
        self.extracted = 0                               # frames the landmarkers ran on (a repeated frame once)
        self.found = {p: 0 for p in PARTS}              # of those, frames with each part found

    def flush(self) -> np.ndarray | None:
        """End of input: the held frame's model frames, and with ``look_ahead`` every frame still held."""
        x = super().flush()
        if not self.look_ahead:
            return x
        t0 = time.perf_counter()
        rest = self.normalizer.finish()
        self._normalised(time.perf_counter() - t0)
        parts = [a for a in (x, rest) if a is not None and len(a)]
        return np.concatenate(parts) if parts else None

    def close(self) -> None:
        """Give the hand tracker and the landmarker back to their pools (for the next stream)."""
        cropper, self.cropper = self.cropper, None
        lm, self.landmarker = self.landmarker, None
        if cropper is not None:
            self.landmarkers.hands.give_back(cropper)
        self.landmarkers.give_back(lm)

    def _normalised(self, seconds: float) -> None:
        self.landmark_seconds["normalise"] += seconds
        self.timing.preprocess += seconds

    def _pixels(self, frame: np.ndarray, res) -> None:
        """A frame's crop result seen on its way to the landmarks (the fusion front end keeps its pixels)."""

    def _prepare(self, frames, counts: list[int] | None) -> np.ndarray | None:
        """Landmarks of ``frames`` (each once), repeated ``counts`` times, normalised."""
        if not len(frames):
            return None
        if self.landmarker is None:
            self.landmarker = self.landmarkers.take()
            self.cropper = self.landmarkers.hands.take() if "hands" in self.landmarkers.parts else None
        lm = self.landmarker
        counts = counts if counts is not None else [1] * len(frames)
        self.last_frames = list(frames)
        index = self.frame_index
        for c in counts:
            self.last_times.append(index / self.fps)
            index += c
        before, t_hands, points = dict(lm.seconds), 0.0, []
        for f, t_model in zip(frames, self.last_times):
            ts = int(round(t_model * 1000.0))      # the model frame's time, as data prepare --landmarks gives it
            res = None
            if self.cropper is not None:
                t0 = time.perf_counter()
                res = self.cropper.crop(f, ts)
                t_hands += time.perf_counter() - t0
                self.crop_stats.add(res)
            else:
                self.crop_stats.frames += 1
            self.last_crops.append(res)
            self._pixels(f, res)
            k = lm.frame(f, ts, res if res is not None else [])
            points.append(k * self.point_scale if self.point_scale is not None else k)
        points = np.stack(points)
        seconds = {p: lm.seconds[p] - before[p] for p in ("hands", "lips", "body")}
        seconds["hands"] += t_hands
        for p, v in seconds.items():
            self.landmark_seconds[p] += v
        self.timing.crop += sum(seconds.values())
        self.extracted += len(points)
        for j, n in enumerate((~part_missing(points)).sum(axis=0)):
            self.found[POSE86[j].name] += int(n)
        t1 = time.perf_counter()
        rows = np.repeat(points, counts, axis=0)   # a repeated frame is extracted once
        if self.look_ahead:
            x = np.concatenate([self.normalizer.push(k) for k in rows])
        else:
            x = np.stack([self.normalizer.push(k) for k in rows])
        self._normalised(time.perf_counter() - t1)
        self.frame_index += len(rows)
        self.timing.frames += len(rows)
        return x if len(x) else None


class FusionFrontEnd(LandmarkFrontEnd):
    """A fusion bundle's front end (``input.modality == "fusion"``): per model frame the hand crop, preprocessed
    (``float32 [3, S, S]``, as the RGB front end makes it), and the landmarks of the same frame (``[86, 2]``, as
    :class:`LandmarkFrontEnd` makes them). One hand pass per frame: the crop pass's HandLandmarker gives both the
    crop and the hand points (the recognizer's hand trackers when its crop policy is ``hands``; with ``full`` the
    model takes the whole frame and the hands come from the landmarks' own trackers). Out come
    ``{"frames": [N, 3, S, S], "landmarks": [N, 86, 2]}``, frame k with landmark frame k (with ``look_ahead`` the
    preprocessed frames wait with their landmarks).
    """

    def __init__(self, fps: float, landmarkers: LandmarkPool, timing: Timing, preprocess: Preprocess,
                 max_gap: float | None = None, look_ahead: bool = False, crops: bool = True):
        super().__init__(fps, landmarkers, timing, max_gap=max_gap, look_ahead=look_ahead, preprocess=preprocess)
        self.crops = bool(crops)              # the model takes the hand crop (else the whole frame)
        self._images: list[np.ndarray] = []   # this call's frames for the model, before preprocessing
        self._waiting = np.zeros((0, 3, preprocess.size, preprocess.size), np.float32)   # frames before their points

    def _pixels(self, frame: np.ndarray, res) -> None:
        self._images.append(res.image if self.crops and res is not None else frame)

    def _prepare(self, frames, counts: list[int] | None):
        if not len(frames):
            return None
        self._images = []
        points = super()._prepare(frames, counts)
        t0 = time.perf_counter()
        x = self.preprocess(np.asarray(np.stack(self._images)))
        if counts is not None and any(c != 1 for c in counts):
            x = np.repeat(x, counts, axis=0)
        self._images = []
        self.timing.preprocess += time.perf_counter() - t0
        self._waiting = np.concatenate([self._waiting, x])
        return self._pair(points)

    def flush(self):
        """End of input: the held frame's pairs, and with ``look_ahead`` the frames still waiting for their points."""
        x = FrontEnd.flush(self)
        if not self.look_ahead:
            return x
        t0 = time.perf_counter()
        rest = self._pair(self.normalizer.finish())
        self._normalised(time.perf_counter() - t0)
        parts = [a for a in (x, rest) if a is not None]
        if len(parts) < 2:
            return parts[0] if parts else None
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _pair(self, points: np.ndarray | None):
        """The waiting frames paired with the landmarks out now (the oldest first)."""
        n = 0 if points is None else len(points)
        if not n:
            return None
        x, self._waiting = self._waiting[:n], self._waiting[n:]
        return {"frames": x, "landmarks": points}
