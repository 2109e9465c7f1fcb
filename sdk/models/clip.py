"""CLIP ViT image encoder with the OpenAI architecture, and a registry of named configs.

Parameter names follow OpenAI's `visual.*` layout (conv1, class_embedding, positional_embedding, ln_pre,
transformer.resblocks.N.{ln_1,attn.in_proj_weight,attn.in_proj_bias,attn.out_proj,ln_2,mlp.c_fc,mlp.c_proj},
ln_post, proj), so an OpenAI state dict loads with no renaming. Tensors are batch-first ([B, N, W]).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

# the pixel normalisation CLIP was trained with (RGB in [0, 1])
from slsdk.models.errors import ModelConfigError
from slsdk.preprocess import CLIP_MEAN, CLIP_STD  # noqa: E402,F401  (defined once, at the bottom layer)


@dataclass(frozen=True)
class CLIPVisionConfig:
    """Shape of a CLIP ViT image tower."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    output_dim: int = 512
    mlp_ratio: float = 4.0
    act: str = "quick_gelu"  # OpenAI weights use QuickGELU; open_clip's non-OpenAI configs use "gelu"
    ln_eps: float = 1e-5

    def __post_init__(self):
        # a 0 here (e.g. inferred from a 0-size conv1 kernel) would divide by zero in `grid` or the attention
        for name, least in (("image_size", 1), ("patch_size", 1), ("width", 1), ("heads", 1), ("output_dim", 1),
                            ("layers", 0)):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value < least:
                raise ValueError(f"CLIPVisionConfig.{name} must be at least {least}, got {value!r}")
        if isinstance(self.mlp_ratio, (int, float)) and not self.mlp_ratio > 0:
            raise ValueError(f"CLIPVisionConfig.mlp_ratio must be positive, got {self.mlp_ratio!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CLIPVisionConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


_CONFIGS: dict[str, CLIPVisionConfig] = {
    "ViT-B/32": CLIPVisionConfig(224, 32, 768, 12, 12, 512),
    "ViT-B/16": CLIPVisionConfig(224, 16, 768, 12, 12, 512),
    "ViT-L/14": CLIPVisionConfig(224, 14, 1024, 24, 16, 768),
    "ViT-L/14@336": CLIPVisionConfig(336, 14, 1024, 24, 16, 768),
    # small randomly initialised towers for the embedded demo and the tests
    "ViT-S/16-demo": CLIPVisionConfig(96, 16, 128, 4, 4, 128),
    "ViT-T/16-test": CLIPVisionConfig(32, 16, 64, 2, 2, 32),
}


def register_config(name: str, config: CLIPVisionConfig) -> None:
    """Add a named config (open_clip-style registry)."""
    _CONFIGS[name] = config


def list_models() -> list[str]:
    """Names of the registered CLIP vision configs."""
    return sorted(_CONFIGS)


def get_config(name: str) -> CLIPVisionConfig:
    """Config by name; an unknown name lists the known ones."""
    key = name.replace("-", "/") if name not in _CONFIGS else name
    for cand in (name, key, name.replace("/", "-")):
        if cand in _CONFIGS:
            return _CONFIGS[cand]
    raise ModelConfigError(f"unknown CLIP config {name!r}; known: {', '.join(list_models())}")


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_act(name: str) -> nn.Module:
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r} (quick_gelu, gelu)")


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (as OpenAI's), cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype) if x.dtype != torch.float32 else super().forward(x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names, batch-first.

    `prefix_k` / `prefix_v` ([B or 1, P, W]) are extra keys/values appended after projection (AdaptSign's
    prefix embeddings); `q_delta`, `k_delta`, `v_delta` are additive updates (LoRA) to the projections.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} not divisible by heads {heads}")
        self.width, self.heads = width, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [B, N, W], k/v [B, M, W] -> [B, N, W] after out_proj."""
        b, n, w = q.shape
        h = self.heads
        q = q.reshape(b, n, h, w // h).transpose(1, 2)
        k = k.reshape(b, k.shape[1], h, w // h).transpose(1, 2)
        v = v.reshape(b, v.shape[1], h, w // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, w))

    def forward(self, x: torch.Tensor, prefix_k: torch.Tensor | None = None,
                prefix_v: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.project_qkv(x)
        if prefix_k is not None:
            k = torch.cat([k, prefix_k.expand(x.shape[0], -1, -1)], dim=1)
            v = torch.cat([v, prefix_v.expand(x.shape[0], -1, -1)], dim=1)
        return self.attend(q, k, v)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = make_act(act)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, act: str = "quick_gelu",
                 ln_eps: float = 1e-5):
        super().__init__()
        self.ln_1 = LayerNorm(width, eps=ln_eps)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width, eps=ln_eps)
        self.mlp = MLP(width, int(width * mlp_ratio), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.ln_eps)
            for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTransformer(nn.Module):
    """The CLIP image tower. forward(images [B, 3, H, W]) -> embeddings [B, output_dim]."""

    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        scale = w ** -0.5
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.num_tokens, w))
        self.ln_pre = LayerNorm(w, eps=cfg.ln_eps)
        self.transformer = Transformer(cfg)
        self.ln_post = LayerNorm(w, eps=cfg.ln_eps)
        self.proj = nn.Parameter(scale * torch.randn(w, cfg.output_dim))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch + class token + positional embedding + ln_pre: [B, 3, H, W] -> [B, 1 + N, W]."""
        x = self.conv1(images)
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = self.positional_embedding
        if pos.shape[0] != x.shape[1]:
            pos = interpolate_pos_embed(pos, x.shape[1] - 1)
        return self.ln_pre(x + pos.to(x.dtype))

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """ln_post on the class token and projection: [B, 1 + N, W] -> [B, output_dim]."""
        return self.ln_post(tokens[:, 0]) @ self.proj

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens before ln_post: [B, 1 + N, W]."""
        return self.transformer(self.embed(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_tokens(images))


def interpolate_pos_embed(pos: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Bicubic resize of a [1 + G*G, W] positional embedding to `num_patches` (square grid) patches."""
    cls, grid = pos[:1], pos[1:]
    old = int(math.isqrt(grid.shape[0]))
    new = int(math.isqrt(num_patches))
    if old * old != grid.shape[0] or new * new != num_patches:
        raise ValueError(f"positional embedding needs square grids, got {grid.shape[0]} -> {num_patches} patches")
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new, new), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new * new, -1).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


def resize_config(cfg: CLIPVisionConfig, image_size: int) -> CLIPVisionConfig:
    """The same tower at another input size (positional embedding is interpolated at load)."""
    return replace(cfg, image_size=image_size)
