"""Training: the teacher trainer (DDP-ready), distillation into the streaming student, checkpoints, evaluation.

The functions ``distill``, ``evaluate`` and ``objective`` share their names with their modules, so they are
imported eagerly here (a lazy import would let the submodule shadow the function).
"""
from __future__ import annotations

from slsdk.train.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from slsdk.train.trainer import TrainConfig, TrainResult, resolve_device, teacher_config, train
from slsdk.train.distill import DistillConfig, DistillResult, distill  # noqa: E402  (after trainer)
from slsdk.train.evaluate import EvalResult, evaluate
from slsdk.train.objective import TeacherObjective, objective
from slsdk.train.plots import plot_history

__all__ = ["TrainConfig", "TrainResult", "train", "teacher_config", "resolve_device",
           "DistillConfig", "DistillResult", "distill", "evaluate", "EvalResult",
           "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError", "plot_history", "objective",
           "TeacherObjective"]
