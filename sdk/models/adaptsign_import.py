"""Import a published AdaptSign checkpoint (hulianyuyy/AdaptSign) as an slsdk teacher.

The reference `main.py` saves ``{"epoch", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict",
"rng_state"}`` of its `slr_network.SLRModel` (keys may carry DataParallel's ``module.`` prefix) and the
gloss dictionary as ``np.save`` of a dict gloss -> [id, count] (id 0 is the CTC blank).

`import_adaptsign(ckpt, gloss_dict)` returns ``(CSLRRecognizer, Vocabulary)`` whose forward on the same
normalised video gives the reference's ``sequence_logits`` and ``conv_logits`` (time-major, same class order):

* the CLIP tower ``conv2d.visual.*`` -> ``frame_encoder.backbone.*`` (shape inferred from the tensors, heads =
  width // 64 as the reference CLIP builds it);
* per block ``S_Adapter`` / ``MLP_Adapter`` -> ``s_adapters`` / ``mlp_adapters`` (width from ``c_in``);
  ``prefix_embedding_k/v`` -> ``prefix_k/v`` with the prefix gate set to 1 (= the reference's joint softmax);
* ``transformer.query`` / ``aggblocks`` / ``ln_post_cls`` / ``ada_weight`` -> the multiscale query, its
  blocks, ``ln_post_query`` and ``mix``; ``taggblocks.ln_1`` / ``temporal_ada_weight`` -> the cross-frame
  LayerNorm and gate (window 5 = +-2 frames);
* ``conv1d.temporal_conv`` (K5-P2-K5-P2, BatchNorm with its running statistics) and ``temporal_model.rnn``
  (2-layer BiLSTM) -> ``sequence.*``; the shared weight-normalised classifier -> ``sequence.classifier``;
* pixels: the reference feeds ``x / 127.5 - 1``, i.e. mean = std = 0.5 on [0, 1] RGB, recorded in the config
  so that evaluation, bundles and the runtime preprocess the same way.

Nothing is unpickled beyond plain data: the checkpoint is read with ``torch.load(weights_only=True)``
(allowing only the numpy array types of ``rng_state``), the gloss dictionary with an unpickler that accepts
dict / list / tuple / str / int and the numpy object-array reconstruction ``np.save`` writes.
"""
from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from slsdk.errors import SlsdkError

REF_VISUAL = "conv2d.visual."
ADAPTSIGN_MEAN = (0.5, 0.5, 0.5)
ADAPTSIGN_STD = (0.5, 0.5, 0.5)
DEFAULT_CONV_TYPE = "K5-P2-K5-P2"   # the reference's conv_type 2 (every released config)


class AdaptSignImportError(SlsdkError, ValueError):
    """A file that cannot be imported as an AdaptSign checkpoint / gloss dictionary (message names the file)."""


# ----------------------------------------------------------------------------------- gloss dictionary
def _numpy_reconstruct():
    from numpy._core import multiarray

    return multiarray._reconstruct


class _GlossDictUnpickler(pickle.Unpickler):
    """Accepts plain containers and exactly the three numpy callables an object-array ``np.save`` pickles."""

    def __init__(self, file, source: Path):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise AdaptSignImportError(
            f"{self.source}: refused to load the gloss dictionary: its pickle calls {module}.{name}, which a "
            "gloss dictionary (np.save of a dict gloss -> [id, count]) never contains; nothing was executed")

    def persistent_load(self, pid):
        raise AdaptSignImportError(f"{self.source}: refused to load the gloss dictionary: it holds a persistent "
                                   "reference, which np.save never writes")


def _check_plain(obj, source: Path, depth: int = 0) -> None:
    if depth > 6:
        raise AdaptSignImportError(f"{source}: gloss dictionary nests deeper than gloss -> [id, count]")
    if isinstance(obj, (str, int)) and not isinstance(obj, bool):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, source, depth + 1)
            _check_plain(v, source, depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, source, depth + 1)
        return
    raise AdaptSignImportError(f"{source}: gloss dictionary holds a {type(obj).__name__}; only dict / list / "
                               "tuple / str / int are accepted")


