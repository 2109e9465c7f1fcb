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
(allowing only the numpy array types of ``rng_state``, whose states are checked before numpy sees them) after the
bounded checks of `slsdk.models.torchfile` (storage sizes against their records and ``MAX_CHECKPOINT_BYTES``, no
compressed storage record, no code in the pickle); the gloss dictionary (at most ``MAX_GLOSS_DICT_BYTES``) with an
unpickler that accepts dict / list / tuple / str / int and stand-ins for the numpy object-array reconstruction
``np.save`` writes (no numpy array is built from the file), walked within a budget of ``MAX_GLOSS_NODES`` nodes.
"""
from __future__ import annotations

import io
import math
import pickle
import re
import reprlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from slsdk.data.vocab import BLANK, Vocabulary, VocabularyError
from slsdk.errors import SlsdkError
from slsdk.models.adapters import FrameEncoderConfig
from slsdk.models.clip import CLIPVisionConfig, get_config, list_models
from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
from slsdk.models.sequence import _parse_conv_type
from slsdk.models.torchfile import load_torch_file, zip_names

REF_VISUAL = "conv2d.visual."
ADAPTSIGN_MEAN = (0.5, 0.5, 0.5)
ADAPTSIGN_STD = (0.5, 0.5, 0.5)
DEFAULT_CONV_TYPE = "K5-P2-K5-P2"   # the reference's conv_type 2 (every released config)


class AdaptSignImportError(SlsdkError, ValueError):
    """A file that cannot be imported as an AdaptSign checkpoint / gloss dictionary (message names the file)."""


#: Largest gloss dictionary read: PHOENIX's gloss_dict.npy is ~40 KB, 200,000 glosses would be ~6 MB.
MAX_GLOSS_DICT_BYTES = 16 << 20
#: Most nodes the plain-data check visits, shared references counted at every visit: gloss -> [id, count] is
#: 5 per gloss (key, list, id, count and the dict's slot), so 200,000 glosses fit.
MAX_GLOSS_NODES = 1_000_000
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxlevel = 60, 60, 4, 2


# ----------------------------------------------------------------------------------- gloss dictionary
class _NdarrayName:
    """Stand-in for ``numpy.ndarray`` in a gloss dictionary's pickle."""


class _ObjectDType:
    """Stand-in for ``numpy.dtype('O')``: its pickled state is ignored."""

    def __setstate__(self, state):
        pass


class _ObjectArray:
    """Stand-in for the 0-d object array ``np.save`` writes around a dict: keeps its one item, allocates nothing.

    (numpy's own ``ndarray.__setstate__`` trusts the state: an object array whose shape says 10**7 items and
    whose list holds one crashes the interpreter.)"""

    def __init__(self, source: Path):
        self.source, self.item, self.ready = source, None, False

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and state[1] == () and isinstance(state[2], _ObjectDType)
                and isinstance(state[4], list) and len(state[4]) == 1):
            shape = state[1] if isinstance(state, tuple) and len(state) > 1 else "?"
            raise AdaptSignImportError(f"{self.source}: refused: the gloss dictionary's array (shape "
                                       f"{_short.repr(shape)}) is not the 0-d object array np.save writes around a "
                                       "dict")
        self.item, self.ready = state[4][0], True


class _GlossDictUnpickler(pickle.Unpickler):
    """Accepts plain containers and stand-ins for the three numpy callables an object-array ``np.save`` pickles."""

    def __init__(self, file, source: Path):
        super().__init__(file)
        self.source = source

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _NdarrayName or shape != (0,):
            raise AdaptSignImportError(f"{self.source}: refused: the gloss dictionary rebuilds an array other than "
                                       "the one np.save writes")
        return _ObjectArray(self.source)

    def _dtype(self, spec, *args):
        if spec not in ("O", "O4", "O8"):
            raise AdaptSignImportError(f"{self.source}: refused: the gloss dictionary holds an array of dtype "
                                       f"{_short.repr(spec)}; np.save of a dict writes an object array")
        return _ObjectDType()

    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return self._reconstruct
        if module == "numpy" and name == "ndarray":
            return _NdarrayName
        if module == "numpy" and name == "dtype":
            return self._dtype
        raise AdaptSignImportError(
            f"{self.source}: refused to load the gloss dictionary: its pickle calls {module}.{name}, which a "
            "gloss dictionary (np.save of a dict gloss -> [id, count]) never contains; nothing was executed")

    def persistent_load(self, pid):
        raise AdaptSignImportError(f"{self.source}: refused to load the gloss dictionary: it holds a persistent "
                                   "reference, which np.save never writes")


