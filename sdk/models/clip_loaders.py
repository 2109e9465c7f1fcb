"""Load a CLIP ViT image tower from a registered name or from OpenAI / open_clip / Hugging Face checkpoints.

`load_clip_visual(path_or_name, config=None, image_size=None)` returns a `slsdk.models.clip.VisionTransformer`
in eval mode, float32. What it accepts:

* a name from the config registry (`slsdk.models.clip.list_models()`): a randomly initialised tower
  (seeded by torch's global RNG);
* an **OpenAI CLIP TorchScript archive** as OpenAI distributes it (a `torch.jit.save` zip of the whole model;
  the `visual.*` tensors of its state dict are taken, fp16 is cast to float32). The archive is read as data
  (a restricted unpickler rebuilds the tensors from its storages), never with `torch.jit.load`, which would run
  the archive's own TorchScript code (`__setstate__`) while loading;
* a **torch state dict** (`torch.save`, loaded with `weights_only=True`) with OpenAI / open_clip `visual.*`
  keys or Hugging Face `vision_model.*` keys, possibly nested under `state_dict` / `model` / `module` and
  prefixed `module.` (DDP) or `_orig_mod.` (torch.compile);
* a **safetensors** file with either key layout;
* a **Hugging Face directory** (`config.json` + `model.safetensors` / `pytorch_model.bin`, sharded ones via
  their `*.index.json`) of a `CLIPModel`, `CLIPVisionModel` or `CLIPVisionModelWithProjection`;
* an **open_clip hub directory** (`open_clip_config.json` + `open_clip_model.safetensors` /
  `open_clip_pytorch_model.bin`);
* an in-memory state dict (a mapping of names to tensors).

Formats are detected by content (zip entries, the safetensors header, the pickle magic), not by suffix.

With `config=None` the shape is inferred from the tensors: width, patch size, layer count, grid (hence
image size), MLP ratio and output dim. What tensors cannot tell comes from a config file next to the weights
(Hugging Face `config.json`: heads, `hidden_act`, `layer_norm_eps`; `open_clip_config.json`: head width,
`quick_gelu`) or else from OpenAI's conventions: heads = width // 64, QuickGELU, LayerNorm eps 1e-5.
**open_clip weights trained with GELU (most LAION models) need `config={"act": "gelu"}`** when no
`open_clip_config.json` comes with them. `config` may be a `CLIPVisionConfig` (used as is, checked against the
tensors), a registry name, or a dict of fields that override the inferred ones.

`image_size` different from the checkpoint's bicubically interpolates the positional embedding (as Hugging Face's
`interpolate_pos_encoding` does) into a config of that size.

Errors name the file and the problem: `FileNotFoundError` for a missing path, `CheckpointError` (a `ValueError`)
for an unknown format (listing the formats tried), a truncated or corrupt file, missing or unexpected keys, and
a tensor whose shape disagrees with the config (naming the key and both shapes).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import fields, replace

import torch

from slsdk.models.clip import (CLIPVisionConfig, VisionTransformer, get_config, interpolate_pos_embed,
                               list_models, resize_config)
from slsdk.models.clip_files import formats_tried, read_checkpoint_tensors
from slsdk.models.errors import CheckpointError

__all__ = ["load_clip_visual", "read_visual_state_dict"]

# ---------------------------------------------------------------------------------------------- key layouts

_HF_BLOCK_MAP = {
    "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
    "self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_TOP_MAP = {
    "embeddings.class_embedding": "class_embedding",
    "embeddings.patch_embedding.weight": "conv1.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "pre_layrnorm.weight": "ln_pre.weight", "pre_layrnorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight", "post_layernorm.bias": "ln_post.bias",
}
_HF_IGNORED = ("embeddings.position_ids",)


def _find_prefixes(sd: Mapping[str, torch.Tensor], anchor: str, sibling: str) -> list[str]:
    out = []
    for k in sd:
        if k.endswith(anchor):
            prefix = k[: len(k) - len(anchor)]
            if prefix + sibling in sd:
                out.append(prefix)
    return out


def _pick(prefixes: list[str], preferred: tuple[str, ...], source: str, what: str) -> str:
    if len(prefixes) == 1:
        return prefixes[0]
    for p in preferred:
        if p in prefixes:
            return p
    raise CheckpointError(f"{source}: several {what} towers found under prefixes {prefixes}; pass the sub-dict "
                          "you want as a state dict")


def _from_openai(sd: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict, dict, list]:
    """OpenAI/open_clip `visual.*` -> (canonical tensors, canonical -> source key, unexpected source keys)."""
    canon, src, unexpected = {}, {}, []
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        name = k[len(prefix):]
        if name == "attn_mask":  # a buffer some exports carry; the image tower has no mask
            continue
        canon[name], src[name] = v, k
    return canon, src, unexpected


def _from_hf(sd: Mapping[str, torch.Tensor], prefix: str, source: str) -> tuple[dict, dict, list, dict]:
    """Hugging Face `vision_model.*` (+ `visual_projection.weight`) -> canonical OpenAI layout."""
    canon, src, unexpected, missing_qkv = {}, {}, [], []
    qkv: dict[tuple[int, str], dict[str, tuple[str, torch.Tensor]]] = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        name = k[len(prefix):]
        if name in _HF_IGNORED:
            continue
        if name in _HF_TOP_MAP:
            canon[_HF_TOP_MAP[name]], src[_HF_TOP_MAP[name]] = v, k
            continue
        parts = name.split(".", 3)
        if len(parts) == 4 and parts[0] == "encoder" and parts[1] == "layers" and parts[2].isdigit():
            i, rest = int(parts[2]), parts[3]
            if rest in _HF_BLOCK_MAP:
                c = f"transformer.resblocks.{i}.{_HF_BLOCK_MAP[rest]}"
                canon[c], src[c] = v, k
                continue
            for which in ("q", "k", "v"):
                for kind in ("weight", "bias"):
                    if rest == f"self_attn.{which}_proj.{kind}":
                        qkv.setdefault((i, kind), {})[which] = (k, v)
                        break
                else:
                    continue
                break
            else:
                unexpected.append(k)
            continue
        unexpected.append(k)
    for (i, kind), parts in sorted(qkv.items()):
        c = f"transformer.resblocks.{i}.attn.in_proj_{kind}"
        absent = [w for w in "qkv" if w not in parts]
        if absent:
            missing_qkv += [f"{prefix}encoder.layers.{i}.self_attn.{w}_proj.{kind}" for w in absent]
            continue
        shapes = {tuple(parts[w][1].shape) for w in "qkv"}
        if len(shapes) != 1:
            raise CheckpointError(f"{source}: q/k/v projections of layer {i} disagree in shape: "
                                  + ", ".join(f"{parts[w][0]} {tuple(parts[w][1].shape)}" for w in "qkv"))
        canon[c] = torch.cat([parts[w][1] for w in "qkv"], dim=0)
        src[c] = f"{prefix}encoder.layers.{i}.self_attn.{{q,k,v}}_proj.{kind}"
    # projection lives beside the vision_model (CLIPModel / CLIPVisionModelWithProjection)
    root = prefix[: -len("vision_model.")] if prefix.endswith("vision_model.") else prefix
    proj_key = root + "visual_projection.weight"
    if proj_key in sd:
        canon["proj"], src["proj"] = sd[proj_key].t(), proj_key + " (transposed)"
    if root + "visual_projection.bias" in sd:
        unexpected.append(root + "visual_projection.bias")
    return canon, src, unexpected, {"missing": missing_qkv}


def read_visual_state_dict(path_or_state_dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint and return its image tower in slsdk's (OpenAI) key layout, without building a model.

    Returns (tensors keyed like `VisionTransformer.state_dict()`, info) with info = {"format", "layout",
    "source", "source_keys" (canonical -> checkpoint key), "hints" (config fields from files beside the weights)}.
    """
    sd, fmt, source, hints = read_checkpoint_tensors(path_or_state_dict)
    oa = _find_prefixes(sd, "class_embedding", "conv1.weight")
    oa = [p for p in oa if not p.endswith("embeddings.")]  # HF's embeddings.class_embedding is not OpenAI's
    hf = _find_prefixes(sd, "embeddings.patch_embedding.weight", "embeddings.class_embedding")
    extra_missing: list[str] = []
    if oa:
        prefix = _pick(oa, ("visual.", ""), source, "OpenAI/open_clip")
        canon, src, unexpected = _from_openai(sd, prefix)
        layout = "openai"
    elif hf:
        prefix = _pick(hf, ("vision_model.", ""), source, "Hugging Face")
        canon, src, unexpected, more = _from_hf(sd, prefix, source)
        extra_missing = more["missing"]
        layout = "hf"
    else:
        sample = ", ".join(list(sd)[:8])
        if any(".attnpool." in k or k.startswith("attnpool.") for k in sd):
            why = "it looks like an OpenAI ResNet (ModifiedResNet) CLIP tower, which is not supported (ViT only)"
        elif any(k.startswith(("visual.trunk.", "trunk.")) for k in sd):
            why = "it looks like an open_clip timm tower (visual.trunk.*), which is not supported (ViT only)"
        else:
            why = ("expected OpenAI/open_clip keys (visual.class_embedding, visual.conv1.weight, ...) or Hugging "
                   "Face keys (vision_model.embeddings.patch_embedding.weight, ...)")
        raise CheckpointError(f"{source} ({fmt}): no CLIP ViT image tower found: {why}; first keys: {sample}; "
                              f"formats tried: {formats_tried()}")
    info = {"format": fmt, "layout": layout, "prefix": prefix, "source": source, "source_keys": src,
            "hints": hints, "unexpected": unexpected, "missing_extra": extra_missing}
    return canon, info