def read_gloss_dict(path: str | Path) -> list[str]:
    """Glosses ordered by id (index 0 = ``<blank>``) from an AdaptSign ``gloss_dict.npy`` (or a plain pickle).

    Only containers, strings and ints are accepted; any other pickled object is refused without running it.
    """
    from slsdk.data.vocab import BLANK

    path = Path(path)
    if not path.is_file():
        raise AdaptSignImportError(f"{path}: gloss dictionary not found" if not path.exists()
                                   else f"{path}: is a folder, not a gloss dictionary file")
    data = path.read_bytes()
    f = io.BytesIO(data)
    if data.startswith(b"\x93NUMPY"):
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        except (ValueError, SyntaxError, OSError) as e:
            raise AdaptSignImportError(f"{path}: not a readable .npy file: {e}") from None
        if dtype != np.dtype(object) or shape != ():
            raise AdaptSignImportError(f"{path}: a .npy array of dtype {dtype} and shape {shape}; an AdaptSign "
                                       "gloss dictionary is np.save of a dict (a 0-d object array)")
    elif not data.startswith(b"\x80"):
        raise AdaptSignImportError(f"{path}: neither a .npy file nor a pickle (starts with {data[:8]!r}); expected "
                                   "AdaptSign's gloss_dict.npy")
    try:
        obj = _GlossDictUnpickler(f, path).load()
    except AdaptSignImportError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated / corrupt pickles raise many types
        raise AdaptSignImportError(f"{path}: cannot read the gloss dictionary ({type(e).__name__}: {e})") from None
    if isinstance(obj, np.ndarray):
        if obj.dtype != np.dtype(object) or obj.shape != ():
            raise AdaptSignImportError(f"{path}: holds an array of dtype {obj.dtype} / shape {obj.shape}, not a dict")
        obj = obj.item()
    if not isinstance(obj, dict):
        raise AdaptSignImportError(f"{path}: holds a {type(obj).__name__}, expected a dict gloss -> [id, count]")
    _check_plain(obj, path)
    by_id: dict[int, str] = {}
    for gloss, entry in obj.items():
        ident = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
        if not isinstance(gloss, str) or not isinstance(ident, int) or isinstance(ident, bool):
            raise AdaptSignImportError(f"{path}: entry {gloss!r}: {entry!r} is not gloss -> [id, count]")
        if ident in by_id:
            raise AdaptSignImportError(f"{path}: glosses {by_id[ident]!r} and {gloss!r} share id {ident}")
        by_id[ident] = gloss
    if not by_id:
        raise AdaptSignImportError(f"{path}: the gloss dictionary is empty")
    want = set(range(1, len(by_id) + 1))
    if set(by_id) != want:
        bad = sorted(set(by_id) ^ want)[:5]
        raise AdaptSignImportError(f"{path}: gloss ids must be 1..{len(by_id)} (0 is the CTC blank); "
                                   f"missing or unexpected ids: {bad}")
    return [BLANK] + [by_id[i] for i in range(1, len(by_id) + 1)]


# ----------------------------------------------------------------------------------------- checkpoint
_ALLOWED_NAMES = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
                  "numpy.dtype", "collections.Counter"}


