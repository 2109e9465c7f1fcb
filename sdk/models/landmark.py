"""Landmark models: a per-frame encoder over the 86 normalised pose points (Isharah's kit layout, right hand 21,
left hand 21, outer lips 19, upper body 25; ``slsdk.landmarks.pose86_spec()``) feeding the teacher's
sequence model (:class:`LandmarkRecognizer`), and a streaming student with explicit state
(:class:`LandmarkStudent`) on the same causal head as the RGB students.

Inputs are landmarks ``[B, T, P, 2]`` already normalised per frame (``slsdk.landmarks.normalize_pose86``: each part relative to
its first point, shifted to its minimum, scaled to +-0.5; the manifest names this ``isharah-pose86``). The frame
encoder is a per-frame MLP (``encoder="mlp"``) or a small graph convolution over a chain of the points
(``encoder="gcn"``: one learned mixing of each point with its neighbours, then the MLP); both are plain linear
layers, so every int8 recipe quantizes them.

The student's streaming contract is the RGB student's: ``step(landmarks [B, C, P, 2], state) -> (log_probs
[B, C/4, V], state)`` with ``state = [conv1_cache, conv2_cache, h, c]``; a sequence fed chunk by chunk gives the
log-probs of feeding it whole. Configs are dataclasses with ``modality = "landmarks"``; the model factory builds
these classes from a checkpoint whose config says so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slsdk.errors import ConfigError
from slsdk.models.sequence import SequenceModel
from slsdk.models.student import OUTPUT_STRIDE, StreamingCTCStudent, StreamingHead

__all__ = ["MODALITY", "NORMALISATION", "POINT_LAYOUT", "LANDMARK_ENCODERS", "LandmarkEncoderConfig",
           "LandmarkFrameEncoder", "LandmarkConfig", "LandmarkRecognizer", "LandmarkStudentConfig",
           "LandmarkStudent", "is_landmark_config"]

MODALITY = "landmarks"
NORMALISATION = "isharah-pose86"     # slsdk.data.landmarks.normalize_pose86
POINT_LAYOUT = "pose86"              # slsdk.data.landmarks.pose86_spec()
LANDMARK_ENCODERS = ("mlp", "gcn")


def is_landmark_config(config) -> bool:
    """Whether a model config (dataclass or dict) describes a landmark model."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    return get("modality", None) == MODALITY


