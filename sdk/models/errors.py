"""The error of reading a model file: one class for slsdk checkpoints and the CLIP / AdaptSign weights imported."""
from __future__ import annotations

from slsdk.errors import SlsdkError

__all__ = ["CheckpointError", "ModelConfigError"]


class CheckpointError(SlsdkError, ValueError):
    """A checkpoint that cannot be used: truncated or corrupt, not an slsdk checkpoint, the wrong kind or
    vocabulary, or no CLIP ViT image tower in it."""


class ModelConfigError(SlsdkError, KeyError):
    """An unknown model config name (a CLIP backbone, a student): the message lists the known ones."""

    def __str__(self) -> str:   # the message, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""
