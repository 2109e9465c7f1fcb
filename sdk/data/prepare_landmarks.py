"""``slsdk data prepare --landmarks``: the 86-point landmark layout of every video of a data set, written as a
``.pose`` file beside the video, so an RGB data set gains landmarks (the folder layout reads a ``.pose`` beside a
video as its landmarks: ``videos/a.mp4`` -> ``videos/a.pose``; a frame folder ``videos/a/`` -> ``videos/a.pose``).

Per video, the runtime's own code: decoded as the runtime's file source decodes it (:class:`~slsdk.data.video.
VideoReader`, the shorter side capped at ``DECODE_MAX_SHORTER``), resampled to ``fps`` by presentation time with the
runtime's :class:`~slsdk.runtime.sources.FrameResampler` (model frame ``k`` at ``k / fps`` s, the timestamps the
recognizer gives its trackers; ``fps`` 0: every decoded frame), the hands from the runtime's
:class:`~slsdk.runtime.hand_tracker.HandCropper` (the crop pass, default :class:`~slsdk.runtime.crop.CropConfig`),
lips and body from :class:`~slsdk.runtime.pose86_landmarks.Pose86Landmarker`. Points are stored in pixels of the
video's display size (scaled back from the decoded size), at ``fps``, in the format
:func:`~slsdk.runtime.pose86_landmarks.pose86_file_bytes` writes and :func:`slsdk.landmarks.read_pose_file` reads.
With the same ``fps`` as ``slsdk data prepare``'s cache, landmark frame ``k`` is crop frame ``k``.

Files: every write through :mod:`slsdk.fileio` (atomic). A ``.pose`` slsdk wrote earlier is kept (a re-run resumes)
unless ``overwrite``, which rewrites it; a ``.pose`` slsdk did not write is never replaced (counted and named).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from slsdk.data.readers import VIDEO_SUFFIXES
from slsdk.data.video import VideoError, VideoReader
from slsdk.errors import SlsdkError
from slsdk.fileio import WriteError, atomic_write, is_ours, output_lock, reading
from slsdk.landmarks import POSE86, part_missing
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.hand_tracker import HandCropper
from slsdk.runtime.landmark_frontend import display_scale
from slsdk.runtime.pose86_landmarks import PARTS_ALL, Pose86Landmarker, pose86_file_bytes
from slsdk.runtime.sources import DECODE_MAX_SHORTER, resampled_frames

__all__ = ["LandmarksResult", "LandmarkPrepareError", "pose_path_for", "extract_video_pose86",
           "prepare_landmarks", "print_landmarks_result"]


class LandmarkPrepareError(SlsdkError, ValueError):
    """Some videos could not be given landmarks (each named in the summary)."""


def pose_path_for(video: str | Path) -> Path:
    """Where a sample's ``.pose`` goes: beside the video with its name (the folder layout's rule)."""
    v = Path(video)
    return v.with_name(v.stem + ".pose") if v.suffix.lower() in VIDEO_SUFFIXES else v.with_name(v.name + ".pose")


def extract_video_pose86(video: str | Path, landmarker: Pose86Landmarker, cropper: HandCropper | None,
                         fps: float | None = 25.0) -> tuple[np.ndarray, float, int, int]:
    """``(keypoints float32 [T, 86, 2], fps, width, height)`` of one video (see the module doc): pixels of the
    display size ``width`` x ``height``; ``fps`` None keeps every decoded frame (the source's rate)."""
    reader = VideoReader(video, max_shorter=DECODE_MAX_SHORTER)
    scale = display_scale(reader)    # decoded -> display pixels (None: decoded at display size), as serving does
    rate = fps if fps is not None else (reader.info.fps or 25.0)
    landmarker.reset()
    if cropper is not None:
        cropper.reset()
    rows: list[np.ndarray] = []

    def emit(frame, count):
        ts = int(round(len(rows) * 1000.0 / rate))
        hands = cropper.crop(frame, ts) if cropper is not None else None
        k = landmarker.frame(frame, ts, hands)
        k = k * scale if scale is not None else k
        rows.extend([k] * count)

    for frame, count in resampled_frames(reader, fps if reader.timed else None):
        emit(frame, count)
    if not rows:
        raise VideoError(f"{video}: no frames" + (f" after resampling to {fps} fps" if fps else ""))
    return np.stack(rows).astype(np.float32), float(rate), int(reader.info.width), int(reader.info.height)


@dataclass
class LandmarksResult:
    videos: int
    written: int                      # .pose files written in this run
    kept: int                         # slsdk's own .pose files from an earlier run, kept (no --overwrite)
    foreign: list[str] = field(default_factory=list)   # .pose files slsdk did not write: never replaced
    frames: int = 0                   # frames written in this run
    missing: dict = field(default_factory=dict)        # part -> frames (of those written) where it is missing
    failures: list[dict] = field(default_factory=list)


def prepare_landmarks(samples: Sequence, *, fps: float | None = 25.0, parts: Sequence[str] = PARTS_ALL,
                      hand_model: str | Path | None = None, face_model: str | Path | None = None,
                      pose_model: str | Path | None = None, overwrite: bool = False, progress: bool = True,
                      console=None, lock: Path | None = None) -> LandmarksResult:
    """Write the ``.pose`` beside each sample's video (``samples``: :class:`~slsdk.data.readers.Sample`; those whose
    ``video`` is itself a ``.pose`` file are skipped). ``lock``: the data set root (one run at a time)."""
    todo = [s for s in samples if Path(s.video).suffix.lower() != ".pose"]
    res = LandmarksResult(len(todo), 0, 0, missing={p.name: 0 for p in POSE86})
    jobs = []
    for s in todo:
        target = pose_path_for(s.video)
        if target.exists() or target.is_symlink():
            if not is_ours(target):
                res.foreign.append(str(target))
                continue
            if not overwrite:
                res.kept += 1
                continue
        jobs.append((s, target))
    if not jobs:
        return res
    landmarker = Pose86Landmarker(parts=parts, face_model=face_model, pose_model=pose_model, hand_model=hand_model)
    cropper = HandCropper(CropConfig(), hand_model, size=8) if "hands" in landmarker.parts else None
    console = console or Console(stderr=True)
    bar = Progress(TextColumn("landmarks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, disable=not progress, transient=False)
    try:
        with output_lock(lock) if lock is not None else contextlib.nullcontext(), bar:
            task = bar.add_task("videos", total=len(jobs))
            for s, target in jobs:
                try:
                    with reading(s.video):
                        k, rate, w, h = extract_video_pose86(s.video, landmarker, cropper, fps)
                        atomic_write(target, pose86_file_bytes(k, rate, w, h), overwrite=overwrite)
                except WriteError:
                    raise                 # a full disk or a permission: stop the run, say why
                except (VideoError, OSError, ValueError) as e:
                    res.failures.append({"id": s.id, "video": str(s.video), "error": f"{type(e).__name__}: {e}"})
                else:
                    res.written += 1
                    res.frames += len(k)
                    for j, n in enumerate(part_missing(k).sum(axis=0)):
                        res.missing[POSE86[j].name] += int(n)
                bar.advance(task)
    finally:
        landmarker.close()
        if cropper is not None:
            cropper.close()
    return res


def print_landmarks_result(res: LandmarksResult, console) -> None:
    """The command's summary lines (and the failures)."""
    miss = ", ".join(f"{k} {v}" for k, v in res.missing.items())
    console.print(f"{res.videos} videos: {res.written} .pose files written ({res.frames} frames; missing: {miss}), "
                  f"{res.kept} kept from before" + (f", {len(res.foreign)} not slsdk's (kept as they are, e.g. "
                                                    f"{res.foreign[0]})" if res.foreign else ""),
                  soft_wrap=True, markup=False, highlight=False)
    for f in res.failures:
        console.print(f"failed: {f['id']} ({f['video']}): {f['error']}", soft_wrap=True, markup=False,
                      highlight=False)
    if res.failures:
        raise LandmarkPrepareError(f"{len(res.failures)} of {res.videos} videos could not be given landmarks (listed "
                                   "above); fix or remove them and re-run to resume")

