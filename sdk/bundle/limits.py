"""The bundle format's constants and bounds, its error type, and the small value predicates every check uses.

Standard library only: runtimes load bundles without torch.
"""
from __future__ import annotations

import math

from slsdk.errors import SlsdkError

FORMAT = "slsdk-bundle"
# 2: input.resize_shorter + input.crop (the resize before the centre crop) and the real tensor dtypes of the
#    model file (a Core ML fp16 package returns float16). Version 1 bundles still load: their input section
#    gets the rule every v1 bundle was made with (shorter side to round(S * 256 / 224), centre crop).
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
INPUT_CROPS = ("center",)
INPUT_MODALITIES = ("frames", "landmarks", "fusion")
LANDMARK_COORDINATES = ("pixels", "normalized")
TENSOR_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8")
MANIFEST_NAME = "manifest.json"
MODEL_KINDS = ("student", "teacher")
STREAMING_MODES = ("streaming", "offline")

# What a manifest may say (every number is bounded, so nothing read from it can ask for a huge allocation).
LIMITS = {
    "manifest_bytes": 4 << 20,     # manifest.json size
    "zip_members": 10_000,         # entries in a bundle zip
    "zip_central_dir_bytes": 16 << 20,
    "files": 10_000,               # entries of manifest.files
    "file_bytes": 1 << 40,         # one listed file
    "vocab": 100_000,              # vocabulary entries (incl. blank)
    "gloss_chars": 256,            # characters of one gloss
    "image_side": 4096,            # input height / width
    "resize_shorter": 8192,
    "fps": 1000.0,
    "chunk_frames": 4096,          # streaming chunk / shift / look-ahead frames
    "output_stride": 64,
    "frames": 1 << 20,             # offline frames_range
    "seconds": 3600.0,             # frame_shift_s, algorithmic_latency_s
    "dim": 1 << 20,                # one tensor dimension
    "tensor_elements": 1 << 26,    # elements of one state / io tensor with static shape
    "tensors": 256,                # inputs / outputs / states
    "batch": 4096,                 # streams in one model call (streaming.max_batch, streaming.batch_sizes)
    "batch_sizes": 16,             # entries of streaming.batch_sizes
    "abs_value": 1e6,              # mean, std, value_range
    "landmark_points": 4096,       # points of a landmark layout (one part's source ids too)
}
TEXT_CHARS = 1000         # a fidelity text, a top-level string
NAME_CHARS = 256          # a tensor name
SHORT_TEXT_CHARS = 16     # input.layout, input.colour
MAX_DIMS = 8              # dimensions of one tensor shape
DIM_NAME_CHARS = 64       # a symbolic dimension's name

# The fidelity figures other code reads (bench, demos, inspect): numbers, flags and texts of known type; any other
# key holds a number, a flag, a short text, null, or an object / list (only shown as JSON).
FIDELITY_NUMBERS = ("max_abs_err", "mean_abs_err", "cosine", "min_cosine", "argmax_agreement", "frames", "videos",
                    "wer", "wer_torch", "wer_delta", "hyp_agreement", "wer_budget")
FIDELITY_FLAGS = ("finite", "meets_int8_budget")
FIDELITY_TEXTS = ("status", "reason", "reference", "mode", "runtime")
FIDELITY_ABS = 1e12       # bound of a fidelity number


class BundleError(SlsdkError, ValueError):
    """A bundle or its manifest is malformed, tampered with, or unsafe (the message names the file)."""


def posint(x) -> bool:
    """A positive integer (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def int_in(x, lo, hi) -> bool:
    """An integer (not a bool) in ``lo..hi``."""
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def num_in(x, lo, hi) -> bool:
    """A finite int or float (not a bool) in ``[lo, hi]``."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and lo <= x <= hi


def short(v, n: int = 60) -> str:
    """``repr(v)`` cut to ``n`` characters (messages never echo a huge value)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."
