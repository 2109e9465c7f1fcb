"""Training checkpoints: one dict of ``torch.load(weights_only=True)``-safe values, written atomically.

Layout (format ``slsdk-checkpoint``, version 1)::

    {"format": "slsdk-checkpoint", "version": 1,
     "kind": "teacher" | "student",
     "config": model config dict (RecognizerConfig / StudentConfig .to_dict()),
     "vocab": [gloss, ...] (index 0 = "<blank>"),
     "model": state_dict,
     "optimizer": state_dict | None, "scheduler": state_dict | None, "scaler": state_dict | None,
     "aux": state_dict | None           # e.g. the feature projection of distillation
     "epoch": epochs completed, "step": optimizer steps taken, "best_metric": float | None,
     "best_epoch": the epoch whose weights best.pt holds (int | None; absent in older files),
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": {...}},
     "metrics_history": [dict per epoch],
     "train_config": dict, "extra": dict}

Only dicts, lists, tuples, str, int, float, bool, None and tensors go in, so the files load with
``weights_only=True`` (no pickled code is ever executed when a checkpoint is opened). Reading goes through
:func:`slsdk.models.torchfile.load_torch_file` (via ``load_checkpoint``): the container is checked before torch
reads it (storage sizes against their records and ``MAX_CHECKPOINT_BYTES``, no compressed storage record, no code
in the pickle).

Files are written with :func:`slsdk.fileio.atomic_write` (temp file, fsync, rename): a kill leaves the old file
or the new one, never a torn one, and a full disk is a :class:`~slsdk.fileio.DiskFullError` naming the file.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slsdk.fileio import atomic_write
from slsdk.models.torchfile import load_torch_file

# the format is read in the models layer (one door for training, conversion and the runtime)
from slsdk.models.factory import (  # noqa: F401  (re-exported)
    FORMAT, KINDS, VERSION, CheckpointError, _vocab_of, build_model, create_model, load_checkpoint, load_model,
    model_from_checkpoint)

# -- weights_only safety --------------------------------------------------------------------------------
_SCALARS = (str, int, float, bool, type(None))


def _check_safe(obj: Any, where: str) -> None:
    """Raise TypeError naming the key path of the first value weights_only loading would refuse."""
    if isinstance(obj, _SCALARS) or isinstance(obj, torch.Tensor):
        return
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)):
                raise TypeError(f"checkpoint key {where}[{k!r}] has type {type(k).__name__}; keys must be str/int")
            _check_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_safe(v, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint value {where} has type {type(obj).__name__}, which torch.load(weights_only=True) "
                    "refuses; store tensors, numbers, strings, lists or dicts")


def _plain(obj: Any) -> Any:
    """OrderedDict -> dict, numpy scalars/arrays -> python/tensors, recursively."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# -- RNG state ------------------------------------------------------------------------------------------
def get_rng_state() -> dict[str, Any]:
    """torch / CUDA / numpy / python RNG states as weights_only-safe values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                             s["cached_gaussian"]))
    if "python" in state:
        s = state["python"]
        random.setstate((s["version"], tuple(int(x) for x in s["internal"].tolist()), s["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# -- write / read ---------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, *, kind: str, config: Mapping[str, Any], vocab, model: Mapping[str, Any],
                    optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = None,
                    scaler: Mapping[str, Any] | None = None, aux: Mapping[str, Any] | None = None,
                    epoch: int = 0, step: int = 0, best_metric: float | None = None,
                    best_epoch: int | None = None, rng: Mapping[str, Any] | None = None,
                    metrics_history: list | None = None, train_config: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None, ema: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (:func:`slsdk.fileio.atomic_write`: temp file in the same folder, fsync,
    rename). A crash or an error at any point leaves either the old file or the new one, never a torn file;
    a killed run's temp file is removed by the next write. ``vocab`` is a :class:`~slsdk.data.Vocabulary` or a
    list of glosses; ``model`` etc. are state dicts (tensors are moved to CPU).
    """
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    glosses = list(getattr(vocab, "glosses", vocab))
    payload = {
        "format": FORMAT, "version": VERSION, "kind": kind, "config": dict(config), "vocab": glosses,
        "model": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in model.items()},
        "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "aux": aux,
        "epoch": int(epoch), "step": int(step),
        "best_metric": None if best_metric is None else float(best_metric),
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "rng": rng if rng is not None else get_rng_state(),
        "metrics_history": list(metrics_history or []),
        "train_config": dict(train_config or {}), "extra": dict(extra or {}),
        "ema": None if ema is None else dict(ema),   # with ema_decay: ``model`` holds the average (ema.py)
    }
    payload = _plain(payload)
    _check_safe(payload, "checkpoint")

    return atomic_write(path, lambda f: torch.save(payload, f), fsync=True, owned=is_checkpoint_file)


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether ``path`` holds an slsdk checkpoint (read as data, bounded): the content proof that lets a run
    replace a checkpoint an older slsdk wrote, never any other file."""
    try:
        ckpt = load_torch_file(Path(path), mmap=True)
    except Exception:  # noqa: BLE001 - unreadable / not a torch file: not ours
        return False
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def check_vocab(checkpoint_vocab, samples, *, where: str = "checkpoint", dataset: str = "dataset") -> None:
    """Raise :class:`CheckpointError` if ``samples`` use glosses the checkpoint's vocabulary lacks.

    ``checkpoint_vocab`` is a Vocabulary (an ``<unk>`` entry accepts anything).
    """
    if getattr(checkpoint_vocab, "unk", False):
        return
    missing: dict[str, str] = {}
    for s in samples:
        for g in s.glosses:
            if g not in checkpoint_vocab and g not in missing:
                missing[g] = s.id
    if missing:
        shown = ", ".join(f"{g!r} (in {i})" for g, i in list(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(
            f"vocabulary mismatch: {dataset} uses {len(missing)} gloss(es) that {where} "
            f"({len(checkpoint_vocab)} classes incl. blank) does not know: {shown}{more}")


__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_model", "model_from_checkpoint",
           "build_model", "check_vocab", "get_rng_state", "set_rng_state", "FORMAT", "VERSION"]
