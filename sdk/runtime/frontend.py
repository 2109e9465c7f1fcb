"""A stream's front end: source frames -> (resample to the manifest's fps by timestamp) -> (hand crop) ->
:mod:`slsdk.preprocess` -> model frames ``float32 [N, 3, S, S]`` for the chunk runner.

Each frame is cropped and preprocessed once; a frame the resampler repeats is repeated after preprocessing.
"""
from __future__ import annotations

import time

import numpy as np

from slsdk.preprocess import Preprocess
from slsdk.runtime.crop import CropStats
from slsdk.runtime.hand_tracker import CropperPool
from slsdk.runtime.results import Timing
from slsdk.runtime.sources import FrameResampler


def as_frames(frames) -> np.ndarray | list:
    """RGB frames as given to ``accept_frames``: an ``[N, H, W, 3]`` array (one ``[H, W, 3]`` frame gets a time
    axis) or a list of ``[H, W, 3]`` arrays."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be RGB uint8 [N, H, W, 3], got shape {frames.shape}")
        return frames
    return [np.asarray(f) for f in frames]


class FrontEnd:
    """One stream's frames on their way to the model: its resampler, its held frame, its hand tracker (taken from
    ``croppers`` on the first frame; None: the whole frame is used) and its model clock (``frame_index``).

    ``timing``: the stream's :class:`Timing`, which gets the crop and preprocess seconds.
    """

    def __init__(self, fps: float, preprocess: Preprocess, croppers: CropperPool | None, timing: Timing,
                 max_gap: float | None = None):
        self.fps = fps
        self.preprocess = preprocess
        self.croppers = croppers
        self.timing = timing
        self.resampler = FrameResampler(fps, max_gap=max_gap)
        self.crop_stats = CropStats(keep_boxes=False)  # counts only: bounded memory on long streams
        self.cropper = None  # this stream's hand tracker
        self.frame_index = 0  # model frames so far, at the manifest's fps (the model's clock)
        self.source_frames = 0  # frames given to push
        self.timed: bool | None = None  # whether this stream's frames come with timestamps
        self._held: np.ndarray | None = None  # latest timed frame: released once the next frame's time is known
        # the frames the latest push / flush prepared (for overlays): crop results (None without a hand crop), the
        # source frames and their times on the model's clock (s)
        self.last_crops: list = []
        self.last_frames: list = []
        self.last_times: list = []

    def push(self, frames, timestamps=None) -> np.ndarray | None:
        """Source frames (with their timestamps, or at the manifest's rate already) -> the model frames they make
        now (None: none yet). With timestamps the latest frame waits for the next one's time (or :meth:`flush`)."""
        frames = as_frames(frames)
        self.last_crops, self.last_frames, self.last_times = [], [], []
        if not len(frames):
            return None
        timed = timestamps is not None
        if self.timed is None:
            self.timed = timed
        elif self.timed != timed:
            raise ValueError("a stream takes frames with timestamps or without them, not both: "
                             f"this one started {'with' if self.timed else 'without'}")
        if not timed:
            self.source_frames += len(frames)
            return self._prepare(frames, None)
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(ts) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(ts)} timestamps")
        self.source_frames += len(frames)
        keep, counts = [], []
        for f, t in zip(frames, ts):
            c = self.resampler.push(t)
            if c:  # the held frame is final now: c output frames (0: dropped)
                keep.append(self._held)
                counts.append(c)
            self._held = f
        self._held = np.array(self._held, copy=True)  # not a view that keeps the caller's batch alive
        return self._prepare(keep, counts)

    def flush(self) -> np.ndarray | None:
        """End of input: the model frames of the held frame (its share of the output frames is known now)."""
        self.last_crops, self.last_frames, self.last_times = [], [], []
        if self._held is None:
            return None
        held, self._held = self._held, None
        c = self.resampler.finish()
        return self._prepare([held], [c]) if c else None

    @property
    def resample_stats(self) -> dict | None:
        """How the frames were resampled (policy, source fps, frames dropped / repeated); None without timestamps."""
        return self.resampler.stats() if self.timed else None

    def restart(self) -> None:
        """Frames after the end of input start a new segment of the clock."""
        self.resampler.restart()

    def close(self) -> None:
        """Give the hand tracker back to the pool (for the next stream)."""
        cropper, self.cropper = self.cropper, None
        if self.croppers is not None:
            self.croppers.give_back(cropper)

    def _prepare(self, frames, counts: list[int] | None) -> np.ndarray | None:
        """Crop + preprocess ``frames`` (each once), repeat them ``counts`` times."""
        if not len(frames):
            return None
        t0 = time.perf_counter()
        self.last_frames = list(frames)
        index = self.frame_index
        for c in counts if counts is not None else [1] * len(frames):
            self.last_times.append(index / self.fps)
            index += c
        if self.croppers is not None:
            if self.cropper is None:
                self.cropper = self.croppers.take()
            for f, t_model in zip(frames, self.last_times):
                res = self.cropper.crop(f, int(round(t_model * 1000.0)))
                self.crop_stats.add(res)
                self.last_crops.append(res)
            frames = [res.image for res in self.last_crops]
        else:
            self.crop_stats.frames += len(frames)
            self.last_crops = [None] * len(frames)  # no hand crop: the model takes the frame
        t1 = time.perf_counter()
        x = self.preprocess(np.asarray(np.stack(frames) if isinstance(frames, list) else frames))
        if counts is not None and any(c != 1 for c in counts):
            x = np.repeat(x, counts, axis=0)  # a repeated frame is preprocessed once
        t2 = time.perf_counter()
        self.frame_index += len(x)
        self.timing.crop += t1 - t0
        self.timing.preprocess += t2 - t1
        self.timing.frames += len(x)
        return x


__all__ = ["FrontEnd", "as_frames"]
