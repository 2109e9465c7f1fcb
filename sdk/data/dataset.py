"""``VideoDataset`` + ``collate`` + the CTC length check (the NaN trap).

CTC needs at least ``len(label) + adjacent repeats`` output frames; after the x4 temporal
downsampling of K5-P2-K5-P2 a short clip has fewer, and the loss becomes inf/NaN. ``check_lengths``
finds such clips; policy ``pad`` (default) repeat-pads them temporally (first/last frame), ``drop``
removes them, ``error`` raises.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slsdk import fileio
from slsdk.data.prepare import is_prepared_clip, load_prepared_clip, preparation_of
from slsdk.data.readers import DatasetError, Sample
from slsdk.data.transforms import CLIP_MEAN, CLIP_STD, VideoTransform, resize_shorter
from slsdk.data.video import iter_video, read_video, video_info
from slsdk.data.vocab import Vocabulary
from slsdk.runtime.sources import DECODE_MAX_SHORTER

POLICIES = ("pad", "drop", "error")


def conv_output_length(t: int) -> int:
    """Output length of the K5-P2-K5-P2 temporal conv stack (no padding): ``((T-4)//2-4)//2``."""
    return max(0, ((int(t) - 4) // 2 - 4) // 2)


def ctc_required_length(label: Sequence) -> int:
    """Frames CTC needs for ``label``: its length plus one blank between each equal adjacent pair."""
    label = list(label)
    return len(label) + sum(1 for a, b in zip(label, label[1:]) if a == b)


def min_input_length(label: Sequence, output_length_fn: Callable[[int], int] = conv_output_length,
                     limit: int = 100_000) -> int:
    need = ctc_required_length(label)
    t = 1
    while output_length_fn(t) < need:
        t += 1
        if t > limit:
            raise ValueError(f"output_length_fn never reaches {need} frames for inputs up to {limit}")
    return t


def pad_frames(frames, length: int):
    """Repeat-pad a clip (numpy ``[T, ...]`` or tensor) to ``length`` with its first and last frames."""
    t = len(frames)
    if t >= length:
        return frames
    before = (length - t) // 2
    idx = np.concatenate([np.zeros(before, np.int64), np.arange(t), np.full(length - t - before, t - 1)])
    return frames[torch.from_numpy(idx)] if isinstance(frames, torch.Tensor) else frames[idx]


def num_frames(video: str | Path) -> int:
    """Frame count of a video, frame folder or prepared clip (``slsdk data prepare``)."""
    if is_prepared_clip(video):
        return int(np.load(video, mmap_mode="r", allow_pickle=False).shape[0])
    return video_info(video).frames


def check_lengths(samples_or_items: Sequence[Any], output_length_fn: Callable[[int], int] = conv_output_length,
                  policy: str = "pad", *, vocab: Vocabulary | None = None, warn: bool = True):
    """Find clips too short for their labels after temporal downsampling.

    Accepts ``Sample`` objects (frame count from ``video_info``, glosses as labels) or dataset items
    (dicts with ``video`` ``[T, ...]`` and ``label``). Returns ``(kept, short)`` where ``short`` is a
    list of ``(id, frames, frames_needed)``; with ``pad``, items are returned padded (samples are
    padded on load by ``VideoDataset``), with ``drop`` short ones are removed, ``error`` raises.
    """
    if policy not in POLICIES:
        raise ValueError(f"length policy must be one of {POLICIES}, got {policy!r}")
    kept, short = [], []
    for x in samples_or_items:
        if isinstance(x, Sample):
            sid, label = x.id, (vocab.encode(x.glosses) if vocab else x.glosses)
            t = int(x.meta["num_frames"]) if "num_frames" in x.meta else num_frames(x.video)
        else:
            sid, label, t = x["id"], list(map(int, x["label"])), int(len(x["video"]))
        need_t = min_input_length(label, output_length_fn)
        if output_length_fn(t) < ctc_required_length(label):
            short.append((sid, t, need_t))
            if policy == "drop":
                continue
            if policy == "pad" and not isinstance(x, Sample):
                x = {**x, "video": pad_frames(x["video"], need_t)}
        kept.append(x)
    if short:
        listing = ", ".join(f"{i} ({t} < {n} frames)" for i, t, n in short[:20])
        more = f" and {len(short) - 20} more" if len(short) > 20 else ""
        msg = (f"{len(short)} clip(s) are shorter than CTC needs after temporal downsampling "
               f"(CTC loss would be inf/NaN): {listing}{more}")
        if policy == "error":
            raise ValueError(msg)
        if warn:
            warnings.warn(f"{msg}; policy {policy!r}: {'repeat-padded' if policy == 'pad' else 'dropped'}",
                          stacklevel=2)
    return kept, short


class VideoDataset(torch.utils.data.Dataset):
    """Samples -> ``dict(video float [T, 3, S, S], label LongTensor, id)``.

    Each video is decoded once (then ``crop_fn(frames) -> frames`` if given, e.g. hand cropping,
    which must be deterministic) and resized to the transform's resize size; these uint8 frames are
    kept in memory (``cache_in_memory``) and/or as ``.npy`` files in ``cache_dir``. Without ``crop_fn`` the
    frames are scaled in the decoder (``slsdk.data.video``), so memory per clip grows with its length at the
    resize size, never with the source resolution; a ``crop_fn`` with ``accepts_iterable`` (``CropFn``) gets the
    frames one at a time. A sample whose ``video`` is a prepared clip (``slsdk data prepare``; the cache is a
    folder-layout data set) is read from the cache, already cropped: ``preparation`` holds the cache's settings. Augmentation
    randomness is ``np.random.default_rng([seed, epoch, index])``: reproducible and worker-safe;
    call ``set_epoch`` each epoch.
    """

    def __init__(self, samples: Sequence[Sample], vocab: Vocabulary, image_size: int,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD, train: bool = False,
                 seed: int = 0, crop_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                 cache_dir: str | Path | None = None, *, cache_in_memory: bool = True, flip: bool = True,
                 temporal_scale: float = 0.2, output_length_fn: Callable[[int], int] | None = conv_output_length,
                 length_policy: str = "pad", max_frames: int | None = None):
        if length_policy not in POLICIES:
            raise ValueError(f"length_policy must be one of {POLICIES}, got {length_policy!r}")
        samples = list(samples)
        if not samples:
            raise DatasetError("VideoDataset: no samples")
        self.vocab = vocab
        self.labels = [vocab.encode(s.glosses, where=f"sample {s.id!r} ({s.video})") for s in samples]
        self.transform = VideoTransform(image_size, mean, std, train=train, flip=flip,
                                        temporal_scale=temporal_scale)
        self.train, self.seed, self.epoch = train, seed, 0
        self.crop_fn, self.max_frames = crop_fn, max_frames
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_in_memory = cache_in_memory
        self._mem: dict[int, np.ndarray] = {}
        self.output_length_fn = output_length_fn
        self.length_policy = length_policy
        self.short: list[tuple[str, int, int]] = []
        if output_length_fn is not None and length_policy != "pad":
            keep_idx, short = [], []
            for i, s in enumerate(samples):
                t = len(self.frames(i, samples[i])) if cache_in_memory else num_frames(s.video)
                if output_length_fn(t) < ctc_required_length(self.labels[i]):
                    short.append((s.id, t, min_input_length(self.labels[i], output_length_fn)))
                else:
                    keep_idx.append(i)
            if short:
                listing = ", ".join(f"{i} ({t} < {n} frames)" for i, t, n in short[:20])
                msg = f"{len(short)} clip(s) are shorter than CTC needs after temporal downsampling: {listing}"
                if length_policy == "error":
                    raise DatasetError(msg)
                warnings.warn(msg + "; dropped", stacklevel=2)
                mem = {k: self._mem[i] for k, i in enumerate(keep_idx) if i in self._mem}
                samples = [samples[i] for i in keep_idx]
                self.labels = [self.labels[i] for i in keep_idx]
                self._mem = mem
            self.short = short
        self.samples = samples
        self.preparation = preparation_of(samples[0].video)  # None unless the samples come from a prepared cache
        if self.preparation is not None and crop_fn is not None:
            crop = self.preparation.get("crop")
            raise DatasetError(f"{samples[0].video}: the samples come from a prepared cache, already cropped "
                             f"({crop.get('policy') if isinstance(crop, dict) else crop}); pass no crop_fn")

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _cache_path(self, s: Sample) -> Path:
        p = Path(s.video)
        st = p.stat()
        key = f"{p.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.transform.resize_to}|{self.max_frames}|" \
              f"{getattr(self.crop_fn, '__qualname__', self.crop_fn)}"
        return self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"

    def frames(self, index: int, sample: Sample | None = None) -> np.ndarray:
        """Decoded (cropped, resized) uint8 frames of item ``index``."""
        if index in self._mem:
            return self._mem[index]
        s = sample if sample is not None else self.samples[index]
        arr = None
        cpath = self._cache_path(s) if self.cache_dir is not None else None
        if cpath is not None and cpath.is_file():
            try:
                arr = np.load(cpath, allow_pickle=False)
            except (OSError, ValueError, EOFError):
                arr = None           # unreadable (e.g. cut by a power loss): decoded again and replaced
            if arr is not None and (arr.dtype != np.uint8 or arr.ndim != 4 or len(arr) == 0):
                arr = None
        if arr is None and is_prepared_clip(s.video):  # already cropped and resized by `slsdk data prepare`
            arr = resize_shorter(load_prepared_clip(s.video, self.max_frames), self.transform.resize_to)
        elif arr is None:
            if self.crop_fn is None:
                arr = read_video(s.video, max_frames=self.max_frames, shorter=self.transform.resize_to)
            elif getattr(self.crop_fn, "accepts_iterable", False):  # the runtime's hand crop: decoded as it decodes
                arr = np.asarray(self.crop_fn(iter_video(s.video, max_frames=self.max_frames,
                                                         max_shorter=DECODE_MAX_SHORTER)))
            else:
                arr = np.asarray(self.crop_fn(read_video(s.video, max_frames=self.max_frames)))
            if self.crop_fn is not None:
                if arr.ndim != 4 or arr.dtype != np.uint8 or len(arr) == 0:
                    raise ValueError(f"crop_fn returned {arr.dtype} {list(arr.shape)} for {s.video}; "
                                     "expected non-empty uint8 [T, H, W, 3]")
            arr = resize_shorter(arr, self.transform.resize_to)
            if cpath is not None:
                try:   # a temp file beside it, renamed (slsdk.fileio): a kill never leaves half a clip
                    fileio.atomic_write(cpath, lambda f, a=arr: np.save(f, a, allow_pickle=False), fsync=False,
                                        overwrite=True)   # replaces only a cache file slsdk wrote (its ledger)
                except fileio.OutputExistsError:
                    pass   # a file there that slsdk did not write (or a link): left alone, the clip kept in memory
        if self.cache_in_memory:
            self._mem[index] = arr
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        label = self.labels[index]
        need = min_input_length(label, self.output_length_fn) if self.output_length_fn is not None else 1
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        frames = self.frames(index)
        video = self.transform(frames, rng, min_frames=need)
        if self.output_length_fn is not None and len(video) < need:
            video = pad_frames(video, need)
        return {"video": video, "label": torch.tensor(label, dtype=torch.long), "id": s.id}


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad videos to ``[B, Tmax, 3, S, S]``; labels concatenated (CTC's 1-D target format)."""
    if not items:
        raise ValueError("collate: empty batch")
    lengths = torch.tensor([len(it["video"]) for it in items], dtype=torch.long)
    first = items[0]["video"]
    videos = first.new_zeros((len(items), int(lengths.max()), *first.shape[1:]))
    for i, it in enumerate(items):
        if it["video"].shape[1:] != first.shape[1:]:
            raise ValueError(f"collate: item {it['id']!r} has frame shape {list(it['video'].shape[1:])}, "
                             f"expected {list(first.shape[1:])}")
        videos[i, : len(it["video"])] = it["video"]
    labels = [torch.as_tensor(it["label"], dtype=torch.long) for it in items]
    return {"videos": videos, "lengths": lengths, "labels": torch.cat(labels),
            "label_lengths": torch.tensor([len(l) for l in labels], dtype=torch.long),
            "ids": [it["id"] for it in items]}
