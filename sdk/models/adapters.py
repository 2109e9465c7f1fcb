"""Frame encoders around a frozen CLIP `VisionTransformer`: AdaptSign and the two CLIP-SLA variants.

`FrameEncoder(backbone, cfg)` maps frames `[B, T, 3, H, W]` (+ `lengths [B]`) to per-frame features
`[B, T, output_dim]`. The CLIP tower is kept as `self.backbone` with its own parameter names, so an OpenAI
state dict for the tower loads under `backbone.*`; every new module lives outside it. The tower is frozen,
only the new modules plus `backbone.ln_post` and `backbone.proj` train (`set_trainable(backbone=True)`
unfreezes everything, e.g. for the demo whose backbone has random weights).

Variants (`FrameEncoderConfig.variant`):

* ``"frozen"`` - plain CLIP per frame (a linear-probe baseline).
* ``"adaptsign"`` - AdaptSign (Hu et al.), following the released code (hulianyuyy/AdaptSign):
  per block two bottleneck adapters (width -> width*ratio -> width, QuickGELU, up-projection zero-init)
  *in parallel* with attention and with the MLP, both reading the block's residual stream;
  `prefix_tokens` learnable prefix key and value embeddings per block, appended to the keys/values
  (as in the released code they live in the block's input space and pass through the frozen K/V
  projections); multiscale aggregation (a learnable query token that, after every block, cross-attends to
  that block's tokens through a small attention + MLP block; mixed with the CLS path by learnable weights);
  cross-frame attention (after the last block each frame's CLS correlates with the patch tokens of the
  +-window neighbouring frames: weights sigmoid(q.k/sqrt(d)) - 0.5 as in the released
  `Correlation_Module`, padded frames and other videos masked out) behind a zero-init gate.
* ``"sla-lora"`` - CLIP-SLA with LoRA on the q/k/v/out projections and the MLP's c_fc/c_proj, plus a temporal
  shift (TSM) of the attention branch's input in every block.
* ``"sla-adapter"`` - CLIP-SLA with adapters before MHSA and before the MLP, each
  down-projection -> 3D conv over (time, patch grid) -> up-projection (ST-Adapter style).

Step-0 equality with frozen CLIP (every variant outputs exactly the frozen tower's frame features at
initialisation; tested):

* adapters / LoRA / ST-adapters: up-projections (LoRA ``B``) are zero-initialised.
* prefix K/V: the released code uses randomly initialised prefixes inside one joint softmax, which changes the
  output at step 0. We use the exact decomposition of the joint softmax,
  ``attn([K;Pk],[V;Pv]) = o + lam * (o_p - o)`` with ``o`` the ordinary attention, ``o_p`` the attention
  over the prefixes alone and ``lam = Z_p / (Z + Z_p)`` the prefixes' share of the softmax mass, and gate the
  prefix term per head: ``o + g_h * lam * (o_p - o)``, ``g`` zero-init (LLaMA-Adapter-style zero-init
  attention). At ``g = 1`` this is exactly the released joint-softmax prefix attention.
* multiscale: the mix weights start at (1, 0) (the released code starts at (0.5, 0.5)).
* cross-frame: the released zero-init gate (`temporal_ada_weight`).
* TSM: a zero-init scalar gate per block blends ``x + g * (shift(x) - x)``; ``g = 1`` is plain TSM.

Everything is static-shape tensor code (masks from `torch.arange` against `lengths`), so the encoder
exports with `torch.export` for a fixed T.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slsdk.model_names import VARIANTS  # the variants' names live in a torch-free table (the CLI's choices)
from slsdk.models.clip import MLP, Attention, LayerNorm, QuickGELU, VisionTransformer


@dataclass
class FrameEncoderConfig:
    """Which trainable modules wrap the frozen CLIP tower, and their sizes."""

    variant: str = "adaptsign"
    adapter_ratio: float = 0.25       # adapter bottleneck = width * ratio (adaptsign, sla-adapter)
    prefix_tokens: int = 8            # AdaptSign prefix K and V tokens per block (0 = none)
    prefix_gate_init: float = 0.0     # per-head prefix gate at start: 0 = frozen CLIP at step 0; 1 = the released
                                      # joint-softmax prefix attention (AdaptSign's recipe, whose rule freezes it)
    multiscale: bool = True           # AdaptSign multiscale aggregation
    cross_frame: bool = True          # AdaptSign cross-frame attention
    cross_frame_window: int = 2       # neighbours on each side (released code: window 5 = +-2)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    tsm_fraction: float = 0.125       # fraction of channels shifted in EACH direction (TSM fold_div=8)
    conv3d_kernel: int = 3
    conv3d_depthwise: bool = True     # ST-Adapter's depth-wise 3D conv; False = full conv

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown frame encoder variant {self.variant!r}; known: {', '.join(VARIANTS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrameEncoderConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ----------------------------------------------------------------------------------------------- pieces
class Adapter(nn.Module):
    """Bottleneck adapter without skip: c_out(act(c_in(x))), c_out zero-initialised."""

    def __init__(self, width: int, ratio: float):
        super().__init__()
        hidden = max(1, int(width * ratio))
        self.c_in = nn.Linear(width, hidden)
        self.act = QuickGELU()
        self.c_out = nn.Linear(hidden, width)
        nn.init.zeros_(self.c_out.weight)
        nn.init.zeros_(self.c_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_out(self.act(self.c_in(x)))


class LoRA(nn.Module):
    """Low-rank update (x A^T) B^T * alpha / r with B zero-initialised."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.A), self.B) * self.scale


