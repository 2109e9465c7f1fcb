"""Frame preprocessing, defined once, in numpy (the bottom layer: numpy only, no torch).

The runtime, conversion parity, int8 calibration and the demos all feed models through this module:

    spec = Preprocess.from_manifest(bundle.manifest)   # or Preprocess(224, mean, std, resize_shorter=256)
    x = spec(frames)                                    # uint8 RGB [N, H, W, 3] -> float32 [N, 3, S, S]

1. resize so the shorter side is ``resize_shorter`` pixels (aspect kept; bilinear with antialiasing, the
   filter of PIL and of ``torch.nn.functional.interpolate(..., antialias=True)``), rounded back to uint8.
   :func:`resize_image` does it with Pillow (vectorised C, ~10x the numpy filter); training
   (``slsdk.data.transforms``), the file decoder and the camera source call the same function, so every stage
   resizes alike. :func:`resize_shorter_numpy` keeps the float numpy filter as the reference;
2. centre crop ``S x S``;
3. ``(x - 255 * mean) / (255 * std)`` per channel, channels first.

Streaming models take fixed chunks of ``chunk_frames`` frames: :func:`chunk_video` cuts a video into them and
zero-pads the last one (in normalised pixel space), as the torch model pads a whole video; a model emits
:func:`output_frames` ``= ceil(T / output_stride)`` log-prob frames for ``T`` real frames.
The torch training transform (``slsdk.data.transforms``) is tested equal to this one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from slsdk.bundle.sections import InputSpec

__all__ = ["CLIP_MEAN", "CLIP_STD", "RESIZE_RATIO", "resize_size", "resize_axis", "resize_image", "shorter_size",
           "resize_shorter", "resize_shorter_numpy", "center_crop",
           "normalize", "Preprocess", "prepare_video", "pad_chunk", "chunk_video", "output_frames"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_RATIO = 256 / 224  # the shorter side before the centre crop, relative to the crop (ImageNet / CLIP eval)


def resize_size(image_size: int, ratio: float = RESIZE_RATIO) -> int:
    """The shorter side a crop of ``image_size`` is taken from: ``round(image_size * ratio)``, never below it."""
    return max(int(image_size), int(round(image_size * ratio)))


def check_frames(frames) -> np.ndarray:
    """uint8 RGB frames as ``[T, H, W, 3]`` (a single ``[H, W, 3]`` frame gets a time axis); else ValueError."""
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("expected at least one frame, got 0")
    return frames


@lru_cache(maxsize=64)
def _bilinear_taps(in_size: int, out_size: int, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Source indices ``[out, K]`` and weights ``[out, K]`` of the bilinear (triangle) filter.

    The filter of PIL's ``ImagingResample`` and of torch's ``antialias=True``: centre ``(i + 0.5) * scale``,
    support ``max(scale, 1)``, weights ``max(0, 1 - |x| / max(scale, 1))`` normalised to sum 1. Upscaling is
    plain bilinear with the border pixels replicated; ``antialias=False`` keeps the support at 1 when shrinking
    (torch's ``antialias=False``).
    """
    scale = in_size / out_size
    support = max(scale, 1.0) if antialias else 1.0
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size)
    k = int((xmax - xmin).max())
    j = np.arange(k)
    idx = xmin[:, None] + j[None, :]
    w = np.maximum(0.0, 1.0 - np.abs((idx - centers[:, None] + 0.5) / support))
    w[j[None, :] >= (xmax - xmin)[:, None]] = 0.0
    w /= w.sum(1, keepdims=True)
    return np.minimum(idx, in_size - 1), w.astype(np.float32)


