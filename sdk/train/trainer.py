"""Teacher training (single process or DDP under torchrun); the epoch loop is :mod:`slsdk.train.loop`.

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
* **One objective**: the module optimised is :func:`slsdk.train.objective.build_objective` (loss weights, the
  distill term's temperature / reduction, the freeze rule), i.e. what ``slsdk.train.objective(model, recipe)``
  returns for the same recipe.
* Never prompts; an existing run in ``out_dir`` is an error unless ``resume`` or ``overwrite``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch.distributed as dist

from slsdk.data.landmark_dataset import landmark_datasets, resolve_modality
from slsdk.data.splits import read_split, resolve_datasets
from slsdk.data.vocab import Vocabulary
from slsdk.errors import ConfigError
from slsdk.fileio import reading
from slsdk.models.adapters import FrameEncoderConfig
from slsdk.models.landmark import LandmarkConfig, LandmarkRecognizer, is_landmark_config
from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
from slsdk.train.checkpoint import check_vocab
from slsdk.train.config import TrainConfig, TrainResult
from slsdk.train.console import make_console
from slsdk.train.environment import DistEnv, init_distributed, resolve_device, seed_everything
from slsdk.train.loop import DivergedError, Job, run_training
from slsdk.train.objective import TeacherObjective, build_objective, dead_gate_notes
from slsdk.train.optim import build_optimizer


def teacher_config(backbone: str = "ViT-S/16-demo", weights: str | None = None, variant: str = "adaptsign",
                   hidden: int = 256, num_classes: int = 2, image_size: int | None = None, **encoder):
    """A :class:`RecognizerConfig` from the few choices users make (num_classes is set from the data)."""
    return RecognizerConfig(backbone=backbone, backbone_weights=weights, image_size=image_size,
                            encoder=FrameEncoderConfig(variant=variant, **encoder), hidden=hidden,
                            num_classes=num_classes)


def _landmark_config(mcfg) -> LandmarkConfig:
    """A landmark teacher's config from what was given: a LandmarkConfig (or its dict) as is; a RecognizerConfig (the
    CLI's recipe) gives its ``hidden``, the rest are the landmark defaults."""
    if isinstance(mcfg, LandmarkConfig):
        return mcfg
    d = mcfg if isinstance(mcfg, Mapping) else mcfg.to_dict()
    if is_landmark_config(dict(d)):
        return LandmarkConfig.from_dict(dict(d))
    return LandmarkConfig(num_classes=int(d.get("num_classes", 2)), hidden=int(d.get("hidden", 256)))


def _train_landmarks(mcfg, cfg, vocab, splits, data, out_dir, env, device, console, **kw) -> TrainResult:
    model = LandmarkRecognizer(mcfg)
    objective = build_objective(model, cfg)
    job = Job("teacher", model, objective, mcfg.to_dict(), vocab, splits["train"], splits.get("dev"), cfg,
              Path(out_dir), env, device, title="teacher", extra=kw.pop("extra"),
              make_dataset=landmark_datasets(vocab, cfg))
    with reading(data if isinstance(data, (str, os.PathLike)) else None):
        return run_training(job, console=console, **kw)


