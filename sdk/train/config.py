"""Teacher-training settings (``TrainConfig``, stored in every checkpoint) and what a run returns (``TrainResult``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from slsdk.decode import DEFAULT_BEAM
from slsdk.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")


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
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"                # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    unfreeze_backbone: bool = False     # train the CLIP tower too
    freeze_bn: bool = False             # BatchNorm in eval mode (running stats) while training
    sync_bn: bool = True                # SyncBatchNorm under DDP on CUDA
    augment: bool = True                # train-time augmentation (random crop/flip/temporal scaling)
    flip: bool = True                   # augmentation: random horizontal flip (off for handedness-sensitive signs)
    temporal_scale: float = 0.2         # augmentation: random temporal rescale by +-this fraction
    max_frames: int | None = None       # cap decoded frames per video
    eval_decoder: str = "greedy"        # dev WER decoding each epoch: greedy | beam
    eval_beam: int = DEFAULT_BEAM
    loss_weights: dict = field(default_factory=dict)   # cslr_losses weights (seq_ctc, conv_ctc, distill)
    log_every: int = 10
    find_unused_parameters: bool = False

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
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")

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


__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainConfig", "TrainResult"]
