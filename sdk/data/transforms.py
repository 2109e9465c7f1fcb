"""AdaptSign-style clip augmentation, parametrised by the model input size ``S``.

Train: temporal rescale (+-20 %, resampled frame indices) -> resize shorter side to
``round(S * 256 / 224)`` -> random ``S x S`` crop -> optional horizontal flip (p=0.5; off when
handedness matters) -> ``/255`` -> normalise. Eval: resize -> centre crop -> normalise.
Input ``uint8 [T, H, W, 3]`` numpy, output ``float32 [T, 3, S, S]`` torch tensor.

This is the torch (training-side, batched) twin of :mod:`slsdk.preprocess`, which defines the preprocessing
the runtime, parity and calibration use; the eval path is tested equal to it on real photos. The resize is
:func:`slsdk.preprocess.resize_shorter` itself (Pillow's antialiased bilinear), not a torch twin of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from slsdk.preprocess import CLIP_MEAN, CLIP_STD, RESIZE_RATIO
from slsdk.preprocess import resize_shorter as resize_shorter  # the one resize (Pillow), serving's and training's


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
    resize_ratio: float = 256 / 224

    def __post_init__(self):
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values with std > 0, got {self.mean} / {self.std}")
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1) * 255

    @property
    def resize_to(self) -> int:
        return max(self.image_size, resize_size(self.image_size, self.resize_ratio))

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None, *,
                 min_frames: int = 1) -> torch.Tensor:
        frames = _check_frames(frames)
        s = self.image_size
        if self.train:
            if rng is None:
                raise ValueError("VideoTransform(train=True) needs a seeded numpy Generator (rng=...)")
            scale = 1.0 + rng.uniform(-self.temporal_scale, self.temporal_scale)
            frames = frames[temporal_indices(len(frames), scale, min_frames=min(min_frames, len(frames)))]
        frames = resize_shorter(frames, self.resize_to)
        h, w = frames.shape[1:3]
        if self.train:
            y0 = int(rng.integers(0, h - s + 1))
            x0 = int(rng.integers(0, w - s + 1))
            do_flip = self.flip and rng.random() < self.flip_p
        else:
            y0, x0, do_flip = (h - s) // 2, (w - s) // 2, False
        crop = np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s])
        x = torch.from_numpy(crop).permute(0, 3, 1, 2).float()
        if do_flip:
            x = x.flip(-1)
        return ((x - self._mean) / self._std).contiguous()


def train_transform(image_size: int, mean=CLIP_MEAN, std=CLIP_STD, *, flip: bool = True,
                    temporal_scale: float = 0.2) -> VideoTransform:
    return VideoTransform(image_size, mean, std, train=True, flip=flip, temporal_scale=temporal_scale)


def eval_transform(image_size: int, mean=CLIP_MEAN, std=CLIP_STD) -> VideoTransform:
    return VideoTransform(image_size, mean, std, train=False)