# ----------------------------------------------------------------------------------------------- train
def train(data, out_dir: str | Path, model_config=None, train_config: TrainConfig | None = None, *,
          resume: bool = False, progress: bool = True, layout: str = "folder", overwrite: bool = False,
          on_epoch_end: Callable[[dict], None] | None = None, extra: dict | None = None,
          modality: str | None = None) -> TrainResult:
    """Train the CSLR teacher.

    ``data``: a dataset root (read with ``layout``; splits ``train`` and, if present, ``dev``) or
    ``{"train": samples, "dev": samples}``. ``model_config``: a :class:`RecognizerConfig` (or its dict;
    default :func:`teacher_config`); ``num_classes`` is set from the vocabulary built on the train split.
    Writes ``out_dir/{last,best}.pt``, ``vocab.json``, ``metrics.jsonl`` and ``curves.png``.
    ``on_epoch_end(row)`` is called after each epoch's checkpoint is written (raise in it to stop).
    ``extra``: stored in every checkpoint as is (the CLI stores the effective recipe as ``extra["recipe"]``).
    ``modality``: ``rgb`` (the CLIP teacher), ``landmarks`` (a :class:`~slsdk.models.landmark.LandmarkRecognizer`
    on the samples' normalised landmarks; a :class:`RecognizerConfig` gives its ``hidden``) or None: the layout's
    (``isharah-pose`` implies landmarks) or the config's. Recorded as the checkpoint's ``extra["modality"]``.
    """
    cfg = train_config or TrainConfig()
    if isinstance(cfg, Mapping):
        cfg = TrainConfig.from_dict(cfg)
    mcfg = model_config if model_config is not None else teacher_config()
    if modality is None and is_landmark_config(mcfg if isinstance(mcfg, Mapping) else mcfg):
        modality = "landmarks"
    if modality == "fusion":   # no fusion teacher: the fusion student learns from the CLIP (rgb) teacher
        raise ConfigError("--modality fusion is a student: train the RGB teacher (--modality rgb), then distil it "
                          "with `slsdk distill DATA --teacher TEACHER.pt --modality fusion`")
    modality = resolve_modality(modality, layout) if isinstance(data, (str, os.PathLike)) else (modality or "rgb")
    if modality == "landmarks":
        mcfg = _landmark_config(mcfg)
    elif isinstance(mcfg, Mapping):
        mcfg = RecognizerConfig.from_dict(dict(mcfg))
    splits = resolve_datasets(data, layout)
    vocab = Vocabulary.build(splits["train"])
    dev = splits.get("dev")
    env = init_distributed(cfg.device)
    console = make_console(env.is_main)
    try:
        if dev:
            check_vocab(vocab, dev, where="the vocabulary built from the train split", dataset="the dev split")
        else:
            console.print("[yellow]note[/]: no dev split; best.pt is chosen by training loss")
        if mcfg.num_classes != len(vocab):
            mcfg = type(mcfg).from_dict({**mcfg.to_dict(), "num_classes": len(vocab)})
        device = resolve_device(cfg.device, env.local_rank)
        seed_everything(cfg.seed)
        extra = {**(extra or {}), "modality": modality}
        if modality == "landmarks":
            return _train_landmarks(mcfg, cfg, vocab, splits, data, out_dir, env, device, console, resume=resume,
                                    overwrite=overwrite, progress=progress, on_epoch_end=on_epoch_end, extra=extra)
        model = CSLRRecognizer(mcfg)
        objective = build_objective(model, cfg)      # what slsdk.train.objective(model, recipe) returns
        for note in dead_gate_notes(model):
            console.print(f"[yellow]note[/]: {note}")
        if not mcfg.backbone_weights:
            what = ("it is trained with the rest (--unfreeze-backbone)" if cfg.unfreeze_backbone else
                    "it stays frozen at its random initialisation (pass --weights FILE, or --unfreeze-backbone "
                    "to train it)")
            console.print(f"[yellow]note[/]: backbone {mcfg.backbone} has no pretrained weights (no --weights); "
                          f"{what}")
        job = Job("teacher", model, objective, mcfg.to_dict(), vocab, splits["train"], dev, cfg, Path(out_dir), env,
                  device, title="teacher", extra=dict(extra or {}))
        with reading(data if isinstance(data, (str, os.PathLike)) else None):
            return run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                                on_epoch_end=on_epoch_end, console=console)
    finally:
        if env.created and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["DivergedError", "TrainConfig", "TrainResult", "train", "teacher_config", "run_training", "Job",
           "TeacherObjective", "build_objective", "resolve_device", "resolve_datasets", "read_split",
           "init_distributed", "DistEnv", "seed_everything", "build_optimizer"]
