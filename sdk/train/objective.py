"""The teacher's training objective: what the trainer optimises, configured by a recipe.

``objective(model, recipe)`` returns the :class:`TeacherObjective` that ``slsdk train`` itself optimises (the
trainer builds its objective with the same :func:`build_objective`, so there is one objective): it sets which
of ``model``'s parameters train (``requires_grad``) from the recipe's ``train`` section, and calling it on a
batch returns the weighted ``total`` and each unweighted term (``seq_ctc``, ``conv_ctc``, ``distill``).

The recipe settings it reads (``TrainConfig`` fields):

* ``loss_weights`` -- weights of the three terms (default seq_ctc 1, conv_ctc 1, distill 25);
* ``kd_temperature`` / ``kd_reduction`` -- the distill term's temperature and how its per-frame KL is averaged:
  ``masked`` (default) over each clip's valid frames then over clips, a deliberate change from the released
  VAC / AdaptSign code so that the term does not depend on how clips were batched; ``reference`` over every
  row of the padded ``[T', B]`` batch, padding included, as released (see
  :func:`slsdk.models.sequence.distillation_loss`);
* ``encoder_trainable`` -- the freeze rule, as data: fnmatch patterns of frame-encoder parameter names (the
  names under ``frame_encoder.``); matching parameters train, the rest of the frame encoder is frozen, and
  everything outside the frame encoder trains. A pattern that matches nothing is an error (a typo would
  otherwise silently freeze a module). ``None`` keeps the encoder's own rule
  (:meth:`slsdk.models.adapters.FrameEncoder.set_trainable`); ``unfreeze_backbone`` trains everything;
* ``encoder_masks_padding`` -- whether the frame encoder's temporal modules (AdaptSign's cross-frame
  attention, TSM, ST-adapter convs) ignore frames past each clip's length (default) or see the whole padded
  batch as the released AdaptSign code does (meant with the reference's padding, which repeats a clip's first
  and last frames; with zero padding the encoder would see black frames);
* ``grad_checkpointing`` -- recompute the frame encoder's activations in backward (same values).
"""
from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import torch
import torch.utils.checkpoint
from torch import nn

from slsdk.errors import ConfigError
from slsdk.models.sequence import cslr_losses
from slsdk.train.config import TrainConfig
from slsdk.train.recipe import Recipe, load_recipe, parse_recipe


class TeacherObjective(nn.Module):
    """What DDP wraps for teacher training: the recognizer and ``cslr_losses``.

    ``forward(videos, lengths, labels, label_lengths)`` -> ``{"seq_ctc", "conv_ctc", "distill", "total"}``
    (terms with weight 0 are left out; ``total`` is the weighted sum).
    """

    def __init__(self, model: nn.Module, loss_weights: Mapping[str, float] | None = None,
                 grad_checkpointing: bool = False, *, kd_temperature: float = 8.0, kd_reduction: str = "masked",
                 encoder_masks_padding: bool = True):
        super().__init__()
        self.model = model
        self.loss_weights = dict(loss_weights or {})
        self.grad_checkpointing = grad_checkpointing
        self.kd_temperature = float(kd_temperature)
        self.kd_reduction = kd_reduction
        self.encoder_masks_padding = encoder_masks_padding

    def forward(self, videos, lengths, labels, label_lengths) -> dict[str, torch.Tensor]:
        m = self.model
        enc_lengths = lengths if self.encoder_masks_padding else None
        if self.grad_checkpointing and self.training:
            feats = torch.utils.checkpoint.checkpoint(m.frame_features, videos, enc_lengths, use_reentrant=False)
            out = m.sequence(feats, lengths)
        elif self.encoder_masks_padding:
            out = m(videos, lengths)
        else:
            out = m.sequence(m.frame_features(videos, None), lengths)
        return cslr_losses(out, labels, label_lengths, weights=self.loss_weights or None,
                           temperature=self.kd_temperature, distill_reduction=self.kd_reduction)

    def extra_repr(self) -> str:
        return (f"loss_weights={self.loss_weights or 'default'}, kd_temperature={self.kd_temperature}, "
                f"kd_reduction={self.kd_reduction!r}, encoder_masks_padding={self.encoder_masks_padding}")