@dataclass
class LandmarkEncoderConfig:
    """The per-frame landmark encoder's shape."""

    points: int = 86
    dims: int = 2
    encoder: str = "mlp"     # mlp | gcn
    width: int = 256         # hidden width of the MLP
    feature_dim: int = 256   # output features per frame
    dropout: float = 0.1

    def check(self) -> None:
        if self.encoder not in LANDMARK_ENCODERS:
            raise ConfigError(f"landmark encoder must be one of {LANDMARK_ENCODERS}, got {self.encoder!r}")
        for name in ("points", "dims", "width", "feature_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"landmark {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"landmark dropout must be in [0, 1), got {self.dropout}")


class LandmarkFrameEncoder(nn.Module):
    """``[N, P, D]`` normalised points -> ``[N, feature_dim]``: (graph mixing over a chain of points) + MLP."""

    def __init__(self, cfg: LandmarkEncoderConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.output_dim = int(cfg.feature_dim)
        p, d = int(cfg.points), int(cfg.dims)
        self.graph = None
        if cfg.encoder == "gcn":
            # a learned point-to-point mixing initialised to "self + chain neighbours" (one graph conv layer)
            adj = torch.eye(p) + torch.diag(torch.ones(p - 1), 1) + torch.diag(torch.ones(p - 1), -1)
            self.graph = nn.Linear(p, p, bias=False)
            with torch.no_grad():
                self.graph.weight.copy_(adj / adj.sum(1, keepdim=True))
        self.fc1 = nn.Linear(p * d, cfg.width)
        self.fc2 = nn.Linear(cfg.width, cfg.feature_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.graph is not None:
            x = x + self.graph(x.transpose(1, 2)).transpose(1, 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return F.relu(self.fc2(x))


def _encode(encoder: nn.Module, landmarks: torch.Tensor) -> torch.Tensor:
    """``[B, T, P, D]`` -> ``[B, T, F]``."""
    b, t = landmarks.shape[:2]
    return encoder(landmarks.reshape(b * t, *landmarks.shape[2:])).reshape(b, t, -1)


def _encoder_config(cfg) -> LandmarkEncoderConfig:
    return LandmarkEncoderConfig(cfg.points, cfg.dims, cfg.encoder, cfg.width, cfg.feature_dim, cfg.dropout)


class _ConfigDict:
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ------------------------------------------------------------------------------------------ the teacher
@dataclass
class LandmarkConfig(_ConfigDict):
    """Everything needed to rebuild a :class:`LandmarkRecognizer` (serialised into checkpoints)."""

    num_classes: int = 2
    modality: str = MODALITY
    layout: str = POINT_LAYOUT
    normalisation: str = NORMALISATION
    points: int = 86
    dims: int = 2
    encoder: str = "mlp"
    width: int = 256
    feature_dim: int = 256
    dropout: float = 0.1
    hidden: int = 256
    conv_type: str = "K5-P2-K5-P2"
    fps: float = 30.0

    def __post_init__(self):
        if self.modality != MODALITY:
            raise ConfigError(f"a landmark model's modality is {MODALITY!r}, got {self.modality!r}")
        _encoder_config(self).check()
        if int(self.num_classes) < 2 or int(self.hidden) < 2 or int(self.hidden) % 2:
            raise ConfigError(f"num_classes must be >= 2 and hidden an even number >= 2, got {self.num_classes}, "
                              f"{self.hidden}")


class LandmarkRecognizer(nn.Module):
    """Landmarks ``[B, T, P, 2]`` + lengths -> the teacher's sequence outputs (conv + BiLSTM + CTC/VAC head)."""

    modality = MODALITY

    def __init__(self, cfg: LandmarkConfig | None = None):
        super().__init__()
        cfg = cfg or LandmarkConfig()
        self.config = cfg
        self.frame_encoder = LandmarkFrameEncoder(_encoder_config(cfg))
        self.sequence = SequenceModel(self.frame_encoder.output_dim, cfg.hidden, cfg.num_classes, cfg.conv_type)

    def set_trainable(self, backbone: bool = False) -> "LandmarkRecognizer":
        return self.requires_grad_(True)

    def frame_features(self, landmarks: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return _encode(self.frame_encoder, landmarks)

    def forward(self, landmarks: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if lengths is None:
            lengths = torch.full((landmarks.shape[0],), landmarks.shape[1], dtype=torch.long)
        return self.sequence(self.frame_features(landmarks, lengths), lengths)

    def log_probs(self, landmarks: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(landmarks, lengths)["sequence_logits"].log_softmax(-1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return SequenceModel.output_length(lengths, self.config.conv_type)


# ------------------------------------------------------------------------------------------ the student
@dataclass
class LandmarkStudentConfig(_ConfigDict):
    """Shape of the streaming landmark student; serialised into checkpoints and bundle manifests."""

    num_classes: int = 2
    modality: str = MODALITY
    layout: str = POINT_LAYOUT
    normalisation: str = NORMALISATION
    points: int = 86
    dims: int = 2
    encoder: str = "mlp"
    width: int = 128
    feature_dim: int = 128
    dropout: float = 0.1
    hidden: int = 96         # with Isharah-2000's 1,133 classes: 0.33 M parameters, 1/14 of the Lite0 student
    chunk_frames: int = 8
    fps: float = 30.0

    def __post_init__(self):
        if self.modality != MODALITY:
            raise ConfigError(f"a landmark model's modality is {MODALITY!r}, got {self.modality!r}")
        _encoder_config(self).check()
        if self.chunk_frames <= 0 or self.chunk_frames % OUTPUT_STRIDE:
            raise ConfigError(f"chunk_frames must be a positive multiple of {OUTPUT_STRIDE}, got {self.chunk_frames}")
        if int(self.num_classes) < 2 or int(self.hidden) < 1:
            raise ConfigError(f"num_classes must be >= 2 and hidden >= 1, got {self.num_classes}, {self.hidden}")

    @property
    def algorithmic_latency_s(self) -> float:
        return self.chunk_frames / self.fps


class LandmarkStudent(StreamingCTCStudent):
    """Landmark frame encoder + the causal streaming head (explicit state): the RGB student's contract
    (:class:`~slsdk.models.student.StreamingCTCStudent`) with landmarks ``[B, T, P, 2]`` for frames."""

    modality = MODALITY
    input_name = "landmarks"

    def __init__(self, config: LandmarkStudentConfig):
        super().__init__()
        self.config = config
        self.encoder = LandmarkFrameEncoder(_encoder_config(config))
        self.head = StreamingHead(config.feature_dim, config.hidden, config.num_classes)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        c = self.config
        return (torch.zeros(1, c.chunk_frames, c.points, c.dims), *self.init_state(1))

    def encode_frames(self, landmarks: torch.Tensor) -> torch.Tensor:
        return _encode(self.encoder, landmarks)

    def int8_float_modules(self) -> list[str]:
        return []

    # -- initialisation --------------------------------------------------------------------------------------
    def load_pretrained(self) -> str | None:
        return None

    @torch.no_grad()
    def init_from_teacher(self, teacher: nn.Module) -> list[str]:
        """Copy the teacher's landmark encoder where the shapes are the same; returns the names copied."""
        src = getattr(teacher, "frame_encoder", None)
        if not isinstance(src, LandmarkFrameEncoder):
            return []
        copied = []
        mine = dict(self.encoder.named_parameters())
        for name, p in src.named_parameters():
            if name in mine and mine[name].shape == p.shape:
                mine[name].copy_(p)
                copied.append(name)
        return copied
