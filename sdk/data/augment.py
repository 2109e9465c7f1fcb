"""The AdaptSign / VAC / CorrNet data path ("reference" style), for reproducing published numbers.

A published WER of these recognisers depends on the data path as well as on the model; this module states
theirs so that ``VideoTransform(style="reference")`` and ``Collate(padding="reference")`` can follow it.

Train (input: uint8 ``[T, H, W, 3]`` frames, 256 px in the reference):

1. random ``S x S`` crop: column offset first, then row offset, each ``py.randint(0, side - S)``; a side shorter
   than ``S`` is zero-padded around the frame (no draw for it);
2. horizontal flip when ``py.random() < 0.5`` (always drawn, so a run without flips keeps the same stream);
3. temporal rescale: ``n = int(T * (L + (U - L) * np_rng.random_sample()))`` with ``L, U = 1 -+ 0.2``,
   clamped to ``[32, ceil(230 / frame_interval)]``, rounded up to a multiple of 4; frame indices
   ``sorted(py.sample(range(T), n))`` if ``n <= T`` else ``sorted(py.choices(range(T), k=n))``;
4. ``x / 127.5 - 1`` (mean = std = 0.5).

Eval: centre ``S x S`` crop with offsets ``int(round((side - S) / 2))`` (Python's round: halves to even; a side
shorter than ``S`` is kept whole), then ``x / 127.5 - 1``.

Randomness comes from two streams, as in the reference: Python's ``random`` (crop, flip, frame choice) and
numpy's legacy generator (rescale factor). :class:`ReferenceDraws` holds one of each; ``ReferenceDraws.from_seed(s)``
gives the same numbers as ``random.seed(s); np.random.seed(s)`` followed by the global functions.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

REFERENCE_MEAN = (0.5, 0.5, 0.5)
REFERENCE_STD = (0.5, 0.5, 0.5)      # x / 255 normalised by 0.5 / 0.5 is x / 127.5 - 1
REFERENCE_MIN_FRAMES = 32            # temporal rescale never goes below ...
REFERENCE_MAX_FRAMES = 230           # ... nor above (divided by the frame interval), before rounding up to 4
REFERENCE_FRAME_MULTIPLE = 4


@dataclass
class ReferenceDraws:
    """The two random streams the reference data path draws from."""

    py: random.Random
    np: np.random.RandomState

    @classmethod
    def from_seed(cls, seed: int) -> ReferenceDraws:
        """The streams of ``random.seed(seed)`` and ``np.random.seed(seed)``."""
        return cls(random.Random(seed), np.random.RandomState(seed))

    @classmethod
    def from_generator(cls, rng: np.random.Generator) -> ReferenceDraws:
        """Two streams seeded from ``rng`` (reproducible per sample: slsdk's datasets seed ``rng`` per item)."""
        a, b = (int(v) for v in rng.integers(0, 2 ** 32, size=2, dtype=np.uint64))
        return cls(random.Random(a), np.random.RandomState(b))


def crop_offset(side: int, size: int, py: random.Random) -> int:
    """Random crop offset along one side (no draw, offset 0, when the side is shorter than the crop)."""
    return 0 if size > side else py.randint(0, side - size)


def center_offset(side: int, size: int) -> int:
    """Centre-crop offset along one side (0 when the side is not longer than the crop)."""
    return 0 if size >= side else int(round((side - size) / 2.0))


def pad_to_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``[T, H, W, C]`` frames around the centre so both sides are at least ``size``."""
    h, w = frames.shape[1:3]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return frames
    return np.pad(frames, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="constant")


def rescaled_length(num_frames: int, u: float, temporal_scale: float = 0.2, *,
                    min_frames: int = REFERENCE_MIN_FRAMES, max_frames: int = REFERENCE_MAX_FRAMES,
                    frame_interval: int = 1, multiple: int = REFERENCE_FRAME_MULTIPLE) -> int:
    """Length of a clip of ``num_frames`` after the reference's temporal rescale with uniform draw ``u``."""
    lo, hi = 1.0 - temporal_scale, 1.0 + temporal_scale
    n = int(num_frames * (lo + (hi - lo) * u))
    n = min(max(n, int(min_frames)), int(math.ceil(max_frames / frame_interval)))
    return n + (-n) % multiple


def rescale_indices(num_frames: int, draws: ReferenceDraws, temporal_scale: float = 0.2, *,
                    min_frames: int = REFERENCE_MIN_FRAMES, max_frames: int = REFERENCE_MAX_FRAMES,
                    frame_interval: int = 1) -> list[int]:
    """Sorted frame indices of the reference's temporal rescale (one numpy draw, then Python draws)."""
    n = rescaled_length(num_frames, float(draws.np.random_sample()), temporal_scale, min_frames=min_frames,
                        max_frames=max_frames, frame_interval=frame_interval)
    pool = range(num_frames)
    return sorted(draws.py.sample(pool, n) if n <= num_frames else draws.py.choices(pool, k=n))


@dataclass(frozen=True)
class ReferencePlan:
    """The decisions of one reference train-time augmentation: what :func:`plan` drew."""

    top: int
    left: int
    flip: bool
    indices: tuple[int, ...] | None   # None: temporal rescale off


def plan(shape: tuple[int, int, int], size: int, draws: ReferenceDraws, *, flip_p: float = 0.5,
         temporal_scale: float | None = 0.2, frame_interval: int = 1, min_frames: int = REFERENCE_MIN_FRAMES,
         max_frames: int = REFERENCE_MAX_FRAMES) -> ReferencePlan:
    """Draw crop (column, then row), flip, then rescale, in the reference's order, for frames ``(T, H, W)``."""
    t, h, w = (int(v) for v in shape)
    left = crop_offset(w, size, draws.py)
    top = crop_offset(h, size, draws.py)
    flip = draws.py.random() < flip_p
    idx = None if temporal_scale is None else tuple(
        rescale_indices(t, draws, temporal_scale, min_frames=min_frames, max_frames=max_frames,
                        frame_interval=frame_interval))
    return ReferencePlan(top, left, flip, idx)


__all__ = ["REFERENCE_FRAME_MULTIPLE", "REFERENCE_MAX_FRAMES", "REFERENCE_MEAN", "REFERENCE_MIN_FRAMES",
           "REFERENCE_STD", "ReferenceDraws", "ReferencePlan", "center_offset", "crop_offset", "pad_to_crop",
           "plan", "rescale_indices", "rescaled_length"]
