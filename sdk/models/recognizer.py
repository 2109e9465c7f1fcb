"""The CSLR teacher: CLIP frame encoder (AdaptSign / CLIP-SLA) + sequence model (conv + BiLSTM + classifier)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from slsdk.errors import ConfigError
from slsdk.models.adapters import FrameEncoder, FrameEncoderConfig
from slsdk.models.clip import (CLIP_MEAN, CLIP_STD, CLIPVisionConfig, VisionTransformer, get_config,
                               interpolate_pos_embed, resize_config)
from slsdk.models.clip_loaders import load_clip_visual
from slsdk.models.sequence import SequenceModel


@dataclass
class RecognizerConfig:
    """Everything needed to rebuild a `CSLRRecognizer` (JSON-serialisable)."""

    backbone: str = "ViT-S/16-demo"          # registered CLIP config name (slsdk.models.list_models())
    backbone_weights: str | None = None      # file or name for slsdk.models.load_clip_visual; None = random
    image_size: int | None = None            # None = the backbone config's
    encoder: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    hidden: int = 1024
    num_classes: int = 389                   # vocabulary size incl. blank (Isharah-500: 388 glosses + blank)
    conv_type: str = "K5-P2-K5-P2"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    vision: dict | None = None               # explicit CLIPVisionConfig dict (e.g. inferred from imported
                                             # weights); overrides the `backbone` name
    weight_norm: bool = False                # weight-normalised shared classifier (imported AdaptSign)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = FrameEncoderConfig.from_dict(self.encoder)
        if self.image_size is not None and not 8 <= int(self.image_size) <= 4096:
            raise ConfigError(f"image_size must be a number of pixels in [8, 4096] (or unset: the backbone's), got "
                              f"{self.image_size}")
        for name in ("hidden", "num_classes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)

    def vision_config(self) -> CLIPVisionConfig:
        """The CLIP tower's shape: `vision` if given, else the registered `backbone` config."""
        return CLIPVisionConfig.from_dict(self.vision) if self.vision else get_config(self.backbone)

    @property
    def input_size(self) -> int:
        return self.image_size or self.vision_config().image_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RecognizerConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, s: str) -> "RecognizerConfig":
        return cls.from_dict(json.loads(s))


def build_backbone(cfg: RecognizerConfig) -> VisionTransformer:
    """The CLIP tower for `cfg`: loaded from `backbone_weights` if set, else randomly initialised."""
    vcfg = cfg.vision_config()
    if cfg.backbone_weights:
        vit = load_clip_visual(cfg.backbone_weights, config=vcfg)
    else:
        vit = VisionTransformer(vcfg)
    size = cfg.image_size or vit.config.image_size
    if size != vit.config.image_size:
        new_cfg = resize_config(vit.config, size)
        with torch.no_grad():
            pos = interpolate_pos_embed(vit.positional_embedding.data, new_cfg.grid ** 2)
        vit.positional_embedding = nn.Parameter(pos, requires_grad=vit.positional_embedding.requires_grad)
        vit.config = new_cfg
    return vit


class CSLRRecognizer(nn.Module):
    """videos [B, T, 3, H, W] (normalised), lengths [B] -> SequenceModel dict (time-major logits)."""

    def __init__(self, cfg: RecognizerConfig | None = None):
        super().__init__()
        cfg = cfg or RecognizerConfig()
        self.config = cfg
        self.frame_encoder = FrameEncoder(build_backbone(cfg), cfg.encoder)
        self.sequence = SequenceModel(self.frame_encoder.output_dim, cfg.hidden, cfg.num_classes, cfg.conv_type,
                                      weight_norm=cfg.weight_norm)

    def set_trainable(self, backbone: bool = False) -> "CSLRRecognizer":
        self.frame_encoder.set_trainable(backbone)
        self.sequence.requires_grad_(True)
        return self

    def frame_features(self, videos: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.frame_encoder(videos, lengths)

    def forward(self, videos: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if lengths is None:
            lengths = torch.full((videos.shape[0],), videos.shape[1], dtype=torch.long)
        return self.sequence(self.frame_features(videos, lengths), lengths)

    def log_probs(self, videos: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Sequence-branch CTC log-probabilities [T', B, V]."""
        return self.forward(videos, lengths)["sequence_logits"].log_softmax(-1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return SequenceModel.output_length(lengths, self.config.conv_type)


__all__ = ["RecognizerConfig", "CSLRRecognizer", "build_backbone", "CLIP_MEAN", "CLIP_STD"]