def _torch_load_weights_only(path: Path):
    """``torch.load(weights_only=True)``, allowing only the numpy types of the reference's ``rng_state``."""
    rc = _numpy_reconstruct()
    allowed = [rc, (rc, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, Counter]
    allowed += [type(np.dtype(c)) for c in ("uint32", "int64", "float64", "uint8")]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def _describe(sd: dict) -> str:
    """What a state dict that is not AdaptSign looks like."""
    keys = list(sd)
    if any(k.startswith("conv2d.") and ("corr" in k.split(".")[1]) for k in keys):
        return "a CorrNet checkpoint (ResNet-18 frame encoder with correlation modules, conv2d.corr*)"
    if any(k.startswith(("conv2d.layer1.", "conv2d.conv1.", "conv2d.bn1.")) for k in keys):
        return "a VAC / ResNet CSLR checkpoint (ResNet frame encoder conv2d.layer*, no CLIP ViT)"
    if any(k.startswith(REF_VISUAL + "layer1.") for k in keys):
        return "a CLIP ResNet CSLR checkpoint (conv2d.visual.layer*); AdaptSign's released models are ViTs"
    if REF_VISUAL + "conv1.weight" in sd:
        return "a CLIP ViT CSLR checkpoint without AdaptSign's modules (no S_Adapter / prefix embeddings / aggblocks)"
    if any(k.startswith("visual.") for k in keys) or "text_projection" in sd:
        return "a plain CLIP model (visual.* keys), not an AdaptSign SLRModel; use slsdk.models.load_clip_visual"
    if any(k.startswith("vision_model.") for k in keys):
        return "a Hugging Face CLIP vision model, not an AdaptSign SLRModel"
    if "conv1.weight" in sd and any(k.startswith("transformer.resblocks.") for k in keys):
        return "a bare CLIP image tower, not an AdaptSign SLRModel"
    return f"an unknown state dict (first keys: {', '.join(keys[:4])})"


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def read_reference_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(model_state_dict without ``module.``, info) of a reference checkpoint, read with weights_only=True."""
    path = Path(path)
    if not path.exists():
        raise AdaptSignImportError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise AdaptSignImportError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise AdaptSignImportError(f"{path}: empty file (0 bytes), not a checkpoint")
    if _is_torchscript(path):
        raise AdaptSignImportError(f"{path}: a TorchScript archive (e.g. an OpenAI CLIP .pt), not an AdaptSign "
                                   "training checkpoint; use slsdk.models.load_clip_visual for CLIP weights")
    try:
        obj = _torch_load_weights_only(path)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError / EOFError ...
        text = str(e)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if m:
            try:  # full names (builtins.exec, ...) from a scan of the pickle's opcodes; nothing is unpickled
                names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                         if n not in _ALLOWED_NAMES]
            except Exception:  # noqa: BLE001 - the scan is only for the message
                names = []
            what = ", ".join(names[:4]) if names else m.group(1)
            raise AdaptSignImportError(
                f"{path}: refused: the checkpoint pickles {what}, which torch.load(weights_only=True) does "
                "not allow and a reference AdaptSign checkpoint does not contain; nothing was executed") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise AdaptSignImportError(f"{path}: cannot be read as a torch checkpoint (truncated or corrupt?): "
                                   f"{type(e).__name__}: {first}") from None
    info: dict = {}
    if isinstance(obj, dict) and obj.get("format") == "slsdk-checkpoint":
        raise AdaptSignImportError(f"{path}: already an slsdk checkpoint (kind {obj.get('kind')!r}); "
                                   "use it directly, no import needed")
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        sd = obj["model_state_dict"]
        if isinstance(obj.get("epoch"), int):
            info["epoch"] = obj["epoch"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj                                   # a bare state dict
    else:
        got = f"keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise AdaptSignImportError(f"{path}: not an AdaptSign training checkpoint (expected a dict with "
                                   f"'model_state_dict', got {got})")
    if not sd:
        raise AdaptSignImportError(f"{path}: model_state_dict is empty")
    keys = list(sd)
    if all(k.startswith("module.") for k in keys):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        info["data_parallel"] = True
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise AdaptSignImportError(f"{path}: model_state_dict entry {bad[0]!r} is not a tensor")
    return dict(sd), info


# ------------------------------------------------------------------------------------ config inference
def _need(sd: dict, key: str, ndim: int, source: Path) -> torch.Tensor:
    t = sd.get(key)
    if t is None:
        raise AdaptSignImportError(f"{source}: AdaptSign checkpoint lacks {key}")
    if t.ndim != ndim:
        raise AdaptSignImportError(f"{source}: {key} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def _conv_layout(sd: dict, source: Path, conv_type: str) -> None:
    """Check the temporal conv keys fit ``conv_type`` (pool positions are not in a state dict)."""
    from slsdk.models.sequence import _parse_conv_type

    convs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"conv1d\.temporal_conv\.(\d+)\.weight", k))
                   and sd[k].ndim == 3)
    want, idx = [], 0
    for kind, size in _parse_conv_type(conv_type):
        if kind == "K":
            want.append((idx, size))
            idx += 3
        else:
            idx += 1
    got = [(i, int(sd[f"conv1d.temporal_conv.{i}.weight"].shape[-1])) for i in convs]
    if got != want:
        raise AdaptSignImportError(
            f"{source}: temporal conv layers (index, kernel) {got} do not fit conv_type {conv_type} "
            f"(expects {want}); pass the checkpoint's conv_type")


def infer_config(sd: dict, source: str | Path = "checkpoint", conv_type: str = DEFAULT_CONV_TYPE):
    """The `RecognizerConfig` of a reference AdaptSign state dict, from its tensor shapes."""
    from slsdk.models.adapters import FrameEncoderConfig
    from slsdk.models.clip import CLIPVisionConfig, get_config, list_models
    from slsdk.models.recognizer import RecognizerConfig

    source = Path(source)
    v = REF_VISUAL
    if not (v + "conv1.weight" in sd and v + "transformer.resblocks.0.S_Adapter.mlp.c_in.weight" in sd
            and v + "transformer.aggblocks.0.attn.in_proj_weight" in sd):
        raise AdaptSignImportError(f"{source}: not an AdaptSign checkpoint: it looks like {_describe(sd)}")
    conv1 = _need(sd, v + "conv1.weight", 4, source)
    width, patch = int(conv1.shape[0]), int(conv1.shape[-1])
    pos = _need(sd, v + "positional_embedding", 2, source)
    grid = math.isqrt(pos.shape[0] - 1)
    if grid * grid + 1 != pos.shape[0]:
        raise AdaptSignImportError(f"{source}: positional embedding has {pos.shape[0]} rows, not 1 + a square grid")
    layers = len({m.group(1) for k in sd if (m := re.match(re.escape(v) + r"transformer\.resblocks\.(\d+)\.", k))})
    proj = _need(sd, v + "proj", 2, source)
    c_fc = _need(sd, v + "transformer.resblocks.0.mlp.c_fc.weight", 2, source)
    if width % 64:
        raise AdaptSignImportError(f"{source}: CLIP width {width} is not a multiple of 64 (heads = width // 64)")
    vision = CLIPVisionConfig(image_size=grid * patch, patch_size=patch, width=width, layers=layers,
                              heads=width // 64, output_dim=int(proj.shape[1]), mlp_ratio=c_fc.shape[0] / width)
    pk = _need(sd, v + "transformer.resblocks.0.prefix_embedding_k", 3, source)
    a_in = _need(sd, v + "transformer.resblocks.0.S_Adapter.mlp.c_in.weight", 2, source)
    ratio = a_in.shape[0] / width
    if max(1, int(width * ratio)) != a_in.shape[0]:
        raise AdaptSignImportError(f"{source}: adapter width {a_in.shape[0]} cannot be expressed as a ratio of {width}")
    enc = FrameEncoderConfig(variant="adaptsign", adapter_ratio=ratio, prefix_tokens=int(pk.shape[0]),
                             multiscale=True, cross_frame=True, cross_frame_window=2)
    conv0 = _need(sd, "conv1d.temporal_conv.0.weight", 3, source)
    hidden = int(conv0.shape[0])
    if conv0.shape[1] != vision.output_dim:
        raise AdaptSignImportError(f"{source}: temporal conv input {conv0.shape[1]} != CLIP output dim "
                                   f"{vision.output_dim}")
    _conv_layout(sd, source, conv_type)
    lstm_layers = {m.group(1) for k in sd if (m := re.fullmatch(r"temporal_model\.rnn\.weight_ih_l(\d+)", k))}
    if len(lstm_layers) != 2 or "temporal_model.rnn.weight_ih_l0_reverse" not in sd:
        raise AdaptSignImportError(f"{source}: expected a 2-layer bidirectional LSTM (temporal_model.rnn), found "
                                   f"{len(lstm_layers)} layer(s)")
    cls_w = _need(sd, "classifier.weight", 2, source)
    weight_norm = "classifier.bias" not in sd
    num_classes = int(cls_w.shape[1] if weight_norm else cls_w.shape[0])
    if (cls_w.shape[0] if weight_norm else cls_w.shape[1]) != hidden:
        raise AdaptSignImportError(f"{source}: classifier.weight {tuple(cls_w.shape)} does not fit hidden {hidden}")
    for k in ("weight", "bias"):
        a, b = sd.get("conv1d.fc." + k), sd.get("classifier." + k)
        if a is not None and (b is None or a.shape != b.shape or not torch.equal(a, b)):
            raise AdaptSignImportError(f"{source}: conv1d.fc differs from classifier (share_classifier: False); "
                                       "slsdk's sequence model has one classifier shared by both branches")
    backbone = next((n for n in list_models() if get_config(n) == vision), f"ViT-{width}x{layers}/{patch}-imported")
    return RecognizerConfig(backbone=backbone, backbone_weights=None, image_size=None, encoder=enc, hidden=hidden,
                            num_classes=num_classes, conv_type=conv_type, mean=ADAPTSIGN_MEAN, std=ADAPTSIGN_STD,
                            vision=vision.to_dict(), weight_norm=weight_norm)


# ------------------------------------------------------------------------------------------ mapping
_RENAMES = (
    (r"conv2d\.visual\.transformer\.resblocks\.(\d+)\.S_Adapter\.mlp\.(.+)", r"frame_encoder.s_adapters.\1.\2"),
    (r"conv2d\.visual\.transformer\.resblocks\.(\d+)\.MLP_Adapter\.mlp\.(.+)", r"frame_encoder.mlp_adapters.\1.\2"),
    (r"conv2d\.visual\.transformer\.aggblocks\.(\d+)\.(.+)", r"frame_encoder.agg_blocks.\1.\2"),
    (r"conv2d\.visual\.transformer\.query", r"frame_encoder.query"),
    (r"conv2d\.visual\.transformer\.taggblocks\.ln_1\.(.+)", r"frame_encoder.cross_frame.ln.\1"),
    (r"conv2d\.visual\.transformer\.temporal_ada_weight", r"frame_encoder.cross_frame_gate"),
    (r"conv2d\.visual\.ln_post_cls\.(.+)", r"frame_encoder.ln_post_query.\1"),
    (r"conv2d\.visual\.ada_weight", r"frame_encoder.mix"),
    (r"conv2d\.visual\.(.+)", r"frame_encoder.backbone.\1"),
    (r"conv1d\.temporal_conv\.(.+)", r"sequence.temporal_conv.\1"),
    (r"temporal_model\.rnn\.(.+)", r"sequence.lstm.\1"),
    (r"classifier\.(.+)", r"sequence.classifier.\1"),
)


def convert_state_dict(sd: dict, cfg, source: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The reference state dict renamed / reshaped for `CSLRRecognizer(cfg)` (prefix gates set to 1)."""
    source = Path(source)
    layers = cfg.vision_config().layers
    heads = cfg.vision_config().heads
    out: dict[str, torch.Tensor] = {}
    pks, pvs = {}, {}
    unknown = []
    for key, t in sd.items():
        if key.startswith("conv1d.fc."):
            continue                                   # the shared classifier's second name (checked equal)
        m = re.fullmatch(r"conv2d\.visual\.transformer\.resblocks\.(\d+)\.prefix_embedding_([kv])", key)
        if m:
            if t.ndim != 3 or t.shape[1] != 1:
                raise AdaptSignImportError(f"{source}: {key} has shape {tuple(t.shape)}, expected [P, 1, width]")
            (pks if m.group(2) == "k" else pvs)[int(m.group(1))] = t[:, 0]
            continue
        for pat, rep in _RENAMES:
            if re.fullmatch(pat, key):
                out[re.sub(pat, rep, key)] = t
                break
        else:
            unknown.append(key)
    if unknown:
        raise AdaptSignImportError(f"{source}: tensors with no AdaptSign counterpart: {', '.join(unknown[:5])}"
                                   + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
    if sorted(pks) != list(range(layers)) or sorted(pvs) != list(range(layers)):
        raise AdaptSignImportError(f"{source}: prefix embeddings missing for some of the {layers} blocks")
    out["frame_encoder.prefix_k"] = torch.stack([pks[i] for i in range(layers)])
    out["frame_encoder.prefix_v"] = torch.stack([pvs[i] for i in range(layers)])
    out["frame_encoder.prefix_gate"] = torch.ones(layers, heads, dtype=out["frame_encoder.prefix_k"].dtype)
    return out


def import_adaptsign(ckpt_path: str | Path, gloss_dict_path: str | Path, *, conv_type: str = DEFAULT_CONV_TYPE):
    """Build an slsdk teacher from a published AdaptSign checkpoint: returns ``(model.eval(), Vocabulary)``.

    ``conv_type``: the reference's temporal conv layout (its ``conv_type: 2`` = ``"K5-P2-K5-P2"``).
    Raises :class:`AdaptSignImportError` (an ``SlsdkError`` / ``ValueError``) naming the file for anything
    that is not an AdaptSign checkpoint, a tampered pickle, or a gloss dictionary of the wrong size.
    """
    from slsdk.data.vocab import Vocabulary, VocabularyError
    from slsdk.models.recognizer import CSLRRecognizer

    ckpt_path, gloss_dict_path = Path(ckpt_path), Path(gloss_dict_path)
    sd, info = read_reference_state_dict(ckpt_path)
    cfg = infer_config(sd, ckpt_path, conv_type)
    glosses = read_gloss_dict(gloss_dict_path)
    if len(glosses) != cfg.num_classes:
        raise AdaptSignImportError(
            f"{gloss_dict_path}: the gloss dictionary has {len(glosses) - 1} glosses + blank = {len(glosses)} "
            f"classes, but the classifier of {ckpt_path} has {cfg.num_classes}")
    try:
        vocab = Vocabulary(glosses)
    except VocabularyError as e:
        raise AdaptSignImportError(f"{gloss_dict_path}: {e}") from None
    weights = convert_state_dict(sd, cfg, ckpt_path)
    model = CSLRRecognizer(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [k for k in weights if k in expected and weights[k].shape != expected[k].shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
                                                       for k in wrong[:3]))
        raise AdaptSignImportError(f"{ckpt_path}: weights do not fit an AdaptSign teacher of the inferred shape: "
                                   + "; ".join(parts))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})
    model.imported_from = {"format": "adaptsign", "checkpoint": str(ckpt_path), "gloss_dict": str(gloss_dict_path),
                           **info}
    return model.eval(), vocab


__all__ = ["AdaptSignImportError", "import_adaptsign", "read_gloss_dict",
           "read_reference_state_dict", "infer_config", "convert_state_dict", "ADAPTSIGN_MEAN", "ADAPTSIGN_STD"]
