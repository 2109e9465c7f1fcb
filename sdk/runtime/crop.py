"""The crop settings and what cropping reports: :class:`CropConfig` (the bundle manifest's ``crop`` section),
:class:`CropResult` (one frame), :class:`CropStats` (a stream) and :func:`preparation_mismatch`, the one check that
serving crops as the training data was prepared. The tracker is :mod:`slsdk.runtime.hand_tracker`, the box
geometry :mod:`slsdk.runtime.geometry`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from slsdk.bundle.manifest import CropConfig  # the manifest's crop section (one definition)


@dataclass(eq=False)
class CropResult:
    """One frame's crop: the image, its box in the frame and the hands behind it."""

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
    """Counts over a stream's crops (frames with hands, held, fallback, landmarker calls)."""

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


__all__ = ["CropConfig", "CropResult", "CropStats", "preparation_mismatch", "SPEED_KEYS"]
