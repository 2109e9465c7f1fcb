"""One exporter per target: ``fn(job: ExportJob) -> ExportResult``, named by the targets table's ``exporter``.

An exporter writes the target's model file(s) under ``job.work`` (applying the int8 recipe of its family when
``job.recipe`` is set) and validates them structurally; the pipeline (``slsdk.convert.pipeline``) then writes
the bundle and measures its fidelity through the serving backend. A new target is a row in
``slsdk.targets`` plus a function here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExportJob", "ExportResult", "export_onnx_target", "export_ort_target", "export_executorch_target",
           "export_executorch_coreml_target", "export_coreml_target", "write_onnx_fidelity"]


@dataclass
class ExportJob:
    """What an exporter gets: the table row, the model described (``ModelIO``), its manifest, a work folder."""

    target: object               # slsdk.targets.Target
    precision: str
    io: object                   # slsdk.models.model_io.ModelIO
    manifest: object             # slsdk.bundle.Manifest (an exporter may record the file's real dtypes)
    work: Path
    recipe: object = None        # slsdk.quantize.recipes.QuantRecipe of the target's family (int8), else None
    calib: list | None = None    # calibration input tuples for the recipe

    @property
    def model_file(self) -> str:
        return self.manifest.model_file


@dataclass
class ExportResult:
    files: dict[str, Path]                       # bundle name -> file written under the work folder
    validation: dict = field(default_factory=dict)  # structural checks (delegates, ops, dtypes)


def _quantize(job: ExportJob, **kwargs):
    """Apply the job's recipe (typed per family); toolchain failures name the file and the recipe."""
    from slsdk.quantize.calibration import CalibrationError

    try:
        return job.recipe.quantize(calib=job.calib, **kwargs)
    except CalibrationError:
        raise
    except Exception as e:
        raise RuntimeError(f"{job.work / job.model_file}: int8 recipe {job.recipe.name!r} failed: "
                           f"{type(e).__name__}: {str(e)[:1500]}") from e


def _onnx_metadata(manifest, io) -> dict:
    """sherpa-onnx style flat keys + the manifest essentials as JSON."""
    essentials = {k: v for k, v in manifest.to_dict().items() if k not in ("files", "fidelity")}
    meta = {
        "model_type": f"slsdk-{io.kind}", "model_author": "slsdk", "slsdk_version": manifest.slsdk_version,
        "slsdk_manifest": json.dumps(essentials), "vocab": "\n".join(manifest.vocab),
        "vocab_size": str(len(manifest.vocab)), "blank_id": "0", "image_size": str(io.image_size),
        "mean": json.dumps(io.mean), "std": json.dumps(io.std),
        "resize_shorter": str(manifest.input["resize_shorter"]), "crop": manifest.input["crop"],
        "fps": str(io.fps), "output_stride": str(io.output_stride), "mode": manifest.streaming["mode"],
    }
    if io.streaming:
        meta["chunk_frames"] = str(io.chunk_frames)
        meta["state_names"] = ",".join(n for n, _ in io.state)
        meta["state_shapes"] = json.dumps([list(s) for _, s in io.state])
    return meta


def _onnx_file(job: ExportJob) -> Path:
    from slsdk.convert.onnx import export_onnx, strip_debug_info_file

    io = job.io
    onnx_path = job.work / "model.onnx"
    dyn = {"frames": dict({1: io.dynamic_axes["frames"][1]})} if io.dynamic_axes else None
    export_onnx(io.module, io.example_inputs, onnx_path, input_names=io.input_names, output_names=io.output_names,
                dynamic_axes=dyn, metadata=_onnx_metadata(job.manifest, io))
    if job.recipe is not None:
        _quantize(job, onnx_in=onnx_path, onnx_out=onnx_path, input_names=io.input_names,   # in place, atomically
                  float_modules=io.float_modules)
        strip_debug_info_file(onnx_path)   # the quantizer's shape inference wrote value_info again
    return onnx_path


def export_onnx_target(job: ExportJob) -> ExportResult:
    """``model.onnx`` (the manifest essentials in its metadata_props)."""
    return ExportResult({job.model_file: _onnx_file(job)})


def export_ort_target(job: ExportJob) -> ExportResult:
    """``model.ort`` + ``required_operators.config`` (ONNX Runtime Mobile)."""
    from slsdk.convert.onnx import to_ort

    ort_path, cfg = to_ort(_onnx_file(job), job.work / "ort")
    files = {job.model_file: ort_path}
    for name in job.target.extra_files:
        if name != cfg.name:
            raise RuntimeError(f"{cfg.parent}: the ORT converter wrote {cfg.name}, the targets table expects {name}")
        files[name] = cfg
    return ExportResult(files)