def resize_axis(x: np.ndarray, axis: int, out_size: int, antialias: bool = True) -> np.ndarray:
    """Bilinear resize of float32 ``x`` along ``axis`` (antialiased when shrinking, as PIL and torch)."""
    in_size = x.shape[axis]
    if in_size == out_size:
        return x
    idx, w = _bilinear_taps(in_size, out_size, antialias)
    if idx.shape[1] > 8:  # strong downscale: one dense matrix product is cheaper than many gathers
        m = np.zeros((out_size, in_size), np.float32)
        np.add.at(m, (np.repeat(np.arange(out_size), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
        return np.moveaxis(np.tensordot(m, np.moveaxis(x, axis, 0), axes=(1, 0)), 0, axis)
    shape = [1] * x.ndim
    shape[axis] = out_size
    out = None
    for k in range(idx.shape[1]):
        term = np.take(x, idx[:, k], axis=axis) * w[:, k].reshape(shape)
        out = term if out is None else out.__iadd__(term)
    return out


def shorter_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` with the shorter side at ``size``, the other rounded (never below ``size``)."""
    if height <= width:
        return size, max(size, int(round(width * size / height)))
    return max(size, int(round(height * size / width))), size


def resize_image(image, height: int, width: int) -> np.ndarray:
    """One uint8 RGB image (``[H, W, 3]`` array, or a PIL image, as :func:`slsdk.data.video.rgb_image` makes of a
    decoded frame without a numpy copy) to uint8 ``[height, width, 3]``: Pillow's antialiased bilinear (the triangle filter of
    :func:`_bilinear_taps` and of torch's ``antialias=True``, in fixed point: within one grey level of the float
    filter). The resize of serving, training, the file decoder and the camera source."""
    from PIL import Image  # Pillow: loaded on the first resize (TID253)

    if not isinstance(image, Image.Image):
        image = np.asarray(image)
        if image.shape[:2] == (height, width):
            return image
        image = Image.fromarray(np.ascontiguousarray(image))
    else:
        image = image if image.mode == "RGB" else image.convert("RGB")
        if image.size == (width, height):
            return np.array(image)
    out = image.resize((int(width), int(height)), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(out)


def resize_shorter(frames, size: int) -> np.ndarray:
    """Resize uint8 ``[T, H, W, 3]`` so the shorter side is ``size`` (bilinear, antialiased), uint8 out."""
    frames = check_frames(frames)
    _, h, w, _ = frames.shape
    if min(h, w) == size:
        return frames
    nh, nw = shorter_size(h, w, size)
    out = np.empty((len(frames), nh, nw, 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = resize_image(f, nh, nw)
    return out


def resize_shorter_numpy(frames, size: int) -> np.ndarray:
    """:func:`resize_shorter` in float numpy (the filter's reference; ~10x slower): equal to torch's antialiased
    ``interpolate`` up to rounding ties, and to Pillow's within one grey level."""
    frames = check_frames(frames)
    _, h, w, _ = frames.shape
    if min(h, w) == size:
        return frames
    nh, nw = shorter_size(h, w, size)
    out = []
    for i in range(0, len(frames), 16):  # bounds memory for long videos
        x = frames[i:i + 16].astype(np.float32)
        x = resize_axis(resize_axis(x, 2, nw), 1, nh)
        out.append(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def center_crop(frames: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """The centre ``height x width`` window of ``[T, H, W, C]`` frames."""
    width = height if width is None else width
    h, w = frames.shape[1:3]
    if h < height or w < width:
        raise ValueError(f"cannot centre-crop {height}x{width} from {h}x{w} frames")
    y0, x0 = (h - height) // 2, (w - width) // 2
    return frames[:, y0:y0 + height, x0:x0 + width]


def normalize(frames: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> float32 ``[T, 3, H, W]``: ``(x - 255 mean) / (255 std)`` per channel."""
    m = (np.asarray(mean, np.float32) * 255).reshape(1, 3, 1, 1)
    s = (np.asarray(std, np.float32) * 255).reshape(1, 3, 1, 1)
    x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)
    x -= m
    x /= s
    return x


@dataclass(frozen=True)
class Preprocess:
    """A model's input preprocessing (the manifest's ``input`` section): resize shorter side, centre crop,
    normalise. ``__call__``: uint8 RGB ``[N, H, W, 3]`` -> float32 ``[N, 3, size, size]``."""

    size: int
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD
    resize_shorter: int | None = None  # None: resize_size(size)
    crop: str = "center"

    def __post_init__(self):
        if int(self.size) <= 0:
            raise ValueError(f"image size must be positive, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values with std > 0, got {self.mean} / {self.std}")
        if self.crop != "center":
            raise ValueError(f"only centre crops are implemented, got crop={self.crop!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        r = resize_size(self.size) if self.resize_shorter is None else int(self.resize_shorter)
        if r < self.size:
            raise ValueError(f"resize_shorter {r} is smaller than the crop {self.size}")
        object.__setattr__(self, "resize_shorter", r)

    @classmethod
    def from_input_spec(cls, inp: InputSpec | Mapping, where: str = "manifest") -> "Preprocess":
        """From a manifest's ``input`` section (square centre crops only; its JSON object is read as one)."""
        inp = inp if isinstance(inp, InputSpec) else InputSpec.from_dict(inp)
        h, w = int(inp.height), int(inp.width)
        if inp.crop != "center" or h != w:
            raise ValueError(f"{where}: this runtime feeds square centre crops, the manifest asks for a "
                             f"{inp.crop!r} crop of {h}x{w}")
        return cls(h, tuple(inp.mean), tuple(inp.std), resize_shorter=int(inp.resize_shorter))

    @classmethod
    def from_manifest(cls, manifest) -> "Preprocess":
        return cls.from_input_spec(manifest.input, where=f"{manifest.target} manifest")

    def resized(self, frames) -> np.ndarray:
        """Step 1 only: uint8 frames with the shorter side at ``resize_shorter`` (what the hand cropper makes)."""
        return resize_shorter(frames, self.resize_shorter)

    def __call__(self, frames) -> np.ndarray:
        x = center_crop(self.resized(frames), self.size)
        return normalize(x, self.mean, self.std)


def prepare_video(frames, spec: Preprocess) -> np.ndarray:
    """A video as the model takes it: float32 ``[T, 3, S, S]``.

    uint8 frames (``[T, H, W, 3]`` or ``[T, 3, H, W]``) go through ``spec``; float frames are taken as already
    preprocessed and must be ``[T, 3, S, S]`` (a leading batch of one is dropped).
    """
    x = frames.numpy() if hasattr(frames, "numpy") and not isinstance(frames, np.ndarray) else np.asarray(frames)
    if x.ndim == 5 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 4:
        raise ValueError(f"a video must be [T, 3, H, W] or [T, H, W, 3], got shape {tuple(x.shape)}")
    if x.dtype == np.uint8:
        if x.shape[-1] != 3 and x.shape[1] == 3:
            x = x.transpose(0, 2, 3, 1)
        if x.shape[-1] != 3:
            raise ValueError(f"a video must have 3 colour channels, got shape {tuple(x.shape)}")
        return spec(x)
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise ValueError(f"a video must have 3 colour channels, got shape {tuple(x.shape)}")
    if tuple(x.shape[-2:]) != (spec.size, spec.size):
        raise ValueError(f"float frames are taken as preprocessed and must be {spec.size}x{spec.size}, got "
                         f"{x.shape[-2]}x{x.shape[-1]}; pass uint8 frames to have them resized")
    return np.ascontiguousarray(x, dtype=np.float32)


def pad_chunk(frames: np.ndarray, chunk_frames: int) -> np.ndarray:
    """``[n, 3, S, S]`` (``n <= chunk_frames``) zero-padded at the end to ``[chunk_frames, 3, S, S]`` (in normalised
    pixel space), as the torch model pads a whole video: the last chunk of a stream."""
    n = len(frames)
    if n > chunk_frames:
        raise ValueError(f"{n} frames do not fit a chunk of {chunk_frames}")
    if n == chunk_frames:
        return frames
    return np.concatenate([frames, np.zeros((chunk_frames - n, *frames.shape[1:]), frames.dtype)])


def chunk_video(video: np.ndarray, chunk_frames: int) -> list[np.ndarray]:
    """``[T, 3, S, S]`` -> list of ``[1, C, 3, S, S]`` chunks; the last one is zero-padded (:func:`pad_chunk`)."""
    t = len(video)
    if t == 0:
        raise ValueError("empty video (0 frames)")
    n = math.ceil(t / chunk_frames)
    return [pad_chunk(video[i * chunk_frames:(i + 1) * chunk_frames], chunk_frames)[None] for i in range(n)]


def output_frames(num_frames: int, output_stride: int) -> int:
    """Log-prob frames a model emits for ``num_frames`` real frames (the last stride group is padded)."""
    return math.ceil(num_frames / output_stride)
