"""Random-weight checkpoints in the layout of the published AdaptSign code (hulianyuyy/AdaptSign), for tests.

The real checkpoints cannot be downloaded here, so this module writes files with the same container and
tensor names / shapes as the reference `main.py` saves for `slr_network.SLRModel`::

    torch.save({"epoch", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "rng_state"})

(keys optionally prefixed with ``module.`` as DataParallel saves them), and the gloss dictionary as
``np.save`` of a dict gloss -> [id, count] (an object array, i.e. a pickle). By default the numpy pickles
name ``numpy.core.multiarray._reconstruct`` as numpy 1.x (which wrote the published files) does.

`reference_forward` is an independent functional implementation of the reference network's forward pass
(sequence-first, prefix K/V inside one joint softmax via `F.multi_head_attention_forward`, cross-frame
correlation by explicit neighbour shifts): the tests compare the imported slsdk teacher against it.
"""
from __future__ import annotations

import contextlib
import math
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

V = "conv2d.visual."


@dataclass(frozen=True)
class RefShape:
    """Sizes of a reference SLRModel (heads = width // 64 as in the reference CLIP)."""

    width: int = 64
    layers: int = 2
    patch: int = 16
    image_size: int = 32
    embed_dim: int = 32          # CLIP output dim = temporal conv input
    hidden: int = 64             # temporal conv / BiLSTM hidden size
    num_classes: int = 7
    prefix: int = 8
    adapter_ratio: float = 0.25
    weight_norm: bool = True

    @property
    def heads(self) -> int:
        return self.width // 64


VIT_B16 = RefShape(width=768, layers=12, patch=16, image_size=224, embed_dim=512, hidden=1024, num_classes=1296)