def _check_plain(obj, source: Path) -> None:
    """Only dict / list / tuple / str / int, at most 6 deep, at most MAX_GLOSS_NODES nodes (every visit counts:
    a 60 KB pickle of shared references, ``[[['a'] * 10**4] * 10**4] * 10**4``, names 10**12 of them)."""
    budget = MAX_GLOSS_NODES - 1
    stack = [(obj, 0)]
    while stack:
        o, depth = stack.pop()
        if depth > 6:
            raise AdaptSignImportError(f"{source}: gloss dictionary nests deeper than gloss -> [id, count]")
        if isinstance(o, (str, int)) and not isinstance(o, bool):
            continue
        if isinstance(o, dict):
            children = [c for kv in o.items() for c in kv] if len(o) <= budget else None
        elif isinstance(o, (list, tuple)):
            children = list(o) if len(o) <= budget else None
        else:
            raise AdaptSignImportError(f"{source}: gloss dictionary holds a {type(o).__name__}; only dict / list / "
                                       "tuple / str / int are accepted")
        budget -= len(o) * (2 if isinstance(o, dict) else 1)
        if children is None or budget < 0:
            raise AdaptSignImportError(
                f"{source}: refused: the gloss dictionary has more than {MAX_GLOSS_NODES} nodes (shared references "
                "counted at every use); gloss -> [id, count] needs about 5 per gloss")
        stack.extend((c, depth + 1) for c in children)


