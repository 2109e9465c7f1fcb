"""Distil a trained teacher into the streaming edge student, reusing the trainer's loop.

Loss per batch (all terms averaged per sample, then over the batch)::

    ctc_weight * CTC(student, labels)
  + kl_weight * T^2 * KL(p_teacher^T || p_student^T)      on the aligned grid, all classes incl. blank
  + feature_weight * MSE(proj(student frame features), teacher frame features)   (0 turns it off)

Alignment: the teacher's valid K5-P2-K5-P2 output step ``j`` covers input frames ``[4j, 4j+15]``; the causal
student's step ``i`` ends at frame ``4i+3``; so student step ``i`` is paired with teacher step
``i - student.teacher_offset`` (3), on the steps valid for both. Frame features share the input frame grid,
so the feature term needs no alignment (a learned linear projection maps student width to teacher width;
it is saved as the checkpoint's ``aux``).
"""
from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from slsdk.data.dataset import conv_output_length
from slsdk.data.landmark_dataset import fusion_datasets, landmark_datasets, require_landmarks, resolve_modality
from slsdk.data.splits import has_split, read_split, resolve_datasets
from slsdk.errors import ConfigError
from slsdk.fileio import atomic_write_text, output_lock, reading
from slsdk.models.flops import count_macs_per_frame, parameter_report
from slsdk.models.fusion import FusionStudent, FusionStudentConfig
from slsdk.models.landmark import LANDMARK_ENCODERS, LandmarkStudent, LandmarkStudentConfig
from slsdk.models.student import StreamingStudent, StudentConfig
from slsdk.models.student import student_config as registered_config
from slsdk.train.checkpoint import check_vocab, load_checkpoint, load_model, model_from_checkpoint
from slsdk.train.config import TrainConfig, TrainResult
from slsdk.train.console import make_console
from slsdk.train.environment import init_distributed, resolve_device, seed_everything
from slsdk.train.evaluate import evaluate, input_spec
from slsdk.train.loop import Job, run_training

REPORT_SPLITS = ("dev", "test", "test_si", "test_us")


@dataclass
class DistillConfig(TrainConfig):
    """Distillation settings (every :class:`TrainConfig` field applies too)."""

    epochs: int = 15
    lr: float = 1e-3
    temperature: float = 2.0
    kl_weight: float = 1.0
    ctc_weight: float = 1.0
    feature_weight: float = 1.0        # > 0: feature distillation through a learned projection (on the demo:
                                       # student test_si WER 15.3% without, 10.4% with; teacher 9.2%)
    student: dict = field(default_factory=dict)   # StudentConfig overrides (image_size, width, layers, ...)
    student_encoder: str = "vit-tiny"  # registered student frame encoder (slsdk.models.student.list_students())
    pretrained_student: bool = True    # load the registry's pretrained encoder weights (e.g. ImageNet Lite0)
    init_from_teacher: bool = True     # copy the teacher's backbone weights where shapes allow
    student_weights: str | None = None  # pretrained weights for the student's encoder (a CLIP visual file)
    report_splits: tuple = REPORT_SPLITS   # splits scored for the final report (missing ones skipped)
    report: bool = True                # evaluate student and teacher at the end

    def __post_init__(self):
        super().__post_init__()
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if min(self.kl_weight, self.ctc_weight, self.feature_weight) < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.kl_weight == self.ctc_weight == self.feature_weight == 0:
            raise ConfigError("all distillation loss weights are 0: nothing to train")
        self.report_splits = tuple(self.report_splits)


@dataclass
class DistillResult(TrainResult):
    report: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [super().summary()]
        r = self.report
        if r.get("wer"):
            splits = sorted({s for m in r["wer"].values() for s in m}, key=lambda s: REPORT_SPLITS.index(s)
                            if s in REPORT_SPLITS else 99)
            lines.append(f"{'model':<9}" + "".join(f"{s + ' WER':>14}" for s in splits) + f"{'GMACs/frame':>14}"
                         + f"{'params (M)':>12}")
            for who in ("teacher", "student"):
                w = r["wer"].get(who, {})
                g = r.get("gmacs_per_frame", {}).get(who)
                p = r.get("params_m", {}).get(who)
                lines.append(f"{who:<9}" + "".join(f"{w[s]:>13.2f}%" if s in w else f"{'-':>14}" for s in splits)
                             + (f"{g:>14.4g}" if g is not None else f"{'-':>14}")
                             + (f"{p:>12.2f}" if p is not None else f"{'-':>12}"))
        return "\n".join(lines)


