"""The conversion pipeline: torch model -> target file(s) -> bundle -> fidelity measured on the written bundle.

    from slsdk.convert import convert
    bundle = convert(student, "executorch", "int8", "out/student-et-int8", vocab=vocab,
                     calib=train_videos, heldout=[(frames, gloss_ids), ...])
    bundle.manifest.fidelity        # max_abs_err, cosine, WER torch vs target, meets_int8_budget

Everything target-specific comes from the targets table (``slsdk.targets``): the exporter, the int8 recipe
family, the backend the fidelity is measured with (``slsdk.runtime.backends.open_backend``, the one that
serves) and why a target cannot run here.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from slsdk.bundle import load_bundle, write_bundle
from slsdk.convert.export import ExportJob
from slsdk.convert.parity import bundle_fidelity, fidelity_fusion, fidelity_landmarks, fidelity_videos
from slsdk.quiet import native_stderr
from slsdk.errors import ConfigError, MissingPackageError
from slsdk.fileio import temp_dir
from slsdk.models.factory import load_checkpoint, model_from_checkpoint
from slsdk.models.model_io import manifest_for_io, model_io, vocab_list
from slsdk.preprocess import Preprocess
from slsdk.quantize.calibration import as_calibration_inputs
from slsdk.quantize.recipes import get_recipe, recipes_for
from slsdk.targets import TARGETS, check_precision, get_target, missing_modules
from slsdk.toolchains import resolve
from slsdk.toolchains.torch.backend import TorchBackend

__all__ = ["convert", "load_source", "Int8BudgetWarning"]


class Int8BudgetWarning(UserWarning):
    """int8 lost more held-out WER against fp32 than the budget allows."""


def load_source(checkpoint: str | os.PathLike) -> tuple[Any, Any, str, dict | None]:
    """``(model, vocab, kind, preparation)`` of a checkpoint, loaded once: its vocabulary, its kind (student or
    teacher) and the ``slsdk data prepare`` settings its training data was made with (``extra["preparation"]``)."""
    ckpt = load_checkpoint(checkpoint)
    model, vocab, kind = model_from_checkpoint(ckpt, checkpoint)
    return model, vocab, kind, (ckpt.get("extra") or {}).get("preparation")


def _load(model_or_checkpoint, vocab, teacher, preparation):
    """(model, vocab, teacher, preparation): a checkpoint path brings its own vocabulary, kind and preparation."""
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        model, ck_vocab, kind, ck_preparation = load_source(model_or_checkpoint)
        return (model, (vocab if vocab is not None else ck_vocab), (teacher or kind == "teacher"),
                preparation if preparation is not None else ck_preparation)
    return model_or_checkpoint, vocab, teacher, preparation


def convert(model_or_checkpoint, target: str, precision: str | None = None, out_dir: str | os.PathLike | None = None,
            *, calib: Any = None, vocab=None, heldout=None, teacher: bool = False, recipe: str | None = None,
            crop: dict | None = None, zip: bool = False, max_calib_chunks: int = 64,
            frames_range: tuple[int, int] = (16, 1024), seed: int = 0, overwrite: bool = True,
            preparation: dict | None = None):
    """Convert a model (or checkpoint path) for ``target`` and write a bundle; returns the ``Bundle``.

    export (the table's exporter) -> model file(s) -> bundle -> the bundle's file opened by the serving backend
    (or validated where none runs here) -> chunked parity against the fp32 torch model over ``heldout``
    ((frames, gloss ids) pairs; seeded random videos without it) -> ``manifest.fidelity`` -> bundle at
    ``out_dir``. ``precision``: one of the target's (default: its default). int8 uses ``recipe`` (default: the
    target's, of the target's recipe family) and, for static recipes, ``calib`` (videos, a Dataset or chunk
    inputs). When int8 WER is worse than fp32 torch by more than 0.5 points, ``fidelity.meets_int8_budget`` is
    False and an ``Int8BudgetWarning`` says by how much. ``preparation``: the ``slsdk data prepare`` settings of
    the training data (a checkpoint path brings its own): recorded as ``manifest.extra["preparation"]``, and
    its crop (the whole ``CropConfig``) becomes the bundle's ``crop`` unless ``crop`` is given, so the runtime
    crops as training did and warns when told otherwise.
    """
    tgt = get_target(target)
    precision = check_precision(tgt, precision or tgt.default_precision)
    missing = missing_modules(tgt)
    if missing:
        raise MissingPackageError(f"target {tgt.name!r} needs the Python modules {missing}: pip install 'slsdk[export]'")
    qrecipe = None
    if precision == "int8":
        qrecipe = get_recipe(recipe or tgt.int8_recipe)
        if qrecipe not in recipes_for(tgt.name):
            raise ConfigError(f"quantization recipe {qrecipe.name!r} does not apply to target {tgt.name!r} "
                             f"(use one of {[r.name for r in recipes_for(tgt.name)]})")
    elif recipe is not None:
        raise ConfigError(f"recipe={recipe!r} is only used with precision='int8' (got {precision!r})")

    model, vocab, teacher, preparation = _load(model_or_checkpoint, vocab, teacher, preparation)
    if crop is None and preparation and preparation.get("crop"):
        crop = dict(preparation["crop"])
    glosses = vocab_list(vocab)
    if not glosses:
        raise ConfigError("a gloss vocabulary is needed (vocab=Vocabulary or list of glosses, blank at 0)")
    io = model_io(model, teacher=teacher, frames_range=frames_range)
    if len(glosses) != io.num_classes:
        raise ConfigError(f"vocabulary has {len(glosses)} entries but the model has {io.num_classes} classes")
    if not io.streaming and not tgt.offline:
        names = [t.name for t in TARGETS.values() if t.offline]
        offline = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        raise ConfigError(f"teacher (offline) export supports the {offline} targets, not {tgt.name!r}")
    if not io.streaming and tgt.offline_fixed_frames and frames_range[0] != frames_range[1]:
        raise ConfigError(f"{tgt.name}: lowering unrolls the teacher's BiLSTM over time, so a whole-video file "
                         f"takes one fixed frame count; pass --frames T:T (e.g. --frames 64:64), or use onnx/ort "
                         f"for any length in {frames_range[0]}:{frames_range[1]}")

    calib_inputs = None
    if qrecipe is not None and (qrecipe.needs_calibration or calib is not None):
        calib_inputs = as_calibration_inputs(io.source_model, calib, max_chunks=max_calib_chunks,
                                             offline=not io.streaming, example_inputs=io.example_inputs)

    out_dir = Path(out_dir or f"slsdk-{io.kind}-{tgt.name}-{precision}")
    manifest = manifest_for_io(io, glosses, tgt, precision, crop,
                               qrecipe.info(len(calib_inputs) if calib_inputs else None, io.float_modules,
                                            io.float_activation_modules)
                               if qrecipe else None)
    if preparation:
        manifest.extra["preparation"] = dict(preparation)
    manifest.validate(source=f"{out_dir} (manifest being built)")
    spec = Preprocess(io.image_size, tuple(io.mean), tuple(io.std), resize_shorter=manifest.input.resize_shorter)
    lo_hi = tuple(io.dynamic_axes[io.input_name][1][1:]) if (not io.streaming and io.dynamic_axes) else None
    if io.streaming:
        lengths = [2 * io.chunk_frames + 3, 3 * io.chunk_frames]
    else:  # two clip lengths inside the model's frames range (one, twice, for a fixed-length model)
        lo, hi = lo_hi or (16, 1024)
        n = min(max(16, lo), hi)
        lengths = [n, min(n + 8, hi)]
    if io.modality == "fusion":    # frames and the normalised landmarks of the same frames
        videos, refs, desc = fidelity_fusion(spec, io.landmarks["points"], io.landmarks["dims"], heldout, seed=seed,
                                             lengths=lengths)
    elif io.landmarks is not None:   # landmark models: normalised landmark sequences in place of videos
        videos, refs, desc = fidelity_landmarks(io.landmarks["points"], io.landmarks["dims"], heldout, seed=seed,
                                                lengths=lengths, frames_range=lo_hi)
    else:
        videos, refs, desc = fidelity_videos(spec, heldout, seed=seed, lengths=lengths, frames_range=lo_hi)

    with temp_dir() as work:  # scratch: the exported files and the staged bundle
        job = ExportJob(tgt, precision, io, manifest, work, qrecipe, calib_inputs)
        with native_stderr():   # native start-up lines of the toolchain (ExecuTorch's cpuinfo, ...)
            result = resolve(tgt.exporter)(job)
        # the bundle as it will ship, opened from disk by the backend that serves it
        staged = write_bundle(work / "staged", manifest, result.files)
        reference = TorchBackend(io.module, io.input_names, io.output_names)
        fidelity = bundle_fidelity(load_bundle(staged.root), reference, videos, refs=refs,
                                   validation=result.validation)
        if fidelity.get("status") == "run":
            fidelity["data"] = desc
        manifest.fidelity = fidelity
        if tgt.fidelity_writer:
            resolve(tgt.fidelity_writer)(result.files[manifest.model_file], fidelity)
        bundle = write_bundle(out_dir, manifest, result.files, overwrite=overwrite, zip=zip)
    if fidelity.get("meets_int8_budget") is False:
        warnings.warn(f"{out_dir}: int8 {tgt.name} held-out WER {fidelity['wer']:.2f}% is worse than fp32 torch "
                      f"{fidelity['wer_torch']:.2f}% by {fidelity['wer_delta']:.2f} points (budget "
                      f"{fidelity['wer_budget']}); see manifest fidelity", Int8BudgetWarning, stacklevel=2)
    return bundle
