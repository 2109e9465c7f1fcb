"""Stand-in for torchvision.transforms: names exist so `import open_clip` works; using them raises."""
from enum import Enum

from . import functional  # noqa: F401


class InterpolationMode(Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            f"torchvision.transforms.{type(self).__name__} is not available: tests/stubs/torchvision is a "
            "stand-in that only lets open_clip's model code import")


class Normalize(_Unavailable): pass
class Compose(_Unavailable): pass
class RandomResizedCrop(_Unavailable): pass
class ToTensor(_Unavailable): pass
class Resize(_Unavailable): pass
class CenterCrop(_Unavailable): pass
class ColorJitter(_Unavailable): pass
class Grayscale(_Unavailable): pass