def aligned_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, student_lengths: torch.Tensor,
               teacher_lengths: torch.Tensor, offset: int, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) over all classes, student step i <-> teacher step i - offset.

    Logits are time-major ``[T', B, V]``; averaged over each sample's aligned valid steps, then samples.
    """
    n = min(student_logits.shape[0] - offset, teacher_logits.shape[0])
    if n <= 0:
        return student_logits.sum() * 0.0
    s = student_logits[offset:offset + n].float() / temperature
    t = teacher_logits[:n].detach().float() / temperature
    log_s, log_t = s.log_softmax(-1), t.log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)                                   # [n, B]
    steps = torch.arange(n, device=kl.device)[:, None]
    mask = (steps < teacher_lengths.to(kl.device)[None]) & (steps + offset < student_lengths.to(kl.device)[None])
    per = (kl * mask).sum(0) / mask.sum(0).clamp(min=1)
    return per.mean() * temperature ** 2


class DistillObjective(nn.Module):
    """What DDP wraps for distillation: the student (+ projection); the frozen teacher is held unregistered."""

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, proj: nn.Module | None = None):
        super().__init__()
        self.student = student
        self.proj = proj
        object.__setattr__(self, "teacher", teacher)   # not a submodule: not trained, saved or DDP-synced
        self.cfg = cfg
        # clips come at max(teacher, student) size; each gets its own (landmarks: the same points for both)
        self.teacher_size = None if _landmarks(teacher) else input_spec(teacher)[0]

    def forward(self, videos, lengths, labels, label_lengths) -> dict[str, torch.Tensor]:
        cfg, teacher = self.cfg, self.teacher
        teacher.eval()
        landmarks = None
        if isinstance(videos, (tuple, list)):   # a fusion batch: the teacher sees the frames, the student both
            videos, landmarks = videos
        with torch.no_grad():
            t_videos = videos if self.teacher_size is None else _resize_clip(videos, self.teacher_size)
            t_feats = teacher.frame_features(t_videos, lengths)
            t_out = teacher.sequence(t_feats, lengths)
        s_videos = videos if self.teacher_size is None else _resize_clip(videos, self.student.config.image_size)
        if landmarks is not None:
            s_videos = (s_videos, landmarks)
        if cfg.grad_checkpointing and self.training:
            s_out = torch.utils.checkpoint.checkpoint(self.student, s_videos, lengths, use_reentrant=False)
        else:
            s_out = self.student(s_videos, lengths)
        s_logits, s_len = s_out["sequence_logits"], s_out["feat_lengths"].to(torch.long)
        terms: dict[str, torch.Tensor] = {}
        if cfg.ctc_weight:
            lp = s_logits.float().log_softmax(-1)
            per = F.ctc_loss(lp, labels, s_len.to(lp.device), label_lengths, blank=0, reduction="none",
                             zero_infinity=False)
            terms["ctc"] = per.mean()
        if cfg.kl_weight:
            terms["kl"] = aligned_kl(s_logits, t_out["sequence_logits"], s_len, t_out["feat_lengths"].to(torch.long),
                                     int(getattr(self.student, "teacher_offset", 3)), cfg.temperature)
        if cfg.feature_weight:
            if self.proj is None or "features" not in s_out:
                raise RuntimeError("feature distillation needs the student's 'features' output and a projection")
            sf = self.proj(s_out["features"].float())                                  # [B, T, Dt]
            tf = t_feats.float()
            tmax = min(sf.shape[1], tf.shape[1])
            mask = (torch.arange(tmax, device=sf.device)[None] < lengths.to(sf.device)[:, None]).float()
            err = ((sf[:, :tmax] - tf[:, :tmax]) ** 2).mean(-1)                        # [B, T]
            terms["feature"] = ((err * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
        weights = {"ctc": cfg.ctc_weight, "kl": cfg.kl_weight, "feature": cfg.feature_weight}
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        return terms


def _resize_clip(videos: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, T, 3, H, W]`` -> ``[B, T, 3, size, size]`` (antialiased bilinear); as is when already that size."""
    if videos.shape[-1] == size and videos.shape[-2] == size:
        return videos
    b, t = videos.shape[:2]
    return F.interpolate(videos.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).reshape(b, t, 3, size, size)


def _student_config(teacher, vocab, dcfg: DistillConfig, student_config):
    if student_config is not None:
        cfg = student_config if isinstance(student_config, StudentConfig) else StudentConfig.from_dict(
            dict(student_config))
    elif hasattr(StudentConfig, "from_teacher"):
        kw = dict(dcfg.student)
        if "num_classes" in inspect.signature(StudentConfig.from_teacher).parameters:
            kw.setdefault("num_classes", len(vocab))
        cfg = StudentConfig.from_teacher(teacher.config, **kw)
    else:
        tc = teacher.config
        kw = dict(dcfg.student)
        name = kw.pop("encoder", dcfg.student_encoder)
        cfg = registered_config(name, len(vocab), **{"mean": tuple(tc.mean), "std": tuple(tc.std), **kw})
    if cfg.num_classes != len(vocab):
        cfg = StudentConfig.from_dict({**cfg.to_dict(), "num_classes": len(vocab)})
    if tuple(cfg.mean) != tuple(teacher.config.mean) or tuple(cfg.std) != tuple(teacher.config.std):
        raise ConfigError(f"student normalisation (mean {cfg.mean}, std {cfg.std}) differs from the teacher's "
                         f"({teacher.config.mean}, {teacher.config.std}); both see the same frames")
    return cfg


def _landmarks(model) -> bool:
    return getattr(model, "modality", None) == "landmarks"


def _landmark_student_config(teacher, vocab, dcfg: DistillConfig, student_config) -> LandmarkStudentConfig:
    """The landmark student of a landmark teacher: its layout and fps, ``dcfg.student`` overrides that apply
    (an RGB student encoder name is not one)."""
    if isinstance(student_config, LandmarkStudentConfig):
        cfg = student_config
    else:
        kw = {k: v for k, v in {**dict(dcfg.student), **dict(student_config or {})}.items()
              if k in LandmarkStudentConfig.__dataclass_fields__ and k not in ("num_classes", "modality")}
        if kw.get("encoder") not in LANDMARK_ENCODERS:
            kw.pop("encoder", None)
        tc = teacher.config
        kw = {"layout": tc.layout, "normalisation": tc.normalisation, "points": tc.points, "dims": tc.dims,
              "fps": tc.fps, **kw}
        cfg = LandmarkStudentConfig(num_classes=len(vocab), **kw)
    if cfg.num_classes != len(vocab):
        cfg = LandmarkStudentConfig.from_dict({**cfg.to_dict(), "num_classes": len(vocab)})
    return cfg


def _check_modality(modality: str | None, teacher, tpath: Path, data, layout: str) -> bool:
    """Whether the run distils a fusion student; a modality the teacher or the data set cannot give is a
    :class:`ConfigError` / ``DatasetError`` naming them."""
    if modality in (None, "rgb", "landmarks"):
        have = "landmarks" if _landmarks(teacher) else "rgb"
        if modality is not None and modality != have:
            raise ConfigError(f"--modality {modality}: teacher checkpoint {tpath} is a {have} model; its student "
                              f"sees {have}")
        return False
    if modality != "fusion":
        raise ConfigError(f"--modality must be rgb, landmarks or fusion, got {modality!r}")
    if _landmarks(teacher):
        raise ConfigError(f"--modality fusion distils an RGB (CLIP) teacher; {tpath} is a landmark teacher")
    if isinstance(data, (str, os.PathLike)):
        resolve_modality("fusion", layout)     # the layout carries video and landmarks, or says which it lacks
    return True


def _fusion_student_config(teacher, vocab, dcfg: DistillConfig, student_config) -> FusionStudentConfig:
    """The fusion student of an RGB teacher: its RGB branch as the RGB student's (``_student_config``), the
    landmark fields their defaults (or ``student_config``'s)."""
    if isinstance(student_config, FusionStudentConfig):
        cfg = student_config
    else:
        rgb = _student_config(teacher, vocab, dcfg, None)    # dcfg.student's overrides apply to the RGB branch
        cfg = FusionStudentConfig.from_student(rgb, **{k: v for k, v in dict(student_config or {}).items()
                                                       if k in FusionStudentConfig.__dataclass_fields__
                                                       and k not in ("num_classes", "modality")})
    if cfg.num_classes != len(vocab):
        cfg = FusionStudentConfig.from_dict({**cfg.to_dict(), "num_classes": len(vocab)})
    return cfg


def _gmacs_per_frame(model: nn.Module, size: int, frames: int = 16) -> float | None:
    x = (torch.zeros(1, frames, model.config.points, model.config.dims) if _landmarks(model)
         else torch.zeros(1, frames, 3, size, size))
    if getattr(model, "modality", None) == "fusion":
        x = (x, torch.zeros(1, frames, model.config.points, model.config.dims))
    was = model.training
    model.eval()
    try:
        return count_macs_per_frame(model, (x, torch.tensor([frames])), frames=frames) / 1e9
    finally:
        model.train(was)


def distill(teacher_checkpoint: str | Path, data, out_dir: str | Path, config: DistillConfig | None = None,
            student_config=None, *, resume: bool = False, progress: bool = True, layout: str = "folder",
            overwrite: bool = False, on_epoch_end: Callable[[dict], None] | None = None,
            extra: dict | None = None, modality: str | None = None) -> DistillResult:
    """Distil ``teacher_checkpoint`` into a :class:`StreamingStudent` trained on ``data``.

    ``data``: dataset root (``layout``) or ``{split: samples}``. ``student_config``: a StudentConfig (default:
    from the teacher + ``config.student`` overrides). Same outputs, resume and DDP behaviour as
    :func:`slsdk.train.train`; at the end (rank 0) student and teacher are scored on ``config.report_splits``
    and their GMACs/frame counted: ``result.report`` and ``out_dir/report.json`` (printed by the caller:
    ``result.summary()``).

    ``modality="fusion"``: an RGB (CLIP) teacher distilled into a :class:`~slsdk.models.fusion.FusionStudent`
    (the RGB student's encoder on the frames + the landmark encoder on each sample's ``.pose`` landmarks); the data
    set must carry both (a folder layout with ``.pose`` files beside the videos: ``slsdk data prepare --landmarks``).
    None / ``rgb`` / ``landmarks``: the student of the teacher's own modality.
    """
    cfg = config or DistillConfig()
    if isinstance(cfg, Mapping):
        cfg = DistillConfig.from_dict(cfg)
    tpath = Path(teacher_checkpoint)
    tckpt = load_checkpoint(tpath, kind="teacher")
    teacher, vocab, _ = model_from_checkpoint(tckpt, tpath)
    teacher.requires_grad_(False).eval()
    fusion = _check_modality(modality, teacher, tpath, data, layout)
    splits = resolve_datasets(data, layout)
    for name, samples in splits.items():
        check_vocab(vocab, samples, where=f"teacher checkpoint {tpath}", dataset=f"the {name} split")
        if fusion:
            require_landmarks(samples, f"--modality fusion ({name} split)")
    env = init_distributed(cfg.device)
    console = make_console(env.is_main)
    try:
        device = resolve_device(cfg.device, env.local_rank)
        teacher.to(device)
        seed_everything(cfg.seed)
        landmarks = _landmarks(teacher)
        if landmarks:   # a landmark teacher: the landmark student, on the same normalised landmarks
            scfg = _landmark_student_config(teacher, vocab, cfg, student_config)
            student = LandmarkStudent(scfg)
        elif fusion:    # the RGB student's branch (from the teacher, as below) + the landmark encoder
            scfg = _fusion_student_config(teacher, vocab, cfg, student_config)
            student = FusionStudent(scfg)
        else:
            scfg = _student_config(teacher, vocab, cfg, student_config)
            student = StreamingStudent(scfg)
        pretrained = None if cfg.student_weights or not cfg.pretrained_student else student.load_pretrained()
        copied = (student.init_from_teacher(teacher) if cfg.init_from_teacher and not cfg.student_weights
                  and not pretrained else [])
        if cfg.student_weights:
            student.load_encoder(cfg.student_weights)
            console.print(f"student encoder loaded from {cfg.student_weights}")
        elif pretrained:
            console.print(f"student encoder ({scfg.encoder}) loaded from {pretrained}")
        elif cfg.init_from_teacher:
            console.print(f"student initialised from the teacher: {len(copied)} tensor group(s) copied"
                          if copied else "note: no teacher weights fit the student; it starts from random weights")
        proj = None
        if cfg.feature_weight:
            tdim = teacher.frame_encoder.output_dim
            proj = nn.Linear(scfg.feature_dim, tdim)
        objective = DistillObjective(student, teacher, cfg, proj)
        job = Job("student", student, objective, scfg.to_dict(), vocab, splits["train"], splits.get("dev"), cfg,
                  Path(out_dir), env, device, aux=proj,
                  extra={**(extra or {}), "teacher_checkpoint": str(tpath.resolve()), "distill": {
                      "temperature": cfg.temperature, "kl_weight": cfg.kl_weight, "ctc_weight": cfg.ctc_weight,
                      "feature_weight": cfg.feature_weight},
                      "modality": "landmarks" if landmarks else "fusion" if fusion else "rgb"},
                  title="distill", output_length_fn=conv_output_length,
                  train_input=None if landmarks else (max(input_spec(teacher)[0], scfg.image_size),
                                                      *input_spec(teacher)[1:]),
                  make_dataset=landmark_datasets(vocab, cfg, conv_output_length) if landmarks else
                  fusion_datasets(vocab, cfg, (max(input_spec(teacher)[0], scfg.image_size), *input_spec(teacher)[1:]),
                                  input_spec(student), conv_output_length) if fusion else None)
        inputs = [tpath] + ([data] if isinstance(data, (str, os.PathLike)) else [])
        with reading(*inputs), output_lock(out_dir, overwrite=resume or overwrite) if env.is_main else nullcontext():
            res = run_training(job, resume=resume, overwrite=overwrite, progress=progress,
                               on_epoch_end=on_epoch_end, console=console)
            report: dict[str, Any] = {}
            if env.is_main and cfg.report:
                report = _report(res, teacher, vocab, data, layout, splits, cfg, device, console)
                atomic_write_text(Path(out_dir) / "report.json", json.dumps(report, indent=1) + "\n")
        return DistillResult(res.best_checkpoint, res.last_checkpoint, res.history, res.dev_wer, res.out_dir, report)   # other ranks return without waiting for rank 0's report (no collective follows)
    finally:
        if env.created and dist.is_initialized():
            dist.destroy_process_group()


def _report(res: TrainResult, teacher, vocab, data, layout, splits, cfg: DistillConfig, device, console) -> dict:
    student, _, _ = load_model(res.best_checkpoint)
    wers: dict[str, dict[str, float]] = {"teacher": {}, "student": {}}
    for split in cfg.report_splits:
        if split in splits:
            samples = splits[split]
        elif isinstance(data, (str, Path)) and has_split(data, split, layout):
            samples = read_split(data, split, layout)
        else:
            continue
        if not all(s.glosses for s in samples):   # an unlabelled split (a challenge's test set): no WER
            continue
        for who, model in (("teacher", teacher), ("student", student)):
            r = evaluate(model, samples, split=split, vocab=vocab, device=str(device))
            wers[who][split] = r.wer
    report: dict[str, Any] = {"wer": wers, "gmacs_per_frame": {}, "params_m": {}}
    for who, model in (("teacher", teacher), ("student", student)):
        size = 0 if _landmarks(model) else input_spec(model)[0]
        try:
            g = _gmacs_per_frame(model.cpu(), size)
        except Exception as e:  # noqa: BLE001 - the count is informative, never fatal
            console.print(f"[yellow]note[/]: could not count {who} MACs: {e}")
            g = None
        report["gmacs_per_frame"][who] = g
        report["params_m"][who] = parameter_report(model)["total"] / 1e6
    teacher.to(device)
    return report


__all__ = ["DistillConfig", "DistillResult", "DistillObjective", "aligned_kl", "distill"]