def apply_trainable(model: nn.Module, cfg: TrainConfig) -> int:
    """Set ``requires_grad`` on ``model``'s parameters from ``cfg``; returns the number of trainable scalars.

    ``unfreeze_backbone``: everything trains. Else ``encoder_trainable`` (patterns, see the module docstring)
    if set, else the frame encoder's own rule; outside the frame encoder everything trains.
    """
    patterns = cfg.encoder_trainable
    if patterns is None or cfg.unfreeze_backbone:
        model.set_trainable(backbone=cfg.unfreeze_backbone)
    else:
        encoder = getattr(model, "frame_encoder", None)
        if encoder is None:
            raise ConfigError("encoder_trainable is set but the model has no frame_encoder")
        names = dict(encoder.named_parameters())
        unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in names)]
        if unmatched:
            raise ConfigError(f"encoder_trainable: {', '.join(map(repr, unmatched))} match no parameter of the frame "
                              f"encoder ({encoder.cfg.variant}); its parameters are named like "
                              f"{', '.join(sorted(names)[:4])}, ...")
        for p in model.parameters():
            p.requires_grad_(True)
        for n, p in names.items():
            p.requires_grad_(any(fnmatchcase(n, pat) for pat in patterns))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def dead_gate_notes(model: nn.Module) -> list[str]:
    """One line per frozen frame-encoder gate that is all zeros: the module behind it never acts nor learns.

    E.g. the AdaptSign recipe's freeze rule keeps ``prefix_gate`` frozen (the released code has no gate: its joint
    softmax is gate 1, and an imported AdaptSign teacher has gate 1); on a freshly built encoder the gate is 0.
    """
    encoder = getattr(model, "frame_encoder", None)
    if encoder is None:
        return []
    return [f"frame_encoder.{n} is frozen at 0, so what it gates has no effect and gets no gradient"
            for n, p in encoder.named_parameters()
            if n.endswith("gate") and not p.requires_grad and not bool(p.detach().ne(0).any())]


def build_objective(model: nn.Module, cfg: TrainConfig) -> TeacherObjective:
    """The objective for ``model`` under ``cfg`` (its freeze rule applied to ``model``): the trainer's own."""
    apply_trainable(model, cfg)
    return TeacherObjective(model, cfg.loss_weights, cfg.grad_checkpointing, kd_temperature=cfg.kd_temperature,
                            kd_reduction=cfg.kd_reduction, encoder_masks_padding=cfg.encoder_masks_padding)


def train_config_of(recipe) -> TrainConfig:
    """The ``train`` settings of ``recipe``: a shipped recipe's name, a file, a :class:`Recipe`, a recipe
    mapping (as a file holds it), or a :class:`TrainConfig`."""
    if isinstance(recipe, TrainConfig):
        return recipe
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe, "teacher")
    elif isinstance(recipe, Mapping):
        recipe = parse_recipe(recipe, "teacher")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a name, a path, a Recipe, a mapping or a TrainConfig, got "
                        f"{type(recipe).__name__}")
    if recipe.kind != "teacher":
        raise ConfigError(f"{recipe.source}: a {recipe.kind} recipe has no teacher objective")
    return recipe.build("train")


def objective(model: nn.Module, recipe) -> TeacherObjective:
    """The module ``slsdk train`` optimises for ``model`` under ``recipe``, with the recipe's freeze rule applied
    to ``model``'s parameters. Call it as ``objective(videos, lengths, labels, label_lengths)``: returns the
    ``total`` and each term. ``recipe``: see :func:`train_config_of`."""
    return build_objective(model, train_config_of(recipe))


__all__ = ["TeacherObjective", "apply_trainable", "build_objective", "dead_gate_notes", "objective",
           "train_config_of"]
