"""What exporters and the runtime's torch backend need to know about a model: ``ModelIO`` and its manifest.

``model_io(model)`` describes a ``StreamingStudent`` (flat step module ``(frames, *state) -> (log_probs,
*state)``, tensor names, state shapes, chunking) or a whole-video teacher (``frames [1, T, 3, S, S] ->
log_probs [T', V]``); ``manifest_for_io`` turns that into the bundle manifest ``slsdk.convert`` writes and the
torch backend serves with. Lives with the models so that the runtime's torch backend (the one door from
serving to the models) needs nothing from conversion.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from slsdk.bundle import Manifest, default_input_spec
from slsdk.landmarks import pose86_spec
from slsdk.preprocess import resize_size
from slsdk.targets import check_precision, get_target

__all__ = ["ModelIO", "model_io", "offline_wrapper", "manifest_for_io", "manifest_for_model", "vocab_list"]


class ModelIO:
    """What the exporters need to know about a model: the flat module, names, shapes, state."""

    def __init__(self, *, kind: str, module, example_inputs: tuple, input_names: list[str],
                 output_names: list[str], state: list[tuple[str, tuple[int, ...]]], image_size: int,
                 mean, std, fps: float, output_stride: int, chunk_frames: int | None, config: dict,
                 num_classes: int, dynamic_axes: dict | None = None, source_model=None,
                 float_modules: list[str] | None = None, float_activation_modules: list[str] | None = None,
                 landmarks: dict | None = None, modality: str | None = None):
        self.kind, self.module, self.example_inputs = kind, module, example_inputs
        self.input_names, self.output_names, self.state = input_names, output_names, state
        self.image_size, self.mean, self.std, self.fps = image_size, list(mean), list(std), float(fps)
        self.output_stride, self.chunk_frames, self.config = output_stride, chunk_frames, config
        self.num_classes, self.dynamic_axes, self.source_model = num_classes, dynamic_axes, source_model
        self.float_modules = list(float_modules or [])   # submodules of ``module`` int8 recipes keep float
        # submodules of ``module`` with int8 weights and float activations
        self.float_activation_modules = list(float_activation_modules or [])
        # a landmark model: the manifest's input.landmarks section (the point layout); None for frame models
        self.landmarks = landmarks
        # what the model takes (the manifest's input.modality): frames, landmarks, or fusion (frames + landmarks)
        self.modality = modality or ("landmarks" if landmarks is not None else "frames")

    @property
    def input_name(self) -> str:
        return self.input_names[0]

    def input_example_shape(self) -> list:
        """One frame's input: ``[3, S, S]`` pixels, or ``[points, dims]`` landmarks."""
        if self.modality == "landmarks":
            return [int(self.landmarks["points"]), int(self.landmarks["dims"])]
        return [3, self.image_size, self.image_size]

    @property
    def streaming(self) -> bool:
        return self.chunk_frames is not None

    def init_state(self) -> list:

        return [torch.zeros(shape) for _, shape in self.state]

    def streaming_section(self) -> dict:
        def io(name, t, dtype="float32"):
            return {"name": name, "shape": list(t), "dtype": dtype}

        ex = self.example_inputs
        if self.streaming:
            with _no_grad():
                outs = self.module(*ex)
            inputs = [io(n, x.shape) for n, x in zip(self.input_names, ex)]
            outputs = [io(n, o.shape) for n, o in zip(self.output_names, outs)]
            c = self.chunk_frames
            return {
                "mode": "streaming", "chunk_frames": c, "shift_frames": c, "lookahead_frames": 0,
                "output_stride": self.output_stride,
                "frame_shift_s": self.output_stride / self.fps,  # seconds per output (log-prob) frame
                "algorithmic_latency_s": c / self.fps,
                "padding": ("the last partial chunk is zero-padded (in normalised "
                            f"{_PADDED_SPACE[self.modality]} space)"),
                "output_frames": "ceil(num_frames / output_stride)",
                "inputs": inputs, "outputs": outputs,
                "state": [{"name": n, "input": n, "output": f"{n}_out", "shape": list(s), "dtype": "float32",
                           "init": "zeros"} for n, s in self.state],
            }
        lo, hi = self.dynamic_axes[self.input_name][1][1:] if self.dynamic_axes else (None, None)
        return {
            "mode": "offline", "chunk_frames": None, "shift_frames": None, "lookahead_frames": None,
            "output_stride": self.output_stride, "frame_shift_s": self.output_stride / self.fps,
            "algorithmic_latency_s": None, "frames_range": [lo, hi],
            "inputs": [{"name": self.input_name, "shape": [1, "T", *self.input_example_shape()], "dtype": "float32"}],
            "outputs": [{"name": "log_probs", "shape": ["T_out", self.num_classes], "dtype": "float32"}],
            "state": [],
        }


