"""slsdk.data: vocabulary, dataset readers and splits, video I/O, augmentation, datasets and synthetic data.

Names are imported on first use, so reading annotation files (``slsdk data show``, the CLI's choices) needs
no torch; the torch datasets and transforms load when first asked for.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "dataset": ["VideoDataset", "check_lengths", "collate", "conv_output_length", "ctc_required_length",
                "min_input_length", "pad_frames"],
    "readers": ["READERS", "AnnotationError", "Sample", "read_csl_daily", "read_folder", "read_isharah",
                "read_phoenix2014", "read_phoenix2014t", "write_folder_annotations", "require_labels"],
    "splits": ["LAYOUTS", "Layout", "get_layout", "read_split", "has_split", "list_splits", "resolve_datasets"],
    "synthetic": ["SignerSpec", "SignSpec", "generate_synthetic", "load_spec", "make_lexicon", "make_plan",
                  "make_signer", "preview", "render_sentence"],
    "transforms": ["CLIP_MEAN", "CLIP_STD", "VideoTransform", "eval_transform", "resize_shorter", "train_transform"],
    "video": ["VideoError", "VideoInfo", "iter_video", "read_video", "video_info", "write_frames", "write_video"],
    "vocab": ["BLANK", "UNK", "Vocabulary", "VocabularyError"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'slsdk.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
