"""Stand-in for torchvision.ops (see tests/stubs/README.md)."""
from . import misc  # noqa: F401
