"""The epoch loop shared by teacher training and distillation (:func:`run_training` over a :class:`Job`).

Checkpoints every epoch (``last.pt``) and at each new best (``best.pt``, written first); resume restores the
weights, optimizer, scheduler, AMP scaler, RNG states, best metric and history; under DDP each process decodes
its share of the dev split and only rank 0 writes files. See :mod:`slsdk.train.trainer` for the guarantees.

The GPU path (decisions in :mod:`slsdk.train.environment`): the device is printed (name, compute capability,
memory) and recorded in every checkpoint's ``extra`` and every ``metrics.jsonl`` row, with the precision
(``amp``: bf16 | fp16 | fp32); AMP in bf16 where the GPU has it natively, else fp16 with a ``GradScaler``;
dev decoding runs under the same autocast; channels-last weights for conv-based models on CUDA; pinned memory
and persistent workers; Adam / AdamW fused on CUDA; ``compile``: ``torch.compile`` of the trained modules.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from slsdk.data.dataset import VideoDataset, batch_to_device, make_collate
from slsdk.data.vocab import Vocabulary
from slsdk.errors import ConfigError, SlsdkError
from slsdk.fileio import atomic_copy, atomic_write_text, clean_stale, discard, output_lock
from slsdk.train.checkpoint import CheckpointError, get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from slsdk.train.config import TrainConfig, TrainResult
from slsdk.train.console import make_console, progress_bar
from slsdk.train.environment import (DistEnv, amp_plan_for, describe_device, determinism_record, device_name,
                                    epoch_seed, loader_options, maybe_compile, seed_everything, determinism,
                                    use_channels_last)
from slsdk.train.ema import WeightAverage
from slsdk.train.evaluate import input_spec, predict, score
from slsdk.train.optim import build_optimizer, fused_optimizer, lr_lambda
from slsdk.train.plots import plot_history
from slsdk.train.run_folder import check_run_folder, config_diff, reconcile_best, write_jsonl


class DivergedError(SlsdkError, FloatingPointError):
    """The loss became NaN or infinite (a learning rate far too high, or labels longer than their clips)."""


def _set_bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)``: the epoch travels with every index to the DataLoader's workers, whose copies
    of the dataset (persistent workers keep the copy they started with) never see ``set_epoch`` calls made in
    the main process. Wrap the dataset in :class:`EpochDataset`."""

    def __init__(self, sampler):
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class EpochDataset(torch.utils.data.Dataset):
    """A dataset with ``set_epoch`` (:class:`~slsdk.data.dataset.VideoDataset`) indexed by ``(epoch, index)``
    (:class:`EpochSampler`): sets the epoch of this process's copy before reading the item."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def _conv_type(model: nn.Module, padding: str) -> str:
    """The temporal conv the reference collate pads for (the teacher's ``conv_type``)."""
    conv_type = getattr(getattr(model, "config", None), "conv_type", None)
    if conv_type is None:
        if padding == "reference":
            raise ConfigError("padding: reference needs a model with a temporal conv_type (the teacher)")
        return "K5-P2-K5-P2"
    return conv_type


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
    # (samples, train) -> a dataset with VideoDataset's item keys and a ``collate_fn`` (landmark models); None: video
    make_dataset: Callable[[list, bool], Any] | None = None


def _setup_line(device: torch.device, amp, channels_last: bool, fused: bool, compiled: bool, loader_kw: dict) -> str:
    """``device: cuda:0 (NVIDIA H100 ..., compute capability 9.0, 79.1 GiB); bf16 autocast; channels-last weights;
    fused optimizer; 4 loader workers (persistent, pinned memory)``: where and how this run trains (one line, the
    ``device:`` form the quiet console expects)."""
    parts = [describe_device(device)]
    if amp.enabled:
        parts.append(f"{amp.label} autocast" + (" + GradScaler" if amp.scaler else ""))
    elif device.type != "cpu":
        parts.append("fp32")
    if channels_last:
        parts.append("channels-last weights")
    if fused:
        parts.append("fused optimizer")
    if compiled:
        parts.append("torch.compile (the first steps compile)")
    extras = [k for k, on in (("persistent", loader_kw["persistent_workers"]),
                              ("pinned memory", loader_kw["pin_memory"])) if on]
    if loader_kw["num_workers"]:
        parts.append(f"{loader_kw['num_workers']} loader workers" + (f" ({', '.join(extras)})" if extras else ""))
    elif loader_kw["pin_memory"]:
        parts.append("pinned memory")
    return "device: " + "; ".join(parts)


def _load_state(job: Job, ckpt: dict, optimizer, scheduler, scaler, path: Path,
                ema: WeightAverage | None = None) -> None:
    here = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    try:
        job.model.load_state_dict(ckpt["model"])
        if ema is not None and ckpt.get("ema"):
            ema.resume(job.model, ckpt["ema"])
        if job.aux is not None and ckpt.get("aux") is not None:
            job.aux.load_state_dict(ckpt["aux"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {str(e).splitlines()[0]}") from None
    if ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        for g, flags in zip(optimizer.param_groups, here):   # this device's kernels, not the saving run's
            g.update(flags)
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
    with determinism(job.config.deterministic):
        if not job.dist.is_main:
            return _run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                                 on_epoch_end=on_epoch_end, console=console)
        return _run_main(job, resume=resume, overwrite=overwrite, progress=progress, on_epoch_end=on_epoch_end,
                         console=console)


def _run_main(job: Job, *, resume: bool, overwrite: bool, progress: bool,
              on_epoch_end: Callable[[dict], None] | None, console) -> TrainResult:
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
    cfg, env, device, out = job.config, job.dist, job.device, Path(job.out_dir)
    main = env.is_main
    console = console or make_console(main)
    last_path, best_path = out / "last.pt", out / "best.pt"
    metrics_path, plot_path = out / "metrics.jsonl", out / "curves.png"
    if main:
        check_run_folder(out, resume, overwrite, job.kind)
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)          # temp files of a killed run into this folder (only slsdk's own names)
    amp = amp_plan_for(cfg.amp, cfg.amp_dtype, device)
    channels_last = use_channels_last(job.model, device.type, cfg.channels_last)
    loader_kw = loader_options(cfg.num_workers, device.type, cfg.persistent_workers)
    if main:
        console.print(_setup_line(device, amp, channels_last, fused_optimizer(cfg.optimizer, device.type),
                                  cfg.compile, loader_kw))
        if amp.note:
            console.print(f"[yellow]note[/]: {amp.note}")
    job.extra["device"] = str(device)   # recorded in every checkpoint (extra) and metrics row
    job.extra["device_name"] = device_name(device)
    job.extra["amp"] = amp.label
    job.extra["determinism"] = determinism_record(cfg.seed, device)

    # -- existing run ---------------------------------------------------------------------------------------
    ckpt = None
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, kind=job.kind)
        diff = config_diff(ckpt["config"], job.model_config)
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
    if job.make_dataset is not None:   # e.g. landmark models: their own items and collate
        train_ds = job.make_dataset(job.train_samples, True)
        collate = train_ds.collate_fn
    else:
        size, mean, std = input_spec(job.model)
        ds_kw = {"max_frames": cfg.max_frames, "style": cfg.data_style}
        collate = make_collate(cfg.padding, conv_type=_conv_type(job.model, cfg.padding))
        if job.output_length_fn is not None:
            ds_kw["output_length_fn"] = job.output_length_fn
        train_kw = dict(ds_kw)
        if cfg.padding == "reference" and job.output_length_fn is None:   # the padding counts towards CTC's length
            train_kw["output_length_fn"] = collate.output_length
        tsize, tmean, tstd = job.train_input or (size, mean, std)
        train_ds = VideoDataset(job.train_samples, job.vocab, tsize, tmean, tstd, train=cfg.augment, seed=cfg.seed,
                                flip=cfg.flip, temporal_scale=cfg.temporal_scale, length_policy=cfg.length_policy,
                                spatial_scale=cfg.spatial_scale,
                                **train_kw)
    if train_ds.preparation is not None:  # `slsdk data prepare` settings travel with the checkpoint (train/serve skew)
        job.extra["preparation"] = train_ds.preparation
    sampler = EpochSampler(torch.utils.data.DistributedSampler(train_ds, num_replicas=env.world_size, rank=env.rank,
                                                               shuffle=True, seed=cfg.seed, drop_last=False))
    loader_gen = torch.Generator()
    loader = torch.utils.data.DataLoader(EpochDataset(train_ds), batch_size=per_proc, sampler=sampler,
                                         collate_fn=collate, generator=loader_gen, **loader_kw)
    dev_loader = None
    if job.dev_samples:   # every process decodes its share (rank::world_size); rank 0 gathers and scores
        dev_ds = (job.make_dataset(job.dev_samples, False) if job.make_dataset is not None else
                  VideoDataset(job.dev_samples, job.vocab, size, mean, std, train=False, **ds_kw))
        dev_loader = torch.utils.data.DataLoader(dev_ds, batch_size=per_proc,
                                                 sampler=list(range(env.rank, len(dev_ds), env.world_size)),
                                                 collate_fn=collate, **loader_kw)
    steps_per_epoch = len(loader)

    # -- model, optimiser -----------------------------------------------------------------------------------
    objective = job.objective.to(device)
    if channels_last:   # conv weights NHWC (cuDNN's fast layout); the optimizer state follows the parameters
        job.model.to(memory_format=torch.channels_last)
    if env.enabled and device.type == "cuda" and cfg.sync_bn and not cfg.freeze_bn:
        objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    named = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    optimizer = build_optimizer(named, cfg, device_type=device.type)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch))
    use_amp, amp_dtype = amp.enabled, amp.dtype
    scaler = torch.amp.GradScaler("cuda") if amp.scaler else None
    params = [p for _, p in named]
    maybe_compile(objective, cfg.compile)
    ema = WeightAverage(job.model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    start_epoch, step, best, best_epoch, history = 0, 0, None, None, []
    if ckpt is not None:
        _load_state(job, ckpt, optimizer, scheduler, scaler, last_path, ema)
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        best, history = ckpt.get("best_metric"), list(ckpt.get("metrics_history") or [])
        best_epoch = ckpt.get("best_epoch")
        if main:
            reconcile_best(ckpt, last_path, best_path, console)
        console.print(f"resuming {last_path}: {start_epoch} epoch(s) done, step {step}")
    if main:
        write_jsonl(metrics_path, history, append=False)
        atomic_write_text(out / "vocab.json", json.dumps(job.vocab.to_dict(), ensure_ascii=False, indent=1) + "\n")

    wrapped = objective
    if env.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)

    def save(path: Path, epoch: int) -> None:
        save_checkpoint(path, kind=job.kind, config=job.model_config, vocab=job.vocab,
                        model=ema.weights(job.model) if ema else job.model.state_dict(),
                        ema=ema.state_dict(job.model) if ema else None, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if scaler else None,
                        aux=job.aux.state_dict() if job.aux is not None else None, epoch=epoch, step=step,
                        best_metric=best, best_epoch=best_epoch, rng=get_rng_state(), metrics_history=history,
                        train_config=cfg.to_dict(), extra=job.extra)

    show = progress and main and console.is_terminal
    log_lines = progress and main and not console.is_terminal
    with progress_bar(console, show) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.time()
            seed_everything(epoch_seed(cfg.seed, epoch, env.rank))
            loader_gen.manual_seed(epoch_seed(cfg.seed, epoch, env.rank))
            sampler.set_epoch(epoch)      # the epoch travels with each index to the workers (EpochSampler)
            train_ds.set_epoch(epoch)
            objective.train()
            if cfg.freeze_bn:
                _set_bn_eval(objective)
            sums: dict[str, float] = {}
            count = 0
            task = bar.add_task(f"{job.title} epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, info="")
            for i, batch in enumerate(loader):
                # uint8 crops to the device, normalised there (the CPU never touches a float frame)
                videos, lengths, labels, label_lengths = batch_to_device(batch, device, train_ds.normalize)
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
                if ema is not None:
                    ema.update(job.model)
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
            row["device"] = str(device)
            row["amp"] = amp.label
            dev_wer = None
            if dev_loader is not None:
                etask = bar.add_task(f"{job.title} dev", total=len(dev_loader.sampler), info="")
                with (torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp),   # the training precision
                      ema.applied(job.model) if ema else contextlib.nullcontext()):
                    preds = predict(job.model, dev_loader, device=device, decoder=cfg.eval_decoder,
                                    beam=cfg.eval_beam, progress=lambda k: bar.update(etask, advance=k),
                                    normalize=dev_loader.dataset.normalize)
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
                write_jsonl(metrics_path, [row], append=True)
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


__all__ = ["DivergedError", "EpochDataset", "EpochSampler", "Job", "run_training"]
