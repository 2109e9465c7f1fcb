"""Serving a landmark bundle from a landmark recording: a ``.pose`` file (or pixel keypoints ``[T, 86, 2]``) through
the recognizer, chunk by chunk, with the streaming CTC decoder.

The bundle's ``input.landmarks`` section says what the model takes: the point layout (``pose86``: the parts and
their MediaPipe sources, in order), the coordinates (pixels) and the normalisation (``isharah-pose86``). This
module serves the layout and normalisation slsdk implements (:mod:`slsdk.landmarks`, the same code training
used): a ``.pose`` file is read with :func:`slsdk.landmarks.read_pose_file` (the same mapping as the data
readers), the whole recording is normalised by :func:`slsdk.landmarks.normalize_pose86` (a file can look ahead:
leading gaps take the next found frame, as in training), resampled to the manifest's fps (the nearest frame by
time, as the video front end does) and fed to the stream in chunks; the stream's decoder commits glosses as
they become stable and resets at endpoints. Torch-free.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from slsdk.errors import SlsdkError
from slsdk.landmarks import NUM_POINTS, normalize_pose86, read_pose_file
from slsdk.runtime.results import Update

__all__ = ["LandmarkInputError", "SERVED_LAYOUTS", "landmark_spec", "is_landmark_bundle", "check_landmark_bundle",
           "resample_indices", "recognize_landmarks", "recognize_pose_file", "POSE_SUFFIXES"]

# (layout, normalisation) pairs this runtime produces
SERVED_LAYOUTS = {("pose86", "isharah-pose86"): NUM_POINTS}
POSE_SUFFIXES = (".pose",)


class LandmarkInputError(SlsdkError, ValueError):
    """A landmark recording that does not fit the bundle (or a bundle that takes no landmarks)."""


def landmark_spec(manifest):
    """The manifest's ``input.landmarks`` section (None for a frames-only bundle)."""
    return getattr(manifest.input, "landmarks", None)


def is_landmark_bundle(manifest) -> bool:
    """Whether the bundle's model takes landmarks only (``input.modality == "landmarks"``)."""
    return getattr(manifest.input, "modality", None) == "landmarks" and landmark_spec(manifest) is not None


def check_landmark_bundle(manifest, where: str) -> None:
    """Refuse a bundle whose landmark layout or normalisation this runtime does not produce."""
    spec = landmark_spec(manifest)
    if spec is None or getattr(manifest.input, "modality", None) not in ("landmarks", "fusion"):
        raise LandmarkInputError(f"{where}: the bundle's model takes video frames, not landmarks (input.modality "
                                 f"{getattr(manifest.input, 'modality', None) or 'frames'}); give it a video")
    key = (spec.layout, spec.normalisation)
    if key not in SERVED_LAYOUTS or int(spec.points) != SERVED_LAYOUTS[key] or int(spec.dims) != 2:
        raise LandmarkInputError(f"{where}: the bundle takes {spec.points}x{spec.dims} landmarks in layout "
                                 f"{spec.layout!r} normalised by {spec.normalisation!r}; this slsdk serves "
                                 f"{', '.join(f'{a} ({b})' for a, b in SERVED_LAYOUTS)}")


def resample_indices(n: int, source_fps: float | None, fps: float) -> np.ndarray:
    """Source frame per model frame: the nearest source frame by time (``n`` frames at ``source_fps``, model frames
    at ``fps``, the first at time 0); every frame once when the rates agree or ``source_fps`` is unknown."""
    if n <= 0:
        return np.zeros(0, np.int64)
    if not source_fps or abs(source_fps - fps) < 1e-6:
        return np.arange(n)
    count = max(1, int(np.floor((n - 1) / source_fps * fps + 1e-9)) + 1)
    return np.minimum(np.rint(np.arange(count) * (source_fps / fps)).astype(np.int64), n - 1)


def recognize_landmarks(rec, keypoints, source_fps: float | None = None, *, reset_at_endpoints: bool = False,
                        stream=None, where: str = "landmarks") -> Iterator[Update]:
    """Stream pixel keypoints ``[T, 86, 2]`` through ``rec`` (a :class:`~slsdk.runtime.recognizer.Recognizer` of a
    landmark bundle): one :class:`Update` per chunk, the last one ``final``. ``reset_at_endpoints``: an endpoint
    closes the utterance and the stream starts a new one (as ``Recognizer.recognize`` does)."""
    check_landmark_bundle(rec.manifest, where)
    k = np.asarray(keypoints)
    if k.ndim != 3 or k.shape[1:] != (NUM_POINTS, 2):
        raise LandmarkInputError(f"{where}: landmarks of shape {list(k.shape)}, expected [T, {NUM_POINTS}, 2]")
    if len(k) == 0:
        raise LandmarkInputError(f"{where}: no frames")
    t0 = time.perf_counter()
    points = normalize_pose86(k)[resample_indices(len(k), source_fps, rec.fps)]
    s = stream if stream is not None else rec.create_stream()
    s.landmark_frames = 0
    s.landmark_source_frames = len(k)
    s.timing.preprocess += time.perf_counter() - t0
    printed = 0

    def update(final: bool) -> Update:
        nonlocal printed
        res = s.result()
        upto = len(res.events) if final else len(res.committed)
        events, printed = res.events[printed:upto], upto
        u = Update(s, res, events, None, [], final)
        if (final or (reset_at_endpoints and s.is_endpoint())) and res.glosses:
            u.utterance = res
        if reset_at_endpoints and not final and u.utterance is not None:
            s.reset()
            printed = 0
        return u

    chunk = rec.chunk
    full = len(points) - len(points) % chunk
    for i in range(0, full, chunk):
        s.accept_inputs(points[i:i + chunk])
        s.landmark_frames += chunk
        yield update(False)
    s.accept_inputs(points[full:], decode=False)   # the last partial chunk: zero-padded by input_finished
    s.landmark_frames = len(points)
    s.input_finished()
    s.wall_seconds += time.perf_counter() - t0
    yield update(True)


def recognize_pose_file(rec, path: str | Path, **kw) -> Iterator[Update]:
    """:func:`recognize_landmarks` over a ``.pose`` file (read by :func:`slsdk.landmarks.read_pose_file`)."""
    check_landmark_bundle(rec.manifest, str(path))
    keypoints, fps = read_pose_file(path)
    return recognize_landmarks(rec, keypoints, fps, where=str(path), **kw)