def reference_state_dict(shape: RefShape = RefShape(), seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """A state dict with the reference SLRModel's key names, order and shapes, filled with random values."""
    g = torch.Generator().manual_seed(seed)
    w, L, h = shape.width, shape.layers, shape.hidden
    a = int(w * shape.adapter_ratio)
    grid = shape.image_size // shape.patch
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()

    def rn(*s, std=1.0):
        return torch.randn(*s, generator=g) * std

    def lin(name, out_f, in_f, bias=True):
        sd[name + ".weight"] = rn(out_f, in_f, std=in_f ** -0.5)
        if bias:
            sd[name + ".bias"] = rn(out_f, std=0.02)

    def ln(name, n):
        sd[name + ".weight"] = 1 + rn(n, std=0.1)
        sd[name + ".bias"] = rn(n, std=0.05)

    def mha(name, n):
        sd[name + ".in_proj_weight"] = rn(3 * n, n, std=n ** -0.5)
        sd[name + ".in_proj_bias"] = rn(3 * n, std=0.02)
        lin(name + ".out_proj", n, n)

    scale = w ** -0.5
    sd[V + "class_embedding"] = rn(w, std=scale)
    sd[V + "positional_embedding"] = rn(grid * grid + 1, w, std=scale)
    sd[V + "proj"] = rn(w, shape.embed_dim, std=scale)
    mix = float(torch.rand((), generator=g)) * 0.4 + 0.3
    sd[V + "ada_weight"] = torch.tensor([mix, 1.2 - mix])
    sd[V + "conv1.weight"] = rn(w, 3, shape.patch, shape.patch, std=(3 * shape.patch ** 2) ** -0.5)
    ln(V + "ln_pre", w)
    sd[V + "transformer.query"] = torch.rand(1, 1, w, generator=g)
    sd[V + "transformer.temporal_ada_weight"] = torch.tensor([0.3 + 0.4 * float(torch.rand((), generator=g))])
    for i in range(L):
        b = f"{V}transformer.resblocks.{i}."
        sd[b + "prefix_embedding_k"] = rn(shape.prefix, 1, w, std=scale)
        sd[b + "prefix_embedding_v"] = rn(shape.prefix, 1, w, std=scale)
        mha(b + "attn", w)
        ln(b + "ln_1", w)
        lin(b + "mlp.c_fc", 4 * w, w)
        lin(b + "mlp.c_proj", w, 4 * w)
        ln(b + "ln_2", w)
        for ad in ("S_Adapter", "MLP_Adapter"):
            lin(f"{b}{ad}.mlp.c_in", a, w)
            lin(f"{b}{ad}.mlp.c_out", w, a)
    for i in range(L):
        b = f"{V}transformer.aggblocks.{i}."
        mha(b + "attn", w)
        ln(b + "ln_1", w)
        lin(b + "mlp.c_fc", w, w)
        lin(b + "mlp.c_proj", w, w)
        ln(b + "ln_2", w)
    ln(V + "transformer.taggblocks.ln_1", w)
    ln(V + "ln_post", w)
    ln(V + "ln_post_cls", w)
    for idx, cin in ((0, shape.embed_dim), (4, h)):
        c = f"conv1d.temporal_conv.{idx}."
        sd[c + "weight"] = rn(h, cin, 5, std=(5 * cin) ** -0.5)
        sd[c + "bias"] = rn(h, std=0.02)
        n = f"conv1d.temporal_conv.{idx + 1}."
        sd[n + "weight"] = 1 + rn(h, std=0.1)
        sd[n + "bias"] = rn(h, std=0.1)
        sd[n + "running_mean"] = rn(h, std=0.2)
        sd[n + "running_var"] = torch.rand(h, generator=g) * 1.5 + 0.5
        sd[n + "num_batches_tracked"] = torch.tensor(12345)
    if shape.weight_norm:
        cls = {"weight": rn(h, shape.num_classes)}
    else:
        cls = {"weight": rn(shape.num_classes, h, std=h ** -0.5), "bias": rn(shape.num_classes, std=0.02)}
    for k, v in cls.items():                      # the shared classifier appears under both module names
        sd["conv1d.fc." + k] = v
    hd = h // 2
    bound = hd ** -0.5
    for layer in range(2):
        for sfx in ("", "_reverse"):
            cin = h
            sd[f"temporal_model.rnn.weight_ih_l{layer}{sfx}"] = (torch.rand(4 * hd, cin, generator=g) * 2 - 1) * bound
            sd[f"temporal_model.rnn.weight_hh_l{layer}{sfx}"] = (torch.rand(4 * hd, hd, generator=g) * 2 - 1) * bound
            sd[f"temporal_model.rnn.bias_ih_l{layer}{sfx}"] = (torch.rand(4 * hd, generator=g) * 2 - 1) * bound
            sd[f"temporal_model.rnn.bias_hh_l{layer}{sfx}"] = (torch.rand(4 * hd, generator=g) * 2 - 1) * bound
    for k, v in cls.items():
        sd["classifier." + k] = v
    return sd


@contextlib.contextmanager
def numpy1_pickle_names(enabled: bool = True):
    """While active, numpy arrays pickle with numpy 1.x's module name (``numpy.core.multiarray``)."""
    fn = np._core.multiarray._reconstruct
    old = fn.__module__
    if enabled:
        fn.__module__ = "numpy.core.multiarray"
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        fn.__module__ = old


def _optimizer_state(sd, epoch: int, full: bool) -> dict:
    params = [k for k, v in sd.items() if v.is_floating_point() and not k.startswith("conv1d.fc.")]
    state = {}
    if full:
        for i, k in enumerate(params):
            state[i] = {"step": torch.tensor(float(100 * epoch)), "exp_avg": torch.zeros_like(sd[k]),
                        "exp_avg_sq": torch.zeros_like(sd[k])}
    group = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-4, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "initial_lr": 1e-4, "params": list(range(len(params)))}
    return {"state": state, "param_groups": [group]}


def write_checkpoint(path: str | Path, shape: RefShape = RefShape(), *, seed: int = 0, module_prefix: bool = False,
                     state_dict=None, epoch: int = 39, full_optimizer: bool = True, numpy1: bool = True) -> Path:
    """Write a checkpoint exactly as the reference `main.py` `save_model` does (random weights)."""
    sd = reference_state_dict(shape, seed) if state_dict is None else state_dict
    model_sd = OrderedDict(("module." + k if module_prefix else k, v) for k, v in sd.items())
    with numpy1_pickle_names(numpy1):
        rng = {"torch": torch.get_rng_state(), "cuda": [torch.zeros(16, dtype=torch.uint8)],
               "numpy": np.random.get_state(), "random": random.getstate()}
        payload = {"epoch": epoch, "model_state_dict": model_sd,
                   "optimizer_state_dict": _optimizer_state(sd, epoch, full_optimizer),
                   "scheduler_state_dict": {"milestones": Counter({20: 1, 30: 1}), "gamma": 0.2,
                                            "base_lrs": [1e-4], "last_epoch": epoch, "verbose": False,
                                            "_step_count": epoch + 1, "_get_lr_called_within_step": False,
                                            "_last_lr": [4e-6]},
                   "rng_state": rng}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
    return path