# ---------------------------------------------------------------------------------------------- config

def _infer_config(canon: Mapping[str, torch.Tensor], src: Mapping[str, str], hints: dict,
                  source: str) -> CLIPVisionConfig:
    def need(key: str, ndim: int) -> torch.Tensor:
        if key not in canon:
            raise CheckpointError(f"{source}: missing key {key!r} needed to infer the tower's shape "
                                  "(pass config= to give the shape explicitly)")
        t = canon[key]
        if t.ndim != ndim:
            raise CheckpointError(f"{source}: tensor {src.get(key, key)!r} has shape {tuple(t.shape)}, "
                                  f"expected {ndim} dimensions")
        return t

    conv = need("conv1.weight", 4)
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    if conv.shape[1] != 3 or conv.shape[2] != conv.shape[3] or 0 in conv.shape:
        raise CheckpointError(f"{source}: tensor {src['conv1.weight']!r} has shape {tuple(conv.shape)}, expected "
                              "[width, 3, patch, patch]")
    pos = need("positional_embedding", 2)
    grid = math.isqrt(max(int(pos.shape[0]) - 1, 0))
    if grid < 1 or grid * grid != pos.shape[0] - 1 or pos.shape[1] != width:
        raise CheckpointError(f"{source}: tensor {src['positional_embedding']!r} has {pos.shape[0]} positions, "
                              "not 1 + a square grid")
    blocks = {int(k.split(".")[2]) for k in canon if k.startswith("transformer.resblocks.")
              and k.split(".")[2].isdigit()}
    layers = max(blocks) + 1 if blocks else 0
    if layers == 0:
        raise CheckpointError(f"{source}: no transformer blocks found (transformer.resblocks.N.*)")
    fc = canon.get("transformer.resblocks.0.mlp.c_fc.weight")
    mlp_ratio = float(fc.shape[0]) / width if fc is not None and fc.ndim == 2 else 4.0
    proj = canon.get("proj")
    output_dim = int(proj.shape[1]) if proj is not None and proj.ndim == 2 else width
    values = dict(image_size=grid * patch, patch_size=patch, width=width, layers=layers,
                  heads=max(1, width // 64), output_dim=output_dim, mlp_ratio=mlp_ratio,
                  act="quick_gelu", ln_eps=1e-5)
    values.update(hints)
    return CLIPVisionConfig(**values)


def _resolve_config(config, inferred: CLIPVisionConfig, source: str) -> CLIPVisionConfig:
    if config is None:
        return inferred
    if isinstance(config, CLIPVisionConfig):
        return config
    if isinstance(config, str):
        return get_config(config)
    if isinstance(config, Mapping):
        known = {f.name for f in fields(CLIPVisionConfig)}
        bad = sorted(set(config) - known)
        if bad:
            raise ValueError(f"{source}: unknown config fields {bad}; known: {sorted(known)}")
        return replace(inferred, **dict(config))
    raise TypeError(f"config must be None, a CLIPVisionConfig, a registry name or a dict, got {type(config).__name__}")


# ---------------------------------------------------------------------------------------------- entry point

def load_clip_visual(path_or_name, config=None, image_size: int | None = None) -> VisionTransformer:
    """A CLIP image tower (eval mode, float32) from a registry name, a checkpoint path or a state dict.

    Args:
        path_or_name: a name from `slsdk.models.clip.list_models()` (random weights from torch's RNG), a
            checkpoint file / directory (see `FORMATS`), or an in-memory state dict.
        config: None (infer from the tensors), a `CLIPVisionConfig`, a registry name, or a dict of fields
            overriding the inferred ones (e.g. `{"heads": 2}` or `{"act": "gelu"}`).
        image_size: input size to build the tower for; if it differs from the checkpoint's, the positional
            embedding is interpolated bicubically.
    """
    if isinstance(path_or_name, (str, os.PathLike)) and not os.path.exists(path_or_name):
        name = os.fspath(path_or_name)
        try:
            base = get_config(name)
        except KeyError:
            raise FileNotFoundError(
                f"CLIP checkpoint not found: {name!r} is neither an existing file/directory nor a registered "
                f"config name ({', '.join(list_models())})") from None
        cfg = _resolve_config(config, base, name)
        if image_size is not None:
            cfg = resize_config(cfg, int(image_size))
        _check_patch(cfg, name)
        model = VisionTransformer(cfg).float().eval()
        model.load_info = {"format": "registry", "source": name}
        return model

    canon, info = read_visual_state_dict(path_or_name)
    source, src = info["source"], info["source_keys"]
    inferred = _infer_config(canon, src, info["hints"], source)
    cfg = _resolve_config(config, inferred, source)
    _check_patch(cfg, source)

    with torch.device("meta"):
        try:
            model = VisionTransformer(cfg)
        except ValueError as e:
            raise ValueError(f"{source}: invalid config {cfg}: {e}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in canon]
    if "proj" in missing and cfg.output_dim == cfg.width:  # CLIPVisionModel: no projection -> identity
        canon["proj"] = torch.eye(cfg.width)
        src["proj"] = "(no projection in checkpoint: identity)"
        missing.remove("proj")
    unexpected = list(info["unexpected"]) + [src[k] for k in canon if k not in expected]
    missing_src = info["missing_extra"] + [_source_name(k, info) for k in missing]
    if missing_src or unexpected:
        parts = []
        if missing_src:
            parts.append(f"missing keys ({len(missing_src)}): {', '.join(missing_src[:20])}"
                         + (" ..." if len(missing_src) > 20 else ""))
        if unexpected:
            parts.append(f"unexpected keys for a CLIP ViT tower ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         + (" ..." if len(unexpected) > 20 else ""))
        raise CheckpointError(f"{source} ({info['format']}, {info['layout']} layout) does not match config "
                              f"{_short(cfg)}: " + "; ".join(parts))
    for k, shape in expected.items():
        got = tuple(canon[k].shape)
        if got != shape:
            hint = ""
            if k == "positional_embedding" and got[1:] == shape[1:]:
                hint = (f" (the checkpoint is for image_size {inferred.image_size}: load with that config and "
                        f"image_size={cfg.image_size} to interpolate)")
            raise ValueError(f"{source}: tensor {src[k]!r} has shape {got} but config {_short(cfg)} expects "
                             f"{shape}{hint}")

    state = {k: canon[k].detach().to(dtype=torch.float32, device="cpu", copy=True).contiguous() for k in expected}
    if image_size is not None and int(image_size) != cfg.image_size:
        new_cfg = resize_config(cfg, int(image_size))
        _check_patch(new_cfg, source)
        state["positional_embedding"] = interpolate_pos_embed(state["positional_embedding"],
                                                              new_cfg.grid * new_cfg.grid).contiguous()
        cfg = new_cfg
        with torch.device("meta"):
            model = VisionTransformer(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    model = model.float().eval()
    model.load_info = {"format": info["format"], "layout": info["layout"], "source": source,
                       "config": cfg.to_dict()}
    return model


def _source_name(canonical: str, info: dict) -> str:
    """The checkpoint key a canonical (OpenAI-layout) key would have had in the checkpoint's own layout."""
    prefix = info["prefix"]
    if info["layout"] == "openai":
        return prefix + canonical
    for hf, c in _HF_TOP_MAP.items():
        if c == canonical:
            return prefix + hf
    if canonical == "proj":
        root = prefix[: -len("vision_model.")] if prefix.endswith("vision_model.") else prefix
        return root + "visual_projection.weight"
    m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", canonical)
    if m:
        i, rest = m.groups()
        if rest.startswith("attn.in_proj_"):
            return f"{prefix}encoder.layers.{i}.self_attn.{{q,k,v}}_proj.{rest.rsplit('_', 1)[1]}"
        for hf, c in _HF_BLOCK_MAP.items():
            if c == rest:
                return f"{prefix}encoder.layers.{i}.{hf}"
    return canonical


def _check_patch(cfg: CLIPVisionConfig, source: str) -> None:
    if cfg.image_size % cfg.patch_size:
        raise ValueError(f"{source}: image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")


def _short(cfg: CLIPVisionConfig) -> str:
    return (f"(image_size={cfg.image_size}, patch={cfg.patch_size}, width={cfg.width}, layers={cfg.layers}, "
            f"heads={cfg.heads}, output_dim={cfg.output_dim}, mlp_ratio={cfg.mlp_ratio})")
