"""The base of every error a user can fix.

Each stage raises its own subclass (``BundleError``, ``AnnotationError``, ``VideoError``, ...), always with a
message that names the file (and line, for annotation files) and what to do, and keeps the builtin it replaced
as a second base (``class DatasetError(SlsdkError, ValueError)``) so callers catching ``ValueError`` still work.
The CLI (``slsdk.cli_common.run_stage``) prints such an error, or an ``OSError``, as one line without a traceback;
anything else is a bug and keeps its traceback, with a line asking to report it. Standard library only.
"""
from __future__ import annotations

__all__ = ["SlsdkError", "ConfigError", "MissingPackageError", "DeviceError"]


class SlsdkError(Exception):
    """An error the user can fix (bad input, a missing file, a refused overwrite): printed without a traceback."""


class ConfigError(SlsdkError, ValueError):
    """A setting out of its range (``--steps 0``, ``--image-size 0``): the message names it and the range."""


class MissingPackageError(SlsdkError, RuntimeError):
    """A stage needs an optional package that is not installed: the message names it and the pip extra."""


class DeviceError(SlsdkError, RuntimeError):
    """The requested device or distributed set-up is not available (``--device cuda`` without CUDA, torchrun)."""
