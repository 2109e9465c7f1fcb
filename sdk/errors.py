"""The base of every error a user can fix.

Each stage raises its own subclass (``BundleError``, ``AnnotationError``, ``VideoError``, ...), always with a
message that names the file (and line, for annotation files) and what to do. The CLI prints such an error as
one line without a traceback; anything else is a bug and keeps its traceback. Standard library only.
"""
from __future__ import annotations

__all__ = ["SlsdkError", "ConfigError"]


class SlsdkError(Exception):
    """An error the user can fix (bad input, a missing file, a refused overwrite): printed without a traceback."""


class ConfigError(SlsdkError, ValueError):
    """A setting out of its range (``--steps 0``, ``--image-size 0``): the message names it and the range."""