_PADDED_SPACE = {"frames": "pixel", "landmarks": "landmark", "fusion": "pixel and landmark"}


class _no_grad:
    def __enter__(self):

        self._ctx = torch.no_grad()
        self._ctx.__enter__()

    def __exit__(self, *a):
        return self._ctx.__exit__(*a)


def offline_wrapper(model, plain_lstm: bool = False):
    """``frames [1, T, 3, S, S] -> log_probs [T', V]`` around a whole-video model.

    ``plain_lstm`` (for torch.export / ExecuTorch): run a ``CSLRRecognizer``'s BiLSTM over the plain sequence
    instead of a packed one -- the same numbers for one clip whose frames are all valid, but
    ``pack_padded_sequence`` does not torch.export. The ONNX exporters keep the packed path (the legacy
    exporter writes it as one ONNX LSTM that takes any length).
    """

    class OfflineLogProbs(torch.nn.Module):
        """frames [1, T, 3, S, S] -> log_probs [T', V] (whole-video models)."""

        def __init__(self, m):
            super().__init__()
            self.model = m

        def forward(self, frames):
            lengths = torch.full((1,), frames.shape[1], dtype=torch.long)
            seq = getattr(self.model, "sequence", None)
            if plain_lstm and hasattr(self.model, "frame_features") and all(
                    hasattr(seq, a) for a in ("temporal_conv", "lstm", "classifier")):
                x = self.model.frame_features(frames, lengths)
                x = seq.temporal_conv(x.transpose(1, 2)).permute(2, 0, 1)   # [T', 1, C]
                out, _ = seq.lstm(x)
                return F.log_softmax(seq.classifier(out)[:, 0], dim=-1)
            out = self.model(frames, lengths)
            logits = out["sequence_logits"] if isinstance(out, dict) else out
            return F.log_softmax(logits[:, 0], dim=-1)

    return OfflineLogProbs(model).eval()


def model_io(model, *, teacher: bool = False, frames_range: tuple[int, int] = (16, 1024)) -> ModelIO:
    """Describe ``model`` for export: a ``StreamingStudent`` (streaming) or, with ``teacher=True`` or for a
    model without ``export_module``, an offline whole-video model (frames [1, T, 3, S, S] -> [T', V])."""

    model = model.eval()
    cfg = getattr(model, "config", None)
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    if getattr(model, "modality", None) == "landmarks":
        return _landmark_io(model, cfg, cfg_dict, teacher=teacher or not hasattr(model, "export_module"),
                            frames_range=frames_range)
    mean = getattr(cfg, "mean", None)
    std = getattr(cfg, "std", None)
    if mean is None or std is None:
        raise ValueError("the model's config must carry the pixel mean/std")
    num_classes = getattr(cfg, "num_classes", None)
    stride = int(getattr(model, "output_stride", 4))
    if hasattr(model, "export_module") and not teacher:
        module = model.export_module().eval()
        fusion = getattr(model, "modality", None) == "fusion"   # frames + landmarks: both inputs declared
        return ModelIO(modality="fusion" if fusion else None, landmarks=landmark_input_section(cfg) if fusion else None,
                       kind="student", module=module, example_inputs=tuple(model.example_inputs()),
                       input_names=list(model.input_names()), output_names=list(model.output_names()),
                       state=[(n, tuple(s)) for n, s in model.state_spec()], image_size=int(cfg.image_size),
                       mean=mean, std=std, fps=float(getattr(cfg, "fps", 25.0)), output_stride=stride,
                       chunk_frames=int(cfg.chunk_frames), config=cfg_dict, num_classes=int(num_classes),
                       source_model=model, float_modules=_names_in(module, model, _declared(model, "int8_float_modules")),
                       float_activation_modules=_names_in(module, model,
                                                          _declared(model, "int8_float_activation_modules")))
    size = int(getattr(cfg, "input_size", None) or getattr(cfg, "image_size"))
    lo, hi = frames_range
    t = max(lo, 16)
    return ModelIO(kind="teacher" if teacher or not hasattr(model, "export_module") else "student",
                   module=offline_wrapper(model), example_inputs=(torch.zeros(1, t, 3, size, size),),
                   input_names=["frames"], output_names=["log_probs"], state=[], image_size=size, mean=mean,
                   std=std, fps=float(getattr(cfg, "fps", 25.0)), output_stride=stride, chunk_frames=None,
                   config=cfg_dict, num_classes=int(num_classes),
                   dynamic_axes={"frames": {1: ("T", lo, hi)}}, source_model=model)



