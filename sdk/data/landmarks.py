"""Landmark data for training: the 86-point layout, the kit's normalisation and augmentations, samples' landmarks.

The layout, :func:`normalize_pose86` and :func:`read_pose_file` live in the bottom layer (:mod:`slsdk.landmarks`, the
runtime uses them too) and are re-exported here. This module adds what only building needs:

* :func:`load_landmarks` -- a sample's ``[T, 86, 2]`` float32 pixel keypoints from its :class:`LandmarkRef` (a
  ``.pose`` file, or an entry of the challenge kit's pickle, read once per process through the restricted
  unpickler :func:`slsdk.data.safe_pickle.load_data_pickle`),
* :class:`Pose86Augment` -- the kit's training augmentations (its ``PoseDatasetV2`` with ``augmentations=True``):
  time warp and frame dropout over the clip; per frame, on each hand found, rotation, jitter, scale and joint
  dropout, drawn from a seeded :class:`numpy.random.Generator`. Applied to pixel keypoints, before
  :func:`normalize_pose86` (the kit augments the raw part, then normalises it).
"""
from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from slsdk.data.readers import DatasetError, LandmarkRef, Sample
from slsdk.data.safe_pickle import PickleRefused, load_data_pickle
from slsdk.landmarks import (NUM_POINTS, PARTS, POSE86, Pose86Normalizer, PoseFileError, normalize_pose86,
                             part_missing, pose86_spec, read_pose_file)

__all__ = ["POSE86", "NUM_POINTS", "pose86_spec", "normalize_pose86", "Pose86Normalizer", "part_missing",
           "read_pose_file", "PoseFileError", "load_landmarks", "kit_keypoints", "LandmarkError",
           "Pose86AugmentConfig", "Pose86Augment", "PickleRefused"]


class LandmarkError(DatasetError):
    """A sample's landmarks cannot be read (no entry, wrong shape, not numbers); names the file and the id."""


# ------------------------------------------------------------------------------------------------ reading
_PICKLES: dict[Path, tuple[tuple[int, int], dict]] = {}
_LOCK = threading.Lock()


