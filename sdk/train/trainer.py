"""Teacher training (single process or DDP under torchrun) and the loop machinery distillation reuses.

Guarantees:

* **Atomic checkpoints** every epoch (``last.pt``) and on a new best dev WER (``best.pt``).
* **Resume** (``resume=True``) continues from ``last.pt``: a kill loses at most the epoch in progress, and
  the finished run equals an uninterrupted one (every epoch's randomness is a function of
  ``(seed, epoch, rank)``: shuffling via ``DistributedSampler(seed).set_epoch``, augmentation via
  ``VideoDataset(seed).set_epoch``, torch/numpy/python RNGs re-seeded at each epoch start; optimizer,
  scheduler, AMP scaler, RNG states, best metric and history come back from the checkpoint).
* **DDP**: launched by ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the trainer joins the process group
  (gloo on CPU, nccl on CUDA) and wraps the model in ``DistributedDataParallel``; ``batch_size`` is the
  *global* batch (split evenly over processes), so N processes take the same steps as one process; each
  process decodes its share of the dev split, and only rank 0 writes files.
* Never prompts; an existing run in ``out_dir`` is an error unless ``resume`` or ``overwrite``.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from slsdk.data.splits import has_split as _has_split  # noqa: F401  (re-exported for older imports)
from slsdk.data.splits import read_split, resolve_datasets  # noqa: F401
from slsdk.models.torchfile import load_torch_file
from slsdk.train.checkpoint import (
    CheckpointError,
    is_checkpoint_file,
    check_vocab,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)

from slsdk.errors import SlsdkError
from slsdk.fileio import (OutputExistsError, append_text, atomic_copy, atomic_write_text, clean_stale, discard, is_ours, output_lock,
                          reading, remove)

OPTIMIZERS = ("adamw", "adam", "sgd")


class DivergedError(SlsdkError, FloatingPointError):
    """The loss became NaN or infinite (a learning rate far too high, or labels longer than their clips)."""
SCHEDULES = ("cosine", "step", "constant")


# ----------------------------------------------------------------------------------------------- config
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
    eval_beam: int = 10
    loss_weights: dict = field(default_factory=dict)   # cslr_losses weights (seq_ctc, conv_ctc, distill)
    log_every: int = 10
    find_unused_parameters: bool = False

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.amp_dtype not in ("bf16", "fp16"):
            raise ValueError(f"amp_dtype must be bf16 or fp16, got {self.amp_dtype!r}")
        if self.eval_decoder not in ("greedy", "beam"):
            raise ValueError(f"eval_decoder must be greedy or beam, got {self.eval_decoder!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict]
    dev_wer: float | None           # best dev WER (%) over the epochs; None without a dev split
    out_dir: Path | None = None

    def summary(self) -> str:
        w = "n/a" if self.dev_wer is None else f"{self.dev_wer:.2f}%"
        return f"best dev WER {w} after {len(self.history)} epoch(s); best checkpoint {self.best_checkpoint}"


def teacher_config(backbone: str = "ViT-S/16-demo", weights: str | None = None, variant: str = "adaptsign",
                   hidden: int = 256, num_classes: int = 2, image_size: int | None = None, **encoder):
    """A :class:`RecognizerConfig` from the few choices users make (num_classes is set from the data)."""
    from slsdk.models.adapters import FrameEncoderConfig
    from slsdk.models.recognizer import RecognizerConfig

    return RecognizerConfig(backbone=backbone, backbone_weights=weights, image_size=image_size,
                            encoder=FrameEncoderConfig(variant=variant, **encoder), hidden=hidden,
                            num_classes=num_classes)


# ----------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda (the local rank's GPU) > mps > cpu."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def seed_everything(seed: int) -> None:
    seed = int(seed) % (2 ** 31)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101 + 17) % (2 ** 31)


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created: bool = False       # we called init_process_group (and destroy it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise single process."""
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but ${var} is not set; launch with torchrun")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    use_cuda = torch.cuda.is_available() and device not in ("cpu", "mps")
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://", rank=rank, world_size=world)
    return DistEnv(rank, world, local, True)


