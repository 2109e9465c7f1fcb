"""Host runtime: frame sources, MediaPipe hand cropping, backends and the streaming recognizer.

The rooms (see docs/ARCHITECTURE.md): :mod:`~slsdk.runtime.recognizer` (the API: ``Recognizer``),
:mod:`~slsdk.runtime.stream` (one stream's state), :mod:`~slsdk.runtime.frontend` (resample -> crop -> preprocess),
:mod:`~slsdk.runtime.chunks` (the chunk runner), :mod:`~slsdk.runtime.feed` (the loop over a source, its threads),
:mod:`~slsdk.runtime.results` (what comes back), :mod:`~slsdk.runtime.api` (``recognize_video``); the hands:
:mod:`~slsdk.runtime.landmarker`, :mod:`~slsdk.runtime.hand_tracker`, :mod:`~slsdk.runtime.geometry`,
:mod:`~slsdk.runtime.crop`, :mod:`~slsdk.runtime.hand_model`, :mod:`~slsdk.runtime.overlay`.

Importing this package loads no heavy module: mediapipe, onnxruntime and executorch load on first use. Serving
imports only the bottom layer (targets table, numpy preprocessing, decode, bundle); the torch backend's
``open_checkpoint`` is the one door to the models.
"""
from __future__ import annotations

from slsdk.runtime.api import recognize_video
from slsdk.runtime.backends import BackendError, StreamingStep, open_backend, open_checkpoint, run_video
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.hand_model import resolve_hand_model
from slsdk.runtime.hand_tracker import HandCropper, make_crop_fn
from slsdk.runtime.landmarker import detect_hands
from slsdk.runtime.recognizer import Recognizer, TrainServeSkewWarning
from slsdk.runtime.results import RecognitionResult, Timing, Update, VideoRecognition
from slsdk.runtime.sources import CameraSource, FrameResampler, VideoFileSource
from slsdk.runtime.stream import Stream

__all__ = [
    "Recognizer", "Stream", "recognize_video", "RecognitionResult", "Update", "Timing", "VideoRecognition",
    "TrainServeSkewWarning", "HandCropper", "CropConfig", "detect_hands", "resolve_hand_model", "make_crop_fn",
    "VideoFileSource", "CameraSource", "FrameResampler", "open_backend", "BackendError", "StreamingStep",
    "run_video", "open_checkpoint",
]