def read_gloss_dict(path: str | Path) -> list[str]:
    """Glosses ordered by id (index 0 = ``<blank>``) from an AdaptSign ``gloss_dict.npy`` (or a plain pickle).

    Only containers, strings and ints are accepted; any other pickled object is refused without running it.
    """
    path = Path(path)
    if not path.is_file():
        raise AdaptSignImportError(f"{path}: gloss dictionary not found" if not path.exists()
                                   else f"{path}: is a folder, not a gloss dictionary file")
    size = path.stat().st_size
    if size > MAX_GLOSS_DICT_BYTES:
        raise AdaptSignImportError(f"{path}: refused: {size} bytes, more than a gloss dictionary needs (at most "
                                   f"{MAX_GLOSS_DICT_BYTES})")
    with path.open("rb") as fh:
        data = fh.read(MAX_GLOSS_DICT_BYTES + 1)
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
        raise AdaptSignImportError(f"{path}: cannot read the gloss dictionary ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    if isinstance(obj, _ObjectArray):
        if not obj.ready:
            raise AdaptSignImportError(f"{path}: the gloss dictionary's array has no content (truncated?)")
        obj = obj.item
    if not isinstance(obj, dict):
        raise AdaptSignImportError(f"{path}: holds a {type(obj).__name__}, expected a dict gloss -> [id, count]")
    _check_plain(obj, path)
    by_id: dict[int, str] = {}
    for gloss, entry in obj.items():
        ident = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
        if not isinstance(gloss, str) or not isinstance(ident, int) or isinstance(ident, bool):
            raise AdaptSignImportError(f"{path}: entry {_short.repr(gloss)}: {_short.repr(entry)} is not "
                                       "gloss -> [id, count]")
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
class _RngArray(np.ndarray):
    """What the numpy arrays of the reference's ``rng_state`` unpickle to: the state is checked before numpy's
    ``__setstate__`` trusts it (an object array, or a shape its bytes do not fill, is refused)."""

    def __setstate__(self, state):
        ok = isinstance(state, tuple) and len(state) == 5
        shape, dtype, raw = (state[1], state[2], state[4]) if ok else ((), None, None)
        ok = (ok and isinstance(dtype, np.dtype) and not dtype.hasobject and isinstance(raw, (bytes, bytearray))
              and isinstance(shape, tuple) and len(shape) <= 8
              and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
              and math.prod(shape) * dtype.itemsize == len(raw))
        if not ok:
            raise pickle.UnpicklingError(f"a numpy array whose state does not hold its own bytes (shape "
                                         f"{_short.repr(shape)}, dtype {_short.repr(dtype)})")
        super().__setstate__(state)


def _rng_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray or shape != (0,):
        raise pickle.UnpicklingError("a numpy array rebuilt other than as np.save / pickle writes it")
    return np.ndarray.__new__(_RngArray, (0,), np.int8)


def _torch_load_weights_only(path: Path):
    """``torch.load(weights_only=True)`` through the bounded checks of `slsdk.models.torchfile`, allowing only
    the numpy types of the reference's ``rng_state`` (whose array states are checked, `_RngArray`)."""
    allowed = [(_rng_reconstruct, "numpy.core.multiarray._reconstruct"),
               (_rng_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype, Counter, _RngArray]
    allowed += [type(np.dtype(c)) for c in ("uint32", "int64", "float64", "uint8")]
    return load_torch_file(path, error=AdaptSignImportError, safe_globals=allowed)


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
    with path.open("rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            return False
    names = zip_names(path, error=AdaptSignImportError)      # the directory is bounded before it is parsed
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
    obj = _torch_load_weights_only(path)     # one-line AdaptSignImportError naming the file for anything refused
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
        got = (f"keys {sorted(_short.repr(k) for k in list(obj)[:1000])[:6]}" if isinstance(obj, dict)
               else f"a {type(obj).__name__}")
        raise AdaptSignImportError(f"{path}: not an AdaptSign training checkpoint (expected a dict with "
                                   f"'model_state_dict', got {got})")
    if not sd:
        raise AdaptSignImportError(f"{path}: model_state_dict is empty")
    odd = next((k for k in sd if not isinstance(k, str)), None)
    if odd is not None:
        raise AdaptSignImportError(f"{path}: model_state_dict has a key {_short.repr(odd)} that is not a name")
    keys = list(sd)
    if all(k.startswith("module.") for k in keys):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        info["data_parallel"] = True
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise AdaptSignImportError(f"{path}: model_state_dict entry {_short.repr(bad[0])} is not a tensor")
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
    source = Path(source)
    v = REF_VISUAL
    if not (v + "conv1.weight" in sd and v + "transformer.resblocks.0.S_Adapter.mlp.c_in.weight" in sd
            and v + "transformer.aggblocks.0.attn.in_proj_weight" in sd):
        raise AdaptSignImportError(f"{source}: not an AdaptSign checkpoint: it looks like {_describe(sd)}")
    empty = next((k for k, t in sd.items() if isinstance(t, torch.Tensor) and 0 in t.shape), None)
    if empty is not None:     # a trained network has no 0-size weight; one would divide by zero below
        raise AdaptSignImportError(f"{source}: {empty} has shape {tuple(sd[empty].shape)}, with a 0-size "
                                   "dimension; not a trained AdaptSign checkpoint (damaged or edited?)")
    conv1 = _need(sd, v + "conv1.weight", 4, source)
    width, patch = int(conv1.shape[0]), int(conv1.shape[-1])
    if conv1.shape[1] != 3 or conv1.shape[2] != conv1.shape[3]:
        raise AdaptSignImportError(f"{source}: {v}conv1.weight has shape {tuple(conv1.shape)}, expected "
                                   "[width, 3, patch, patch]")
    pos = _need(sd, v + "positional_embedding", 2, source)
    grid = math.isqrt(max(int(pos.shape[0]) - 1, 0))
    if grid < 1 or grid * grid + 1 != pos.shape[0]:
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
