"""The fusion student: hand-crop RGB frames and the 86 landmarks of the same frames, one streaming model.

Each frame goes through the RGB student's frame encoder (a registered student encoder, ``StudentConfig.encoder``:
``vit-tiny`` or ``efficientnet-lite0``, on the hand crop the runtime makes) and through the landmark student's
frame encoder (:class:`~slsdk.models.landmark.LandmarkFrameEncoder`, on the normalised 86 points,
``normalize_pose86``); the two feature vectors are concatenated and a linear projection maps them to the width
of the same causal :class:`~slsdk.models.student.StreamingHead` the other students use.

Why concatenation + a linear projection rather than a learned gate: it is one plain ``Linear`` (every int8
recipe quantizes it, no element-wise product of two activations whose int8 scales would have to agree), it lets
the head weigh every channel of either modality (a scalar or per-channel gate can only scale a modality as a
whole), and it costs ``(D_rgb + D_lm) x D`` weights. A frame whose hands are missing has all-zero hand points
after the normalisation (a part never seen stays zero), which the projection sees as it saw it in training.

The streaming contract is :class:`~slsdk.models.student.StreamingCTCStudent`'s with two data inputs:
``step((frames [B, C, 3, S, S], landmarks [B, C, P, 2]), state) -> (log_probs [B, C/4, V], state)``; the
export module is ``(frames, landmarks, conv1_cache, conv2_cache, h, c) -> (log_probs, *state)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slsdk.errors import ConfigError
from slsdk.models.clip import CLIP_MEAN, CLIP_STD
from slsdk.models.landmark import LandmarkEncoderConfig, LandmarkFrameEncoder, NORMALISATION, POINT_LAYOUT
from slsdk.models.student import StreamingCTCStudent, StreamingHead, StreamingStudent, StudentConfig, get_student

__all__ = ["MODALITY", "FusionStudentConfig", "FusionStudent", "is_fusion_config"]

MODALITY = "fusion"


def is_fusion_config(config) -> bool:
    """Whether a model config (dataclass or dict) describes a fusion model."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    return get("modality", None) == MODALITY


@dataclass
class FusionStudentConfig:
    """Shape of the fusion student; serialised into checkpoints and bundle manifests.

    The RGB branch's fields are :class:`~slsdk.models.student.StudentConfig`'s (``rgb_feature_dim`` its
    ``feature_dim``; ``None`` takes the encoder entry's default); ``landmark_*`` the landmark encoder's;
    ``feature_dim`` is the fused width the head takes (what feature distillation projects to the teacher)."""

    num_classes: int
    modality: str = MODALITY
    encoder: str = "vit-tiny"          # a registered RGB student frame encoder (list_students())
    image_size: int | None = None
    patch_size: int | None = None
    width: int | None = None
    layers: int | None = None
    heads: int | None = None
    rgb_feature_dim: int | None = None
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    act: str = "quick_gelu"
    freeze_blocks: int = 0
    layout: str = POINT_LAYOUT
    normalisation: str = NORMALISATION
    points: int = 86
    dims: int = 2
    landmark_encoder: str = "mlp"      # mlp | gcn
    landmark_width: int = 128
    landmark_feature_dim: int = 128
    dropout: float = 0.1               # the landmark encoder's dropout
    feature_dim: int = 128             # fused features per frame (the head's input)
    hidden: int = 192
    chunk_frames: int = 8
    fps: float = 25.0

    def __post_init__(self):
        if self.modality != MODALITY:
            raise ConfigError(f"a fusion model's modality is {MODALITY!r}, got {self.modality!r}")
        rgb = self.rgb_config          # validates the RGB fields and fills the entry's defaults back in
        for k in ("image_size", "patch_size", "width", "layers", "heads"):
            setattr(self, k, getattr(rgb, k))
        self.rgb_feature_dim = rgb.feature_dim
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.landmark_config.check()
        if int(self.feature_dim) < 1 or int(self.hidden) < 1 or int(self.num_classes) < 2:
            raise ConfigError(f"feature_dim and hidden must be >= 1 and num_classes >= 2, got {self.feature_dim}, "
                              f"{self.hidden}, {self.num_classes}")

    @property
    def rgb_config(self) -> StudentConfig:
        """The RGB branch as a :class:`StudentConfig` (what the registry's encoder builder takes)."""
        return StudentConfig(num_classes=self.num_classes, encoder=self.encoder, image_size=self.image_size,
                             patch_size=self.patch_size, width=self.width, layers=self.layers, heads=self.heads,
                             feature_dim=self.rgb_feature_dim, hidden=self.hidden, chunk_frames=self.chunk_frames,
                             fps=self.fps, mean=self.mean, std=self.std, act=self.act,
                             freeze_blocks=self.freeze_blocks)

    @property
    def landmark_config(self) -> LandmarkEncoderConfig:
        return LandmarkEncoderConfig(self.points, self.dims, self.landmark_encoder, self.landmark_width,
                                     self.landmark_feature_dim, self.dropout)

    @property
    def encoder_config(self):
        return self.rgb_config.encoder_config

    @property
    def algorithmic_latency_s(self) -> float:
        return self.chunk_frames / self.fps

    # serialised as the RGB student's config is (mean / std as lists; unknown keys ignored when read)
    to_dict = StudentConfig.to_dict
    from_dict = classmethod(StudentConfig.from_dict.__func__)

    @classmethod
    def from_student(cls, rgb: StudentConfig, **landmark) -> "FusionStudentConfig":
        """The fusion config whose RGB branch is ``rgb`` (its head width, chunking and fps), with ``landmark``
        overrides of the other fields."""
        d = rgb.to_dict()
        d["rgb_feature_dim"] = d.pop("feature_dim")
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**keep, **landmark})