def _make_console(enabled: bool):
    from rich.console import Console

    return Console(stderr=True, quiet=not enabled, highlight=False)


def _progress(console, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                    disable=not enabled, transient=False)


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = max(0, int(cfg.warmup_steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "step":
            epoch = step // max(1, steps_per_epoch)
            if cfg.step_milestones:
                return cfg.step_gamma ** sum(epoch >= m for m in cfg.step_milestones)
            return cfg.step_gamma ** (epoch // max(1, cfg.step_epochs))
        p = min(1.0, (step - warm) / max(1, total - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def build_optimizer(params: Sequence[tuple[str, nn.Parameter]], cfg: TrainConfig, lr: float | None = None):
    lr = cfg.lr if lr is None else lr
    decay = [p for n, p in params if p.ndim >= 2 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and not n.endswith(".bias"))]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def _set_bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _config_diff(a: Mapping, b: Mapping) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} (checkpoint) vs {b.get(k)!r} (now)" for k in keys
            if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(b.get(k), sort_keys=True, default=str)]


def _write_jsonl(path: Path, rows: Sequence[dict], append: bool) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if append:
        append_text(path, text)
    else:
        atomic_write_text(path, text)


RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "vocab.json", "report.json")


def _checkpoint_epoch(path: Path, want: str = "epoch"):
    """The epoch (or ``want``: "kind") an slsdk checkpoint records, read lazily; None if it is not one."""
    try:
        ckpt = load_torch_file(path, mmap=True)      # bounded checks first
    except Exception:  # noqa: BLE001 - unreadable / not a torch zip / refused: not a usable checkpoint
        return None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "slsdk-checkpoint":
        return None
    return int(ckpt.get("epoch", -1)) if want == "epoch" else ckpt.get(want)


def _check_run_folder(out: Path, resume: bool, overwrite: bool, kind: str | None = None) -> None:
    """Refuse to write a run into a folder that holds another one unless --resume / --overwrite says how, and
    refuse in every case when a run file there is not one slsdk wrote (a user's vocab.json, metrics.jsonl)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputExistsError(f"{out}: is a file or a link, not a folder; choose another --out folder for the run")
    present = [n for n in RUN_FILES if (out / n).exists() or (out / n).is_symlink()]
    foreign = [n for n in present if not is_ours(out / n, is_checkpoint_file if n.endswith(".pt") else None)]
    if foreign:
        raise OutputExistsError(f"{out}: holds {', '.join(foreign)}, which slsdk did not write; slsdk never replaces "
                                "them: move them away or choose another --out folder")
    if not present or resume:
        return
    if not overwrite:
        last = out / "last.pt"
        done = _checkpoint_epoch(last) if last.is_file() else None
        what = f"a run ({last}, {done} epoch(s) done)" if done is not None else f"run files ({', '.join(present)})"
        raise OutputExistsError(f"{out} already holds {what}; pass --resume (resume=True) to continue it, "
                                f"--overwrite (overwrite=True) to start over (replaces {', '.join(present)} only), "
                                "or choose another --out folder")
    for n in ("last.pt", "best.pt"):   # an overwritten run must never be resumed by mistake
        p = out / n
        if p.exists():
            if not p.is_file() or _checkpoint_epoch(p) is None:
                raise OutputExistsError(f"{p}: is not an slsdk checkpoint; slsdk does not overwrite it (move it "
                                        "away or choose another --out folder)")
            other = _checkpoint_epoch(p, "kind")
            if kind is not None and other != kind:
                raise OutputExistsError(f"{p}: is a {other} checkpoint (another run); --overwrite replaces only a "
                                        f"{kind} run: choose another --out folder")
    for n in ("last.pt", "best.pt"):
        remove(out / n, owned=is_checkpoint_file)


def _reconcile_best(ckpt: dict, last_path: Path, best_path: Path, console) -> None:
    """Make best.pt agree with what last.pt records (best.pt is written before last.pt at each new best)."""
    want, done = ckpt.get("best_epoch"), int(ckpt.get("epoch", 0))
    if want is None:
        return
    have = _checkpoint_epoch(best_path) if best_path.is_file() else None
    if have == want:
        return
    if have is not None and have > done:
        console.print(f"[yellow]note[/]: {best_path} is from epoch {have}, ahead of {last_path} (epoch {done}): the "
                      "run stopped between the two writes; that epoch is trained again and both are rewritten")
        return
    if want == done:
        atomic_copy(last_path, best_path)
        console.print(f"[yellow]note[/]: {best_path} was {'stale' if have is not None else 'missing'}; rebuilt from "
                      f"{last_path} (epoch {done} is the best epoch {last_path} records)")
        return
    console.print(f"[yellow]warning[/]: {best_path} ({'epoch ' + str(have) if have is not None else 'missing'}) is not "
                  f"the best epoch {want} that {last_path} records, and its weights are gone; best.pt is rewritten "
                  "at the next improvement (or holds the last epoch when the run ends)")


# ----------------------------------------------------------------------------------------------- objective
class TeacherObjective(nn.Module):
    """What DDP wraps for teacher training: the recognizer and ``cslr_losses``."""

    def __init__(self, model: nn.Module, loss_weights: Mapping[str, float] | None = None,
                 grad_checkpointing: bool = False):
        super().__init__()
        self.model = model
        self.loss_weights = dict(loss_weights or {})
        self.grad_checkpointing = grad_checkpointing

    def forward(self, videos, lengths, labels, label_lengths) -> dict[str, torch.Tensor]:
        from slsdk.models.sequence import cslr_losses

        m = self.model
        if self.grad_checkpointing and self.training:
            feats = torch.utils.checkpoint.checkpoint(m.frame_features, videos, lengths, use_reentrant=False)
            out = m.sequence(feats, lengths)
        else:
            out = m(videos, lengths)
        return cslr_losses(out, labels, label_lengths, weights=self.loss_weights or None)


# ----------------------------------------------------------------------------------------------- the loop
@dataclass
class Job:
    """One training run for :func:`run_training` (teacher training and distillation both build one)."""

    kind: str                          # checkpoint kind: teacher | student
    model: nn.Module                   # saved as the checkpoint's "model"
    objective: nn.Module               # forward(videos, lengths, labels, label_lengths) -> losses incl. total
    model_config: dict
    vocab: Any
    train_samples: list
    dev_samples: list | None
    config: TrainConfig
    out_dir: Path
    dist: DistEnv
    device: torch.device
    aux: nn.Module | None = None       # extra trainable modules saved as "aux" (e.g. a projection)
    extra: dict = field(default_factory=dict)
    title: str = "train"
    output_length_fn: Callable[[int], int] | None = None   # CTC length check for the dataset (None: teacher's)
    train_input: tuple | None = None   # (size, mean, std) of training frames if not the model's (distillation)


def _load_state(job: Job, ckpt: dict, optimizer, scheduler, scaler, path: Path) -> None:
    try:
        job.model.load_state_dict(ckpt["model"])
        if job.aux is not None and ckpt.get("aux") is not None:
            job.aux.load_state_dict(ckpt["aux"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {str(e).splitlines()[0]}") from None
    if ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])


def run_training(job: Job, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 on_epoch_end: Callable[[dict], None] | None = None, console=None) -> TrainResult:
    """The epoch loop shared by :func:`train` and :func:`slsdk.train.distill.distill`.

    The main process holds :func:`slsdk.fileio.output_lock` on the run folder: a second run into it is refused.
    """
    if not job.dist.is_main:
        return _run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                             on_epoch_end=on_epoch_end, console=console)
    out = Path(job.out_dir)
    with output_lock(out, overwrite=resume or overwrite):
        fresh = not out.exists()
        try:
            return _run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                                 on_epoch_end=on_epoch_end, console=console)
        except BaseException:
            if fresh and not (out / "last.pt").exists():
                discard(out)      # a run that failed before its first checkpoint leaves no folder behind
            raise


def _run_training(job: Job, *, resume: bool, overwrite: bool, progress: bool,
                  on_epoch_end: Callable[[dict], None] | None, console) -> TrainResult:
    from slsdk.data import VideoDataset, collate
    from slsdk.data.vocab import Vocabulary
    from slsdk.train.evaluate import input_spec, predict, score
    from slsdk.train.plots import plot_history

    cfg, env, device, out = job.config, job.dist, job.device, Path(job.out_dir)
    main = env.is_main
    console = console or _make_console(main)
    last_path, best_path = out / "last.pt", out / "best.pt"
    metrics_path, plot_path = out / "metrics.jsonl", out / "curves.png"
    if main:
        _check_run_folder(out, resume, overwrite, job.kind)
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)          # temp files of a killed run into this folder (only slsdk's own names)

    # -- existing run ---------------------------------------------------------------------------------------
    ckpt = None
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, kind=job.kind)
        diff = _config_diff(ckpt["config"], job.model_config)
        if diff:
            raise CheckpointError(f"{last_path}: cannot resume, the model config differs: " + "; ".join(diff[:5]))
        Vocabulary(ckpt["vocab"]).check_compatible(job.vocab, where=f"resume checkpoint {last_path}")
    elif resume:
        console.print(f"[yellow]note[/]: resume requested but {last_path} does not exist; starting a new run")

    # -- data ------------------------------------------------------------------------------------------------
    if cfg.batch_size % env.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch and must divide evenly over "
                         f"{env.world_size} processes")
    per_proc = cfg.batch_size // env.world_size
    size, mean, std = input_spec(job.model)
    ds_kw = {"max_frames": cfg.max_frames}
    if job.output_length_fn is not None:
        ds_kw["output_length_fn"] = job.output_length_fn
    tsize, tmean, tstd = job.train_input or (size, mean, std)
    train_ds = VideoDataset(job.train_samples, job.vocab, tsize, tmean, tstd, train=cfg.augment, seed=cfg.seed,
                            flip=cfg.flip, temporal_scale=cfg.temporal_scale, **ds_kw)
    if train_ds.preparation is not None:  # `slsdk data prepare` settings travel with the checkpoint (train/serve skew)
        job.extra["preparation"] = train_ds.preparation
    sampler = torch.utils.data.DistributedSampler(train_ds, num_replicas=env.world_size, rank=env.rank,
                                                  shuffle=True, seed=cfg.seed, drop_last=False)
    loader_gen = torch.Generator()
    loader = torch.utils.data.DataLoader(train_ds, batch_size=per_proc, sampler=sampler, num_workers=cfg.num_workers,
                                         collate_fn=collate, pin_memory=device.type == "cuda", generator=loader_gen,
                                         persistent_workers=False)
    dev_loader = None
    if job.dev_samples:   # every process decodes its share (rank::world_size); rank 0 gathers and scores
        dev_ds = VideoDataset(job.dev_samples, job.vocab, size, mean, std, train=False, **ds_kw)
        dev_loader = torch.utils.data.DataLoader(dev_ds, batch_size=per_proc,
                                                 sampler=list(range(env.rank, len(dev_ds), env.world_size)),
                                                 num_workers=cfg.num_workers, collate_fn=collate)
    steps_per_epoch = len(loader)

    # -- model, optimiser -----------------------------------------------------------------------------------
    objective = job.objective.to(device)
    if env.enabled and device.type == "cuda" and cfg.sync_bn and not cfg.freeze_bn:
        objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    named = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    optimizer = build_optimizer(named, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch))
    use_amp = bool(cfg.amp) and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" and torch.cuda.is_available() and \
        torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    params = [p for _, p in named]

    start_epoch, step, best, best_epoch, history = 0, 0, None, None, []
    if ckpt is not None:
        _load_state(job, ckpt, optimizer, scheduler, scaler, last_path)
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        best, history = ckpt.get("best_metric"), list(ckpt.get("metrics_history") or [])
        best_epoch = ckpt.get("best_epoch")
        if main:
            _reconcile_best(ckpt, last_path, best_path, console)
        console.print(f"resuming {last_path}: {start_epoch} epoch(s) done, step {step}")
    if main:
        _write_jsonl(metrics_path, history, append=False)
        atomic_write_text(out / "vocab.json", json.dumps(job.vocab.to_dict(), ensure_ascii=False, indent=1) + "\n")

    wrapped = objective
    if env.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)

    def save(path: Path, epoch: int) -> None:
        save_checkpoint(path, kind=job.kind, config=job.model_config, vocab=job.vocab,
                        model=job.model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if scaler else None,
                        aux=job.aux.state_dict() if job.aux is not None else None, epoch=epoch, step=step,
                        best_metric=best, best_epoch=best_epoch, rng=get_rng_state(), metrics_history=history,
                        train_config=cfg.to_dict(), extra=job.extra)

    show = progress and main and console.is_terminal
    log_lines = progress and main and not console.is_terminal
    with _progress(console, show) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.time()
            seed_everything(_epoch_seed(cfg.seed, epoch, env.rank))
            loader_gen.manual_seed(_epoch_seed(cfg.seed, epoch, env.rank))
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            objective.train()
            if cfg.freeze_bn:
                _set_bn_eval(objective)
            sums: dict[str, float] = {}
            count = 0
            task = bar.add_task(f"{job.title} epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, info="")
            for i, batch in enumerate(loader):
                videos = batch["videos"].to(device, non_blocking=True)
                lengths = batch["lengths"].to(device)
                labels, label_lengths = batch["labels"].to(device), batch["label_lengths"].to(device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    losses = wrapped(videos, lengths, labels, label_lengths)
                total = losses["total"]
                if not torch.isfinite(total.detach()).all():
                    raise DivergedError(
                        f"{job.title}: non-finite loss {float(total.detach()):.4g} at epoch {epoch + 1} step {step + 1} "
                        f"(videos {batch['ids']}); lower lr or check the labels / clip lengths")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(total).backward()
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    total.backward()
                    if cfg.grad_clip:
                        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optimizer.step()
                scheduler.step()
                step += 1
                n = len(batch["ids"])
                count += n
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
                bar.update(task, advance=1, info=f"loss {float(total.detach()):.3f}")
                if log_lines and cfg.log_every and (i + 1) % cfg.log_every == 0:
                    console.print(f"{job.title} epoch {epoch + 1} step {i + 1}/{steps_per_epoch} "
                                  f"loss {float(total.detach()):.4f} lr {scheduler.get_last_lr()[0]:.3g}")
            bar.remove_task(task)

            # -- epoch end: reduce, evaluate, checkpoint -------------------------------------------------------
            keys = sorted(sums)
            if env.enabled:
                t = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64, device=device)
                dist.all_reduce(t)
                sums, count = dict(zip(keys, t[:-1].tolist())), int(t[-1].item())
            row: dict[str, Any] = {"epoch": epoch + 1, "step": step,
                                   "train_loss": sums.get("total", 0.0) / max(count, 1)}
            row.update({f"loss/{k}": sums[k] / max(count, 1) for k in keys if k != "total"})
            row["lr"] = scheduler.get_last_lr()[0]
            dev_wer = None
            if dev_loader is not None:
                etask = bar.add_task(f"{job.title} dev", total=len(dev_loader.sampler), info="")
                preds = predict(job.model, dev_loader, device=device, decoder=cfg.eval_decoder, beam=cfg.eval_beam,
                                progress=lambda k: bar.update(etask, advance=k))
                bar.remove_task(etask)
                if env.enabled:
                    parts: list = [None] * env.world_size
                    dist.all_gather_object(parts, preds)
                    preds = [p for part in parts for p in part]
                res, _, _ = score(preds, dev_loader.dataset.samples, job.vocab)
                dev_wer = 100.0 * float(res.wer)
            objective.train()
            row["dev_wer"] = dev_wer
            row["time_s"] = round(time.time() - t0, 3)
            metric = dev_wer if dev_wer is not None else row["train_loss"]
            improved = best is None or metric < best
            if improved:
                best = metric
            history.append(row)
            if main:   # best before last: a kill between the two leaves a best.pt that resume rewrites
                if improved:
                    best_epoch = epoch + 1
                    save(best_path, epoch + 1)
                save(last_path, epoch + 1)
                _write_jsonl(metrics_path, [row], append=True)
                try:
                    plot_history(history, plot_path, title=job.title)
                except Exception as e:  # noqa: BLE001 - a plot must never stop training
                    console.print(f"[yellow]warning[/]: could not draw {plot_path}: {e}")
                w = "" if dev_wer is None else f"  dev WER {dev_wer:.2f}%"
                console.print(f"{job.title} epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}{w}"
                              f"{'  (best)' if improved else ''}  {row['time_s']:.1f}s")
            if env.enabled:
                dist.barrier()
            if on_epoch_end is not None:
                on_epoch_end(dict(row))

    if main and last_path.is_file() and not best_path.is_file():
        atomic_copy(last_path, best_path)
        console.print(f"[yellow]warning[/]: {best_path} was lost; it now holds the last epoch ({last_path})")
    wers = [h["dev_wer"] for h in history if h.get("dev_wer") is not None]
    return TrainResult(best_path, last_path, history, min(wers) if wers else None, out)


# ----------------------------------------------------------------------------------------------- train
def train(data, out_dir: str | Path, model_config=None, train_config: TrainConfig | None = None, *,
          resume: bool = False, progress: bool = True, layout: str = "folder", overwrite: bool = False,
          on_epoch_end: Callable[[dict], None] | None = None, extra: dict | None = None) -> TrainResult:
    """Train the CSLR teacher.

    ``data``: a dataset root (read with ``layout``; splits ``train`` and, if present, ``dev``) or
    ``{"train": samples, "dev": samples}``. ``model_config``: a :class:`RecognizerConfig` (or its dict;
    default :func:`teacher_config`); ``num_classes`` is set from the vocabulary built on the train split.
    Writes ``out_dir/{last,best}.pt``, ``vocab.json``, ``metrics.jsonl`` and ``curves.png``.
    ``on_epoch_end(row)`` is called after each epoch's checkpoint is written (raise in it to stop).
    ``extra``: stored in every checkpoint as is (the CLI stores the effective recipe as ``extra["recipe"]``).
    """
    from slsdk.data.vocab import Vocabulary
    from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig

    cfg = train_config or TrainConfig()
    if isinstance(cfg, Mapping):
        cfg = TrainConfig.from_dict(cfg)
    mcfg = model_config if model_config is not None else teacher_config()
    if isinstance(mcfg, Mapping):
        mcfg = RecognizerConfig.from_dict(dict(mcfg))
    splits = resolve_datasets(data, layout)
    vocab = Vocabulary.build(splits["train"])
    dev = splits.get("dev")
    env = init_distributed(cfg.device)
    console = _make_console(env.is_main)
    try:
        if dev:
            check_vocab(vocab, dev, where="the vocabulary built from the train split", dataset="the dev split")
        else:
            console.print("[yellow]note[/]: no dev split; best.pt is chosen by training loss")
        if mcfg.num_classes != len(vocab):
            mcfg = RecognizerConfig.from_dict({**mcfg.to_dict(), "num_classes": len(vocab)})
        device = resolve_device(cfg.device, env.local_rank)
        seed_everything(cfg.seed)
        model = CSLRRecognizer(mcfg)
        model.set_trainable(backbone=cfg.unfreeze_backbone)
        if not mcfg.backbone_weights:
            what = ("it is trained with the rest (unfreeze_backbone=True)" if cfg.unfreeze_backbone else
                    "it stays frozen at its random initialisation (pass unfreeze_backbone=True to train it)")
            console.print(f"[yellow]note[/]: backbone {mcfg.backbone} has no pretrained weights "
                          f"(backbone_weights=None); {what}")
        job = Job("teacher", model, TeacherObjective(model, cfg.loss_weights, cfg.grad_checkpointing),
                  mcfg.to_dict(), vocab, splits["train"], dev, cfg, Path(out_dir), env, device, title="teacher",
                  extra=dict(extra or {}))
        with reading(data if isinstance(data, (str, os.PathLike)) else None):
            return run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                                on_epoch_end=on_epoch_end, console=console)
    finally:
        if env.created and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["DivergedError", "TrainConfig", "TrainResult", "train", "teacher_config", "run_training", "Job", "TeacherObjective",
           "resolve_device", "resolve_datasets", "read_split", "init_distributed", "DistEnv", "seed_everything",
           "build_optimizer"]
