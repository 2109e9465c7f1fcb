"""The 86-point landmark layout of the Isharah challenge kit, its normalisation, and ``.pose`` files (numpy only).

``POSE86`` is the point layout of the MSLR 2025 / Isharah starter kit's keypoint pickles (and of slsdk's landmark
models): per frame 86 points ``(x, y)`` in pixels, in this order

* ``right_hand`` 0-20: MediaPipe's 21 hand points of the signer's right hand (Holistic ``RIGHT_HAND_LANDMARKS``),
* ``left_hand`` 21-41: the left hand, same 21 points,
* ``lips`` 42-60: 19 outer-lip points of MediaPipe's 468-point FaceMesh, :data:`LIPS_FACEMESH` (the kit's
  ``sorted(set(lipsUpperOuter + lipsLowerOuter))``),
* ``body`` 61-85: MediaPipe Pose points 0-24 (nose to hips, :data:`BODY_POSE_NAMES`).

A part MediaPipe did not find in a frame is all zeros. :func:`normalize_pose86` is the kit's per-frame
normalisation (``PoseDatasetV2.readPose`` with its augmentations off), the input every landmark model sees;
:class:`Pose86Normalizer` is its causal form for streams. :func:`read_pose_file` maps a ``.pose`` file (the
sign-language-processing format, MediaPipe Holistic components) into the layout.

Bottom layer: serving (the runtime's landmark stream) and building (``slsdk.data.landmarks`` re-exports these)
use the same code. ``pose_format`` is imported only by :func:`read_pose_file`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slsdk.errors import SlsdkError

__all__ = ["POSE86", "Pose86Part", "LIPS_FACEMESH", "BODY_POSE_NAMES", "HAND_NAMES", "NUM_POINTS", "pose86_spec",
           "part_missing", "normalize_pose86", "Pose86Normalizer", "read_pose_file", "PoseFileError",
           "MAX_POSE_FILE_BYTES"]


class PoseFileError(SlsdkError, ValueError):
    """A ``.pose`` file that cannot be read into the 86-point layout; the message names the file."""


@dataclass(frozen=True)
class Pose86Part:
    name: str
    start: int
    stop: int
    source: str        # the MediaPipe component it comes from
    points: tuple      # the source's point indices (FaceMesh / Pose) or names (hands)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


# the kit's lipsUpperOuter + lipsLowerOuter, deduplicated and sorted (FaceMesh indices)
LIPS_FACEMESH = (0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405)
HAND_NAMES = ("WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
              "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
              "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
              "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP")
BODY_POSE_NAMES = ("NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
                   "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER",
                   "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY",
                   "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP")

POSE86: tuple[Pose86Part, ...] = (
    Pose86Part("right_hand", 0, 21, "RIGHT_HAND_LANDMARKS", HAND_NAMES),
    Pose86Part("left_hand", 21, 42, "LEFT_HAND_LANDMARKS", HAND_NAMES),
    Pose86Part("lips", 42, 61, "FACE_LANDMARKS", LIPS_FACEMESH),
    Pose86Part("body", 61, 86, "POSE_LANDMARKS", tuple(range(25))),
)
NUM_POINTS = 86
PARTS = {p.name: p for p in POSE86}


def pose86_spec() -> dict:
    """The layout as plain JSON data (for a manifest or a checkpoint): name, points, coordinates, parts in order
    (name, start, stop, MediaPipe source, source point indices), missing-part rule and normalisation."""
    return {
        "layout": "pose86",
        "points": NUM_POINTS,
        "coordinates": ["x", "y"],
        "units": "pixels",
        "parts": [{"name": p.name, "start": p.start, "stop": p.stop, "source": p.source,
                   "indices": list(range(21)) if p.source.endswith("HAND_LANDMARKS") else list(p.points)}
                  for p in POSE86],
        "missing": "a part not found in a frame is all zeros",
        "normalization": "isharah-kit",
        "description": "Isharah / MSLR 2025 starter kit keypoints: right hand 21, left hand 21 (MediaPipe Hands), "
                       "outer lips 19 (FaceMesh indices), body 25 (MediaPipe Pose 0-24)",
    }


def _check_keypoints(keypoints, what: str = "keypoints") -> np.ndarray:
    k = np.asarray(keypoints)
    if k.ndim != 3 or k.shape[1] != NUM_POINTS or k.shape[2] < 2 or not np.issubdtype(k.dtype, np.number):
        raise ValueError(f"{what}: expected a numeric array [T, {NUM_POINTS}, 2], got {k.dtype} {k.shape}")
    return k[:, :, :2]


def part_missing(keypoints) -> np.ndarray:
    """``[T, 4]`` bool: whether each part (in :data:`POSE86` order) is missing in each frame (its coordinates
    sum to 0, the kit's test of an all-zero part)."""
    k = _check_keypoints(keypoints)
    return np.stack([np.ascontiguousarray(k[:, p.slice]).sum(axis=(1, 2)) == 0 for p in POSE86], axis=1)


def _normalize_part(x: np.ndarray) -> np.ndarray:
    """The kit's per-frame part normalisation of ``x`` [T, N, 2] (frames of a found part), in ``x``'s float type:
    relative to the first point, shifted to the minimum, divided by the largest coordinate, centred on the mean of
    all coordinates and scaled to +-0.5. A degenerate part (all points on one spot) becomes zeros (the kit: NaN)."""
    x = x - x[:, :1]
    x = x - x.min(axis=1, keepdims=True)
    top = x.max(axis=(1, 2), keepdims=True)
    ok = top > 0
    x = np.divide(x, top, out=np.zeros_like(x), where=ok)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    peak = np.abs(x).max(axis=(1, 2), keepdims=True)
    x = np.divide(x, peak, out=np.zeros_like(x), where=ok & (peak > 0))
    return x * x.dtype.type(0.5)


def normalize_pose86(keypoints) -> np.ndarray:
    """``[T, 86, 2]`` pixel keypoints -> ``[T, 86, 2]`` float32, the kit's ``readPose`` with augmentations off.

    Per frame, each found part (:func:`part_missing`) is normalised on its own (:func:`_normalize_part`). A missing
    part takes the part's previous (normalised) frame; missing from the first frame on it is zeros, and then, for
    the two hands only (as the kit does), frames whose normalised part sums to exactly zero take the next frame's,
    back to front (so a leading gap takes the first found hand).

    Computed, like the kit, in the input's float type (float32 or float64; anything else as float64), with the kit's
    reductions over each frame's contiguous ``[N, 2]`` block: the kit's backward pass also replaces a *found* hand
    whose normalised coordinates happen to sum to exactly 0.0 (the centring makes the sum about 0, and exactly 0 in
    a few frames in a hundred, in float32 and float64 alike), and the same frames are replaced here.
    """
    k = _check_keypoints(keypoints)
    dt = k.dtype if k.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    k = np.ascontiguousarray(k, dtype=dt)
    T = k.shape[0]
    out = np.zeros((T, NUM_POINTS, 2), dt)
    missing = part_missing(k)
    for j, p in enumerate(POSE86):
        found = ~missing[:, j]
        part = np.zeros((T, p.size, 2), dt)
        if found.any():
            part[found] = _normalize_part(np.ascontiguousarray(k[found, p.slice]))
            # forward fill: each frame takes the last found frame at or before it (zeros before the first)
            last = np.maximum.accumulate(np.where(found, np.arange(T), -1))
            has = last >= 0
            filled = np.zeros_like(part)
            filled[has] = part[last[has]]
            part = filled
        if p.name in ("right_hand", "left_hand"):
            for i in range(T - 2, -1, -1):      # the kit's backward pass (its test: the part sums to zero)
                if part[i].sum() == 0:
                    part[i] = part[i + 1]
        out[:, p.slice] = part
    return out.astype(np.float32)


class Pose86Normalizer:
    """:func:`normalize_pose86` frame by frame, causally (a stream cannot look ahead): a missing part repeats its
    last normalised frame, zeros before it was ever found (no backward pass). The same numbers as the offline
    function on input of ``dtype`` wherever each part has been found at least once (and the offline backward pass
    did not replace a found hand whose coordinates sum to exactly 0)."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.reset()

    def reset(self) -> None:
        self._last = np.zeros((NUM_POINTS, 2), self.dtype)

    def push(self, frame) -> np.ndarray:
        """One ``[86, 2]`` pixel frame -> its ``[86, 2]`` float32 normalised frame."""
        f = np.asarray(frame)
        if f.ndim != 2 or f.shape[0] != NUM_POINTS or f.shape[1] < 2:
            raise ValueError(f"a landmark frame is [{NUM_POINTS}, 2], got {f.shape}")
        f = np.ascontiguousarray(f[:, :2], dtype=self.dtype)
        for p in POSE86:
            x = f[p.slice]
            if x.sum() != 0:
                self._last[p.slice] = _normalize_part(x[None])[0]
        return self._last.astype(np.float32)


# ----------------------------------------------------------------------------------------------------- .pose
MAX_POSE_FILE_BYTES = 512 << 20     # a .pose file: 512 MiB (~90 min of full Holistic at 25 fps)
MAX_POSE_FRAMES = 1_000_000
MAX_POSE_POINTS = 10_000            # points of all components together (full Holistic: 576)
MAX_POSE_DIMENSION = 100_000        # width / height in pixels


def read_pose_file(path: str | Path) -> tuple[np.ndarray, float]:
    """A ``.pose`` file (MediaPipe Holistic components) -> ``(keypoints [T, 86, 2] float32 pixels, fps)``.

    Points are taken by name from ``RIGHT_HAND_LANDMARKS``, ``LEFT_HAND_LANDMARKS``, ``FACE_LANDMARKS`` (the 19 lip
    indices; a 468- or 478-point mesh, or a reduced one that keeps them) and ``POSE_LANDMARKS`` (points 0-24 by
    name) of the first person; a part whose points all have confidence 0 in a frame is all zeros there. A file
    over :data:`MAX_POSE_FILE_BYTES`, a header with absurd sizes or a component missing is a
    :class:`PoseFileError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise PoseFileError(f"{path}: .pose file not found" if not path.exists() else f"{path}: is not a file")
    size = path.stat().st_size
    if size > MAX_POSE_FILE_BYTES:
        raise PoseFileError(f"{path}: {size} bytes, more than a .pose file may have here ({MAX_POSE_FILE_BYTES})")
    try:
        from pose_format.pose_header import PoseHeader
        from pose_format.utils.reader import BufferReader
    except ImportError:
        raise PoseFileError(f"{path}: reading .pose files needs the pose-format package: pip install "
                            "'slsdk[landmarks]' (or pip install pose-format)") from None
    data = path.read_bytes()
    try:
        reader = BufferReader(data)
        header = PoseHeader.read(reader)
    except Exception as e:  # noqa: BLE001 - a corrupt header raises struct / unicode / index errors
        raise PoseFileError(f"{path}: not a readable .pose file ({type(e).__name__}: {str(e)[:200]})") from None
    _check_header(path, header)
    try:
        from pose_format.numpy.pose_body import NumPyPoseBody
        body = NumPyPoseBody.read(header, reader)
    except Exception as e:  # noqa: BLE001 - a truncated body raises struct / value errors
        raise PoseFileError(f"{path}: cannot read the .pose body ({type(e).__name__}: {str(e)[:200]})") from None
    fps = float(body.fps)
    if not math.isfinite(fps) or not 0 < fps <= 1000:
        raise PoseFileError(f"{path}: frame rate {fps} is not a frame rate (0 < fps <= 1000)")
    coords = np.asarray(np.ma.getdata(body.data), np.float32)
    conf = np.asarray(np.ma.getdata(body.confidence), np.float32)
    if coords.ndim != 4 or coords.shape[-1] < 2 or conf.shape != coords.shape[:3]:
        raise PoseFileError(f"{path}: body of shape {coords.shape} is not [frames, people, points, dims]")
    T = coords.shape[0]
    if T > MAX_POSE_FRAMES:
        raise PoseFileError(f"{path}: {T} frames, more than {MAX_POSE_FRAMES}")
    out = np.zeros((T, NUM_POINTS, 2), np.float32)
    if T == 0 or coords.shape[1] == 0:
        return out, fps
    offsets, at = {}, 0
    for c in header.components:
        offsets[c.name] = (at, list(c.points))
        at += len(c.points)
    if at != coords.shape[2]:
        raise PoseFileError(f"{path}: the header names {at} points, the body holds {coords.shape[2]}")
    for p in POSE86:
        if p.source not in offsets:
            raise PoseFileError(f"{path}: no {p.source} component (found: {', '.join(offsets)}); the 86-point "
                                "layout needs MediaPipe Holistic's hands, face and pose")
        start, names = offsets[p.source]
        want = [str(i) for i in p.points] if p.source == "FACE_LANDMARKS" else list(
            BODY_POSE_NAMES if p.source == "POSE_LANDMARKS" else HAND_NAMES)
        where = {n: i for i, n in enumerate(names)}
        lacking = [n for n in want if n not in where]
        if lacking:
            raise PoseFileError(f"{path}: component {p.source} lacks {len(lacking)} points the 86-point layout needs "
                                f"(e.g. {', '.join(lacking[:5])}); it has {len(names)} points")
        idx = np.array([start + where[n] for n in want])
        xy = coords[:, 0, idx, :2]
        found = (conf[:, 0, idx] > 0).any(axis=1) & np.isfinite(xy).all(axis=(1, 2))
        out[found, p.slice] = xy[found]
    return out, fps


def _check_header(path: Path, header) -> None:
    comps = list(getattr(header, "components", []) or [])
    if not comps or len(comps) > 64:
        raise PoseFileError(f"{path}: header has {len(comps)} components (expected 1 to 64)")
    points = sum(len(c.points) for c in comps)
    if points > MAX_POSE_POINTS:
        raise PoseFileError(f"{path}: header names {points} points, more than {MAX_POSE_POINTS}")
    dims = header.dimensions
    for name in ("width", "height"):
        v = getattr(dims, name, 0)
        if not isinstance(v, (int, np.integer)) or not 0 <= v <= MAX_POSE_DIMENSION:
            raise PoseFileError(f"{path}: header {name} {v!r} is out of range (0 to {MAX_POSE_DIMENSION})")
