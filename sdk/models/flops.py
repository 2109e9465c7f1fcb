"""Parameter and MAC counting (torch.utils.flop_counter; MACs = FLOPs / 2).

FlopCounterMode counts matmuls, convolutions and attention; element-wise ops, LayerNorm, softmax and
activations are not counted (the usual convention behind "17.6 GMACs for ViT-B/16").
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from slsdk.models.adapters import VARIANTS, FrameEncoder, FrameEncoderConfig
from slsdk.models.clip import VisionTransformer, get_config, resize_config


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


__all__ = ["count_flops", "count_macs_per_frame", "parameter_report", "vit_macs_formula", "info_rows"]
