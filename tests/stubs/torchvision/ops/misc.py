"""Stand-in for torchvision.ops.misc: FrozenBatchNorm2d is only used by open_clip's ResNet freezing."""


class FrozenBatchNorm2d:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision.ops.misc.FrozenBatchNorm2d is not available (tests/stubs stand-in)")
