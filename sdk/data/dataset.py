"""``VideoDataset`` + ``collate`` / ``Collate`` + the CTC length check (the NaN trap).

CTC needs at least ``len(label) + adjacent repeats`` output frames; after the x4 temporal
downsampling of K5-P2-K5-P2 a short clip has fewer, and the loss becomes inf/NaN. ``check_lengths``
and ``VideoDataset`` find such clips before training and report them in one warning (count, first ids,
frames vs frames needed); policy ``pad`` (default) repeat-pads them temporally (first/last frame) so the
label fits, ``drop`` removes them, ``error`` raises. No policy lets an inf/NaN CTC loss through.

Padding a batch: ``collate`` (``Collate(padding="zeros")``, slsdk's default) zero-pads on the right and passes
the true lengths. ``Collate(padding="reference")`` is the AdaptSign / VAC / CorrNet collate: items sorted by length
(longest first), each clip padded on the left with ``left_pad`` copies of its first frame and on the right with
its last frame up to ``ceil(Tmax / stride) * stride + 2 * left_pad``; the lengths passed to the model count the
padding (``ceil(T / stride) * stride + 2 * left_pad``). For ``K5-P2-K5-P2``: stride 4, ``left_pad`` 6. Its
``output_length`` is what the dataset's length check must use with it (``output_length_fn=collate.output_length``).
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
from slsdk.data.transforms import CLIP_MEAN, CLIP_STD, Normalize, VideoTransform, resize_shorter
from slsdk.data.video import iter_video, read_video, video_info
from slsdk.data.vocab import Vocabulary
from slsdk.runtime.sources import DECODE_MAX_SHORTER

POLICIES = ("pad", "drop", "error")
PADDINGS = ("zeros", "reference")
DEFAULT_CONV_TYPE = "K5-P2-K5-P2"
REPORT_IDS = 5   # clips named in the too-short report


def conv_output_length(t: int) -> int:
    """Output length of the K5-P2-K5-P2 temporal conv stack (no padding): ``((T-4)//2-4)//2``."""
    return max(0, ((int(t) - 4) // 2 - 4) // 2)


def ctc_required_length(label: Sequence) -> int:
    """Frames CTC needs for ``label``: its length plus one blank between each equal adjacent pair."""
    label = list(label)
    return len(label) + sum(1 for a, b in zip(label, label[1:]) if a == b)


def _conv_ops(conv_type: str) -> list[tuple[str, int]]:
    ops = []
    for tok in str(conv_type).split("-"):
        if len(tok) < 2 or tok[0] not in "KP" or not tok[1:].isdigit() or int(tok[1:]) < 1:
            raise ValueError(f"conv_type tokens are K<kernel> or P<pool>, got {tok!r} in {conv_type!r}")
        ops.append((tok[0], int(tok[1:])))
    return ops


def conv_stride_and_left_pad(conv_type: str = DEFAULT_CONV_TYPE) -> tuple[int, int]:
    """``(total temporal stride, left pad)`` of the reference collate for ``conv_type``.

    The left pad is the receptive-field half-width in input frames as the reference counts it: each ``K<k>``
    adds ``(k - 1) // 2`` after multiplying what came before by the stride of the latest pool. ``K5-P2-K5-P2``:
    ``(4, 6)``.
    """
    left, last_stride, total = 0, 1, 1
    for kind, size in _conv_ops(conv_type):
        if kind == "K":
            left = left * last_stride + (size - 1) // 2
        else:
            last_stride = size
            total *= size
    return total, left


def conv_type_output_length(t: int, conv_type: str = DEFAULT_CONV_TYPE) -> int:
    """Frames after the temporal conv ``conv_type`` (unpadded convs, floor pools) for ``t`` input frames."""
    t = int(t)
    for kind, size in _conv_ops(conv_type):
        t = t - (size - 1) if kind == "K" else t // size
    return max(0, t)


def reference_padded_length(t: int, conv_type: str = DEFAULT_CONV_TYPE) -> int:
    """The length the reference collate gives a clip of ``t`` frames: ``ceil(t / stride) * stride + 2 * left``."""
    stride, left = conv_stride_and_left_pad(conv_type)
    return -(-int(t) // stride) * stride + 2 * left


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
    kept, short, seen = [], [], 0
    for x in samples_or_items:
        seen += 1
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
        msg = short_report(short, seen)
        if policy == "error":
            raise ValueError(f"{msg}; policy 'error'")
        if warn:
            warnings.warn(f"{msg}; {_POLICY_WORDS[policy]}", stacklevel=2)
    return kept, short


_POLICY_WORDS = {"pad": "policy 'pad': repeat-padded (first/last frame) to the frames needed",
                 "drop": "policy 'drop': dropped", "error": "policy 'error'"}


def short_report(short: Sequence[tuple[str, int, int]], total: int | None = None, limit: int = REPORT_IDS) -> str:
    """One line naming how many clips are too short for their labels and the first ``limit`` of them."""
    listing = ", ".join(f"{i} ({t} < {n} frames)" for i, t, n in short[:limit])
    more = f" and {len(short) - limit} more" if len(short) > limit else ""
    of = f" of {total}" if total is not None else ""
    return (f"{len(short)} clip(s){of} are shorter than CTC needs after temporal downsampling "
            f"(CTC loss would be inf/NaN): {listing}{more}")


class VideoDataset(torch.utils.data.Dataset):
    """Samples -> ``dict(video uint8 [T, S, S, 3], label LongTensor, id)``.

    The item is the augmentation's frame selection, crop and flip of the uint8 frames (integer indexing only, no
    float on the CPU); the normalisation (``VideoDataset.normalize``: uint8 ``[..., S, S, 3]`` -> float ``[..., 3, S,
    S]``, :class:`~slsdk.data.transforms.Normalize`) runs on the training device after ``.to(device)``
    (:func:`batch_to_device`). ``normalize(item["video"])`` is what ``VideoTransform.__call__`` gives.

    Each video is decoded once (then ``crop_fn(frames) -> frames`` if given, e.g. hand cropping,
    which must be deterministic) and resized to the transform's resize size; these uint8 frames are
    kept in memory (``cache_in_memory``) and/or as ``.npy`` files in ``cache_dir``. Without ``crop_fn`` the
    frames are scaled in the decoder (``slsdk.data.video``), so memory per clip grows with its length at the
    resize size, never with the source resolution; a ``crop_fn`` with ``accepts_iterable`` (``CropFn``) gets the
    frames one at a time. A sample whose ``video`` is a prepared clip (``slsdk data prepare``; the cache is a
    folder-layout data set) is read from the cache, already cropped: ``preparation`` holds the cache's settings; it is
    memory-mapped and indexed with the item's frames and crop window (only those pixels are read, in one copy), and
    not kept in memory (``cache_in_memory=None``, the default: decoded videos are kept, prepared clips are not;
    ``True`` / ``False`` keep all / none). Augmentation
    randomness is ``np.random.default_rng([seed, epoch, index])``: reproducible and worker-safe;
    call ``set_epoch`` each epoch. ``style="reference"``: the AdaptSign / VAC augmentation (``VideoTransform``), its
    two random streams seeded from that generator.

    Too-short clips: with ``output_length_fn`` (frames after the temporal conv for a clip of T frames, as batched:
    ``Collate(...).output_length`` with the reference padding) every clip is checked when the data set is built,
    before training; those whose label cannot fit are listed in ``short`` and reported in one warning
    (``length_report``: count, first ids), then ``length_policy`` applies: ``pad`` (default; repeat-padded on load
    to the frames needed, after augmentation), ``drop``, or ``error``. ``output_length_fn=None``: no check, no pad.
    """

    def __init__(self, samples: Sequence[Sample], vocab: Vocabulary, image_size: int,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD, train: bool = False,
                 seed: int = 0, crop_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                 cache_dir: str | Path | None = None, *, cache_in_memory: bool | None = None, flip: bool = True,
                 temporal_scale: float = 0.2, output_length_fn: Callable[[int], int] | None = conv_output_length,
                 length_policy: str = "pad", max_frames: int | None = None, style: str = "slsdk",
                 spatial_scale: float = 0.0):
        if length_policy not in POLICIES:
            raise ValueError(f"length_policy must be one of {POLICIES}, got {length_policy!r}")
        samples = list(samples)
        if not samples:
            raise DatasetError("VideoDataset: no samples")
        self.vocab = vocab
        self.labels = [vocab.encode(s.glosses, where=f"sample {s.id!r} ({s.video})") for s in samples]
        self.transform = VideoTransform(image_size, mean, std, train=train, flip=flip,
                                        temporal_scale=temporal_scale, spatial_scale=spatial_scale, style=style)
        self.train, self.seed, self.epoch = train, seed, 0
        self.crop_fn, self.max_frames = crop_fn, max_frames
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_in_memory = cache_in_memory
        self._mem: dict[int, np.ndarray] = {}
        self.output_length_fn = output_length_fn
        self.length_policy = length_policy
        self.short: list[tuple[str, int, int]] = []   # (id, frames, frames needed) of the clips too short
        self.length_report: str | None = None          # the one-line report of them (also warned)
        if output_length_fn is not None:
            keep_idx, short = [], []
            for i, s in enumerate(samples):
                t = self._count_frames(i, s, decode=length_policy != "pad")
                if output_length_fn(t) < ctc_required_length(self.labels[i]):
                    short.append((s.id, t, min_input_length(self.labels[i], output_length_fn)))
                else:
                    keep_idx.append(i)
            if short:
                msg = short_report(short, len(samples))
                self.short, self.length_report = short, f"{msg}; {_POLICY_WORDS[length_policy]}"
                if length_policy == "error":
                    raise DatasetError(f"{msg}; policy 'error' (choose 'pad' or 'drop' to train on this data)")
                warnings.warn(self.length_report, stacklevel=2)
                if length_policy == "drop":
                    mem = {k: self._mem[i] for k, i in enumerate(keep_idx) if i in self._mem}
                    samples = [samples[i] for i in keep_idx]
                    self.labels = [self.labels[i] for i in keep_idx]
                    self._mem = mem
                    if not samples:
                        raise DatasetError(f"VideoDataset: every clip is too short for its label ({msg})")
        self.samples = samples
        self.preparation = preparation_of(samples[0].video)  # None unless the samples come from a prepared cache
        if self.preparation is not None and crop_fn is not None:
            crop = self.preparation.get("crop")
            raise DatasetError(f"{samples[0].video}: the samples come from a prepared cache, already cropped "
                             f"({crop.get('policy') if isinstance(crop, dict) else crop}); pass no crop_fn")

    def __len__(self) -> int:
        return len(self.samples)

    def _count_frames(self, index: int, s: Sample, *, decode: bool) -> int:
        """Frames of clip ``index`` for the length check: decoded (and cached) when ``decode`` and the clips are
        kept in memory, else from the sample's ``num_frames`` or the container (capped at ``max_frames``)."""
        if index in self._mem or (decode and self._keeps(s)):
            return len(self.frames(index, s))
        t = int(s.meta["num_frames"]) if "num_frames" in (s.meta or {}) else num_frames(s.video)
        return min(t, int(self.max_frames)) if self.max_frames else t

    def _keeps(self, s: Sample) -> bool:
        """Whether clip ``s`` is kept in memory once read (``cache_in_memory``; None: all but prepared clips)."""
        return not is_prepared_clip(s.video) if self.cache_in_memory is None else bool(self.cache_in_memory)

    @property
    def normalize(self) -> Normalize:
        """uint8 items / batches -> the model's float input (on their device): the transform's normalisation."""
        return self.transform.normalize

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _cache_path(self, s: Sample) -> Path:
        p = Path(s.video)
        st = p.stat()
        key = f"{p.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.transform.resize_to}|{self.max_frames}|" \
              f"{getattr(self.crop_fn, '__qualname__', self.crop_fn)}"
        return self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"

    def frames(self, index: int, sample: Sample | None = None) -> np.ndarray:
        """Decoded (cropped, resized) uint8 frames of item ``index`` (a prepared clip at the resize size: its
        read-only memory map, unless kept in memory)."""
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
            arr = load_prepared_clip(s.video, self.max_frames, mmap=True)
            if min(arr.shape[1:3]) != self.transform.resize_to:
                arr = resize_shorter(arr, self.transform.resize_to)
            elif self._keeps(s):
                arr = np.array(arr)      # kept: a copy in memory (the map is closed with it)
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
        if self._keeps(s):
            self._mem[index] = arr
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        label = self.labels[index]
        need = min_input_length(label, self.output_length_fn) if self.output_length_fn is not None else 1
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        frames = self.frames(index)
        video = self.transform.crop(frames, rng, min_frames=need)    # uint8 [T, S, S, 3]
        if self.output_length_fn is not None and len(video) < need:
            video = pad_frames(video, need)
        return {"video": video, "label": torch.tensor(label, dtype=torch.long), "id": s.id}


def _batch_tensor(like: torch.Tensor, shape) -> torch.Tensor:
    """An uninitialised batch tensor; in shared memory inside a DataLoader worker (as torch's default collate
    makes it), so handing the batch to the main process copies nothing."""
    out = torch.empty(shape, dtype=like.dtype)
    if torch.utils.data.get_worker_info() is not None:
        out.share_memory_()
    return out


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad videos to ``[B, Tmax, ...]`` (uint8 ``[B, Tmax, S, S, 3]`` from :class:`VideoDataset`); labels
    concatenated (CTC's 1-D target format). ``padding: "zeros"``: :func:`batch_to_device` zeroes the padding again
    after normalising, so the model sees zeros there as it always did. Built in shared memory in a worker."""
    if not items:
        raise ValueError("collate: empty batch")
    lengths = torch.tensor([len(it["video"]) for it in items], dtype=torch.long)
    first = items[0]["video"]
    for it in items:
        if it["video"].shape[1:] != first.shape[1:]:
            raise ValueError(f"collate: item {it['id']!r} has frame shape {list(it['video'].shape[1:])}, "
                             f"expected {list(first.shape[1:])}")
    videos = _batch_tensor(first, (len(items), int(lengths.max()), *first.shape[1:]))
    for i, it in enumerate(items):
        t = len(it["video"])
        videos[i, :t] = it["video"]
        videos[i, t:] = 0
    labels = [torch.as_tensor(it["label"], dtype=torch.long) for it in items]
    return {"videos": videos, "lengths": lengths, "labels": torch.cat(labels),
            "label_lengths": torch.tensor([len(l) for l in labels], dtype=torch.long),
            "ids": [it["id"] for it in items], "padding": "zeros"}


def batch_to_device(batch: dict[str, Any], device: torch.device | str, normalize: Callable | None = None, *,
                    non_blocking: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(videos, lengths, labels, label_lengths)`` of a collated batch on ``device``, the videos normalised there.

    uint8 videos (``[B, T, S, S, 3]``, :class:`VideoDataset`) are moved as uint8 then normalised by ``normalize``
    (``VideoDataset.normalize``) into float ``[B, T, 3, S, S]``; with the zero padding (``collate``) the padded
    frames are zeroed after normalising (the model sees what the float path gave it). Float videos (already
    normalised) are only moved. The one "batch to device and normalise" of training, distillation and evaluation.
    """
    device = torch.device(device)
    videos = batch["videos"].to(device, non_blocking=non_blocking)
    lengths = batch["lengths"].to(device, non_blocking=non_blocking)
    if not videos.is_floating_point():
        if normalize is None:
            raise ValueError(f"batch_to_device: {videos.dtype} videos need a normalize (VideoDataset.normalize)")
        videos = normalize(videos)
        if batch.get("padding", "zeros") == "zeros" and videos.shape[1] > int(batch["lengths"].min()):
            pad = torch.arange(videos.shape[1], device=device)[None, :] >= lengths[:, None]
            videos.masked_fill_(pad[:, :, None, None, None], 0)
    labels = batch["labels"].to(device, non_blocking=non_blocking)
    label_lengths = batch["label_lengths"].to(device, non_blocking=non_blocking)
    if "landmarks" in batch:   # a fusion batch (slsdk.data.landmark_dataset.collate_fusion): the model takes both
        videos = (videos, batch["landmarks"].to(device, non_blocking=non_blocking))
    return videos, lengths, labels, label_lengths


def normalize_of(loader_or_dataset) -> Callable | None:
    """The ``normalize`` of a DataLoader's / dataset's :class:`VideoDataset` (through wrappers holding it as
    ``.dataset``), None if there is none."""
    obj = loader_or_dataset
    for _ in range(4):
        if obj is None:
            return None
        if isinstance(getattr(obj, "normalize", None), Normalize):
            return obj.normalize
        obj = getattr(obj, "dataset", None)
    return None


class Collate:
    """A batch collate for ``DataLoader(collate_fn=...)``, picklable (worker processes).

    ``padding="zeros"``: :func:`collate` (slsdk's default). ``padding="reference"``: the AdaptSign / VAC /
    CorrNet collate (see the module docstring), for ``conv_type`` (the model's temporal conv, e.g. ``K5-P2-K5-P2``).
    Both return ``dict(videos, lengths, labels, label_lengths, ids)``; with ``reference`` the items come back sorted
    longest first (``ids`` follows) and ``lengths`` count the padding.
    """

    def __init__(self, padding: str = "zeros", conv_type: str = DEFAULT_CONV_TYPE):
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.padding, self.conv_type = padding, conv_type
        self.stride, self.left_pad = conv_stride_and_left_pad(conv_type)

    def __repr__(self) -> str:
        return f"Collate(padding={self.padding!r}, conv_type={self.conv_type!r})"

    def padded_length(self, t: int) -> int:
        """The length the model is given for a clip of ``t`` frames."""
        return reference_padded_length(t, self.conv_type) if self.padding == "reference" else int(t)

    def output_length(self, t: int) -> int:
        """Frames after the temporal conv for a clip of ``t`` frames batched by this collate (the dataset's
        ``output_length_fn`` to use with it)."""
        return conv_type_output_length(self.padded_length(t), self.conv_type)

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if self.padding == "zeros":
            return collate(items)
        if not items:
            raise ValueError("collate: empty batch")
        items = sorted(items, key=lambda it: len(it["video"]), reverse=True)   # stable: ties keep their order
        first = items[0]["video"]
        for it in items:
            if len(it["video"]) == 0:
                raise ValueError(f"collate: item {it['id']!r} has no frames")
            if it["video"].shape[1:] != first.shape[1:]:
                raise ValueError(f"collate: item {it['id']!r} has frame shape {list(it['video'].shape[1:])}, "
                                 f"expected {list(first.shape[1:])}")
        left = self.left_pad
        total = self.padded_length(len(first))
        videos = _batch_tensor(first, (len(items), total, *first.shape[1:]))
        for i, it in enumerate(items):
            v, t = it["video"], len(it["video"])
            videos[i, :left] = v[:1]
            videos[i, left:left + t] = v
            videos[i, left + t:] = v[-1:]
        lengths = torch.tensor([self.padded_length(len(it["video"])) for it in items], dtype=torch.long)
        labels = [torch.as_tensor(it["label"], dtype=torch.long) for it in items]
        return {"videos": videos, "lengths": lengths, "labels": torch.cat(labels),
                "label_lengths": torch.tensor([len(lab) for lab in labels], dtype=torch.long),
                "ids": [it["id"] for it in items], "padding": "reference"}


def make_collate(padding: str = "zeros", conv_type: str = DEFAULT_CONV_TYPE) -> Collate:
    """``Collate(padding, conv_type)``."""
    return Collate(padding, conv_type)
