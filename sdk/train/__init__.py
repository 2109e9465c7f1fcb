"""Training: the teacher trainer (DDP-ready), distillation into the streaming student, checkpoints, evaluation.

Imports are lazy so that ``import slsdk.train`` stays cheap.
"""
from __future__ import annotations

_LAZY = {
    "TrainConfig": "slsdk.train.trainer",
    "TrainResult": "slsdk.train.trainer",
    "train": "slsdk.train.trainer",
    "teacher_config": "slsdk.train.trainer",
    "resolve_device": "slsdk.train.trainer",
    "DistillConfig": "slsdk.train.distill",
    "DistillResult": "slsdk.train.distill",
    "distill": "slsdk.train.distill",
    "evaluate": "slsdk.train.evaluate",
    "EvalResult": "slsdk.train.evaluate",
    "save_checkpoint": "slsdk.train.checkpoint",
    "load_checkpoint": "slsdk.train.checkpoint",
    "load_model": "slsdk.train.checkpoint",
    "CheckpointError": "slsdk.train.checkpoint",
    "plot_history": "slsdk.train.plots",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slsdk.train' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
