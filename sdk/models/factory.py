"""Building a model, and loading one from an slsdk checkpoint (in the spirit of open_clip's factory).

    model = create_model("student", StudentConfig(...).to_dict())      # random weights
    model, vocab, kind = load_model("runs/student/best.pt")             # weights_only=True, validated

The checkpoint *format* is read here (the models layer), so everything that needs a model from a file --
training, conversion, evaluation and the runtime's torch backend -- comes through one door;
``slsdk.train.checkpoint`` writes the format (and re-exports these names). New model kinds register in
``_BUILDERS``.
"""
from __future__ import annotations

import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from slsdk.data.vocab import Vocabulary, VocabularyError
from slsdk.models.errors import CheckpointError
from slsdk.models.fusion import FusionStudent, FusionStudentConfig, is_fusion_config
from slsdk.models.landmark import (LandmarkConfig, LandmarkRecognizer, LandmarkStudent, LandmarkStudentConfig,
                                   is_landmark_config)
from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
from slsdk.models.student import StreamingStudent, StudentConfig
from slsdk.models.torchfile import load_torch_file

__all__ = ["FORMAT", "VERSION", "KINDS", "CheckpointError", "create_model", "build_model", "load_checkpoint",
           "model_from_checkpoint", "load_model"]

FORMAT = "slsdk-checkpoint"
VERSION = 1
KINDS = ("teacher", "student")


def _teacher(config: Mapping[str, Any]):
    if is_landmark_config(dict(config)):
        return LandmarkRecognizer(LandmarkConfig.from_dict(dict(config)))
    return CSLRRecognizer(RecognizerConfig.from_dict(dict(config)))


def _student(config: Mapping[str, Any]):
    if is_fusion_config(dict(config)):
        return FusionStudent(FusionStudentConfig.from_dict(dict(config)))
    if is_landmark_config(dict(config)):
        return LandmarkStudent(LandmarkStudentConfig.from_dict(dict(config)))
    return StreamingStudent(StudentConfig.from_dict(dict(config)))


_BUILDERS = {"teacher": _teacher, "student": _student}


def create_model(kind: str, config: Mapping[str, Any]):
    """The model of ``kind`` ("teacher" or "student") built from its config dict (random weights)."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown model kind {kind!r} (expected one of {KINDS})")
    return _BUILDERS[kind](config)


build_model = create_model  # the older name


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    kind: str | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint with ``torch.load(weights_only=True)``, after the bounded checks of
    :func:`slsdk.models.torchfile.load_torch_file` (storage sizes against the record sizes and the cap, no
    compressed storage records, no code in the pickle).

    Errors name the file: :class:`FileNotFoundError` if missing, :class:`CheckpointError` if truncated,
    corrupt, hostile, not an slsdk checkpoint, of a newer format version, or not of ``kind`` (when given).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (expected e.g. {path / 'best.pt'})")

    ckpt = load_torch_file(path, error=CheckpointError, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:

        got = (f"keys {sorted(reprlib.repr(k) for k in list(ckpt)[:1000])[:8]}" if isinstance(ckpt, dict)
               else f"a {type(ckpt).__name__}")
        raise CheckpointError(f"{path}: not an slsdk checkpoint (expected 'format': {FORMAT!r}, got {got})")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this slsdk "
                              f"supports ({VERSION}); upgrade slsdk")
    for key in ("kind", "config", "vocab", "model"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: slsdk checkpoint lacks the {key!r} entry")
    if ckpt["kind"] not in KINDS:
        raise CheckpointError(f"{path}: unknown model kind {ckpt['kind']!r} (expected one of {KINDS})")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{path}: is a {ckpt['kind']} checkpoint, expected a {kind} checkpoint")
    return ckpt


def _vocab_of(ckpt: Mapping[str, Any], path: Path | str):

    try:
        return Vocabulary(ckpt["vocab"])
    except VocabularyError as e:
        raise CheckpointError(f"{path}: bad vocabulary in checkpoint: {e}") from None


def model_from_checkpoint(ckpt: Mapping[str, Any], path: str | Path = "checkpoint"):
    """(model in eval mode, Vocabulary, kind) from an already loaded checkpoint dict."""
    vocab = _vocab_of(ckpt, path)
    kind = ckpt["kind"]
    num_classes = ckpt["config"].get("num_classes")
    if num_classes is not None and int(num_classes) != len(vocab):
        raise CheckpointError(f"{path}: model has {num_classes} classes but the checkpoint vocabulary has "
                              f"{len(vocab)} entries (incl. blank)")
    try:
        model = create_model(kind, ckpt["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot build the {kind} model from the stored config: {e}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the {kind} model built from its config: "
                              f"{str(e).splitlines()[0]}") from None
    return model.eval(), vocab, kind


def load_model(path: str | Path, map_location: str | torch.device = "cpu", kind: str | None = None):
    """Load a checkpoint and build its model: returns ``(model.eval(), Vocabulary, kind)``."""
    ckpt = load_checkpoint(path, map_location=map_location, kind=kind)
    return model_from_checkpoint(ckpt, path)