def gloss_names(n: int) -> list[str]:
    """n distinct PHOENIX-like gloss names."""
    base = ["__ON__", "__OFF__", "REGEN", "SONNE", "WOLKE", "KOMMEN", "HEUTE", "MORGEN", "NORD", "SUED"]
    return [base[i] if i < len(base) else f"GLOSS{i}" for i in range(n)]


def write_gloss_dict(path: str | Path, glosses, *, numpy1: bool = True, ids=None) -> Path:
    """``np.save`` a dict gloss -> [id, count] (ids 1..n in order unless ``ids`` is given), as the reference."""
    ids = list(range(1, len(glosses) + 1)) if ids is None else list(ids)
    d = {g: [i, 10 + i] for g, i in zip(glosses, ids)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with numpy1_pickle_names(numpy1):
        np.save(path, d)
    return path


def resnet_cslr_state_dict(corrnet: bool = False) -> dict:
    """A few keys of a VAC / CorrNet checkpoint (ResNet-18 frame encoder, same conv1d/BiLSTM head)."""
    sd = {"conv2d.conv1.weight": torch.zeros(64, 3, 7, 7), "conv2d.bn1.weight": torch.ones(64),
          "conv2d.layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3), "conv2d.fc.weight": torch.zeros(1000, 512),
          "conv1d.temporal_conv.0.weight": torch.zeros(1024, 512, 5), "classifier.weight": torch.zeros(1024, 1296)}
    if corrnet:
        sd["conv2d.corr1.weights"] = torch.zeros(3)
        sd["conv2d.corr1.down_conv.weight"] = torch.zeros(16, 128, 1, 1, 1)
    return sd


def plain_clip_state_dict(width: int = 64, layers: int = 1, patch: int = 16, image_size: int = 32) -> dict:
    """The image half of an OpenAI CLIP state dict (``visual.*`` keys) plus a text key."""
    grid = image_size // patch
    sd = {"visual.conv1.weight": torch.zeros(width, 3, patch, patch), "visual.class_embedding": torch.zeros(width),
          "visual.positional_embedding": torch.zeros(grid * grid + 1, width), "visual.proj": torch.zeros(width, 32),
          "text_projection": torch.zeros(width, 32), "logit_scale": torch.zeros(())}
    for i in range(layers):
        sd[f"visual.transformer.resblocks.{i}.attn.in_proj_weight"] = torch.zeros(3 * width, width)
    return sd


# ------------------------------------------------------------------------------------ reference forward
def _ln(x, sd, name, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps)


def _lin(x, sd, name):
    return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))


def _mha(q, k, v, sd, name, heads):
    """nn.MultiheadAttention semantics (sequence-first [L, N, E]) through torch's functional kernel."""
    e = q.shape[-1]
    out, _ = F.multi_head_attention_forward(
        q, k, v, e, heads, sd[name + ".in_proj_weight"], sd[name + ".in_proj_bias"], None, None, False, 0.0,
        sd[name + ".out_proj.weight"], sd[name + ".out_proj.bias"], training=False, need_weights=False)
    return out


def _qgelu(x):
    return x * torch.sigmoid(1.702 * x)


