"""Parameter and MAC counting (torch.utils.flop_counter; MACs = FLOPs / 2).

FlopCounterMode counts matmuls, convolutions and attention; element-wise ops, LayerNorm, softmax and
activations are not counted (the usual convention behind "17.6 GMACs for ViT-B/16").
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from rich.console import Console
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from slsdk.models.adapters import VARIANTS, FrameEncoder, FrameEncoderConfig
from slsdk.models.clip import VisionTransformer, get_config, resize_config
from slsdk.models.student import StreamingStudent, get_student, list_students, student_config
from slsdk.tables import fit_table, num


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# On CPU, F.scaled_dot_product_attention dispatches to an op FlopCounterMode does not know (it would count 0).
_CUSTOM = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _CUSTOM[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops


def count_flops(module_or_fn: Callable, example_inputs: Sequence | torch.Tensor) -> int:
    """Total forward FLOPs of `module_or_fn(*example_inputs)` (real or meta tensors); backward not run.

    Not under no_grad: FlopCounterMode's module tracker fails on non-leaf tensors made there.
    """
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM)
    with counter:
        module_or_fn(*example_inputs)
    return int(counter.get_total_flops())


def count_macs_per_frame(module_or_fn: Callable, example_inputs: Sequence | torch.Tensor,
                         frames: int | None = None) -> float:
    """MACs per frame. `frames` defaults to B*T of a 5D first input [B, T, 3, H, W] or N of a 4D one."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if frames is None:
        x = example_inputs[0]
        frames = x.shape[0] * x.shape[1] if x.dim() == 5 else x.shape[0]
    return count_flops(module_or_fn, example_inputs) / 2 / frames


def parameter_report(model: nn.Module) -> dict[str, int]:
    """{'trainable', 'frozen', 'total'} parameter counts (shared parameters counted once)."""
    seen, trainable, frozen = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


def vit_macs_formula(cfg) -> int:
    """Hand formula for one frame of the plain CLIP tower (matmul/conv MACs only)."""
    w, p, n = cfg.width, cfg.patch_size, cfg.num_tokens
    hidden = int(w * cfg.mlp_ratio)
    patches = n - 1
    embed = patches * w * 3 * p * p
    block = 3 * n * w * w + 2 * n * n * w + n * w * w + 2 * n * w * hidden
    return embed + cfg.layers * block + w * cfg.output_dim


def info_rows(backbone_name: str = "ViT-B/16", variants: Sequence[str] = VARIANTS, frames: int = 3,
              image_size: int | None = None, device: str = "meta") -> list[dict]:
    """Per variant: trainable/frozen frame-encoder parameters, GMACs per frame, extra % over frozen CLIP.

    Counted on `device` ("meta": shapes only, instant even for ViT-B/16) with `frames` frames of one video
    (the cross-frame part is computed for every frame, so it is included per frame).
    """
    vcfg = get_config(backbone_name)
    if image_size:
        vcfg = resize_config(vcfg, image_size)
    rows, base = [], None
    for variant in ("frozen", *[v for v in variants if v != "frozen"]):
        with torch.device(device):
            enc = FrameEncoder(VisionTransformer(vcfg), FrameEncoderConfig(variant=variant))
            x = torch.zeros(1, frames, 3, vcfg.image_size, vcfg.image_size)
            lengths = torch.full((1,), frames, dtype=torch.long)
        macs = count_macs_per_frame(enc, (x, lengths))
        if variant == "frozen":
            base = macs
        if variant not in variants:
            continue
        pr = parameter_report(enc)
        rows.append({"variant": variant, "backbone": backbone_name, "trainable_params": pr["trainable"],
                     "frozen_params": pr["frozen"], "gmacs_per_frame": macs / 1e9,
                     "extra_pct": 100.0 * (macs - base) / base})
    return rows


def int8_size_estimate(model: nn.Module) -> dict[str, float]:
    """Weight bytes in MB: fp32, and int8 as the XNNPACK / QDQ recipes store it.

    Every >= 2-D weight (conv, linear, LSTM gates) is stored as int8 plus a float scale and an int32 bias per
    output channel; 1-D parameters (BatchNorm, biases) fold into those biases. Graph overhead is not counted:
    the measured file sizes are in ``benchmarks/bench_students.py``.
    """
    weights = [p for p in model.parameters() if p.dim() >= 2]
    n = sum(p.numel() for p in weights)
    rows = sum(p.shape[0] for p in weights)
    return {"fp32_mb": 4 * (n + rows) / 1e6, "int8_mb": (n + 8 * rows) / 1e6}


def student_rows(num_classes: int = 389, frames: int = 8, device: str = "meta") -> list[dict]:
    """Per registered student: input size, parameters, GMACs per frame (encoder + streaming head) and the
    estimated fp32 / int8 weight sizes (``int8_size_estimate``), at ``num_classes`` (389: Isharah-500 + blank)."""

    rows = []
    for name in list_students():
        cfg = student_config(name, num_classes)
        with torch.device(device):
            model = StreamingStudent(cfg).eval()
            x = torch.zeros(1, frames, 3, cfg.image_size, cfg.image_size)
            lengths = torch.full((1,), frames, dtype=torch.long)
        macs = count_macs_per_frame(model, (x, lengths), frames=frames)
        enc = sum(p.numel() for p in model.encoder.parameters())
        size = int8_size_estimate(model)
        rows.append({"student": name, "input_px": cfg.image_size, "encoder_params": enc,
                     "total_params": parameter_report(model)["total"], "gmacs_per_frame": macs / 1e9,
                     "fp32_mb_est": size["fp32_mb"], "int8_mb_est": size["int8_mb"],
                     "pretrained": get_student(name).pretrained or "-"})
    return rows


def info_table(backbone_name: str = "ViT-B/16", frames: int = 3, console: Console | None = None):
    """``info_rows`` as a table that fits ``console`` (what ``slsdk info`` prints first): parameters in full,
    GMACs per frame and the extra compute over the frozen tower to meaningful digits."""
    rows = info_rows(backbone_name, frames=frames)
    headers = ("variant", "trainable params", "frozen params", "GMACs per frame", "extra vs frozen %")
    cells = [(r["variant"], num(r["trainable_params"]), num(r["frozen_params"]), num(r["gmacs_per_frame"]),
              num(r["extra_pct"])) for r in rows]
    return fit_table(console or Console(), f"frame encoders on {backbone_name} ({frames} frames per clip)",
                     headers, cells)


def student_table(num_classes: int = 389, console: Console | None = None):
    """``student_rows`` as a table that fits ``console`` (what ``slsdk info`` prints under the frame-encoder
    table), the pretrained weights' source under it."""
    rows = student_rows(num_classes)
    headers = ("student", "input px", "encoder M params", "total M params", "GMACs per frame", "fp32 MB (est.)",
               "int8 MB (est.)")
    cells = [(r["student"], num(r["input_px"]), num(r["encoder_params"] / 1e6), num(r["total_params"] / 1e6),
              num(r["gmacs_per_frame"]), num(r["fp32_mb_est"]), num(r["int8_mb_est"])) for r in rows]
    notes = [f"{r['student']}: pretrained weights {r['pretrained']}" for r in rows if r["pretrained"] != "-"]
    return fit_table(console or Console(), f"student frame encoders (registry; streaming head at {num_classes} "
                     "classes)", headers, cells, notes=notes)


__all__ = ["count_flops", "count_macs_per_frame", "parameter_report", "vit_macs_formula", "info_rows",
           "student_rows", "int8_size_estimate", "student_table", "info_table"]
