"""slsdk: continuous sign language recognition from training to phones.

`import slsdk` stays light: torch-heavy and exporter modules load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Recognizer": ("slsdk.runtime.api", "Recognizer"),
    "recognize_video": ("slsdk.runtime.api", "recognize_video"),
    "load_bundle": ("slsdk.bundle", "load_bundle"),
    "read_video": ("slsdk.data.video", "load_video"), "iter_frames": ("slsdk.data.video", "iter_frames"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'slsdk' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
