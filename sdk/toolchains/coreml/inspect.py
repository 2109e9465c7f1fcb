"""What a Core ML package says about itself: nothing is read here (coremltools validates the package at
conversion, and no Core ML runtime runs on Linux)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["model_signature"]


def model_signature(path: Path) -> dict | None:
    """None: a ``.mlpackage`` is not read back when a bundle is checked."""
    return None
