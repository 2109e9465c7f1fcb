"""The learning rate schedule and the optimizer built from a :class:`TrainConfig`."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from slsdk.train.config import TrainConfig


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    """The LR multiplier per step: linear warmup, then the cosine / step / constant schedule."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = max(0, int(cfg.warmup_steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "step":
            epoch = step // max(1, steps_per_epoch)
            if cfg.step_milestones:
                return cfg.step_gamma ** sum(epoch >= m for m in cfg.step_milestones)
            return cfg.step_gamma ** (epoch // max(1, cfg.step_epochs))
        p = min(1.0, (step - warm) / max(1, total - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def fused_optimizer(optimizer: str, device_type: str | None) -> bool:
    """Whether Adam / AdamW run as one fused kernel: on CUDA (every parameter updated in a single launch
    instead of a few per tensor; same maths up to float rounding). Elsewhere torch's default (foreach)."""
    return device_type == "cuda" and optimizer in ("adam", "adamw")


def build_optimizer(params: Sequence[tuple[str, nn.Parameter]], cfg: TrainConfig, lr: float | None = None,
                    device_type: str | None = None):
    """The optimizer over ``params``; weight decay only on weights of 2+ dimensions (not biases / norms).
    ``device_type`` "cuda": Adam / AdamW fused (:func:`fused_optimizer`)."""
    lr = cfg.lr if lr is None else lr
    decay = [p for n, p in params if p.ndim >= 2 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and not n.endswith(".bias"))]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen")
    kw = {"fused": True} if fused_optimizer(cfg.optimizer, device_type) else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **kw)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, **kw)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


__all__ = ["build_optimizer", "fused_optimizer", "lr_lambda"]
