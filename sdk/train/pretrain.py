"""Synthetic pretraining of the demo's CLIP tower: the stand-in for CLIP weights this machine cannot download.

The product freezes a *pretrained* CLIP ViT and trains small modules around it. Real CLIP weights come
from OpenAI / open_clip / Hugging Face files (``slsdk.models.load_clip_visual``); none can be downloaded
for the embedded demo, and a randomly initialised ViT trained end to end through CTC learns far too
slowly on two CPU cores (92 % dev WER after 6 epochs in a trial). So the demo first gives its small
tower what CLIP gives a real one, a visual vocabulary, here of hands and bodies: frames are rendered
from the training signers and from new random people (``extra_signers``; never the held-out signers of
the data set, as CLIP has seen many people but not ours) signing fresh random sentences, and the tower
learns to read the pose the renderer drew (both hands' positions relative to the body, their shapes,
the finger direction) from the CLS embedding through a linear probe. No gloss label is used.

The result is written in OpenAI's ``visual.*`` key layout as safetensors, atomically, and loaded back
through the same loader real weights go through, so the demo exercises the real-weights path.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from slsdk.data.synthetic import (
    PhoneFraming,
    load_spec,
    make_signer,
    pose_shapes,
    poses_in_crops,
    render_phone_sentence,
    render_sentence,
    renderer_crop,
)
from slsdk.data.transforms import resize_shorter, resize_size
from slsdk.errors import ConfigError
from slsdk.fileio import atomic_path, atomic_write_text, check_output, check_replace, output_lock, reading
from slsdk.models.clip import CLIP_MEAN, CLIP_STD, VisionTransformer, get_config
from slsdk.runtime.crop import CropConfig
from slsdk.train.console import make_console, progress_bar
from slsdk.train.environment import resolve_device, seed_everything


@dataclass
class PretrainConfig:
    """Settings of the synthetic backbone pretraining (stored next to the weights)."""

    backbone: str = "ViT-S/16-demo"
    steps: int = 500
    batch_frames: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 40
    pool_videos: int = 160        # sentences rendered for the training pool (frames are sampled from it)
    heldout_videos: int = 16      # sentences rendered (other seeds) to measure the probe at the end
    flip: bool = True             # mirror frames (and the pose targets) like the training augmentation
    extra_signers: int = 64       # new random people (never the data set's signers), as CLIP has seen many
    data_framing: bool = True     # phone-framed data sets: render the pool as their videos are made (portrait
    #                               clip, shake, light, blur -> the signing-space crop), not as centred squares
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda | cuda:N | mps (as train's --device)
    log_every: int = 10           # without a terminal (no progress bar): a step / loss line every this many steps

    def __post_init__(self):
        for name in ("steps", "batch_frames", "pool_videos"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"pretraining: {name} must be >= 1, got {getattr(self, name)}")
        if not (float(self.lr) > 0 and math.isfinite(float(self.lr))):
            raise ConfigError(f"pretraining: lr must be a positive number, got {self.lr}")


@dataclass
class PretrainResult:
    weights: Path
    metrics: dict

    def summary(self) -> str:
        m = self.metrics
        return (f"pretrained {m['backbone']} in {m['seconds']:.0f} s: held-out hand shape accuracy "
                f"{100 * m['shape_acc']:.1f}%, dominant hand's patch {100 * m['hand_patch_acc']:.1f}%, position error {m['position_err']:.3f} body units "
                f"-> {self.weights}")


class PoseProbe(nn.Module):
    """Linear read-outs of the tower: pose from the CLS embedding, hand location and shape from patch tokens."""

    def __init__(self, width: int, output_dim: int, num_shapes: int):
        super().__init__()
        self.num_shapes = num_shapes
        self.cls = nn.Linear(output_dim, 4 + 2 * num_shapes + 2)
        self.ln = nn.LayerNorm(width)
        self.patch = nn.Linear(width, 2 + 2 * num_shapes)   # dom / other hand here?  dom / other hand shape

    def forward(self, vit, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = vit.forward_tokens(images)
        return self.cls(vit.head(tokens)), self.patch(self.ln(tokens[:, 1:]))


def _pose_loss(cls_out: torch.Tensor, patch_out: torch.Tensor, target: torch.Tensor, cells: torch.Tensor,
               num_shapes: int) -> tuple[torch.Tensor, dict]:
    """CLS: body-relative positions (smooth L1, x10), shapes (CE), finger direction (MSE).

    Patches: which patch holds each hand (CE over the grid; hands outside the crop are skipped) and that
    patch's token names the hand's shape (CE). Dense targets teach the tower to localise hands quickly.
    """
    ns = num_shapes
    pos = F.smooth_l1_loss(cls_out[:, :4] * 10, target[:, :4] * 10)
    shape = (F.cross_entropy(cls_out[:, 4:4 + ns], target[:, 4].long())
             + F.cross_entropy(cls_out[:, 4 + ns:4 + 2 * ns], target[:, 5].long()))
    ang = F.mse_loss(cls_out[:, -2:], target[:, 6:8])
    where = patch_out.new_zeros(())
    what = patch_out.new_zeros(())
    for hand in (0, 1):
        ok = cells[:, hand] >= 0
        if ok.any():
            where = where + F.cross_entropy(patch_out[ok, :, hand], cells[ok, hand])
            at = patch_out[ok, cells[ok, hand]]                                      # [n, 2 + 2 ns]
            what = what + F.cross_entropy(at[:, 2 + hand * ns:2 + (hand + 1) * ns], target[ok, 4 + hand].long())
    stats = {"pos": float(pos.detach()), "shape": float(shape.detach()), "angle": float(ang.detach()),
             "where": float(where.detach()), "what": float(what.detach())}
    return pos + shape + ang + where + what, stats


def _render_pool(lexicon, signers, settings, count: int, seed: int, stream: int, data_framing: bool = True,
                 on_sentence: Callable[[], None] | None = None):
    """Render ``count`` random sentences by the given signers -> (frames uint8 [N, S, S, 3], poses [N, 12]).

    A phone-framed data set's frames (``settings["phone"]``, with ``data_framing``) are made as its videos are:
    portrait clip -> :func:`~slsdk.data.synthetic.renderer_crop` (the runtime's crop rule); hand image positions
    are then fractions of each crop. ``on_sentence`` is called after each sentence (progress)."""
    rng = np.random.default_rng([seed, stream])
    frames, poses = [], []
    lo, hi = int(settings.get("min_len", 2)), int(settings.get("max_len", 6))
    size = int(settings["image_size"])
    phone = settings.get("phone") if data_framing else None
    if phone:
        framing, crop_cfg = PhoneFraming.from_dict(dict(phone)), CropConfig.from_dict(dict(settings.get("crop") or {}))
    for k in range(count):
        sent = rng.integers(0, len(lexicon), rng.integers(lo, hi + 1)).tolist()
        signer = signers[k % len(signers)]
        vrng = np.random.default_rng([seed, stream, k])
        if phone:
            raw, hands, p = render_phone_sentence(sent, signer, vrng, lexicon=lexicon, framing=framing,
                                                  coarticulation=float(settings.get("coarticulation", 0.0)),
                                                  duration=float(settings.get("duration", 1.0)), return_poses=True)
            v, boxes = renderer_crop(raw, hands, size, float(settings.get("fps", 25)), crop_cfg)
            p = poses_in_crops(p, boxes, framing.width, framing.height)
        else:
            v, p = render_sentence(sent, signer, vrng, lexicon=lexicon, image_size=size,
                                   noise=float(settings.get("noise", 3.0)), return_poses=True)
        frames.append(v)
        poses.append(p)
        if on_sentence is not None:
            on_sentence()
    return np.concatenate(frames), np.concatenate(poses)


class _Batcher:
    """Random crops (of the frames resized like training's 256/224 rule) + flips, with targets moved along."""

    def __init__(self, frames: np.ndarray, poses: np.ndarray, size: int, patch: int, mean, std, flip: bool):
        self.size, self.patch, self.flip = size, patch, flip
        self.resized = resize_shorter(frames, max(size, resize_size(size)))
        self.poses = poses
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255

    def __call__(self, idx: np.ndarray, rng: np.random.Generator, train: bool = True):
        s, big = self.size, self.resized.shape[1]
        n = len(idx)
        off = rng.integers(0, big - s + 1, (n, 2)) if train else np.full((n, 2), (big - s) // 2)
        x = np.stack([self.resized[i, oy:oy + s, ox:ox + s] for i, (ox, oy) in zip(idx, off)])
        y = torch.from_numpy(self.poses[idx].copy())
        px = self.poses[idx, 8:12] * big                                  # fractions -> resized pixels
        px = px.reshape(n, 2, 2) - off[:, None, :]
        flip = (rng.random(n) < 0.5) if (train and self.flip) else np.zeros(n, bool)
        if flip.any():
            x[flip] = x[flip, :, ::-1]
            px[flip, :, 0] = s - px[flip, :, 0]
            f = torch.from_numpy(flip)
            y[f, 0] = 1 - y[f, 0]
            y[f, 2] = 1 - y[f, 2]
            y[f, 6] = -y[f, 6]
        g = s // self.patch
        cell = np.floor(px / self.patch).astype(np.int64)                               # [n, 2 hands, xy]
        inside = (cell >= 0).all(-1) & (cell < g).all(-1)
        cells = torch.from_numpy(np.where(inside, cell[..., 1] * g + cell[..., 0], -1))
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
        return (t - self.mean) / self.std, y, cells


def pretrain_backbone(data_root: str | Path, out_path: str | Path, config: PretrainConfig | None = None, *,
                      vision_config=None, progress: bool = True, console=None,
                      overwrite: bool = False) -> PretrainResult:
    """Pretrain ``config.backbone`` on frames of the synthetic data set at ``data_root``; write safetensors.

    ``vision_config``: a :class:`~slsdk.models.clip.CLIPVisionConfig` to pretrain instead of the named
    backbone (e.g. the student's encoder, ``StudentConfig.encoder_config``).

    Only the training signers of the data set render frames (held-out signers stay unseen). Returns the
    weights path (``visual.*`` keys, loadable with ``slsdk.models.load_clip_visual``) and held-out probe
    metrics, also written to ``<out_path>.json``. ``out_path`` and its ``.json`` are new files, or files
    slsdk wrote and ``overwrite`` allows to replace; never one of the data set's files.
    """
    with reading(data_root), output_lock(out_path, overwrite=overwrite):
        side = Path(out_path).with_name(Path(out_path).name + ".json")
        for p in (Path(out_path), side):       # refuse now, not after the training
            check_output(p)
            check_replace(p, overwrite=overwrite)
        return _pretrain(data_root, Path(out_path), config, vision_config=vision_config, progress=progress,
                         console=console, overwrite=overwrite)


def _pretrain(data_root, out_path: Path, config, *, vision_config, progress, console,
              overwrite: bool) -> PretrainResult:

    cfg = config or PretrainConfig()
    console = console or make_console(progress)
    out_path = Path(out_path)
    lexicon, signers, settings = load_spec(data_root)
    spec = json.loads((Path(data_root) / "synthetic.json").read_text())
    held_out = set(spec.get("test_si_signers", []))
    train_signers = [s for s in signers if s.id not in held_out]
    if not train_signers:
        raise ValueError(f"{data_root}: every signer is held out; nothing to pretrain on")
    people = train_signers + [make_signer(10_000 + k, cfg.seed + 7919) for k in range(cfg.extra_signers)]
    vcfg = vision_config if vision_config is not None else get_config(cfg.backbone)
    name = cfg.backbone if vision_config is None else (f"{vcfg.image_size}px/{vcfg.patch_size} "
                                                       f"w{vcfg.width} L{vcfg.layers}")
    if int(settings["image_size"]) < vcfg.image_size:
        raise ValueError(f"{data_root}: frames are {settings['image_size']} px, smaller than {name}'s "
                         f"{vcfg.image_size} px input")
    device = resolve_device(cfg.device)
    console.print(f"device: {device}")
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    show = progress and console.is_terminal
    log_lines = progress and not console.is_terminal
    sentences = cfg.pool_videos + cfg.heldout_videos
    if log_lines:
        console.print(f"pretrain {name}: rendering {sentences} sentences ({cfg.pool_videos} to train on, "
                      f"{cfg.heldout_videos} to measure on)")
    with progress_bar(console, show) as bar:
        render = bar.add_task(f"pretrain {name}: render frames", total=sentences, info="")
        frames, poses = _render_pool(lexicon, people, settings, cfg.pool_videos, cfg.seed, 11, cfg.data_framing,
                                     on_sentence=lambda: bar.advance(render))
        hframes, hposes = _render_pool(lexicon, train_signers, settings, cfg.heldout_videos, cfg.seed, 12,
                                       cfg.data_framing, on_sentence=lambda: bar.advance(render))
        bar.update(render, description=f"pretrain {name}: resize frames")
        batches = _Batcher(frames, poses, vcfg.image_size, vcfg.patch_size, CLIP_MEAN, CLIP_STD, cfg.flip)
        held = _Batcher(hframes, hposes, vcfg.image_size, vcfg.patch_size, CLIP_MEAN, CLIP_STD, False)
        bar.remove_task(render)

    vit = VisionTransformer(vcfg)
    ns = len(pose_shapes(lexicon))
    probe = PoseProbe(vcfg.width, vcfg.output_dim, ns)
    vit.to(device)
    probe.to(device)
    params = list(vit.parameters()) + list(probe.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng([cfg.seed, 13])
    history = []
    vit.train()
    with progress_bar(console, show) as bar:
        task = bar.add_task(f"pretrain {name}", total=cfg.steps, info="")
        for step in range(cfg.steps):
            idx = rng.integers(0, len(frames), cfg.batch_frames)
            x, y, cells = (t.to(device) for t in batches(idx, rng))
            loss, stats = _pose_loss(*probe(vit, x), y, cells, ns)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            history.append({"step": step + 1, "loss": float(loss.detach()), **stats})
            bar.update(task, advance=1, info=f"loss {float(loss.detach()):.3f}")
            if log_lines and cfg.log_every and (step + 1) % cfg.log_every == 0:
                console.print(f"pretrain {name} step {step + 1}/{cfg.steps} loss {float(loss.detach()):.4f} "
                              f"lr {sched.get_last_lr()[0]:.3g}")
        bar.update(task, description=f"pretrain {name}: measure on held-out frames")
        vit.eval()
        with torch.no_grad():
            hx, ht, hcells = (t.to(device) for t in held(np.arange(len(hframes)), rng, train=False))
            outs = [probe(vit, hx[i:i + 256]) for i in range(0, len(hx), 256)]
            pred = torch.cat([o[0] for o in outs])
            where = torch.cat([o[1][..., 0] for o in outs])
        bar.remove_task(task)
    ok = hcells[:, 0] >= 0
    loc_acc = float((where[ok].argmax(-1) == hcells[ok, 0]).float().mean())
    shape_acc = float(((pred[:, 4:4 + ns].argmax(-1) == ht[:, 4].long()).float().mean()
                       + (pred[:, 4 + ns:4 + 2 * ns].argmax(-1) == ht[:, 5].long()).float().mean()) / 2)
    pos_err = float((pred[:, :4] - ht[:, :4]).abs().mean())
    metrics = {"backbone": name, "device": str(device), "vision_config": vcfg.to_dict(), "config": asdict(cfg), "seconds": round(time.perf_counter() - t0, 1),
               "train_frames": int(len(frames)), "heldout_frames": int(len(hframes)),
               "train_signers": [s.id for s in train_signers], "extra_signers": cfg.extra_signers, "shape_acc": round(shape_acc, 4),
               "position_err": round(pos_err, 4), "hand_patch_acc": round(loc_acc, 4), "final_loss": round(float(np.mean([h["loss"] for h in
                                                                                       history[-20:]])), 4)}
    with atomic_path(out_path) as tmp:
        save_file({f"visual.{k}": v.detach().cpu().contiguous() for k, v in vit.state_dict().items()}, str(tmp),
                  metadata={"format": "pt", "slsdk": "synthetic-pretrain", "backbone": name})
    side = out_path.with_name(out_path.name + ".json")
    atomic_write_text(side, json.dumps({**metrics, "history": history[:: max(1, len(history) // 100)]}, indent=1),
                      overwrite=overwrite)
    result = PretrainResult(out_path, metrics)
    console.print(result.summary())
    return result


__all__ = ["PretrainConfig", "PretrainResult", "pretrain_backbone"]
