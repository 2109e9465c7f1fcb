"""The Core ML toolchain's exporter (``coreml`` target): an iOS 17 / macOS 14 ML Program ``.mlpackage``.

coremltools converts on Linux, but prediction needs macOS. On Linux the saved package is validated:
the spec loads, it is an ML Program of specification version >= 8 (iOS 17), inputs/outputs have the
expected names and shapes, and the MIL program deserialises from the package (its ops are counted,
including int8 ``constexpr_*dequantize`` weights). Building code: coremltools and torch are imported at the top
(the module is loaded only when the coreml target is exported).

Tensor types: the inputs stay float32 at every precision, but an fp16 package (and an int8 one, whose compute
is fp16) declares FLOAT16 outputs, state outputs included. ``validate_coreml`` reports the declared types and
``slsdk.convert`` writes them into the manifest's ``streaming.inputs/outputs[].dtype``.
"""
from __future__ import annotations

import logging
import os
import platform
import warnings
from pathlib import Path
from typing import Sequence

import coremltools as ct
import torch
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
from coremltools.proto import FeatureTypes_pb2

from slsdk import fileio
from slsdk.convert.export import ExportJob, ExportResult, quantize_with_recipe, set_dtypes

__all__ = ["export_coreml", "save_mlpackage", "validate_coreml", "io_dtypes", "prediction_available",
           "PREDICTION_UNAVAILABLE_REASON", "IOS17_SPEC_VERSION", "export_coreml_target"]

IOS17_SPEC_VERSION = 8
PREDICTION_UNAVAILABLE_REASON = ("Core ML prediction needs macOS (coremltools: 'Model prediction is only "
                                 "supported on macOS'); the package was validated structurally instead")


def prediction_available() -> bool:
    return platform.system() == "Darwin"


def _quiet():
    for name in ("coremltools",):
        logging.getLogger(name).setLevel(logging.ERROR)


