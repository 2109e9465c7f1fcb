"""AdaptSign-style clip augmentation, parametrised by the model input size ``S``.

Train: temporal rescale (+-20 %, resampled frame indices) -> resize shorter side to
``round(S * 256 / 224)`` -> random ``S x S`` crop -> optional horizontal flip (p=0.5; off when
handedness matters) -> ``/255`` -> normalise. Eval: resize -> centre crop -> normalise.
Input ``uint8 [T, H, W, 3]`` numpy, output ``float32 [T, 3, S, S]`` torch tensor. The two halves apart:
``VideoTransform.crop`` (frame selection, crop, flip: integer indexing only, uint8 ``[T, S, S, 3]`` out; what
``VideoDataset`` hands on) and ``VideoTransform.normalize`` (:class:`Normalize`: uint8 -> normalised float
``[..., 3, S, S]``, run on the training device after ``.to(device)``; ``slsdk.data.dataset.batch_to_device``).

``style="reference"`` follows the AdaptSign / VAC data path instead (:mod:`slsdk.data.augment`): train: random
crop, flip, then their temporal rescale (clamped to 32..230 frames, a multiple of 4) from Python's ``random`` and
numpy's legacy stream; eval: their centre crop; both normalised as ``x / (255 std) - mean / std`` (``x / 127.5 - 1``
for mean = std = 0.5, bit for bit the reference's). The frames are still resized to the shorter side
``resize_to`` first (a no-op for the reference's 256 px frames at ``S = 224``).

This is the torch (training-side, batched) twin of :mod:`slsdk.preprocess`, which defines the preprocessing
the runtime, parity and calibration use; the eval path is tested equal to it on real photos. The resize is
:func:`slsdk.preprocess.resize_shorter` itself (Pillow's antialiased bilinear), not a torch twin of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from slsdk.data import augment
from slsdk.preprocess import CLIP_MEAN, CLIP_STD, RESIZE_RATIO
from slsdk.preprocess import resize_image
from slsdk.preprocess import resize_shorter as resize_shorter  # the one resize (Pillow), serving's and training's

STYLES = ("slsdk", "reference")


def resize_size(image_size: int, ratio: float = RESIZE_RATIO) -> int:
    return int(round(image_size * ratio))


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("expected at least one frame, got 0")
    return frames


def temporal_indices(num_frames: int, scale: float, *, min_frames: int = 1) -> np.ndarray:
    """Evenly resampled frame indices for a clip rescaled to ``round(num_frames * scale)`` frames."""
    n = max(int(min_frames), int(round(num_frames * scale)), 1)
    return np.clip(np.round(np.linspace(0, num_frames - 1, n)).astype(np.int64), 0, num_frames - 1)


@dataclass
class VideoTransform:
    image_size: int
    mean: Sequence[float] = CLIP_MEAN
    std: Sequence[float] = CLIP_STD
    train: bool = False
    flip: bool = True
    flip_p: float = 0.5
    temporal_scale: float = 0.2  # +-20 %
    spatial_scale: float = 0.0   # > 0: zoom by 1 +- this (the crop's side s / zoom, resized to s; style slsdk)
    resize_ratio: float = 256 / 224
    style: str = "slsdk"   # slsdk | reference (the AdaptSign / VAC data path, slsdk.data.augment)

    def __post_init__(self):
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if not 0.0 <= self.spatial_scale < 1.0:
            raise ValueError(f"spatial_scale must be in [0, 1), got {self.spatial_scale}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values with std > 0, got {self.mean} / {self.std}")
        self._normalize = Normalize(self.mean, self.std, self.style)

    @property
    def resize_to(self) -> int:
        return max(self.image_size, resize_size(self.image_size, self.resize_ratio))

    @property
    def normalize(self) -> Normalize:
        """This transform's normalisation, for the uint8 crops of :meth:`crop` (run it on the training device)."""
        return self._normalize

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | augment.ReferenceDraws | None = None, *,
                 min_frames: int = 1) -> torch.Tensor:
        """float32 ``[T, 3, S, S]``: :meth:`crop` then :attr:`normalize` (what a training step sees)."""
        return self.normalize(self.crop(frames, rng, min_frames=min_frames))

    def crop(self, frames: np.ndarray, rng: np.random.Generator | augment.ReferenceDraws | None = None, *,
             min_frames: int = 1) -> torch.Tensor:
        """uint8 ``[T, S, S, 3]``: the augmentation's frame selection, crop and flip, integer indexing only.

        ``frames`` may be a memory map (a prepared clip): only the frames and pixels used are read, in one copy
        (when the frames are already at the resize size). ``rng``: a numpy Generator (train; ``style="reference"``
        also takes ``augment.ReferenceDraws``). ``min_frames``: the temporal rescale keeps at least this many frames
        (``style="slsdk"`` only; the reference's rescale is kept as drawn, callers pad).
        """
        frames = _check_frames(frames)
        if self.style == "reference":
            return self._reference(frames, rng)
        s = self.image_size
        idx = None
        if self.train:
            if rng is None:
                raise ValueError("VideoTransform(train=True) needs a seeded numpy Generator (rng=...)")
            scale = 1.0 + rng.uniform(-self.temporal_scale, self.temporal_scale)
            idx = temporal_indices(len(frames), scale, min_frames=min(min_frames, len(frames)))
        if min(frames.shape[1:3]) != self.resize_to:      # resized (whole frames): only those selected
            frames = resize_shorter(frames if idx is None else frames[idx], self.resize_to)
            idx = None
        h, w = frames.shape[1:3]
        side = s
        if self.train:
            if self.spatial_scale > 0:   # drawn only when on: without it a seed's draws are unchanged
                zoom = 1.0 + rng.uniform(-self.spatial_scale, self.spatial_scale)
                side = min(max(int(round(s / zoom)), 1), h, w)   # zoom out is bounded by the frame
            y0 = int(rng.integers(0, h - side + 1))
            x0 = int(rng.integers(0, w - side + 1))
            do_flip = self.flip and rng.random() < self.flip_p
        else:
            y0, x0, do_flip = (h - s) // 2, (w - s) // 2, False
        out = _take(frames, idx, slice(y0, y0 + side), x0, side, do_flip)
        if side != s:   # the zoomed crop back to the model's size with the one resize
            out = torch.from_numpy(np.stack([resize_image(f, s, s) for f in out.numpy()]))
        return out

    def _reference(self, frames: np.ndarray, rng) -> torch.Tensor:
        s = self.image_size
        frames = resize_shorter(frames, self.resize_to)
        h, w = frames.shape[1:3]
        if self.train:
            if rng is None:
                raise ValueError("VideoTransform(train=True) needs a seeded numpy Generator (rng=...)")
            draws = rng if isinstance(rng, augment.ReferenceDraws) else augment.ReferenceDraws.from_generator(rng)
            p = augment.plan(frames.shape[:3], s, draws, flip_p=self.flip_p, temporal_scale=self.temporal_scale)
            y0, x0, do_flip = p.top, p.left, self.flip and p.flip   # crop (per frame), then pick the frames
            idx = None if p.indices is None else np.asarray(p.indices, np.int64)
            return _take(augment.pad_to_crop(frames, s), idx, slice(y0, y0 + s), x0, s, do_flip)
        hs, ws = min(s, h), min(s, w)      # the reference keeps a side shorter than the crop whole
        y0, x0 = augment.center_offset(h, s), augment.center_offset(w, s)
        return _take(frames, None, slice(y0, y0 + hs), x0, ws, False)