class FusionStudent(StreamingCTCStudent):
    """RGB frame encoder + landmark frame encoder -> concat -> linear -> the causal streaming head."""

    modality = MODALITY
    input_name = "frames"

    def __init__(self, config: FusionStudentConfig):
        super().__init__()
        self.config = config
        self.encoder = get_student(config.encoder).build(config.rgb_config)   # the RGB branch (named as the RGB
        self.landmark_encoder = LandmarkFrameEncoder(config.landmark_config)  # student's, so its loaders apply)
        self.fuse = nn.Linear(int(config.rgb_feature_dim) + self.landmark_encoder.output_dim, int(config.feature_dim))
        self.head = StreamingHead(config.feature_dim, config.hidden, config.num_classes)

    @property
    def data_input_names(self) -> tuple[str, ...]:
        return ("frames", "landmarks")

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        c = self.config
        s = c.image_size
        return (torch.zeros(1, c.chunk_frames, 3, s, s), torch.zeros(1, c.chunk_frames, c.points, c.dims),
                *self.init_state(1))

    def encode_frames(self, x) -> torch.Tensor:
        """``(frames [B, T, 3, S, S], landmarks [B, T, P, D])`` -> fused features ``[B, T, feature_dim]``."""
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError("the fusion student takes (frames, landmarks)")
        frames, landmarks = x
        b, t = frames.shape[:2]
        if tuple(landmarks.shape[:2]) != (b, t):
            raise ValueError(f"frames {list(frames.shape[:2])} and landmarks {list(landmarks.shape[:2])} differ in "
                             "batch or frames")
        rgb = self.encoder(frames.reshape(b * t, *frames.shape[2:]))
        lm = self.landmark_encoder(landmarks.reshape(b * t, *landmarks.shape[2:]))
        return self.fuse(torch.cat([rgb, lm], dim=1)).reshape(b, t, -1)

    def int8_float_modules(self) -> list[str]:
        return [f"encoder.{name}" for name in get_student(self.config.encoder).int8_float]

    # -- initialisation (the RGB branch's, as the RGB student's) --------------------------------------------
    def load_pretrained(self) -> str | None:
        spec = get_student(self.config.encoder)
        return None if spec.load_pretrained is None else spec.load_pretrained(self.encoder)

    load_encoder = StreamingStudent.load_encoder
    init_from_teacher = StreamingStudent.init_from_teacher

