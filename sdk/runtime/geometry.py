"""Box geometry and crop extraction for the signing-space cropper (numpy only).

Boxes are ``(x0, y0, x1, y1)`` integer pixels, half-open (``image[y0:y1, x0:x1]``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slsdk.preprocess import resize_axis
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.landmarker import Hand


def square_box(cx: float, cy: float, side: float, w: int, h: int) -> tuple[int, int, int, int]:
    """Integer square box of ~``side`` centred near (cx, cy), shifted (not shrunk) to lie in the frame."""
    s = int(min(max(1, math.ceil(side - 1e-6)), w, h))
    x0 = int(round(cx - s / 2))
    y0 = int(round(cy - s / 2))
    x0 = min(max(x0, 0), w - s)
    y0 = min(max(y0, 0), h - s)
    return x0, y0, x0 + s, y0 + s


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` frame."""
    return square_box(width / 2, height / 2, min(width, height), width, height)


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
    ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``): :func:`slsdk.preprocess.resize_axis`,
    numpy only, so the runtime needs no torch for preprocessing.
    """
    img = np.asarray(img)
    if img.ndim not in (3, 4):
        raise ValueError(f"resize_square expects [H,W,C] or [T,H,W,C], got shape {img.shape}")
    img = pad_to_square(img)
    n = img.shape[-2]
    if n == size:
        return img.copy()
    if img.dtype == np.uint8 and img.shape[-1] == 3 and (antialias or size > n):
        # RGB frames: PIL's bilinear is the same triangle filter (widened when shrinking), in C without the GIL,
        # 4-30x faster than the numpy path below and within 1 grey level of it (tested)
        from PIL import Image  # Pillow (with matplotlib / mediapipe): loaded on the first RGB resize

        def one(f):
            return np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((size, size), Image.BILINEAR))

        return one(img) if img.ndim == 3 else np.stack([one(f) for f in img]) if len(img) else \
            np.zeros((0, size, size, 3), np.uint8)
    x = img.astype(np.float32)
    out = resize_axis(resize_axis(x, -3, size, antialias), -2, size, antialias)
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


def extract_crop(frame: np.ndarray, box: Sequence[int], size: int | None = None, *, square: bool = True) -> np.ndarray:
    """``frame[y0:y1, x0:x1]``, letterboxed to a square when ``square``, resized when ``size`` is given."""
    x0, y0, x1, y1 = (int(v) for v in box)
    crop = frame[y0:y1, x0:x1]
    if square:
        crop = pad_to_square(crop)
    if size is not None:
        return resize_square(crop, size)
    return np.ascontiguousarray(crop)


__all__ = ["square_box", "box_iou", "center_box", "hands_box_params", "pad_to_square", "resize_square",
           "extract_crop"]
