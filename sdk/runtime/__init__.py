"""Host runtime: frame sources, MediaPipe hand cropping, backends and the streaming recognizer.

Heavy modules (mediapipe, onnxruntime, executorch) load on first use. Serving imports only the bottom layer
(targets table, numpy preprocessing, decode, bundle); the torch backend's ``open_checkpoint`` is the one door
to the models (see docs/ARCHITECTURE.md).
"""
from __future__ import annotations

_LAZY = {
    "Recognizer": "api", "Stream": "api", "recognize_video": "api", "RecognitionResult": "api",
    "HandCropper": "hands", "CropConfig": "hands", "detect_hands": "hands", "resolve_hand_model": "hands",
    "make_crop_fn": "hands", "VideoFileSource": "sources", "CameraSource": "sources", "FrameResampler": "sources",
    "open_backend": "backends", "BackendError": "backends", "StreamingStep": "backends", "run_video": "backends",
    "open_checkpoint": "backends", "Update": "api", "TrainServeSkewWarning": "api",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"slsdk.runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'slsdk.runtime' has no attribute {name!r}")


__all__ = list(_LAZY)
