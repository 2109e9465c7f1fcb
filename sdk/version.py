"""slsdk's version: the package's ``__version__``, stamped into every bundle and named in the CLI's bug line."""
from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
