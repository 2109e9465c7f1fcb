"""Calibration data for int8: chunk inputs with realistic state.

A streaming model's state inputs (conv caches, LSTM h/c) are never zero after the first chunk, so
calibrating on zero states would clip them. ``calibration_chunks`` runs the fp32 torch model along
each video chunk by chunk and records every chunk's inputs *with the state the previous chunk
produced*, exactly what the converted model will see on a phone. The videos are preprocessed by
``slsdk.preprocess`` and stepped by ``slsdk.runtime.backends.run_video`` over a ``TorchBackend`` -- the
preprocessing, chunking and state carrying the runtime serves with.

Accepted calibration sources (``as_calibration_inputs``):
- chunk inputs already made: an iterable of tuples ``(frames [1, C, 3, S, S], *state)``;
- videos: an iterable of ``[T, 3, S, S]`` tensors/arrays (uint8 frames are normalised);
- a Dataset (``slsdk.data.VideoDataset``): items with a ``"video"`` key, or ``(video, label)`` pairs.

A landmark model (``model.modality == "landmarks"``) calibrates on normalised landmark sequences ``[T, P, 2]``
(``slsdk.landmarks.normalize_pose86``) in place of videos: the same chunking and state carrying. A fusion model
(``"fusion"``) on items ``{"frames": video, "landmarks": normalised landmarks}`` of the same frames: both inputs.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from slsdk.errors import SlsdkError
from slsdk.models.model_io import model_io
from slsdk.preprocess import Preprocess, prepare_video
from slsdk.runtime.backends import run_video
from slsdk.toolchains.torch.backend import TorchBackend

__all__ = ["CalibrationError", "calibration_chunks", "as_calibration_inputs", "iter_videos", "video_of"]


class CalibrationError(SlsdkError, ValueError):
    """Calibration data is missing, empty or malformed."""


def video_of(item: Any):
    """The frames of a calibration / held-out item (a dict with ``video``/``frames``, a Sample, a pair)."""

    if isinstance(item, dict):
        if "frames" in item and "landmarks" in item:   # a fusion model's input: both, of the same frames
            return {"frames": item["frames"], "landmarks": item["landmarks"]}
        for k in ("video", "frames"):
            if k in item:
                return item[k]
        raise CalibrationError(f"calibration item has no 'video' or 'frames' key (keys: {sorted(item)})")
    if hasattr(item, "frames") and not isinstance(item, (torch.Tensor, np.ndarray)):
        return item.frames
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], (torch.Tensor, np.ndarray)):
        return item[0]
    return item


def iter_videos(source: Any):
    """Yield the videos of a Dataset (indexable with ``len``) or an iterable of videos/items."""
    if hasattr(source, "__len__") and hasattr(source, "__getitem__") and not isinstance(source, (list, tuple)):
        if isinstance(source, torch.Tensor):
            source = [source] if source.dim() == 4 else list(source)
        for i in range(len(source)):
            yield video_of(source[i])
        return
    for item in source:
        yield video_of(item)


def _preprocess_spec(model):
    cfg = getattr(model, "config", None)
    size, mean, std = (getattr(cfg, k, None) for k in ("image_size", "mean", "std"))
    if size is None or mean is None or std is None:
        raise CalibrationError("uint8 calibration frames need the model's input size and mean/std "
                               "(model.config.image_size / mean / std)")
    return Preprocess(int(size), tuple(mean), tuple(std))


def _model_input(model):
    """``video -> the model's float32 input [T, ...]``: frames preprocessed, landmarks (normalised) as they are."""
    def points(v):
        return np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float32)

    if getattr(model, "modality", None) == "landmarks":
        return points
    spec = _preprocess_spec(model)
    if getattr(model, "modality", None) == "fusion":   # {"frames", "landmarks"}: frames preprocessed, points as they are
        def both(v):
            if not isinstance(v, dict):
                raise CalibrationError("a fusion model calibrates on {'frames': ..., 'landmarks': ...} items, got "
                                       f"{type(v).__name__}")
            return {"frames": prepare_video(v["frames"], spec), "landmarks": points(v["landmarks"])}
        return both
    return lambda v: prepare_video(v, spec)


def calibration_chunks(model, videos: Iterable, *, max_chunks: int | None = None) -> list[tuple]:
    """Run the torch student along ``videos`` and return every chunk's ``(frames, *state)`` inputs.

    ``model``: a ``StreamingStudent`` (``export_module``, ``input_names``, ``state_spec``) or a landmark student
    (``videos``: normalised landmark sequences).
    """
    io = model_io(model)
    streaming = io.streaming_section()
    backend = TorchBackend(io.module, io.input_names, io.output_names)
    prepare = _model_input(model)
    out: list[tuple] = []

    class _Enough(Exception):
        pass

    def record(inputs: dict) -> None:
        out.append(tuple(torch.from_numpy(np.array(inputs[n], dtype=np.float32)) for n in io.input_names))
        if max_chunks is not None and len(out) >= max_chunks:
            raise _Enough

    try:
        for video in iter_videos(videos):
            run_video(backend, streaming, prepare(video), on_step=record)
    except _Enough:
        pass
    return out


def _is_chunk_input(item: Any, n_inputs: int, ndim: int = 5) -> bool:
    return (isinstance(item, (tuple, list)) and len(item) == n_inputs
            and isinstance(item[0], (torch.Tensor, np.ndarray)) and np.ndim(item[0]) == ndim)


def as_calibration_inputs(model, calib: Any, *, max_chunks: int | None = 64, offline: bool = False,
                          example_inputs: Sequence | None = None) -> list[tuple]:
    """Normalise any accepted calibration source into a list of input tuples; empty -> CalibrationError.

    ``offline``: for whole-video models the inputs are ``(video [1, T, 3, S, S],)``.
    """
    if calib is None:
        raise CalibrationError("int8 static quantization needs calibration data: pass --calib with a data set "
                               "(its train split calibrates); none was given")
    n_inputs = len(example_inputs) if example_inputs is not None else (
        1 if offline else 1 + len(model.init_state(1)))
    items = list(calib) if not (hasattr(calib, "__len__") and hasattr(calib, "__getitem__")
                                and not isinstance(calib, (list, tuple))) else calib
    if len(items) == 0:
        raise CalibrationError("calibration data is empty: give at least one video or chunk")
    ndim = len(example_inputs[0].shape) if example_inputs is not None else 5
    if isinstance(items, (list, tuple)) and all(_is_chunk_input(it, n_inputs, ndim) for it in items):
        out = [tuple(torch.as_tensor(x).float() for x in it) for it in items]
        if example_inputs is not None:
            want = [tuple(t.shape) for t in example_inputs]
            for i, it in enumerate(out):
                got = [tuple(t.shape) for t in it]
                if got != want:
                    raise CalibrationError(f"calibration chunk {i} has input shapes {got}, the model takes {want}")
        return out[:max_chunks] if max_chunks else out
    if offline:
        prepare = _model_input(model)
        out = [(torch.from_numpy(prepare(v))[None],) for v in iter_videos(items)]
    else:
        out = calibration_chunks(model, items, max_chunks=max_chunks)
    if not out:
        raise CalibrationError("calibration data is empty: the videos produced no chunks")
    return out
