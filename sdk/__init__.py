"""slsdk: continuous sign language recognition from training to phones.

`import slsdk` stays light: numpy, PyAV and the standard library; no torch, no onnxruntime, no MediaPipe (each is
imported when a backend or the hand landmarker first needs it). The names here are the torch-free public API, so
``slsdk.Recognizer`` on an onnx bundle works in an install without torch (``pip install slsdk[runtime]``):

* serving (``slsdk.runtime``): ``Recognizer``, ``Stream``, ``RecognitionResult``, ``recognize_video``,
  ``TrainServeSkewWarning``, ``open_backend``; the bundle reader ``load_bundle`` (``slsdk.bundle``);
* the targets table ``TARGETS``, the input transform ``Preprocess``, the video reader ``read_video`` (frames and
  presentation times) and ``iter_frames``.

The building stages import torch and live in their own packages: ``slsdk.models`` (CLIP, the teacher, the
students), ``slsdk.train`` (``train``, ``distill``, ``evaluate``), ``slsdk.quantize`` (int8 recipes) and
``slsdk.convert`` (``convert``: a checkpoint to a bundle for one target). Scoring and decoding are in
``slsdk.eval`` and ``slsdk.decode`` (numpy only).
"""
from __future__ import annotations

# first: modules loaded below read the version (from slsdk.version; the package name is still initialising)
from slsdk.version import __version__  # isort: skip
from slsdk.bundle import load_bundle
from slsdk.data.video import iter_frames
from slsdk.data.video import load_video as read_video
from slsdk.preprocess import Preprocess
from slsdk.runtime import (RecognitionResult, Recognizer, Stream, TrainServeSkewWarning, open_backend,
                           recognize_video)
from slsdk.targets import TARGETS

__all__ = ["__version__", "Recognizer", "recognize_video", "Stream", "RecognitionResult", "TrainServeSkewWarning",
           "open_backend", "load_bundle", "TARGETS", "Preprocess", "read_video", "iter_frames"]
