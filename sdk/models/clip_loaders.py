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

import json
import math
import os
import pickle
import re
import reprlib
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path

import torch

from slsdk.errors import SlsdkError
from slsdk.models.clip import (CLIPVisionConfig, VisionTransformer, get_config, interpolate_pos_embed,
                               list_models, resize_config)
from slsdk.models.torchfile import check_zip_archive, load_torch_file, max_checkpoint_bytes, zip_names

__all__ = ["load_clip_visual", "detect_format", "read_visual_state_dict", "CheckpointError", "FORMATS"]

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


class CheckpointError(SlsdkError, ValueError):
    """A checkpoint that cannot be read or does not hold a CLIP ViT image tower."""


def _formats_tried() -> str:
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
            f"{', '.join(sorted(x.name for x in p.iterdir())[:20]) or 'nothing'}); formats tried: {_formats_tried()}")
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
                              f"(no data.pkl / code/); formats tried: {_formats_tried()}")
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < n < 100_000_000:
            if 8 + n > size:
                raise CheckpointError(f"{p}: truncated safetensors file (header says {n} bytes, file has {size})")
            return "safetensors"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:  # pickle protocol 2-5: legacy (non-zip) torch.save
        return "torch-state-dict"
    raise CheckpointError(f"{p}: unknown checkpoint format (first bytes {head[:8]!r}); formats tried: "
                          f"{_formats_tried()}")


# ---------------------------------------------------------------------------------------------- reading

def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` after the bounded checks of `slsdk.models.torchfile` (storage sizes
    against records and the cap, no compressed storage records, no code in the pickle)."""
    return load_torch_file(path, error=CheckpointError)


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors file (truncated or corrupt?): {e}") from None


# OpenAI's TorchScript archive is read as data: its data.pkl pickles the module tree (``__torch__.*`` objects whose
# state holds the tensors). torch.jit.load would run the archive's own TorchScript (``__setstate__``) while loading;
# here a restricted unpickler resolves only the names below and rebuilds the tensors from the archive's storages.
_TS_STORAGES = {f"{n}Storage": d for n, d in (
    ("Float", torch.float32), ("Half", torch.float16), ("BFloat16", torch.bfloat16), ("Double", torch.float64),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}
_TS_MAX_PICKLE = 64 << 20


class _TSObject:
    """Stand-in for a ``__torch__.*`` class: keeps the pickled state, runs nothing."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _TSStorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _ts_identity(x, *args):
    return x


def _ts_rebuild_tensor(storage, offset, size, stride, *rest):
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without storage")
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    if len(size) != len(stride) or any(v < 0 for v in size + stride) or offset < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    if all(size):
        extent = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1
        if extent > storage.numel():
            raise pickle.UnpicklingError(f"tensor of size {size} reaches element {extent} of a storage of "
                                         f"{storage.numel()}")
    return storage.as_strided(size, stride, int(offset))


class _TorchScriptUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(file)
        self._zip, self._prefix, self._source, self._storages = archive, prefix, source, {}
        self._classes: dict[str, type] = {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            if key not in self._classes:
                self._classes[key] = type(name, (_TSObject,), {"qualified_name": key})
            return self._classes[key]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _ts_rebuild_tensor
        if module == "torch" and name in _TS_STORAGES:
            return _TSStorageType(_TS_STORAGES[name])
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_tensorlist", "build_doublelist",
                                                      "build_boollist", "build_list", "restore_type_tag"):
            return _ts_identity
        raise pickle.UnpicklingError(f"refused global {module}.{name} (only tensors and module attributes are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _TSStorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        if key not in self._storages:
            name = f"{self._prefix}data/{key}"
            try:
                info = self._zip.getinfo(name)
            except KeyError:
                raise pickle.UnpicklingError(f"storage {name} is missing from the archive") from None
            itemsize = torch.empty((), dtype=stype.dtype).element_size()
            if info.file_size != int(numel) * itemsize:
                raise pickle.UnpicklingError(f"storage {name} has {info.file_size} bytes, expected {numel} x "
                                             f"{itemsize}")
            data = bytearray(self._zip.read(info))
            self._storages[key] = torch.frombuffer(data, dtype=stype.dtype) if data else \
                torch.empty(0, dtype=stype.dtype)
        return self._storages[key]


#: Most module-tree entries `_collect_tensors` visits (shared submodules counted at every visit): a ViT-L tower
#: has a few thousand; a 60 KB pickle of shared references can name 10**12.
_TS_MAX_NODES = 1_000_000


def _collect_tensors(obj, prefix: str, out: dict, depth: int = 0, budget: list | None = None,
                     source: str = "archive") -> None:
    budget = [_TS_MAX_NODES] if budget is None else budget
    if depth > 64 or not isinstance(obj, _TSObject) or not isinstance(obj.state, dict):
        return          # a module with its own __getstate__ (tuple state) carries no named parameters
    budget[0] -= len(obj.state)
    if budget[0] < 0:
        raise CheckpointError(f"{source}: TorchScript archive refused: its module tree has more than "
                              f"{_TS_MAX_NODES} entries (shared submodules counted at each use); it is read as "
                              "data, never run")
    for k, v in obj.state.items():
        if not isinstance(k, str):
            continue    # attribute names are strings; anything else is not a parameter
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
        elif isinstance(v, _TSObject):
            _collect_tensors(v, f"{prefix}{k}.", out, depth + 1, budget, source)


def _jit_load(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, read without running any of its code."""
    try:
        with open(path, "rb") as f, check_zip_archive(f, path, CheckpointError)["zip"] as z:
            pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkls) != 1:
                raise CheckpointError(f"{path}: TorchScript archive has {len(pkls)} top-level data.pkl entries "
                                      "(expected one); corrupt archive")
            prefix = pkls[0][: -len("data.pkl")]
            byteorder = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in z.namelist() \
                else "little"
            if byteorder != "little":
                raise CheckpointError(f"{path}: TorchScript archive is {byteorder}-endian; re-save it on a "
                                      "little-endian machine")
            info = z.getinfo(pkls[0])
            if info.file_size > _TS_MAX_PICKLE:
                raise CheckpointError(f"{path}: {pkls[0]} is {info.file_size} bytes, more than a module tree needs")
            import io

            root = _TorchScriptUnpickler(io.BytesIO(z.read(info)), z, prefix, str(path)).load()
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: TorchScript archive refused: {e}; it is read as data, never run") from None
    except Exception as e:  # noqa: BLE001 - truncated zips / bad pickles raise many types
        raise CheckpointError(f"{path}: cannot read TorchScript archive (truncated or corrupt?): "
                              f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    out: dict[str, torch.Tensor] = {}
    _collect_tensors(root, "", out, source=str(path))
    if not out:
        raise CheckpointError(f"{path}: TorchScript archive holds no module tensors")
    return out


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    fmt = detect_format(path)
    if fmt == "openai-torchscript":
        return _jit_load(path)
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
                              f"{type(obj).__name__}; formats tried: {_formats_tried()}")
    odd = next((k for k, v in obj.items() if isinstance(v, torch.Tensor) and not isinstance(k, str)), None)
    if odd is not None:
        raise CheckpointError(f"{source}: a tensor is stored under {reprlib.repr(odd)}, not under a name")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{source}: no tensors found (top-level keys: "
                              f"{[reprlib.repr(k) for k in list(obj)[:10]]}); formats tried: {_formats_tried()}")
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


def _read_any(path_or_sd) -> tuple[dict[str, torch.Tensor], str, str, dict]:
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
    sd, fmt, source, hints = _read_any(path_or_state_dict)
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
                              f"formats tried: {_formats_tried()}")
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
