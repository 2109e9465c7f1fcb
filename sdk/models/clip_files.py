"""Reading CLIP checkpoint files into flat tensors: format detection by content, torch state dicts, safetensors,
sharded Hugging Face weights, OpenAI TorchScript archives, and the config hints of the files beside the weights."""
from __future__ import annotations

import json
import os
import reprlib
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from slsdk.models.clip_torchscript import load_torchscript_tensors
from slsdk.models.errors import CheckpointError
from slsdk.models.torchfile import load_torch_file, max_checkpoint_bytes, zip_names

__all__ = ["FORMATS", "detect_format", "formats_tried", "read_checkpoint_tensors"]

#: Checkpoint formats `load_clip_visual` understands: label -> description (used in error messages).
FORMATS: dict[str, str] = {
    "openai-torchscript": "OpenAI CLIP TorchScript archive (torch.jit.save zip with code/ and constants.pkl)",
    "torch-state-dict": "torch.save state dict (zip or legacy pickle) with OpenAI/open_clip `visual.*` "
                        "or Hugging Face `vision_model.*` keys",
    "safetensors": "safetensors file with OpenAI/open_clip `visual.*` or Hugging Face `vision_model.*` keys",
    "hf-directory": "Hugging Face directory: config.json + model.safetensors / pytorch_model.bin "
                    "(or a sharded *.index.json)",
    "open_clip-directory": "open_clip hub directory: open_clip_config.json + open_clip_model.safetensors / "
                           "open_clip_pytorch_model.bin",
}

_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
               "pytorch_model.bin.index.json")
_OC_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def formats_tried() -> str:
    """The formats `load_clip_visual` tried, for an error message."""
    return "; ".join(f"{k} ({v})" for k, v in FORMATS.items())


# ---------------------------------------------------------------------------------------------- detection

def detect_format(path: str | os.PathLike) -> str:
    """The `FORMATS` label of a checkpoint file or directory, judged by its content.

    Raises FileNotFoundError for a missing path and CheckpointError for a truncated / corrupt / unknown file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"CLIP checkpoint not found: {str(p)!r}")
    if p.is_dir():
        if (p / "open_clip_config.json").is_file() and any((p / w).is_file() for w in _OC_WEIGHTS):
            return "open_clip-directory"
        if (p / "config.json").is_file() and any((p / w).is_file() for w in _HF_WEIGHTS):
            return "hf-directory"
        raise CheckpointError(
            f"{p}: directory is not a known CLIP checkpoint layout (found: "
            f"{', '.join(sorted(x.name for x in p.iterdir())[:20]) or 'nothing'}); formats tried: {formats_tried()}")
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(16)
    if size == 0:
        raise CheckpointError(f"{p}: file is empty (truncated download?)")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if not zipfile.is_zipfile(p):
            raise CheckpointError(f"{p}: truncated or corrupt zip archive (no central directory); "
                                  "re-download or re-save the checkpoint")
        names = zip_names(p, error=CheckpointError)   # the directory is bounded before it is parsed
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "openai-torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-state-dict"
        raise CheckpointError(f"{p}: a zip archive but neither a torch.save file nor a TorchScript archive "
                              f"(no data.pkl / code/); formats tried: {formats_tried()}")
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < n < 100_000_000:
            if 8 + n > size:
                raise CheckpointError(f"{p}: truncated safetensors file (header says {n} bytes, file has {size})")
            return "safetensors"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:  # pickle protocol 2-5: legacy (non-zip) torch.save
        return "torch-state-dict"
    raise CheckpointError(f"{p}: unknown checkpoint format (first bytes {head[:8]!r}); formats tried: "
                          f"{formats_tried()}")


# ---------------------------------------------------------------------------------------------- reading

def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` after the bounded checks of `slsdk.models.torchfile` (storage sizes
    against records and the cap, no compressed storage records, no code in the pickle)."""
    return load_torch_file(path, error=CheckpointError)


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors file (truncated or corrupt?): {e}") from None


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    fmt = detect_format(path)
    if fmt == "openai-torchscript":
        return load_torchscript_tensors(path)
    if fmt == "safetensors":
        return _safetensors_load(path)
    return _flatten(_torch_load(path), str(path))