class AggregationBlock(nn.Module):
    """AdaptSign multiscale aggregation: a query token attends to one layer's tokens, then an MLP (ratio 1)."""

    def __init__(self, width: int, heads: int, act: str = "quick_gelu"):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = MLP(width, width, act)

    def forward(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """tokens [N, L, W], query [N, 1, W] -> query [N, 1, W]."""
        y = self.ln_1(torch.cat([query, tokens], dim=1))
        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias
        width = query.shape[-1]
        q = F.linear(y[:, :1], w[:width], b[:width])
        kv = F.linear(y[:, 1:], w[width:], b[width:])
        k, v = kv.chunk(2, dim=-1)
        query = query + self.attn.attend(q, k, v)
        return query + self.mlp(self.ln_2(query))


class CrossFrame(nn.Module):
    """AdaptSign cross-frame attention: each frame's CLS correlates with its neighbours' patch tokens.

    Weights are sigmoid(cls . patch / sqrt(W)) - 0.5 (the released `Correlation_Module`); neighbours outside
    the video (before frame 0 or at/after `lengths[b]`) get weight 0.
    """

    def __init__(self, width: int, window: int):
        super().__init__()
        self.ln = LayerNorm(width)
        self.window = window

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """tokens [B, T, N, W], valid [B, T] bool -> update for the CLS token [B, T, W]."""
        b, t, n, w = tokens.shape
        r = self.window
        y = self.ln(tokens)
        cls, patches = y[:, :, 0], y[:, :, 1:]
        patches = torch.where(valid[:, :, None, None], patches, torch.zeros_like(patches))
        padded = F.pad(patches, (0, 0, 0, 0, r, r))                       # [B, T + 2r, P, W]
        neigh = torch.stack([padded[:, o:o + t] for o in range(2 * r + 1)], dim=2)  # [B, T, K, P, W]
        valid_pad = F.pad(valid, (r, r))                                   # [B, T + 2r], False outside
        ok = torch.stack([valid_pad[:, o:o + t] for o in range(2 * r + 1)], dim=2)  # [B, T, K]
        aff = torch.einsum("btw,btkpw->btkp", cls, neigh) / math.sqrt(w)
        weight = (torch.sigmoid(aff) - 0.5) * ok[..., None].to(aff.dtype)
        return torch.einsum("btkp,btkpw->btw", weight, neigh)


class STAdapter(nn.Module):
    """CLIP-SLA / ST-Adapter: down -> 3D conv over (time, grid, grid) on patch tokens -> up (zero-init)."""

    def __init__(self, width: int, ratio: float, kernel: int, depthwise: bool):
        super().__init__()
        hidden = max(1, int(width * ratio))
        self.down = nn.Linear(width, hidden)
        self.conv = nn.Conv3d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden if depthwise else 1)
        self.up = nn.Linear(hidden, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, W], valid [B, T] -> update [B, T, N, W]; the CLS token skips the conv."""
        b, t, n, _ = x.shape
        d = self.down(x)
        c = d.shape[-1]
        g = math.isqrt(n - 1)
        p = torch.where(valid[:, :, None, None], d[:, :, 1:], torch.zeros_like(d[:, :, 1:]))
        p = p.reshape(b, t, g, g, c).permute(0, 4, 1, 2, 3)
        p = self.conv(p).permute(0, 2, 3, 4, 1).reshape(b, t, n - 1, c)
        return self.up(torch.cat([d[:, :, :1], p], dim=2))


def temporal_shift(x: torch.Tensor, valid: torch.Tensor, fold: int) -> torch.Tensor:
    """TSM within each video: channels [:fold] come from frame t+1, [fold:2fold] from t-1, zeros at the ends.

    x [B, T, N, W], valid [B, T]; padded frames count as outside the video.
    """
    if fold <= 0:
        return x
    t = x.shape[1]
    xm = torch.where(valid[:, :, None, None], x, torch.zeros_like(x))
    pad = F.pad(xm[..., :2 * fold], (0, 0, 0, 0, 1, 1))                   # [B, T + 2, N, 2fold]
    future = pad[:, 2:t + 2, :, :fold]
    past = pad[:, 0:t, :, fold:2 * fold]
    return torch.cat([future, past, x[..., 2 * fold:]], dim=-1)


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    n, l, w = x.shape
    return x.reshape(n, l, h, w // h).transpose(1, 2)


# --------------------------------------------------------------------------------------------- encoder
class FrameEncoder(nn.Module):
    """Frozen CLIP tower + the trainable modules of one variant. forward(frames, lengths) -> [B, T, D]."""

    def __init__(self, backbone: VisionTransformer, cfg: FrameEncoderConfig | None = None):
        super().__init__()
        cfg = cfg or FrameEncoderConfig()
        self.cfg = cfg
        self.backbone = backbone
        vc = backbone.config
        w, layers, heads = vc.width, vc.layers, vc.heads
        self.width, self.heads = w, heads
        self.output_dim = vc.output_dim
        v = cfg.variant
        if v == "adaptsign":
            self.s_adapters = nn.ModuleList(Adapter(w, cfg.adapter_ratio) for _ in range(layers))
            self.mlp_adapters = nn.ModuleList(Adapter(w, cfg.adapter_ratio) for _ in range(layers))
            if cfg.prefix_tokens > 0:
                scale = w ** -0.5
                self.prefix_k = nn.Parameter(scale * torch.randn(layers, cfg.prefix_tokens, w))
                self.prefix_v = nn.Parameter(scale * torch.randn(layers, cfg.prefix_tokens, w))
                self.prefix_gate = nn.Parameter(torch.full((layers, heads), float(cfg.prefix_gate_init)))
            if cfg.multiscale:
                self.query = nn.Parameter(torch.rand(1, 1, w))
                self.agg_blocks = nn.ModuleList(AggregationBlock(w, heads, vc.act) for _ in range(layers))
                self.ln_post_query = LayerNorm(w, eps=vc.ln_eps)
                self.mix = nn.Parameter(torch.tensor([1.0, 0.0]))
            if cfg.cross_frame:
                self.cross_frame = CrossFrame(w, cfg.cross_frame_window)
                self.cross_frame_gate = nn.Parameter(torch.zeros(1))
        elif v == "sla-lora":
            hidden = backbone.transformer.resblocks[0].mlp.c_fc.out_features
            r, a = cfg.lora_rank, cfg.lora_alpha
            self.lora = nn.ModuleList(nn.ModuleDict({
                "q": LoRA(w, w, r, a), "k": LoRA(w, w, r, a), "v": LoRA(w, w, r, a), "out": LoRA(w, w, r, a),
                "c_fc": LoRA(w, hidden, r, a), "c_proj": LoRA(hidden, w, r, a)}) for _ in range(layers))
            self.tsm_fold = int(w * cfg.tsm_fraction)
            self.tsm_gate = nn.Parameter(torch.zeros(layers))
        elif v == "sla-adapter":
            k, dw = cfg.conv3d_kernel, cfg.conv3d_depthwise
            self.attn_adapters = nn.ModuleList(STAdapter(w, cfg.adapter_ratio, k, dw) for _ in range(layers))
            self.mlp_adapters = nn.ModuleList(STAdapter(w, cfg.adapter_ratio, k, dw) for _ in range(layers))
        self.set_trainable(backbone=False)

    # ------------------------------------------------------------------ trainability
    def set_trainable(self, backbone: bool = False) -> "FrameEncoder":
        """Freeze the CLIP tower (except ln_post and proj) unless `backbone`; new modules always train."""
        for p in self.parameters():
            p.requires_grad_(True)
        if not backbone:
            self.backbone.requires_grad_(False)
            self.backbone.ln_post.requires_grad_(True)
            self.backbone.proj.requires_grad_(True)
        return self

    # ------------------------------------------------------------------ blocks
    def _attention(self, i: int, block, x: torch.Tensor) -> torch.Tensor:
        """Attention branch (input already ln_1'd) with the variant's prefix / LoRA changes; x [N, L, W]."""
        attn: Attention = block.attn
        h = self.heads
        q, k, v = attn.project_qkv(x)
        v_name = self.cfg.variant
        if v_name == "sla-lora":
            lora = self.lora[i]
            q, k, v = q + lora["q"](x), k + lora["k"](x), v + lora["v"](x)
        qh, kh, vh = _heads(q, h), _heads(k, h), _heads(v, h)
        if v_name == "adaptsign" and self.cfg.prefix_tokens > 0:
            w_all, b_all = attn.in_proj_weight, attn.in_proj_bias
            wd = self.width
            pk = F.linear(self.prefix_k[i], w_all[wd:2 * wd], b_all[wd:2 * wd])      # [P, W]
            pv = F.linear(self.prefix_v[i], w_all[2 * wd:], b_all[2 * wd:])
            pk = pk.reshape(1, -1, h, wd // h).transpose(1, 2)                      # [1, h, P, d]
            pv = pv.reshape(1, -1, h, wd // h).transpose(1, 2)
            scale = (wd // h) ** -0.5
            s = (qh @ kh.transpose(-1, -2)) * scale
            lse = torch.logsumexp(s, dim=-1, keepdim=True)
            o = torch.exp(s - lse) @ vh
            sp = (qh @ pk.transpose(-1, -2)) * scale
            lse_p = torch.logsumexp(sp, dim=-1, keepdim=True)
            op = torch.exp(sp - lse_p) @ pv
            lam = torch.sigmoid(lse_p - lse)                                         # prefixes' softmax mass
            gate = self.prefix_gate[i].view(1, h, 1, 1)
            o = o + gate * lam * (op - o)
        else:
            o = F.scaled_dot_product_attention(qh, kh, vh)
        n, _, l, _ = o.shape
        o = o.transpose(1, 2).reshape(n, l, self.width)
        out = attn.out_proj(o)
        if v_name == "sla-lora":
            out = out + self.lora[i]["out"](o)
        return out

    def _mlp(self, i: int, block, x: torch.Tensor) -> torch.Tensor:
        mlp = block.mlp
        if self.cfg.variant != "sla-lora":
            return mlp(x)
        lora = self.lora[i]
        hdn = mlp.gelu(mlp.c_fc(x) + lora["c_fc"](x))
        return mlp.c_proj(hdn) + lora["c_proj"](hdn)

    # ------------------------------------------------------------------ forward
    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """frames [B, T, 3, H, W], lengths [B] (None = all T valid) -> features [B, T, output_dim]."""
        b, t = frames.shape[:2]
        if lengths is None:
            valid = torch.ones(b, t, dtype=torch.bool, device=frames.device)
        else:
            valid = torch.arange(t, device=frames.device)[None] < lengths.to(frames.device)[:, None]
        vit = self.backbone
        x = vit.embed(frames.flatten(0, 1))                                         # [BT, L, W]
        n_tok = x.shape[1]
        v = self.cfg.variant
        query = None
        if v == "adaptsign" and self.cfg.multiscale:
            query = self.query.to(x.dtype).expand(x.shape[0], 1, -1)
        for i, block in enumerate(vit.transformer.resblocks):
            if v == "adaptsign":
                x = x + self._attention(i, block, block.ln_1(x)) + self.s_adapters[i](x)
                x = x + self._mlp(i, block, block.ln_2(x)) + self.mlp_adapters[i](x)
                if query is not None:
                    query = self.agg_blocks[i](x, query)
            elif v == "sla-lora":
                x4 = x.reshape(b, t, n_tok, -1)
                shifted = temporal_shift(x4, valid, self.tsm_fold).reshape_as(x)
                a_in = x + self.tsm_gate[i] * (shifted - x)
                x = x + self._attention(i, block, block.ln_1(a_in))
                x = x + self._mlp(i, block, block.ln_2(x))
            elif v == "sla-adapter":
                x = x + self.attn_adapters[i](x.reshape(b, t, n_tok, -1), valid).reshape_as(x)
                x = x + self._attention(i, block, block.ln_1(x))
                x = x + self.mlp_adapters[i](x.reshape(b, t, n_tok, -1), valid).reshape_as(x)
                x = x + self._mlp(i, block, block.ln_2(x))
            else:
                x = x + self._attention(i, block, block.ln_1(x))
                x = x + self._mlp(i, block, block.ln_2(x))
        cls = x[:, 0]
        if v == "adaptsign" and self.cfg.cross_frame:
            upd = self.cross_frame(x.reshape(b, t, n_tok, -1), valid).reshape_as(cls)
            cls = cls + self.cross_frame_gate * upd
        feat = vit.ln_post(cls)
        if query is not None:
            feat = self.mix[0] * feat + self.mix[1] * self.ln_post_query(query[:, 0])
        return (feat @ vit.proj).reshape(b, t, -1)


def build_frame_encoder(backbone: VisionTransformer, cfg: FrameEncoderConfig | dict | None = None) -> FrameEncoder:
    """A `FrameEncoder` for `backbone` (a config object, a dict, or None for the AdaptSign default)."""
    if isinstance(cfg, dict):
        cfg = FrameEncoderConfig.from_dict(cfg)
    return FrameEncoder(backbone, cfg)


__all__ = ["FrameEncoderConfig", "FrameEncoder", "build_frame_encoder", "VARIANTS", "Adapter", "LoRA",
           "AggregationBlock", "CrossFrame", "STAdapter", "temporal_shift"]
