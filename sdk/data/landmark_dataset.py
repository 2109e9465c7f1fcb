"""Training items and batches of landmark models: a sample's pixel keypoints (``load_landmarks``), the kit's
augmentations in training (:class:`~slsdk.data.landmarks.Pose86Augment`), the kit's normalisation
(``normalize_pose86``), labels encoded by the vocabulary; batches zero-padded in time.

Items and batches have the keys of :class:`~slsdk.data.dataset.VideoDataset`'s (``video``, ``label``, ``id``;
``videos`` ``[B, T, 86, 2]`` float32, ``lengths``, ``labels``, ``label_lengths``, ``ids``, ``padding``), so the
trainer loop, evaluation and distillation take them as they take video batches (float batches are moved as they
are: :func:`slsdk.data.dataset.batch_to_device`). Randomness of item ``i`` in epoch ``e`` is
``np.random.default_rng([seed, e, i])``: reproducible and worker-safe.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from slsdk.data.dataset import (VideoDataset, collate, conv_output_length, ctc_required_length, min_input_length,
                                pad_frames, short_report)
from slsdk.data.transforms import temporal_indices
from slsdk.data.landmarks import Pose86Augment, Pose86AugmentConfig, load_landmarks, normalize_pose86
from slsdk.data.readers import DatasetError, Sample
from slsdk.data.splits import get_layout
from slsdk.data.vocab import Vocabulary
from slsdk.model_names import MODALITIES

__all__ = ["LandmarkDataset", "collate_landmarks", "landmark_datasets", "MODALITIES", "layout_modalities",
           "resolve_modality", "FusionDataset", "collate_fusion", "fusion_datasets", "require_landmarks"]



def layout_modalities(layout: str) -> tuple[str, ...]:
    """What a layout's samples carry: ``("landmarks",)`` for a keypoint-only layout (``isharah-pose``), ``("rgb",)``
    for the video layouts (a folder layout may also carry ``.pose`` files beside its videos: both)."""
    lay = get_layout(layout)
    if getattr(lay, "landmarks", False):
        return ("landmarks",)
    if lay.name == "folder":
        return ("rgb", "landmarks")
    return ("rgb",)


def resolve_modality(modality: str | None, layout: str) -> str:
    """The modality a run trains: ``modality`` if the layout carries it, else the layout's own (landmark-only layouts
    imply ``landmarks``); an impossible choice is a :class:`DatasetError` naming the layout."""
    have = layout_modalities(layout)
    if modality is None:
        return have[0]
    if modality not in MODALITIES:
        raise DatasetError(f"--modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    need = ("rgb", "landmarks") if modality == "fusion" else (modality,)
    if any(m not in have for m in need):
        raise DatasetError(f"--modality {modality}: layout {layout!r} carries {' and '.join(have)} only")
    return modality


class LandmarkDataset(torch.utils.data.Dataset):
    """Samples with landmarks -> items ``{"video": float32 [T, 86, 2] normalised, "label", "id"}``.

    ``train``: the kit's augmentations (``augment`` config; default the kit's) before the normalisation.
    ``output_length_fn``: output frames for an input of T frames (the teacher's valid conv by default); clips too
    short for their label are dropped with a warning (``length_policy="drop"``), zero-padded at the end in the
    collate (``"pad"``: padded to the frames needed) or refused (``"error"``). ``max_frames``: longer clips are cut.
    """

    normalize = None       # items are float already (batch_to_device moves them as they are)
    preparation = None     # no `slsdk data prepare` cache behind landmarks

    def __init__(self, samples: Sequence[Sample], vocab: Vocabulary, *, train: bool = False, seed: int = 0,
                 augment: Pose86AugmentConfig | None = None,
                 output_length_fn: Callable[[int], int] | None = conv_output_length, length_policy: str = "pad",
                 max_frames: int | None = None):
        if not samples:
            raise DatasetError("LandmarkDataset: no samples")
        self.vocab, self.train, self.seed, self.epoch = vocab, train, seed, 0
        self.augment = augment or Pose86AugmentConfig()
        self.max_frames = max_frames
        self.length_policy = length_policy
        self.output_length_fn = output_length_fn
        self.labels = [vocab.encode(s.glosses, where=f"sample {s.id!r}") for s in samples]
        self._raw = [self._read(s) for s in samples]    # pixel keypoints, read once (the pickle is cached anyway)
        self.short: list[tuple[str, int, int]] = []
        self.length_report: str | None = None
        self.need = [0] * len(samples)
        if output_length_fn is not None:
            short, keep = [], []
            for i, s in enumerate(samples):
                t = len(self._raw[i])
                need = min_input_length(self.labels[i], output_length_fn)
                self.need[i] = need
                if output_length_fn(t) < ctc_required_length(self.labels[i]):
                    short.append((s.id, t, need))
                else:
                    keep.append(i)
            if short:
                msg = short_report(short, len(samples))
                self.short, self.length_report = short, msg
                if length_policy == "error":
                    raise DatasetError(f"{msg}; policy 'error' (choose 'pad' or 'drop' to train on this data)")
                warnings.warn(f"{msg}; {'padded with zero frames' if length_policy == 'pad' else 'dropped'}",
                              stacklevel=2)
                if length_policy == "drop":
                    samples = [samples[i] for i in keep]
                    self.labels = [self.labels[i] for i in keep]
                    self._raw = [self._raw[i] for i in keep]
                    self.need = [self.need[i] for i in keep]
                    if not samples:
                        raise DatasetError(f"LandmarkDataset: every clip is too short for its label ({msg})")
        self.samples = list(samples)

    def _read(self, s: Sample) -> np.ndarray:
        kp = load_landmarks(s)
        return kp[: self.max_frames] if self.max_frames else kp

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def landmarks(self, index: int) -> np.ndarray:
        """Item ``index``'s normalised landmarks ``[T, 86, 2]`` float32 (augmented first in training)."""
        kp = self._raw[index]
        if self.train:
            kp = Pose86Augment(self.augment, rng=np.random.default_rng([self.seed, self.epoch, index]))(kp)
        x = normalize_pose86(kp)
        need = self.need[index] if self.length_policy == "pad" else 0
        if len(x) < need:
            x = np.concatenate([x, np.zeros((need - len(x), *x.shape[1:]), np.float32)])
        return x

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"video": torch.from_numpy(self.landmarks(index)), "label": self.labels[index],
                "id": self.samples[index].id}

    def collate_fn(self, items):
        return collate_landmarks(items)