@torch.no_grad()
def reference_forward(sd, videos: torch.Tensor, shape: RefShape) -> dict[str, torch.Tensor]:
    """The reference SLRModel's eval forward on normalised videos [B, T, 3, H, W] (all clips full length).

    Returns time-major ``sequence_logits`` / ``conv_logits`` [T', B, V] and ``feat_len`` [B].
    """
    sd = {k.removeprefix("module."): v.float() if v.is_floating_point() else v for k, v in sd.items()}
    b, t = videos.shape[:2]
    heads = shape.heads
    x = F.conv2d(videos.flatten(0, 1), sd[V + "conv1.weight"], stride=shape.patch)
    x = x.flatten(2).permute(2, 0, 1)                                              # [P, N, W]
    n = x.shape[1]
    cls = sd[V + "class_embedding"].expand(1, n, -1)
    x = torch.cat([cls, x], 0) + sd[V + "positional_embedding"][:, None]
    x = _ln(x, sd, V + "ln_pre")
    query = sd[V + "transformer.query"].expand(1, n, -1)
    for i in range(shape.layers):
        p = f"{V}transformer.resblocks.{i}."
        y = _ln(x, sd, p + "ln_1")
        kv_k = torch.cat([y, sd[p + "prefix_embedding_k"].expand(-1, n, -1)], 0)
        kv_v = torch.cat([y, sd[p + "prefix_embedding_v"].expand(-1, n, -1)], 0)
        s_ad = _lin(_qgelu(_lin(x, sd, p + "S_Adapter.mlp.c_in")), sd, p + "S_Adapter.mlp.c_out")
        x = x + _mha(y, kv_k, kv_v, sd, p + "attn", heads) + s_ad
        m_ad = _lin(_qgelu(_lin(x, sd, p + "MLP_Adapter.mlp.c_in")), sd, p + "MLP_Adapter.mlp.c_out")
        x = x + _lin(_qgelu(_lin(_ln(x, sd, p + "ln_2"), sd, p + "mlp.c_fc")), sd, p + "mlp.c_proj") + m_ad
        a = f"{V}transformer.aggblocks.{i}."
        z = _ln(torch.cat([query, x], 0), sd, a + "ln_1")
        query = query + _mha(z[:1], z[1:], z[1:], sd, a + "attn", heads)
        query = query + _lin(_qgelu(_lin(_ln(query, sd, a + "ln_2"), sd, a + "mlp.c_fc")), sd, a + "mlp.c_proj")
    # cross-frame correlation: the CLS token of each frame against the patches of frames t-2 .. t+2
    y = _ln(x, sd, V + "transformer.taggblocks.ln_1")
    c = y[0].reshape(b, t, -1)                                                     # [B, T, W]
    patches = y[1:].permute(1, 0, 2).reshape(b, t, y.shape[0] - 1, -1)           # [B, T, P, W]
    upd = torch.zeros_like(c)
    for off in range(-2, 3):
        nb = torch.zeros_like(patches)
        lo, hi = max(0, -off), min(t, t - off)
        nb[:, lo:hi] = patches[:, lo + off:hi + off]
        aff = torch.einsum("btw,btpw->btp", c, nb) / math.sqrt(c.shape[-1])
        upd = upd + torch.einsum("btp,btpw->btw", torch.sigmoid(aff) - 0.5, nb)
    cls_out = x[0] + upd.reshape(n, -1) * sd[V + "transformer.temporal_ada_weight"]
    mix = sd[V + "ada_weight"]
    feat = _ln(cls_out, sd, V + "ln_post") * mix[0] + _ln(query[0], sd, V + "ln_post_cls") * mix[1]
    feat = (feat @ sd[V + "proj"]).reshape(b, t, -1).transpose(1, 2)               # [B, C, T]
    h = feat
    for idx in (0, 4):
        h = F.conv1d(h, sd[f"conv1d.temporal_conv.{idx}.weight"], sd[f"conv1d.temporal_conv.{idx}.bias"])
        bn = f"conv1d.temporal_conv.{idx + 1}."
        h = F.batch_norm(h, sd[bn + "running_mean"], sd[bn + "running_var"], sd[bn + "weight"], sd[bn + "bias"],
                         training=False, eps=1e-5)
        h = F.max_pool1d(F.relu(h), 2)
    vis = h.permute(2, 0, 1)                                                       # [T', B, H]
    lstm = torch.nn.LSTM(shape.hidden, shape.hidden // 2, num_layers=2, bidirectional=True)
    lstm.load_state_dict({k.removeprefix("temporal_model.rnn."): v for k, v in sd.items()
                          if k.startswith("temporal_model.rnn.")})
    out, _ = lstm.eval()(vis)

    def classify(z):
        if "classifier.bias" in sd:
            return F.linear(z, sd["classifier.weight"], sd["classifier.bias"])
        return z @ F.normalize(sd["classifier.weight"], dim=0)

    feat_len = torch.full((b,), vis.shape[0], dtype=torch.long)
    return {"sequence_logits": classify(out), "conv_logits": classify(vis), "feat_len": feat_len}


def normalised_video(b: int, t: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random uint8 frames scaled as the reference dataloader does: x / 127.5 - 1."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)
    return u8.float() / 127.5 - 1


__all__ = ["RefShape", "VIT_B16", "reference_state_dict", "write_checkpoint", "write_gloss_dict", "gloss_names",
           "resnet_cslr_state_dict", "plain_clip_state_dict", "reference_forward", "normalised_video",
           "numpy1_pickle_names"]