def kit_keypoints(path: str | Path) -> dict:
    """The challenge kit's keypoint pickle (``dict id -> {'keypoints': [T, 86, 2]}``), read once per process (again
    when the file changes) with the restricted unpickler. Do not modify what it returns (shared)."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"keypoint pickle not found: {path}") from None
    stamp = (st.st_mtime_ns, st.st_size)
    with _LOCK:
        hit = _PICKLES.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        table = load_data_pickle(path)
        if not isinstance(table, dict):
            raise LandmarkError(f"{path}: holds a {type(table).__name__}, expected the kit's dict id -> "
                                "{'keypoints': array [T, 86, 2]}")
        _PICKLES.clear()           # one pickle at a time: they are large
        _PICKLES[path] = (stamp, table)
        return table


def _checked(kp, where: str) -> np.ndarray:
    if not isinstance(kp, np.ndarray) or kp.dtype.kind not in "iuf":
        raise LandmarkError(f"{where}: keypoints are a {type(kp).__name__}"
                            f"{' of ' + str(kp.dtype) if isinstance(kp, np.ndarray) else ''}, expected a float array "
                            f"[T, {NUM_POINTS}, 2]")
    if kp.ndim != 3 or kp.shape[1] != NUM_POINTS or kp.shape[2] < 2:
        raise LandmarkError(f"{where}: keypoints of shape {kp.shape}, expected [T, {NUM_POINTS}, 2]")
    if kp.shape[0] == 0:
        raise LandmarkError(f"{where}: no frames")
    out = np.asarray(kp[:, :, :2], np.float32).copy()
    if not np.isfinite(out).all():
        raise LandmarkError(f"{where}: keypoints hold NaN or infinite values")
    return out


def load_landmarks(sample: Sample | LandmarkRef) -> np.ndarray:
    """``[T, 86, 2]`` float32 pixel keypoints (unnormalised; a missing part all zeros) of a sample (or a
    :class:`LandmarkRef`). Errors (:class:`LandmarkError`, :class:`PoseFileError`, :class:`PickleRefused`) name the
    file and the id."""
    ref = sample.landmarks if isinstance(sample, Sample) else sample
    if ref is None:
        raise LandmarkError(f"{sample.video}: sample {sample.id!r} has no landmarks (a landmark layout such as "
                            "--layout isharah-pose, or a .pose file beside the video, provides them)")
    if not isinstance(ref, LandmarkRef):
        raise TypeError(f"expected a Sample or a LandmarkRef, got {type(ref).__name__}")
    if ref.key is None:
        kp, _ = read_pose_file(ref.path)
        if kp.shape[0] == 0:
            raise LandmarkError(f"{ref.path}: no frames")
        return kp
    table = kit_keypoints(ref.path)
    entry = table.get(ref.key)
    if entry is None:
        raise LandmarkError(f"{ref.path}: no keypoints for id {ref.key!r} ({len(table)} ids in the file)")
    kp = entry.get("keypoints") if isinstance(entry, dict) else None
    return _checked(kp, f"{ref.path}: id {ref.key!r}")


# ------------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Pose86AugmentConfig:
    """The kit's augmentation parameters (its defaults). ``p``: chance that a clip is augmented at all; then time
    warp and frame dropout always, and per frame and hand each of rotation (one angle per clip), jitter, scale and
    joint dropout with its own chance. Jitter and scale act on pixel coordinates, as in the kit (the normalisation
    then removes scale and most of a 0.01-pixel jitter)."""
    p: float = 0.5
    max_angle_deg: float = 13.0
    time_warp_shift: int = 2
    frame_drop: float = 0.1
    p_rotate: float = 0.5
    p_jitter: float = 0.5
    jitter_std: float = 0.01
    p_scale: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)
    p_joint_drop: float = 0.5
    joint_drop: float = 0.1
    parts: tuple[str, ...] = ("right_hand", "left_hand")

    def __post_init__(self):
        for name in ("p", "frame_drop", "p_rotate", "p_jitter", "p_scale", "p_joint_drop", "joint_drop"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Pose86AugmentConfig.{name} must be in [0, 1], got {v}")
        if self.time_warp_shift < 0 or self.jitter_std < 0 or self.max_angle_deg < 0:
            raise ValueError("Pose86AugmentConfig: time_warp_shift, jitter_std and max_angle_deg must be >= 0")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"Pose86AugmentConfig.scale_range must be 0 < low <= high, got {self.scale_range}")
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown:
            raise ValueError(f"Pose86AugmentConfig.parts: unknown {unknown}; parts: {', '.join(PARTS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class Pose86Augment:
    """The kit's augmentations on ``[T, 86, 2]`` pixel keypoints -> augmented pixel keypoints (float32, same
    shape), then :func:`normalize_pose86`. ``seed`` (or ``rng``) makes the draws repeatable; :meth:`normalized`
    augments and normalises in one call."""

    def __init__(self, config: Pose86AugmentConfig | None = None, *, seed: int | None = None,
                 rng: np.random.Generator | None = None):
        self.config = config or Pose86AugmentConfig()
        self.rng = rng if rng is not None else np.random.default_rng(seed)

    def __call__(self, keypoints) -> np.ndarray:
        c, rng = self.config, self.rng
        k = np.array(keypoints, np.float64)
        if k.ndim != 3 or k.shape[1] != NUM_POINTS or k.shape[2] != 2:
            raise ValueError(f"keypoints: expected [T, {NUM_POINTS}, 2], got {k.shape}")
        T = k.shape[0]
        if T == 0 or rng.random() >= c.p:
            return k.astype(np.float32)
        angle = math.radians(rng.uniform(-c.max_angle_deg, c.max_angle_deg))
        if c.time_warp_shift:
            shift = rng.integers(-c.time_warp_shift, c.time_warp_shift + 1, size=T)
            k = k[np.clip(np.arange(T) + shift, 0, T - 1)]
        if c.frame_drop:
            k = k * (rng.random(T) > c.frame_drop)[:, None, None]
        cos, sin = math.cos(angle), math.sin(angle)
        for name in c.parts:
            sl = PARTS[name].slice
            for t in range(T):
                x = k[t, sl]
                if x.sum() == 0:      # not found in this frame (the kit augments found parts only)
                    continue
                if rng.random() < c.p_rotate:   # about (0.5, 0.5), as the kit
                    d = x - 0.5
                    x = 0.5 + np.stack([cos * d[:, 0] - sin * d[:, 1], sin * d[:, 0] + cos * d[:, 1]], axis=1)
                if rng.random() < c.p_jitter:
                    x = x + rng.normal(0.0, c.jitter_std, size=x.shape)
                if rng.random() < c.p_scale:
                    x = x * rng.uniform(*c.scale_range)
                if rng.random() < c.p_joint_drop:
                    x = x * (rng.random(x.shape[0]) > c.joint_drop)[:, None]
                k[t, sl] = x
        return k.astype(np.float32)

    def normalized(self, keypoints) -> np.ndarray:
        """:meth:`__call__` then :func:`normalize_pose86`."""
        return normalize_pose86(self(keypoints))