def _take(frames: np.ndarray, idx: np.ndarray | None, rows: slice, x0: int, width: int,
          flip: bool) -> torch.Tensor:
    """``frames[idx, rows, x0:x0 + width]`` (columns reversed when ``flip``) as a new uint8 tensor: one copy of
    only these frames and pixels (a memory map is read there and nowhere else)."""
    cols = slice(x0 + width - 1, x0 - 1 if x0 else None, -1) if flip else slice(x0, x0 + width)
    out = frames[:, rows, cols] if idx is None else frames[idx, rows, cols]
    return torch.from_numpy(np.array(out, dtype=np.uint8, order="C", copy=True) if idx is None
                            else np.ascontiguousarray(out))


class Normalize:
    """uint8 frames ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` normalised, on the tensor's device.

    ``style="slsdk"``: ``(x - 255 mean) / (255 std)``; ``"reference"``: ``x / (255 std) - mean / std``
    (``x / 127.5 - 1`` for mean = std = 0.5, bit for bit the reference's). Float input is returned as it is
    (already normalised). Picklable; the constants follow the input's device.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD, style: str = "slsdk"):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        self.mean, self.std, self.style = tuple(float(m) for m in mean), tuple(float(v) for v in std), style
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1) * 255
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1) * 255
        self._shift = self._mean / self._std
        self._on: dict = {}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, style={self.style!r})"

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_on"}

    def __setstate__(self, state):
        self.__dict__.update(state, _on={})

    def _consts(self, device: torch.device):
        key = str(device)
        if key not in self._on:
            self._on[key] = tuple(t.to(device) for t in (self._mean, self._std, self._shift))
        return self._on[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return x
        if x.dtype != torch.uint8 or x.dim() < 3 or x.shape[-1] != 3:
            raise ValueError(f"Normalize: expected uint8 [..., H, W, 3], got {x.dtype} {list(x.shape)}")
        mean, std, shift = self._consts(x.device)
        y = x.movedim(-1, -3).to(torch.float32, memory_format=torch.contiguous_format)
        if self.style == "reference":
            return y.div_(std).sub_(shift)
        return y.sub_(mean).div_(std)


def train_transform(image_size: int, mean=CLIP_MEAN, std=CLIP_STD, *, flip: bool = True,
                    temporal_scale: float = 0.2, style: str = "slsdk") -> VideoTransform:
    return VideoTransform(image_size, mean, std, train=True, flip=flip, temporal_scale=temporal_scale, style=style)


def eval_transform(image_size: int, mean=CLIP_MEAN, std=CLIP_STD, *, style: str = "slsdk") -> VideoTransform:
    return VideoTransform(image_size, mean, std, train=False, style=style)
