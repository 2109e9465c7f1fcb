"""Teacher-training settings (``TrainConfig``, stored in every checkpoint) and what a run returns (``TrainResult``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from slsdk.data.dataset import PADDINGS, POLICIES
from slsdk.data.transforms import STYLES
from slsdk.decode import DEFAULT_BEAM
from slsdk.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")
KD_REDUCTIONS = ("masked", "reference")   # TrainConfig.kd_reduction (see slsdk.models.sequence.distillation_loss)


@dataclass
class TrainConfig:
    """Optimisation settings; stored in every checkpoint (``train_config``)."""

    epochs: int = 12
    batch_size: int = 8                 # global batch (divided evenly over DDP processes)
    lr: float = 1e-3
    weight_decay: float = 1e-4          # not applied to biases / norms / 1-D parameters
    optimizer: str = "adamw"            # adamw | adam | sgd (momentum 0.9)
    schedule: str = "cosine"            # cosine | step | constant, after a linear warmup
    warmup_steps: int = 0
    step_epochs: int = 5                # step schedule: multiply by step_gamma every step_epochs epochs
    step_milestones: list | None = None  # step schedule at these epochs instead (AdaptSign: [20, 30])
    step_gamma: float = 0.2
    min_lr_ratio: float = 0.0           # cosine floor as a fraction of lr
    amp: bool = True                    # autocast (+ GradScaler for fp16) on CUDA; ignored elsewhere
    amp_dtype: str = "bf16"             # bf16 | fp16 (bf16 falls back to fp16 where unsupported)
    grad_checkpointing: bool = False    # recompute frame-encoder activations in backward
    grad_clip: float = 1.0              # max grad norm; 0 = off
    ema_decay: float = 0.0              # > 0: evaluate, keep and ship an exponential moving average of the trained
                                        # weights (e.g. 0.99); 0 = the last step's weights
    seed: int = 0
    deterministic: bool = False         # torch's deterministic algorithms (+ cuDNN/cuBLAS settings): repeatable
                                        # runs on one machine and software stack, somewhat slower on GPU
    num_workers: int = 0
    device: str = "auto"                # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    unfreeze_backbone: bool = False     # train the CLIP tower too
    freeze_bn: bool = False             # BatchNorm in eval mode (running stats) while training
    sync_bn: bool = True                # SyncBatchNorm under DDP on CUDA
    augment: bool = True                # train-time augmentation (random crop/flip/temporal scaling)
    flip: bool = True                   # augmentation: random horizontal flip (off for handedness-sensitive signs)
    temporal_scale: float = 0.2         # augmentation: random temporal rescale by +-this fraction
    spatial_scale: float = 0.0          # augmentation: random zoom by 1 +- this (signers nearer / farther)
    max_frames: int | None = None       # cap decoded frames per video
    eval_decoder: str = "greedy"        # dev WER decoding each epoch: greedy | beam
    eval_beam: int = DEFAULT_BEAM
    loss_weights: dict = field(default_factory=dict)   # cslr_losses weights (seq_ctc, conv_ctc, distill)
    kd_temperature: float = 8.0         # temperature of the distill term (conv branch <- sequence branch)
    kd_reduction: str = "masked"        # distill term: masked (per-sample mean over valid frames; ours) |
                                        # reference (mean over every T'xB row incl. padding, as AdaptSign/VAC)
    encoder_trainable: list[str] | None = None  # frame-encoder parameters that train (fnmatch patterns on names
                                        # under frame_encoder., e.g. "s_adapters.*"); the rest of the encoder is
                                        # frozen, everything outside it trains. None: the encoder's own rule
    encoder_masks_padding: bool = True  # the encoder's temporal modules ignore frames past each clip's length;
                                        # false: they see the whole padded batch (AdaptSign's released code)
    log_every: int = 10
    find_unused_parameters: bool = False
    compile: bool = False               # torch.compile the trained modules (first steps slower: compilation)
    channels_last: bool = True          # channels-last weights on CUDA for conv-based models (EfficientNet; not ViTs)
    persistent_workers: bool = True     # DataLoader workers kept across epochs (when num_workers > 0)
    data_style: str = "slsdk"           # slsdk | reference: AdaptSign's augmentation (crop, flip, rescale draws)
    padding: str = "zeros"              # zeros | reference: AdaptSign's collate (first/last-frame padding, counted)
    length_policy: str = "pad"          # clips too short for their label: pad | drop | error (reported first)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.amp_dtype not in ("bf16", "fp16"):
            raise ConfigError(f"amp_dtype must be bf16 or fp16, got {self.amp_dtype!r}")
        if self.eval_decoder not in ("greedy", "beam"):
            raise ConfigError(f"eval_decoder must be greedy or beam, got {self.eval_decoder!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.ema_decay == 0 or 0 < self.ema_decay < 1):
            raise ConfigError(f"ema_decay must be 0 (off) or in (0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.spatial_scale < 1.0:
            raise ConfigError(f"spatial_scale must be in [0, 1) (0: off), got {self.spatial_scale}")
        if self.spatial_scale and self.data_style == "reference":
            raise ConfigError("spatial_scale is slsdk's augmentation: data_style 'reference' keeps AdaptSign's own")
        if self.kd_reduction not in KD_REDUCTIONS:
            raise ConfigError(f"kd_reduction must be one of {KD_REDUCTIONS}, got {self.kd_reduction!r}")
        for name, allowed in (("data_style", STYLES), ("padding", PADDINGS), ("length_policy", POLICIES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.kd_temperature > 0:
            raise ConfigError(f"kd_temperature must be > 0, got {self.kd_temperature}")
        if self.encoder_trainable is not None:
            pats = self.encoder_trainable
            if isinstance(pats, str) or not all(isinstance(p, str) and p for p in pats):
                raise ConfigError(f"encoder_trainable must be a list of parameter-name patterns, got {pats!r}")
            self.encoder_trainable = list(pats)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """What a training run wrote and measured (distillation's result extends it)."""

    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict]
    dev_wer: float | None           # best dev WER (%) over the epochs; None without a dev split
    out_dir: Path | None = None

    def summary(self) -> str:
        w = "n/a" if self.dev_wer is None else f"{self.dev_wer:.2f}%"
        return f"best dev WER {w} after {len(self.history)} epoch(s); best checkpoint {self.best_checkpoint}"


__all__ = ["OPTIMIZERS", "SCHEDULES", "KD_REDUCTIONS", "TrainConfig", "TrainResult"]
