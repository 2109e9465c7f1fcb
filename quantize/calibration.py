"""Calibration data for int8: chunk inputs with realistic state.

A streaming model's state inputs (conv caches, LSTM h/c) are never zero after the first chunk, so
calibrating on zero states would clip them. ``calibration_chunks`` runs the fp32 torch model along
each video chunk by chunk and records every chunk's inputs *with the state the previous chunk
produced*, exactly what the converted model will see on a phone.

Accepted calibration sources (``as_calibration_inputs``):
- chunk inputs already made: an iterable of tuples ``(frames [1, C, 3, S, S], *state)``;
- videos: an iterable of ``[T, 3, S, S]`` tensors/arrays (uint8 frames are normalised);
- a Dataset (``slsdk.data.VideoDataset``): items with a ``"video"`` key, or ``(video, label)`` pairs.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

__all__ = ["CalibrationError", "calibration_chunks", "as_calibration_inputs", "iter_videos"]


class CalibrationError(ValueError):
    """Calibration data is missing, empty or malformed."""


def _video_of(item: Any):
    import numpy as np
    import torch

    if isinstance(item, dict):
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
        try:
            import torch

            if isinstance(source, torch.Tensor):
                source = [source] if source.dim() == 4 else list(source)
        except ImportError:  # pragma: no cover
            pass
        for i in range(len(source)):
            yield _video_of(source[i])
        return
    for item in source:
        yield _video_of(item)


def calibration_chunks(model, videos: Iterable, *, max_chunks: int | None = None) -> list[tuple]:
    """Run the torch student along ``videos`` and return every chunk's ``(frames, *state)`` inputs.

    ``model``: a ``StreamingStudent`` (``export_module``, ``init_state``, ``config.chunk_frames``).
    """
    import torch

    from slsdk.convert.parity import chunk_video, prepare_video

    cfg = model.config
    step = model.export_module().eval()
    out: list[tuple] = []
    with torch.no_grad():
        for video in iter_videos(videos):
            v = prepare_video(video, cfg.image_size, cfg.mean, cfg.std)
            state = [s.detach().clone() for s in model.init_state(1)]
            for chunk in chunk_video(v, cfg.chunk_frames):
                out.append((chunk.clone(), *[s.clone() for s in state]))
                res = step(chunk, *state)
                state = [r.detach() for r in res[1:]]
                if max_chunks is not None and len(out) >= max_chunks:
                    return out
    return out


def _is_chunk_input(item: Any, n_inputs: int) -> bool:
    import numpy as np
    import torch

    return (isinstance(item, (tuple, list)) and len(item) == n_inputs
            and isinstance(item[0], (torch.Tensor, np.ndarray)) and np.ndim(item[0]) == 5)


def as_calibration_inputs(model, calib: Any, *, max_chunks: int | None = 64, offline: bool = False,
                          example_inputs: Sequence | None = None) -> list[tuple]:
    """Normalise any accepted calibration source into a list of input tuples; empty -> CalibrationError.

    ``offline``: for whole-video models the inputs are ``(video [1, T, 3, S, S],)``.
    """
    import torch

    if calib is None:
        raise CalibrationError("int8 static quantization needs calibration data (calib=): videos, a Dataset, "
                               "or chunk inputs; none was given")
    n_inputs = len(example_inputs) if example_inputs is not None else (
        1 if offline else 1 + len(model.init_state(1)))
    items = list(calib) if not (hasattr(calib, "__len__") and hasattr(calib, "__getitem__")
                                and not isinstance(calib, (list, tuple))) else calib
    if len(items) == 0:
        raise CalibrationError("calibration data is empty: give at least one video or chunk")
    if isinstance(items, (list, tuple)) and all(_is_chunk_input(it, n_inputs) for it in items):
        out = [tuple(torch.as_tensor(x).float() for x in it) for it in items]
        if example_inputs is not None:
            want = [tuple(t.shape) for t in example_inputs]
            for i, it in enumerate(out):
                got = [tuple(t.shape) for t in it]
                if got != want:
                    raise CalibrationError(f"calibration chunk {i} has input shapes {got}, the model takes {want}")
        return out[:max_chunks] if max_chunks else out
    if offline:
        from slsdk.convert.parity import prepare_video

        cfg = getattr(model, "config", None)
        out = []
        for v in iter_videos(items):
            out.append((prepare_video(v, getattr(cfg, "image_size", None), getattr(cfg, "mean", None),
                                      getattr(cfg, "std", None)).unsqueeze(0),))
    else:
        out = calibration_chunks(model, items, max_chunks=max_chunks)
    if not out:
        raise CalibrationError("calibration data is empty: the videos produced no chunks")
    return out
