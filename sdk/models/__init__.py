"""Models: the CLIP backbone, AdaptSign / CLIP-SLA frame encoders, the CSLR teacher and the edge student.

The names below are the teacher's side; the rest comes from its module: the student from
:mod:`slsdk.models.student`, checkpoints from :mod:`slsdk.models.factory` (and their
:class:`~slsdk.models.errors.CheckpointError`), reading CLIP files from :mod:`slsdk.models.clip_files`.
"""
from __future__ import annotations

from slsdk.models.adapters import FrameEncoder, FrameEncoderConfig, build_frame_encoder
from slsdk.models.adaptsign_import import import_adaptsign
from slsdk.models.clip import CLIPVisionConfig, VisionTransformer, get_config, list_models, register_config
from slsdk.models.clip_loaders import load_clip_visual
from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
from slsdk.models.sequence import SequenceModel, cslr_losses

__all__ = ["CLIPVisionConfig", "VisionTransformer", "get_config", "list_models", "register_config",
           "load_clip_visual", "import_adaptsign", "FrameEncoderConfig", "FrameEncoder", "build_frame_encoder",
           "SequenceModel", "cslr_losses", "RecognizerConfig", "CSLRRecognizer"]
