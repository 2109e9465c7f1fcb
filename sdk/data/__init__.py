"""slsdk.data: vocabulary, dataset readers and splits, video I/O, augmentation, datasets and synthetic data.

``import slsdk.data`` stays light (no torch): it holds the names that reading annotation files and videos needs
(``slsdk data show``, the CLI's choices, the runtime's video reader). The rest comes from its module:
the torch datasets from :mod:`slsdk.data.dataset`, the transforms from :mod:`slsdk.data.transforms`, the
synthetic data set from :mod:`slsdk.data.synthetic`, preparation from :mod:`slsdk.data.prepare`.
"""
from __future__ import annotations

from slsdk.data.readers import (READERS, AnnotationError, Sample, read_csl_daily, read_folder, read_isharah,
                                read_phoenix2014, read_phoenix2014t, require_labels, write_folder_annotations)
from slsdk.data.splits import LAYOUTS, Layout, get_layout, has_split, list_splits, read_split, resolve_datasets
from slsdk.data.video import VideoError, VideoInfo, iter_video, read_video, video_info, write_frames, write_video
from slsdk.data.vocab import BLANK, UNK, Vocabulary, VocabularyError

__all__ = ["BLANK", "LAYOUTS", "READERS", "UNK", "AnnotationError", "Layout", "Sample", "VideoError", "VideoInfo",
           "Vocabulary", "VocabularyError", "get_layout", "has_split", "iter_video", "list_splits", "read_csl_daily",
           "read_folder", "read_isharah", "read_phoenix2014", "read_phoenix2014t", "read_split", "read_video",
           "require_labels", "resolve_datasets", "video_info", "write_folder_annotations", "write_frames",
           "write_video"]
