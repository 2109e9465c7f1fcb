"""slsdk: continuous sign language recognition from training to phones.

`import slsdk` stays light (no torch, no onnxruntime): every public name loads its module on first use, so
``slsdk.Recognizer`` on an onnx bundle works in an install without torch (``pip install slsdk[runtime]``).
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Recognizer": ("slsdk.runtime.api", "Recognizer"),
    "recognize_video": ("slsdk.runtime.api", "recognize_video"),
    "Stream": ("slsdk.runtime.api", "Stream"),
    "RecognitionResult": ("slsdk.runtime.api", "RecognitionResult"),
    "TrainServeSkewWarning": ("slsdk.runtime.api", "TrainServeSkewWarning"),
    "open_backend": ("slsdk.runtime.backends", "open_backend"),
    "load_bundle": ("slsdk.bundle", "load_bundle"),
    "TARGETS": ("slsdk.targets", "TARGETS"),
    "Preprocess": ("slsdk.preprocess", "Preprocess"),
    "read_video": ("slsdk.data.video", "load_video"), "iter_frames": ("slsdk.data.video", "iter_frames"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'slsdk' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