def _load_sharded(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a valid sharded-checkpoint index ({e})") from None
    if not isinstance(weight_map, Mapping) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: not a valid sharded-checkpoint index (weight_map is not names -> files)")
    root = index.parent.resolve()
    shards = {}
    for name in sorted(set(weight_map.values())):
        shard = (index.parent / name).resolve()
        if root not in shard.parents:
            raise CheckpointError(f"{index}: shard {name!r} lies outside the checkpoint's folder")
        shards.setdefault(shard, index.parent / name)
    total = sum(s.stat().st_size for s in shards if s.is_file())
    if total > max_checkpoint_bytes():
        raise CheckpointError(f"{index}: its shards hold {total} bytes, more than the cap of {max_checkpoint_bytes()} "
                              "(set SLSDK_MAX_CHECKPOINT_BYTES to raise it for a checkpoint you trust)")
    out: dict[str, torch.Tensor] = {}
    for shard in shards.values():
        out.update(_load_file(shard))
    return out


def _flatten(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Unwrap {'state_dict': ...} / {'model': ...} nesting and 'module.' / '_orig_mod.' prefixes."""
    for _ in range(4):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in ("state_dict", "model", "module", "model_state_dict"):
                if isinstance(obj.get(key), Mapping):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (mapping of names to tensors), got "
                              f"{type(obj).__name__}; formats tried: {formats_tried()}")
    odd = next((k for k, v in obj.items() if isinstance(v, torch.Tensor) and not isinstance(k, str)), None)
    if odd is not None:
        raise CheckpointError(f"{source}: a tensor is stored under {reprlib.repr(odd)}, not under a name")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{source}: no tensors found (top-level keys: "
                              f"{[reprlib.repr(k) for k in list(obj)[:10]]}); formats tried: {formats_tried()}")
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot parse JSON config ({e})") from None


def _hf_vision_hints(cfg: dict, source: str) -> dict:
    """CLIPVisionConfig fields from a Hugging Face config.json (CLIPConfig or CLIPVisionConfig)."""
    model_type = cfg.get("model_type", "")
    if model_type == "clip":
        cfg = cfg.get("vision_config") or {}
    elif model_type not in ("clip_vision_model", ""):
        raise CheckpointError(f"{source}: Hugging Face config.json has model_type {model_type!r}; only CLIP "
                              "('clip', 'clip_vision_model') is supported")
    hints: dict = {}
    if "num_attention_heads" in cfg:
        hints["heads"] = int(cfg["num_attention_heads"])
    if "hidden_act" in cfg:
        hints["act"] = str(cfg["hidden_act"])
    if "layer_norm_eps" in cfg:
        hints["ln_eps"] = float(cfg["layer_norm_eps"])
    return hints


def _open_clip_hints(cfg: dict, source: str) -> dict:
    model_cfg = cfg.get("model_cfg", cfg)
    vc = model_cfg.get("vision_cfg") or {}
    if vc.get("timm_model_name") or not isinstance(vc.get("layers", 12), int):
        raise CheckpointError(f"{source}: open_clip vision tower is a timm or ResNet model; only the ViT "
                              "tower (open_clip.transformer.VisionTransformer) is supported")
    unsupported = {k: vc[k] for k, default in (
        ("attentional_pool", False), ("no_ln_pre", False), ("final_ln_after_pool", False), ("pool_type", "tok"),
        ("pos_embed_type", "learnable"), ("qk_norm", False), ("scaled_cosine_attn", False),
        ("scale_heads", False), ("scale_attn_inner", False), ("scale_attn", False), ("scale_fc", False))
        if k in vc and vc[k] != default}
    if unsupported:
        raise CheckpointError(f"{source}: open_clip vision options not supported by slsdk's CLIP ViT: {unsupported}")
    hints: dict = {"act": "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"}
    width = int(vc.get("width", 768))
    hints["heads"] = max(1, width // int(vc.get("head_width", 64)))
    eps = (vc.get("norm_kwargs") or {}).get("eps")
    if eps is not None:
        hints["ln_eps"] = float(eps)
    return hints


def read_checkpoint_tensors(path_or_sd) -> tuple[dict[str, torch.Tensor], str, str, dict]:
    """-> (flat tensors, format label, source name for messages, config hints from files beside the weights)."""
    if isinstance(path_or_sd, Mapping):
        return _flatten(path_or_sd, "<state dict>"), "state-dict-object", "<state dict>", {}
    p = Path(path_or_sd)
    fmt = detect_format(p)
    hints: dict = {}
    if fmt == "open_clip-directory":
        hints = _open_clip_hints(_read_json(p / "open_clip_config.json"), str(p / "open_clip_config.json"))
        w = next(p / w for w in _OC_WEIGHTS if (p / w).is_file())
        return _load_file(w), fmt, str(w), hints
    if fmt == "hf-directory":
        hints = _hf_vision_hints(_read_json(p / "config.json"), str(p / "config.json"))
        w = next(p / w for w in _HF_WEIGHTS if (p / w).is_file())
        sd = _load_sharded(w) if w.name.endswith(".index.json") else _load_file(w)
        return sd, fmt, str(w), hints
    sd = _load_file(p)
    # a single weights file inside a Hugging Face / open_clip folder: use the config beside it
    if (p.parent / "open_clip_config.json").is_file() and p.name in _OC_WEIGHTS:
        hints = _open_clip_hints(_read_json(p.parent / "open_clip_config.json"), str(p.parent / "open_clip_config.json"))
    elif (p.parent / "config.json").is_file():
        try:
            side = json.loads((p.parent / "config.json").read_text())
        except (OSError, ValueError):
            side = None
        if isinstance(side, dict) and side.get("model_type") in ("clip", "clip_vision_model"):
            hints = _hf_vision_hints(side, str(p.parent / "config.json"))
    return sd, fmt, str(p), hints
