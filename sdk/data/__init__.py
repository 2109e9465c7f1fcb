"""slsdk.data: vocabulary, dataset readers, video I/O, augmentation, datasets and synthetic data."""
from __future__ import annotations

from .dataset import (VideoDataset, check_lengths, collate, conv_output_length, ctc_required_length,
                      min_input_length, pad_frames)
from .readers import (READERS, AnnotationError, Sample, read_csl_daily, read_folder, read_isharah,
                      read_phoenix2014, read_phoenix2014t, write_folder_annotations)
from .synthetic import (SignerSpec, SignSpec, generate_synthetic, load_spec, make_lexicon, make_plan, make_signer, preview,
                        render_sentence)
from .transforms import CLIP_MEAN, CLIP_STD, VideoTransform, eval_transform, resize_shorter, train_transform
from .video import VideoError, VideoInfo, iter_video, read_video, video_info, write_frames, write_video
from .vocab import BLANK, UNK, Vocabulary, VocabularyError

__all__ = [
    "BLANK", "UNK", "Vocabulary", "VocabularyError",
    "VideoError", "VideoInfo", "read_video", "iter_video", "video_info", "write_video", "write_frames",
    "Sample", "AnnotationError", "READERS", "read_folder", "read_phoenix2014", "read_phoenix2014t",
    "read_csl_daily", "read_isharah", "write_folder_annotations",
    "CLIP_MEAN", "CLIP_STD", "VideoTransform", "train_transform", "eval_transform", "resize_shorter",
    "VideoDataset", "collate", "check_lengths", "conv_output_length", "ctc_required_length",
    "min_input_length", "pad_frames",
    "generate_synthetic", "render_sentence", "make_lexicon", "make_plan", "make_signer", "load_spec", "preview",
    "SignSpec", "SignerSpec",
]
