"""Models: the CLIP backbone, AdaptSign / CLIP-SLA frame encoders, the CSLR teacher and the edge student."""
from __future__ import annotations

from slsdk.models.clip import CLIPVisionConfig, VisionTransformer, get_config, list_models, register_config


def load_clip_visual(path_or_name, config=None, **kwargs):
    """Load a CLIP image tower from a registered name or an OpenAI / open_clip / Hugging Face file."""
    from slsdk.models.clip_loaders import load_clip_visual as _load

    return _load(path_or_name, config=config, **kwargs)


def import_adaptsign(ckpt_path, gloss_dict_path, **kwargs):
    """A published AdaptSign checkpoint + gloss_dict.npy as an slsdk teacher: returns ``(model, vocab)``."""
    from slsdk.models.adaptsign_import import import_adaptsign as _import

    return _import(ckpt_path, gloss_dict_path, **kwargs)


def __getattr__(name: str):
    """Lazy access to the heavier model modules (teacher, student, frame encoders)."""
    import importlib

    where = {"FrameEncoderConfig": "adapters", "FrameEncoder": "adapters", "build_frame_encoder": "adapters",
             "SequenceModel": "sequence", "cslr_losses": "sequence", "RecognizerConfig": "recognizer",
             "CSLRRecognizer": "recognizer", "StudentConfig": "student", "StreamingStudent": "student"}
    if name in where:
        return getattr(importlib.import_module(f"slsdk.models.{where[name]}"), name)
    raise AttributeError(f"module 'slsdk.models' has no attribute {name!r}")


__all__ = ["CLIPVisionConfig", "VisionTransformer", "get_config", "list_models", "register_config",
           "load_clip_visual", "import_adaptsign", "FrameEncoderConfig", "FrameEncoder", "build_frame_encoder",
           "SequenceModel", "cslr_losses", "RecognizerConfig", "CSLRRecognizer", "StudentConfig", "StreamingStudent"]
