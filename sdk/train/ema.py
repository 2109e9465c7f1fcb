"""An exponential moving average of the trained weights (``TrainConfig.ema_decay``): evaluated, kept as ``best.pt``
and shipped instead of the last step's weights, so a short run does not hang on where its last steps landed.

Only what training changes is averaged: the parameters that require a gradient and the floating-point buffers
(BatchNorm statistics); a frozen CLIP tower is not copied. The decay warms up as ``min(decay, (1 + n) / (10 + n))``
after ``n`` updates, so the first steps are not averaged with the initial weights for long.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn


class WeightAverage:
    """The moving average of ``model``'s trained tensors; :meth:`update` after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay, self.updates = float(decay), 0
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        trained |= {n for n, b in model.named_buffers() if b.dtype.is_floating_point}
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if k in trained}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for k, v in self.shadow.items():
            v.lerp_(state[k].detach().to(v.dtype), 1.0 - d)

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``model``'s state dict with the averaged tensors in place of the trained ones."""
        return {**model.state_dict(), **self.shadow}

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Within: ``model`` holds the averaged weights; its own come back on exit."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(own, strict=False)

    def state_dict(self, model: nn.Module) -> dict:
        """What a checkpoint stores beside the averaged weights so that training resumes: the decay, the
        update count and the model's own (not averaged) trained tensors."""
        return {"decay": self.decay, "updates": self.updates,
                "raw": {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}}

    def resume(self, model: nn.Module, state: Mapping) -> None:
        """After ``model`` was loaded with a checkpoint's (averaged) weights: take them as the average and put
        the model's own trained tensors back."""
        current = model.state_dict()
        self.shadow = {k: current[k].detach().clone() for k in self.shadow}
        self.updates = int(state["updates"])
        model.load_state_dict(state["raw"], strict=False)


__all__ = ["WeightAverage"]
