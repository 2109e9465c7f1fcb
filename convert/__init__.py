"""Conversion: torch model -> target file(s) -> loaded back in the target's runtime -> parity -> bundle.

    from slsdk.convert import convert, TARGETS
    bundle = convert(student, "executorch", "int8", "out/student-et-int8", vocab=vocab,
                     calib=train_videos, heldout=[(frames, gloss_ids), ...])
    bundle.manifest.fidelity        # max_abs_err, cosine, WER torch vs target, meets_int8_budget

Importing this package loads no toolchain: torch, onnx, onnxruntime, executorch and coremltools are
imported by the functions that need them.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

from slsdk.convert.targets import (
    TARGETS,
    Target,
    check_precision,
    get_target,
    missing_modules,
    target_names,
    targets_markdown,
)

__all__ = ["TARGETS", "Target", "get_target", "check_precision", "target_names", "targets_markdown",
           "missing_modules", "convert", "ModelIO", "model_io", "Int8BudgetWarning"]


class Int8BudgetWarning(UserWarning):
    """int8 lost more held-out WER against fp32 than the budget allows."""


class ModelIO:
    """What the exporters need to know about a model: the flat module, names, shapes, state."""

    def __init__(self, *, kind: str, module, example_inputs: tuple, input_names: list[str],
                 output_names: list[str], state: list[tuple[str, tuple[int, ...]]], image_size: int,
                 mean, std, fps: float, output_stride: int, chunk_frames: int | None, config: dict,
                 num_classes: int, dynamic_axes: dict | None = None, source_model=None):
        self.kind, self.module, self.example_inputs = kind, module, example_inputs
        self.input_names, self.output_names, self.state = input_names, output_names, state
        self.image_size, self.mean, self.std, self.fps = image_size, list(mean), list(std), float(fps)
        self.output_stride, self.chunk_frames, self.config = output_stride, chunk_frames, config
        self.num_classes, self.dynamic_axes, self.source_model = num_classes, dynamic_axes, source_model

    @property
    def streaming(self) -> bool:
        return self.chunk_frames is not None

    def init_state(self) -> list:
        import torch

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
                "padding": "the last partial chunk is zero-padded (in normalised pixel space)",
                "output_frames": "ceil(num_frames / output_stride)",
                "inputs": inputs, "outputs": outputs,
                "state": [{"name": n, "input": n, "output": f"{n}_out", "shape": list(s), "dtype": "float32",
                           "init": "zeros"} for n, s in self.state],
            }
        s = self.image_size
        lo, hi = self.dynamic_axes["frames"][1][1:] if self.dynamic_axes else (None, None)
        return {
            "mode": "offline", "chunk_frames": None, "shift_frames": None, "lookahead_frames": None,
            "output_stride": self.output_stride, "frame_shift_s": self.output_stride / self.fps,
            "algorithmic_latency_s": None, "frames_range": [lo, hi],
            "inputs": [{"name": "frames", "shape": [1, "T", 3, s, s], "dtype": "float32"}],
            "outputs": [{"name": "log_probs", "shape": ["T_out", self.num_classes], "dtype": "float32"}],
            "state": [],
        }


class _no_grad:
    def __enter__(self):
        import torch

        self._ctx = torch.no_grad()
        self._ctx.__enter__()

    def __exit__(self, *a):
        return self._ctx.__exit__(*a)


def _offline_wrapper(model, plain_lstm: bool = False):
    """``frames [1, T, 3, S, S] -> log_probs [T', V]`` around a whole-video model.

    ``plain_lstm`` (for torch.export / ExecuTorch): run a ``CSLRRecognizer``'s BiLSTM over the plain sequence
    instead of a packed one -- the same numbers for one clip whose frames are all valid, but
    ``pack_padded_sequence`` does not torch.export. The ONNX exporters keep the packed path (the legacy
    exporter writes it as one ONNX LSTM that takes any length).
    """
    import torch
    import torch.nn.functional as F

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
    import torch

    model = model.eval()
    cfg = getattr(model, "config", None)
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    mean = getattr(cfg, "mean", None)
    std = getattr(cfg, "std", None)
    if mean is None or std is None:
        raise ValueError("the model's config must carry the pixel mean/std")
    num_classes = getattr(cfg, "num_classes", None)
    stride = int(getattr(model, "output_stride", 4))
    if hasattr(model, "export_module") and not teacher:
        module = model.export_module().eval()
        return ModelIO(kind="student", module=module, example_inputs=tuple(model.example_inputs()),
                       input_names=list(model.input_names()), output_names=list(model.output_names()),
                       state=[(n, tuple(s)) for n, s in model.state_spec()], image_size=int(cfg.image_size),
                       mean=mean, std=std, fps=float(getattr(cfg, "fps", 25.0)), output_stride=stride,
                       chunk_frames=int(cfg.chunk_frames), config=cfg_dict, num_classes=int(num_classes),
                       source_model=model)
    size = int(getattr(cfg, "input_size", None) or getattr(cfg, "image_size"))
    lo, hi = frames_range
    t = max(lo, 16)
    return ModelIO(kind="teacher" if teacher or not hasattr(model, "export_module") else "student",
                   module=_offline_wrapper(model), example_inputs=(torch.zeros(1, t, 3, size, size),),
                   input_names=["frames"], output_names=["log_probs"], state=[], image_size=size, mean=mean,
                   std=std, fps=float(getattr(cfg, "fps", 25.0)), output_stride=stride, chunk_frames=None,
                   config=cfg_dict, num_classes=int(num_classes),
                   dynamic_axes={"frames": {1: ("T", lo, hi)}}, source_model=model)


def _vocab_list(vocab) -> list[str]:
    if vocab is None:
        return None
    if hasattr(vocab, "glosses"):
        return list(vocab.glosses)
    return [str(g) for g in vocab]


def _load(model_or_checkpoint, vocab, teacher):
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        from slsdk.train.checkpoint import load_model

        model, ck_vocab, kind = load_model(model_or_checkpoint)
        return model, (vocab if vocab is not None else ck_vocab), (teacher or kind == "teacher")
    return model_or_checkpoint, vocab, teacher


def _heldout_videos(io: ModelIO, heldout, seed: int):
    """Prepared videos + gloss references (None without held-out data: seeded random frames)."""
    import torch

    from slsdk.convert.parity import prepare_video
    from slsdk.quantize.calibration import _video_of

    if heldout is None:
        g = torch.Generator().manual_seed(seed)
        c = io.chunk_frames or 16
        if io.streaming:
            lengths = [2 * c + 3, 3 * c]
        else:  # two clip lengths inside the model's frames range (one, twice, for a fixed-length model)
            lo, hi = io.dynamic_axes["frames"][1][1:] if io.dynamic_axes else (16, 1024)
            n = min(max(16, lo), hi)
            lengths = [n, min(n + 8, hi)]
        vids = [torch.randn(n, 3, io.image_size, io.image_size, generator=g) for n in lengths]
        return vids, None, "seeded random frames (no held-out set given)"
    vids, refs = [], []
    items = heldout if isinstance(heldout, (list, tuple)) else [heldout[i] for i in range(len(heldout))]
    if not items:
        raise ValueError("heldout is empty: give at least one (frames, gloss_ids) pair or leave it None")
    for i, item in enumerate(items):
        if isinstance(item, dict):
            frames, label = _video_of(item), item.get("label")
        else:
            try:
                frames, label = item
            except (TypeError, ValueError):
                raise ValueError(f"heldout item {i} must be (frames, gloss_ids), got {type(item).__name__}") from None
        vids.append(prepare_video(frames, io.image_size, io.mean, io.std))
        refs.append(None if label is None else [int(x) for x in (label.tolist() if hasattr(label, "tolist") else label)])
    if not io.streaming and io.dynamic_axes:   # an offline model takes clips of lo..hi frames only
        lo, hi = io.dynamic_axes["frames"][1][1:]
        bad = [(i, v.shape[0]) for i, v in enumerate(vids) if not lo <= v.shape[0] <= hi]
        if bad:
            raise ValueError(f"held-out clips must have {lo}..{hi} frames for this offline model (frames_range), "
                             f"got (item, frames) {bad[:5]}{' ...' if len(bad) > 5 else ''}; convert without "
                             "held-out data or with a frames_range that covers them")
    if any(r is None for r in refs):
        refs = None
    return vids, refs, f"{len(vids)} held-out videos"


def convert(model_or_checkpoint, target: str, precision: str | None = None, out_dir: str | os.PathLike | None = None,
            *, calib: Any = None, vocab=None, heldout=None, teacher: bool = False, recipe: str | None = None,
            crop: dict | None = None, zip: bool = False, max_calib_chunks: int = 64,
            frames_range: tuple[int, int] = (16, 1024), seed: int = 0, overwrite: bool = True):
    """Convert a model (or checkpoint path) for ``target`` and write a bundle; returns the ``Bundle``.

    export -> model file(s) -> load in the target's runtime (or validate where none runs here) ->
    chunked parity against the fp32 torch model over ``heldout`` ((frames, gloss ids) pairs; seeded
    random videos without it) -> ``manifest.fidelity`` -> bundle at ``out_dir``.
    ``precision``: one of the target's (default: its default). int8 uses ``recipe`` (default: the
    target's) and, for static recipes, ``calib`` (videos, a Dataset or chunk inputs). When int8 WER is
    worse than fp32 torch by more than 0.5 points, ``fidelity.meets_int8_budget`` is False and an
    ``Int8BudgetWarning`` says by how much.
    """
    from slsdk.bundle import Manifest, default_input_spec, write_bundle

    tgt = get_target(target)
    precision = check_precision(tgt, precision or tgt.default_precision)
    missing = missing_modules(tgt)
    if missing:
        raise RuntimeError(f"target {tgt.name!r} needs the Python modules {missing}: pip install 'slsdk[export]'")
    qrecipe = None
    if precision == "int8":
        from slsdk.quantize.recipes import get_recipe, recipes_for

        qrecipe = get_recipe(recipe or tgt.int8_recipe)
        if qrecipe not in recipes_for(tgt.name):
            raise ValueError(f"quantization recipe {qrecipe.name!r} does not apply to target {tgt.name!r} "
                             f"(use one of {[r.name for r in recipes_for(tgt.name)]})")
    elif recipe is not None:
        raise ValueError(f"recipe={recipe!r} is only used with precision='int8' (got {precision!r})")

    model, vocab, teacher = _load(model_or_checkpoint, vocab, teacher)
    vocab_list = _vocab_list(vocab)
    if not vocab_list:
        raise ValueError("a gloss vocabulary is needed (vocab=Vocabulary or list of glosses, blank at 0)")
    io = model_io(model, teacher=teacher, frames_range=frames_range)
    if len(vocab_list) != io.num_classes:
        raise ValueError(f"vocabulary has {len(vocab_list)} entries but the model has {io.num_classes} classes")
    if io.kind == "teacher" and tgt.name in ("executorch-coreml", "coreml"):
        raise ValueError("teacher (offline) export supports the onnx, ort and executorch targets")
    if not io.streaming and tgt.name == "executorch" and frames_range[0] != frames_range[1]:
        raise ValueError("executorch: lowering unrolls the teacher's BiLSTM over time, so a whole-video .pte "
                         "takes one fixed frame count; pass frames_range=(T, T) (or use onnx/ort for any length "
                         f"in {tuple(frames_range)})")

    calib_inputs = None
    if qrecipe is not None and (qrecipe.needs_calibration or calib is not None):
        from slsdk.quantize.calibration import as_calibration_inputs

        calib_inputs = as_calibration_inputs(io.source_model, calib, max_chunks=max_calib_chunks,
                                             offline=not io.streaming, example_inputs=io.example_inputs)

    kind_name = io.kind
    out_dir = Path(out_dir or f"slsdk-{kind_name}-{tgt.name}-{precision}")
    manifest = _manifest(io, vocab_list, tgt, precision, crop,
                         qrecipe.info(len(calib_inputs) if calib_inputs else None) if qrecipe else None)
    manifest.validate(source=f"{out_dir} (manifest being built)")

    work = Path(tempfile.mkdtemp(prefix="slsdk-convert-"))
    try:
        files, validation = _export(tgt, precision, io, manifest, work, qrecipe, calib_inputs)
        fidelity = _parity(tgt, precision, io, files[manifest.model_file], heldout, seed, validation)
        manifest.fidelity = fidelity
        if tgt.name == "onnx":
            from slsdk.convert.onnx import add_metadata

            add_metadata(files[manifest.model_file], {"slsdk_fidelity": json.dumps(_scalars(fidelity))})
        bundle = write_bundle(out_dir, manifest, files, overwrite=overwrite, zip=zip)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if fidelity.get("meets_int8_budget") is False:
        warnings.warn(f"{out_dir}: int8 {tgt.name} held-out WER {fidelity['wer']:.2f}% is worse than fp32 torch "
                      f"{fidelity['wer_torch']:.2f}% by {fidelity['wer_delta']:.2f} points (budget "
                      f"{fidelity['wer_budget']}); see manifest fidelity", Int8BudgetWarning, stacklevel=2)
    return bundle


def _manifest(io: ModelIO, vocab_list: list[str], tgt: Target, precision: str, crop=None, quantization=None):
    from slsdk.bundle import Manifest, default_input_spec
    from slsdk.data.transforms import eval_transform

    # the resize the model was trained and evaluated with (the shorter side, before the centre crop)
    resize = eval_transform(io.image_size, io.mean, io.std).resize_to
    return Manifest(
        target=tgt.name, precision=precision, model_kind=io.kind, model_file="model" + tgt.suffix,
        vocab=vocab_list, input=default_input_spec(io.image_size, io.image_size, io.mean, io.std,
                                                   resize_shorter=resize, crop="center"),
        fps=io.fps, streaming=io.streaming_section(), model_config=io.config,
        crop=dict(crop) if crop else {"policy": "full"}, quantization=quantization)


def manifest_for_model(model, vocab, target: str = "onnx", precision: str = "fp32", crop: dict | None = None):
    """The manifest `convert` would write for this model (used by the torch runtime backend)."""
    tgt = get_target(target)
    return _manifest(model_io(model), _vocab_list(vocab), tgt, check_precision(tgt, precision), crop)


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _onnx_metadata(manifest, io: ModelIO) -> dict:
    """sherpa-onnx style flat keys + the manifest essentials as JSON."""
    essentials = {k: v for k, v in manifest.to_dict().items() if k not in ("files", "fidelity")}
    meta = {
        "model_type": f"slsdk-{io.kind}", "model_author": "slsdk", "slsdk_version": manifest.slsdk_version,
        "slsdk_manifest": json.dumps(essentials), "vocab": "\n".join(manifest.vocab), "vocab_size": str(len(manifest.vocab)),
        "blank_id": "0", "image_size": str(io.image_size), "mean": json.dumps(io.mean), "std": json.dumps(io.std),
        "resize_shorter": str(manifest.input["resize_shorter"]), "crop": manifest.input["crop"],
        "fps": str(io.fps), "output_stride": str(io.output_stride), "mode": manifest.streaming["mode"],
    }
    if io.streaming:
        meta["chunk_frames"] = str(io.chunk_frames)
        meta["state_names"] = ",".join(n for n, _ in io.state)
        meta["state_shapes"] = json.dumps([list(s) for _, s in io.state])
    return meta


def _dynamic_shapes_for_export(io: ModelIO):
    if io.streaming or not io.dynamic_axes:
        return None
    import torch

    _, lo, hi = io.dynamic_axes["frames"][1]
    if lo == hi:  # one fixed frame count (what an ExecuTorch teacher takes: its BiLSTM unrolls over time)
        return None
    # whole-video models pad to a multiple of the output stride internally; keep T a multiple of it
    k = torch.export.Dim("k", min=max(1, math.ceil(lo / io.output_stride)), max=hi // io.output_stride)
    return ({1: io.output_stride * k},)


def _export(tgt: Target, precision: str, io: ModelIO, manifest, work: Path, qrecipe, calib_inputs):
    """Write the target's file(s) under ``work``; returns ({bundle name: path}, validation summary)."""
    files: dict[str, Path] = {}
    validation: dict = {}
    name = manifest.model_file
    if tgt.name in ("onnx", "ort"):
        from slsdk.convert.onnx import export_onnx, to_ort

        onnx_path = work / "model.onnx"
        dyn = None
        if io.dynamic_axes:
            dyn = {"frames": {1: io.dynamic_axes["frames"][1]}}
        export_onnx(io.module, io.example_inputs, onnx_path, input_names=io.input_names,
                    output_names=io.output_names, dynamic_axes=_legacy_axes(dyn), metadata=_onnx_metadata(manifest, io))
        if qrecipe is not None:
            q_path = work / "model.int8.onnx"
            _apply_recipe(qrecipe, onnx_path, onnx_path, q_path, calib_inputs, io.input_names)
            os.replace(q_path, onnx_path)
        if tgt.name == "onnx":
            files[name] = onnx_path
        else:
            ort_path, cfg = to_ort(onnx_path, work / "ort")
            files[name] = ort_path
            files["required_operators.config"] = cfg
    elif tgt.name in ("executorch", "executorch-coreml"):
        from slsdk.convert.executorch import export_executorch, validate_pte

        module = io.module if io.streaming else _offline_wrapper(io.source_model, plain_lstm=True)
        if qrecipe is not None:
            module = _apply_recipe(qrecipe, work / name, module, io.example_inputs, calib_inputs)
        delegate = "xnnpack" if tgt.name == "executorch" else "coreml"
        path = export_executorch(module, io.example_inputs, work / name, delegate=delegate,
                                 compute_precision="fp32" if precision == "int8" else precision,
                                 dynamic_shapes=_dynamic_shapes_for_export(io))
        validation = validate_pte(path, expect_backend="CoreMLBackend" if delegate == "coreml" else None,
                                  num_inputs=len(io.input_names), num_outputs=len(io.output_names))
        files[name] = path
    elif tgt.name == "coreml":
        from slsdk.convert.coreml import convert_to_mlmodel, save_mlpackage, validate_coreml

        if not io.streaming:
            raise ValueError("coreml: whole-video (teacher) export is not supported by this converter yet; "
                             "use onnx/ort/executorch for the teacher")
        ml = convert_to_mlmodel(io.module, io.example_inputs, input_names=io.input_names,
                                output_names=io.output_names, precision=precision)
        if qrecipe is not None:
            ml = _apply_recipe(qrecipe, work / name, ml, calib_inputs)
        path = save_mlpackage(ml, work / name)
        with _no_grad():
            outs = io.module(*io.example_inputs)
        validation = validate_coreml(
            path, inputs={n: list(x.shape) for n, x in zip(io.input_names, io.example_inputs)},
            outputs={n: list(o.shape) for n, o in zip(io.output_names, outs)})
        if precision == "int8" and validation["quantized_weight_ops"] == 0:
            raise RuntimeError(f"{path}: int8 recipe produced no quantized weights")
        # the package's own tensor types: fp16 (and int8-weight, fp16-compute) packages take float32 inputs
        # but return float16 outputs, state outputs included; the manifest says what the file really does
        _set_dtypes(manifest, validation["input_dtypes"], validation["output_dtypes"], path)
        files[name] = path
    else:  # pragma: no cover - the table and this function change together
        raise ValueError(f"no exporter for target {tgt.name!r}")
    return files, validation


def _set_dtypes(manifest, input_dtypes: dict, output_dtypes: dict, where) -> None:
    """Write the model file's real input/output dtypes into ``manifest.streaming`` (by tensor name)."""
    s = manifest.streaming
    for group, dtypes in (("inputs", input_dtypes), ("outputs", output_dtypes)):
        for io in s[group]:
            if io["name"] not in dtypes:
                raise RuntimeError(f"{where}: the model file has no {group[:-1]} {io['name']!r}")
            io["dtype"] = dtypes[io["name"]]


def _apply_recipe(qrecipe, where, *args):
    from slsdk.quantize.calibration import CalibrationError

    try:
        return qrecipe.apply(*args)
    except CalibrationError:
        raise
    except Exception as e:
        raise RuntimeError(f"{where}: int8 recipe {qrecipe.name!r} failed: {type(e).__name__}: "
                           f"{str(e)[:1500]}") from e


def _legacy_axes(dyn):
    if not dyn:
        return None
    out = {}
    for k, axes in dyn.items():
        out[k] = {ax: sym for ax, sym in axes.items()}
    return out


def _parity(tgt: Target, precision: str, io: ModelIO, path: Path, heldout, seed: int, validation: dict) -> dict:
    from slsdk.convert.parity import TorchRunner, load_runner, measure_fidelity

    runner = load_runner(tgt.name, path)
    if runner is None:
        reason = {"coreml": "Core ML prediction needs macOS (coremltools cannot run models on Linux)",
                  "executorch-coreml": "the ExecuTorch runtime here has no CoreMLBackend (Apple platforms only)",
                  }.get(tgt.name, "no runtime for this target on this machine")
        fid = {"status": "validated, not run", "reason": reason, "validation": _json_safe(validation)}
        if precision == "int8":
            fid["meets_int8_budget"] = None
        return fid
    videos, refs, desc = _heldout_videos(io, heldout, seed)
    fid = measure_fidelity(TorchRunner(io.module), runner, videos, refs=refs,
                           mode="streaming" if io.streaming else "offline", chunk_frames=io.chunk_frames,
                           init_state=[s.numpy() for s in io.init_state()], output_stride=io.output_stride,
                           precision=precision)
    fid["status"] = "run"
    fid["runtime"] = getattr(runner, "runtime", tgt.runtime_here)
    fid["data"] = desc
    if validation:
        fid["validation"] = _json_safe(validation)
    return fid


def _json_safe(d):
    return json.loads(json.dumps(d, default=str))