def _dynamic_shapes_for_export(io):
    if io.streaming or not io.dynamic_axes:
        return None
    import torch

    _, lo, hi = io.dynamic_axes["frames"][1]
    if lo == hi:  # one fixed frame count (what an ExecuTorch teacher takes: its BiLSTM unrolls over time)
        return None
    # whole-video models pad to a multiple of the output stride internally; keep T a multiple of it
    k = torch.export.Dim("k", min=max(1, math.ceil(lo / io.output_stride)), max=hi // io.output_stride)
    return ({1: io.output_stride * k},)


def _pte(job: ExportJob, delegate: str, expect_backend: str | None) -> ExportResult:
    from slsdk.convert.executorch import export_executorch, validate_pte
    from slsdk.models.model_io import offline_wrapper

    io = job.io
    module = io.module if io.streaming else offline_wrapper(io.source_model, plain_lstm=True)
    if job.recipe is not None:
        module = _quantize(job, module=module, example_inputs=io.example_inputs,
                           float_modules=job.io.float_modules, float_activation_modules=io.float_activation_modules)
    path = export_executorch(module, io.example_inputs, job.work / job.model_file, delegate=delegate,
                             compute_precision="fp32" if job.precision == "int8" else job.precision,
                             dynamic_shapes=_dynamic_shapes_for_export(io))
    validation = validate_pte(path, expect_backend=expect_backend, num_inputs=len(io.input_names),
                              num_outputs=len(io.output_names))
    return ExportResult({job.model_file: path}, validation)


def export_executorch_target(job: ExportJob) -> ExportResult:
    """``model.pte`` lowered to XNNPACK."""
    return _pte(job, "xnnpack", None)


def export_executorch_coreml_target(job: ExportJob) -> ExportResult:
    """``model.pte`` with a Core ML delegate (validated: the delegate blob is there and non-empty)."""
    return _pte(job, "coreml", "CoreMLBackend")


def export_coreml_target(job: ExportJob) -> ExportResult:
    """``model.mlpackage`` (ML Program); the manifest records the package's real tensor dtypes."""
    import torch

    from slsdk.convert.coreml import convert_to_mlmodel, save_mlpackage, validate_coreml

    io = job.io
    ml = convert_to_mlmodel(io.module, io.example_inputs, input_names=io.input_names,
                            output_names=io.output_names, precision=job.precision)
    if job.recipe is not None:
        ml = _quantize(job, mlmodel=ml)
    path = save_mlpackage(ml, job.work / job.model_file)
    with torch.no_grad():
        outs = io.module(*io.example_inputs)
    validation = validate_coreml(
        path, inputs={n: list(x.shape) for n, x in zip(io.input_names, io.example_inputs)},
        outputs={n: list(o.shape) for n, o in zip(io.output_names, outs)})
    if job.precision == "int8" and validation["quantized_weight_ops"] == 0:
        raise RuntimeError(f"{path}: int8 recipe produced no quantized weights")
    # the package's own tensor types: fp16 (and int8-weight, fp16-compute) packages take float32 inputs
    # but return float16 outputs, state outputs included; the manifest says what the file really does
    _set_dtypes(job.manifest, validation["input_dtypes"], validation["output_dtypes"], path)
    return ExportResult({job.model_file: path}, validation)


def _set_dtypes(manifest, input_dtypes: dict, output_dtypes: dict, where) -> None:
    """Write the model file's real input/output dtypes into ``manifest.streaming`` (by tensor name)."""
    s = manifest.streaming
    for group, dtypes in (("inputs", input_dtypes), ("outputs", output_dtypes)):
        for io in s[group]:
            if io["name"] not in dtypes:
                raise RuntimeError(f"{where}: the model file has no {group[:-1]} {io['name']!r}")
            io["dtype"] = dtypes[io["name"]]


def write_onnx_fidelity(path: Path, fidelity: dict) -> None:
    """Put the scalar fidelity figures into the .onnx file's metadata_props (``slsdk_fidelity``)."""
    from slsdk.convert.onnx import add_metadata

    scalars = {k: v for k, v in fidelity.items() if isinstance(v, (int, float, str, bool)) or v is None}
    add_metadata(path, {"slsdk_fidelity": json.dumps(scalars)})