def convert_to_mlmodel(module, example_inputs: Sequence, *, input_names: Sequence[str],
                       output_names: Sequence[str], precision: str = "fp16"):
    """Convert ``module`` to an in-memory ``MLModel`` (torch.export first, jit.trace as a fallback)."""
    _quiet()
    args = tuple(example_inputs)
    prec = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32, "int8": ct.precision.FLOAT16}[precision]
    errors = []
    inputs = [ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(input_names, args)]
    outputs = [ct.TensorType(name=n) for n in output_names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ep = torch.export.export(module, args, strict=False).run_decompositions()
            return ct.convert(ep, outputs=outputs, convert_to="mlprogram",
                              minimum_deployment_target=ct.target.iOS17, compute_precision=prec)
        except Exception as e:
            errors.append(f"torch.export: {type(e).__name__}: {str(e)[:800]}")
        try:
            traced = torch.jit.trace(module.eval(), args, check_trace=False)
            return ct.convert(traced, inputs=inputs, outputs=outputs, convert_to="mlprogram",
                              minimum_deployment_target=ct.target.iOS17, compute_precision=prec)
        except Exception as e:
            errors.append(f"jit.trace: {type(e).__name__}: {str(e)[:800]}")
    raise RuntimeError("Core ML conversion failed:\n" + "\n".join(errors))


def save_mlpackage(mlmodel, path: str | os.PathLike) -> Path:
    """Save an MLModel as ``path`` (.mlpackage directory) atomically.

    coremltools saves only to a new path ending in ``.mlpackage``, so the package is saved in a scratch folder
    and its files copied into the folder :func:`slsdk.fileio.atomic_dir` builds (``path`` must be new or empty).
    """
    path = Path(path)
    with fileio.temp_dir() as scratch, fileio.atomic_dir(path) as work:
        pkg = scratch / path.name
        mlmodel.save(str(pkg))
        for src in sorted(pkg.rglob("*")):
            if src.is_dir():
                (work / src.relative_to(pkg)).mkdir(parents=True, exist_ok=True)
            else:
                fileio.atomic_copy(src, work / src.relative_to(pkg), fsync=False)   # atomic_dir syncs the tree
    return path


def export_coreml(module, example_inputs: Sequence, path: str | os.PathLike, *, input_names: Sequence[str],
                  output_names: Sequence[str], precision: str = "fp16") -> Path:
    """Convert and save; fp16 / fp32 compute precision (int8 weights: ``slsdk.quantize`` recipe)."""
    try:
        ml = convert_to_mlmodel(module, example_inputs, input_names=input_names, output_names=output_names,
                                precision=precision)
    except RuntimeError as e:
        raise RuntimeError(f"{path}: {e}") from None
    return save_mlpackage(ml, path)


# Core ML multi-array element types -> the manifest's dtype names
_ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32", "INT8": "int8"}


def io_dtypes(descs) -> dict[str, str]:
    """``{name: dtype}`` of a spec's input or output feature descriptions (``spec.description.output``).

    An fp16 ML Program (compute precision FLOAT16, also int8-weight packages) keeps float32 inputs but its
    outputs are FLOAT16: this reads what the package really declares."""
    names = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
    out = {}
    for d in descs:
        if d.type.WhichOneof("Type") != "multiArrayType":
            out[d.name] = d.type.WhichOneof("Type")
            continue
        enum = names.Name(d.type.multiArrayType.dataType)
        out[d.name] = _ARRAY_DTYPES.get(enum, enum.lower())
    return out


def validate_coreml(path: str | os.PathLike, *, inputs: dict[str, Sequence[int]] | None = None,
                    outputs: dict[str, Sequence[int] | None] | None = None) -> dict:
    """Validate a saved .mlpackage without running it (works on Linux).

    ``inputs`` / ``outputs`` map names to the expected shapes (None: any shape). Returns a summary
    with the spec version, input/output shapes and MIL op counts; raises ValueError naming the file.
    """
    _quiet()
    path = Path(path)
    if not path.is_dir() or not (path / "Manifest.json").is_file():
        raise ValueError(f"{path}: not an .mlpackage directory (no Manifest.json)")
    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
        spec = model.get_spec()
    except Exception as e:
        raise ValueError(f"{path}: coremltools cannot read the package: {type(e).__name__}: {str(e)[:300]}") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{path}: expected an ML Program, got {spec.WhichOneof('Type')!r}")
    if spec.specificationVersion < IOS17_SPEC_VERSION:
        raise ValueError(f"{path}: specification version {spec.specificationVersion} is below iOS 17's "
                         f"({IOS17_SPEC_VERSION})")

    def shapes(descs):
        out = {}
        for d in descs:
            t = d.type.WhichOneof("Type")
            out[d.name] = list(d.type.multiArrayType.shape) if t == "multiArrayType" else t
        return out

    got_in, got_out = shapes(spec.description.input), shapes(spec.description.output)
    dtypes_in, dtypes_out = io_dtypes(spec.description.input), io_dtypes(spec.description.output)
    for want, got, kind in ((inputs, got_in, "input"), (outputs, got_out, "output")):
        if want is None:
            continue
        if list(got) != list(want):
            raise ValueError(f"{path}: {kind} names {list(got)} differ from the expected {list(want)}")
        for name, shape in want.items():
            if shape is not None and got[name] != list(shape):
                raise ValueError(f"{path}: {kind} {name!r} has shape {got[name]}, expected {list(shape)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = milproto_load(spec, spec.specificationVersion, model.weights_dir)
    except Exception as e:
        raise ValueError(f"{path}: the MIL program does not load/validate: {type(e).__name__}: "
                         f"{str(e)[:300]}") from None
    counts: dict[str, int] = {}
    for fn in prog.functions.values():
        for op in fn.operations:
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    quantized = sum(n for k, n in counts.items() if k.startswith("constexpr_") and "dequantize" in k
                    or k.startswith("constexpr_blockwise"))
    return {"spec_version": int(spec.specificationVersion), "inputs": got_in, "outputs": got_out,
            "input_dtypes": dtypes_in, "output_dtypes": dtypes_out,
            "ops": sum(n for k, n in counts.items() if k != "const"), "op_counts": counts,
            "quantized_weight_ops": quantized,
            "compute_ops": sorted(k for k in counts if not k.startswith("const"))}


# -- the target's exporter (named by the targets table) --------------------------------------------------
def export_coreml_target(job: ExportJob) -> ExportResult:
    """``model.mlpackage`` (ML Program); the manifest records the package's real tensor dtypes."""
    io = job.io
    ml = convert_to_mlmodel(io.module, io.example_inputs, input_names=io.input_names,
                            output_names=io.output_names, precision=job.precision)
    if job.recipe is not None:
        ml = quantize_with_recipe(job, mlmodel=ml)
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
    set_dtypes(job.manifest, validation["input_dtypes"], validation["output_dtypes"], path)
    return ExportResult({job.model_file: path}, validation)