LANDMARK_FRAME_SIDE = 256   # landmark-only bundles: the input section's picture (frames the landmarks are found in)


def _landmark_io(model, cfg, cfg_dict: dict, *, teacher: bool, frames_range: tuple[int, int]) -> ModelIO:
    """A landmark model's ModelIO: input ``landmarks [B, T, P, 2]``, the point layout in ``landmarks``."""
    spec = landmark_input_section(cfg)
    common = dict(image_size=LANDMARK_FRAME_SIDE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                  fps=float(cfg.fps), output_stride=int(getattr(model, "output_stride", 4)), config=cfg_dict,
                  num_classes=int(cfg.num_classes), source_model=model, landmarks=spec)
    if not teacher:
        module = model.export_module().eval()
        return ModelIO(kind="student", module=module, example_inputs=tuple(model.example_inputs()),
                       input_names=list(model.input_names()), output_names=list(model.output_names()),
                       state=[(n, tuple(s)) for n, s in model.state_spec()], chunk_frames=int(cfg.chunk_frames),
                       float_modules=[], float_activation_modules=_names_in(
                           module, model, _declared(model, "int8_float_activation_modules")), **common)
    lo, hi = frames_range
    return ModelIO(kind="teacher", module=offline_wrapper(model),
                   example_inputs=(torch.zeros(1, max(lo, 16), int(cfg.points), int(cfg.dims)),),
                   input_names=[spec["tensor"]], output_names=["log_probs"], state=[], chunk_frames=None,
                   dynamic_axes={spec["tensor"]: {1: ("T", lo, hi)}}, **common)


def landmark_input_section(cfg) -> dict:
    """The manifest's ``input.landmarks`` section of a landmark model config: the point layout
    (``slsdk.landmarks.pose86_spec()``), its order and the normalisation's name."""
    spec = pose86_spec()
    parts = [{"name": p["name"], "source": p["source"], "count": int(p["stop"]) - int(p["start"]),
              "indices": [int(i) for i in p.get("indices", [])]} for p in spec["parts"]]
    points = sum(p["count"] for p in parts)
    if points != int(cfg.points) or int(cfg.dims) != 2:
        raise ValueError(f"the model takes [{cfg.points}, {cfg.dims}] points; layout {cfg.layout} has "
                         f"[{points}, 2]")
    return {"tensor": "landmarks", "layout": str(cfg.layout), "points": points, "dims": int(cfg.dims),
            "normalisation": str(cfg.normalisation), "coordinates": "pixels", "parts": parts}


def vocab_list(vocab) -> list[str] | None:
    """A Vocabulary or a list of glosses -> list of gloss strings (blank first)."""
    if vocab is None:
        return None
    if hasattr(vocab, "glosses"):
        return list(vocab.glosses)
    return [str(g) for g in vocab]


def manifest_for_io(io: ModelIO, vocab: list[str], target, precision: str, crop: dict | None = None,
                    quantization: dict | None = None):
    """The bundle manifest for a described model (no files, no fidelity yet)."""

    tgt = get_target(target)
    # the resize the model was trained and evaluated with (the shorter side, before the centre crop)
    inp = default_input_spec(io.image_size, io.image_size, io.mean, io.std,
                             resize_shorter=resize_size(io.image_size), crop="center")
    if io.modality == "landmarks":
        inp.update(resize_shorter=io.image_size, modality="landmarks", landmarks=dict(io.landmarks))
    elif io.modality == "fusion":
        inp.update(modality="fusion", landmarks=dict(io.landmarks))
    return Manifest(
        target=tgt.name, precision=check_precision(tgt, precision), model_kind=io.kind,
        model_file="model" + tgt.suffix, vocab=list(vocab),
        input=inp,
        fps=io.fps, streaming=io.streaming_section(), model_config=io.config,
        crop=dict(crop) if crop else {"policy": "full"}, quantization=quantization)


def manifest_for_model(model, vocab, target: str = "onnx", precision: str = "fp32", crop: dict | None = None):
    """The manifest ``slsdk.convert`` would write for this model (the torch runtime backend serves with it)."""
    return manifest_for_io(model_io(model), vocab_list(vocab), target, precision, crop)


def _declared(model, method: str) -> list[str]:
    """The submodule names a model declares through ``method`` (none when it has no such method)."""
    fn = getattr(model, method, None)
    return list(fn()) if callable(fn) else []


def _names_in(module, model, names: list[str]) -> list[str]:
    """``model``'s submodules ``names`` as named inside ``module`` (an export wrapper holding ``model``)."""
    if not names:
        return []
    where = {id(m): n for n, m in module.named_modules()}
    return [where[id(model.get_submodule(n))] for n in names]