def collate_landmarks(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad ``[T, 86, 2]`` items to ``[B, Tmax, 86, 2]`` float32; labels concatenated (CTC's 1-D targets)."""
    if not items:
        raise ValueError("collate_landmarks: empty batch")
    lengths = torch.tensor([len(it["video"]) for it in items], dtype=torch.long)
    first = items[0]["video"]
    videos = torch.zeros((len(items), int(lengths.max()), *first.shape[1:]), dtype=torch.float32)
    for i, it in enumerate(items):
        videos[i, : len(it["video"])] = it["video"]
    labels = [torch.as_tensor(it["label"], dtype=torch.long) for it in items]
    return {"videos": videos, "lengths": lengths, "labels": torch.cat(labels),
            "label_lengths": torch.tensor([len(l) for l in labels], dtype=torch.long),
            "ids": [it["id"] for it in items], "padding": "zeros"}


def landmark_datasets(vocab: Vocabulary, cfg, output_length_fn: Callable[[int], int] | None = None):
    """``(samples, train) -> LandmarkDataset``: the items of a landmark run (the training loop's ``Job.make_dataset``);
    ``cfg`` (a ``TrainConfig``) gives the seed, whether training augments, the length policy and ``max_frames``."""
    def make(samples, train: bool) -> LandmarkDataset:
        kw = {} if output_length_fn is None else {"output_length_fn": output_length_fn}
        return LandmarkDataset(samples, vocab, train=bool(train and cfg.augment), seed=cfg.seed,
                               length_policy=cfg.length_policy, max_frames=cfg.max_frames, **kw)
    return make


# ------------------------------------------------------------------------------------------ fusion
def require_landmarks(samples: Sequence[Sample], what: str = "--modality fusion") -> None:
    """A :class:`DatasetError` naming the first sample without landmarks (no ``.pose`` beside its video) and how to
    make them, or a landmark-only sample (no video)."""
    for s in samples:
        if s.landmarks is None:
            raise DatasetError(f"{what}: sample {s.id!r} ({s.video}) has no landmarks: no .pose file beside the video "
                               "(make them with `slsdk data prepare ROOT --landmarks`)")
        if s.video is None or str(s.video) == str(s.landmarks.path):
            raise DatasetError(f"{what}: sample {s.id!r} has landmarks ({s.landmarks.path}) but no video")


class FusionDataset(VideoDataset):
    """Samples with a video and its landmarks -> items ``{"video": uint8 [T, S, S, 3], "landmarks": float32 [T, 86,
    2] normalised, "label", "id"}`` of the same frames (the fusion student's two inputs).

    The frames are :class:`~slsdk.data.dataset.VideoDataset`'s (decoded, or read from an ``slsdk data prepare``
    cache, the hand crop the runtime makes, whose settings travel with the checkpoint as for the RGB student); the
    landmarks are the sample's ``.pose`` (``slsdk data prepare --landmarks``: landmark frame k is frame k), cut to the
    shorter of the two. Augmentation decisions that must agree are made once for both: the temporal rescale picks the
    same frames of each; the random spatial crop moves the pixels only (the normalisation makes each landmark part
    relative to its own first point and scale, so a crop does not change it). There is no horizontal flip (a flip
    would have to mirror the points and swap the two hands' slots; handedness is kept instead), and none of the
    kit's landmark augmentations (its time warp and frame dropout would change the frames of one input only).
    """

    def __init__(self, samples: Sequence[Sample], vocab: Vocabulary, image_size: int, mean, std, *,
                 train: bool = False, seed: int = 0, temporal_scale: float = 0.2,
                 output_length_fn: Callable[[int], int] | None = conv_output_length, length_policy: str = "pad",
                 max_frames: int | None = None, style: str = "slsdk"):
        require_landmarks(samples)
        if style != "slsdk":
            raise DatasetError(f"--modality fusion takes the slsdk data style, not {style!r} (the reference's "
                               "augmentation draws its frames on its own)")
        self.fusion_temporal_scale = float(temporal_scale)
        super().__init__(samples, vocab, image_size, mean, std, train=train, seed=seed, flip=False,
                         temporal_scale=0.0, output_length_fn=output_length_fn, length_policy=length_policy,
                         max_frames=max_frames)
        self._points = [load_landmarks(s) for s in self.samples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        label = self.labels[index]
        need = min_input_length(label, self.output_length_fn) if self.output_length_fn is not None else 1
        frames, kp = self.frames(index), self._points[index]
        n = min(len(frames), len(kp))
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        if rng is not None:   # one temporal rescale for both inputs
            scale = 1.0 + rng.uniform(-self.fusion_temporal_scale, self.fusion_temporal_scale)
            idx = temporal_indices(n, scale, min_frames=min(need, n))
        else:
            idx = np.arange(n)
        video = self.transform.crop(frames[idx], rng, min_frames=need)    # rescale 0: the frames as selected
        points = normalize_pose86(kp[idx])
        if self.output_length_fn is not None and len(video) < need:
            video = pad_frames(video, need)
        if len(points) < len(video):    # repeat-padded as the frames are
            points = np.concatenate([points, np.repeat(points[-1:], len(video) - len(points), 0)])
        return {"video": video, "landmarks": torch.from_numpy(np.ascontiguousarray(points, np.float32)),
                "label": torch.tensor(label, dtype=torch.long), "id": s.id}

    def collate_fn(self, items):
        return collate_fusion(items)


def collate_fusion(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~slsdk.data.dataset.collate` of the frames plus ``landmarks`` ``[B, Tmax, 86, 2]`` zero-padded alike;
    ``batch_to_device`` then gives the model ``(frames, landmarks)``."""
    batch = collate(items)
    batch["landmarks"] = collate_landmarks([{"video": it["landmarks"], "label": it["label"], "id": it["id"]}
                                            for it in items])["videos"]
    return batch


def fusion_datasets(vocab: Vocabulary, cfg, train_input: tuple, eval_input: tuple,
                    output_length_fn: Callable[[int], int] | None = conv_output_length):
    """``(samples, train) -> FusionDataset`` for a fusion run (the training loop's ``Job.make_dataset``);
    ``train_input`` / ``eval_input``: ``(size, mean, std)`` of the training and the dev frames."""
    def make(samples, train: bool) -> FusionDataset:
        size, mean, std = train_input if train else eval_input
        return FusionDataset(samples, vocab, size, mean, std, train=bool(train and cfg.augment), seed=cfg.seed,
                             temporal_scale=cfg.temporal_scale, output_length_fn=output_length_fn,
                             length_policy=cfg.length_policy, max_frames=cfg.max_frames, style=cfg.data_style)
    return make
