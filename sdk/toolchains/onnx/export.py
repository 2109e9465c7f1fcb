"""The ONNX toolchain's exporter: ``onnx`` (a self-contained ``.onnx``, the manifest essentials in its
metadata_props) and ``ort`` (ONNX Runtime Mobile's ORT format + its required-operators config).

The exported model is checked, given its metadata and stripped of debug info in memory, then written once; the
fidelity measured on the bundle is the file's second (and last) write. Building code: torch and onnx are imported
at the top (the module is loaded only when an ONNX target is exported).
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import onnx
import torch

from slsdk import fileio
from slsdk.convert.export import ExportJob, ExportResult, quantize_with_recipe
from slsdk.toolchains.onnx.backend import load_onnxruntime
from slsdk.toolchains.onnx.proto import set_metadata_props, strip_debug_info

__all__ = ["export_onnx", "add_metadata", "read_metadata", "to_ort", "DEFAULT_OPSET", "export_onnx_target",
           "export_ort_target", "write_onnx_fidelity", "MAX_BATCH"]

DEFAULT_OPSET = 18
# the batch a streaming student's file declares (streaming.max_batch): its axis is free, onnxruntime takes any;
# this bounds what a server stacks into one call
MAX_BATCH = 64


def export_onnx(module, example_inputs: Sequence, path: str | os.PathLike, *, input_names: Sequence[str],
                output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                opset: int = DEFAULT_OPSET, metadata: Mapping[str, str] | None = None,
                exporter: str = "auto") -> Path:
    """Export ``module(*example_inputs)`` to ONNX at ``path`` (atomically) and check it.

    ``exporter``: "dynamo" (torch.export based), "legacy" (TorchScript based) or "auto" (dynamo,
    falling back to legacy when it fails). ``dynamic_axes`` maps input/output names to
    {axis: symbolic name}; ``metadata`` goes into the model's ``metadata_props``.
    Returns the path; the exporter used is recorded in metadata as ``slsdk_exporter``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(example_inputs)
    errors = []
    order = {"auto": ("dynamo", "legacy"), "dynamo": ("dynamo",), "legacy": ("legacy",)}[exporter]
    used = None
    model = None
    for kind in order:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "dynamo":
                    dyn = None
                    if dynamic_axes:
                        dyn = _dynamic_shapes(module, args, input_names, dynamic_axes)
                    prog = torch.onnx.export(module, args, None, dynamo=True, input_names=list(input_names),
                                             output_names=list(output_names), opset_version=opset,
                                             dynamic_shapes=dyn, verbose=False, optimize=True)
                    model = prog.model_proto   # in memory: the file is written once, below
                else:
                    legacy = None
                    if dynamic_axes:
                        legacy = {k: {ax: (s[0] if isinstance(s, tuple) else s) for ax, s in axes.items()}
                                  for k, axes in dynamic_axes.items()}
                    with fileio.temp_dir("slsdk-onnx") as scratch:   # the TorchScript exporter writes a file
                        torch.onnx.export(module, args, str(scratch / "legacy.onnx"), dynamo=False,
                                          input_names=list(input_names), output_names=list(output_names),
                                          opset_version=opset, dynamic_axes=legacy)
                        model = onnx.load(str(scratch / "legacy.onnx"))
            used = kind
            break
        except Exception as e:  # try the next exporter
            errors.append(f"{kind}: {type(e).__name__}: {str(e)[:800]}")
    if used is None:
        raise RuntimeError(f"{path}: ONNX export failed with every exporter:\n" + "\n".join(errors))
    # external data (weights > 2 GB) is not used for bundle models: keep one self-contained file
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise RuntimeError(f"{path}: exported ONNX model fails onnx.checker: {e}") from e
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != list(input_names) or got_out != list(output_names):
        raise RuntimeError(f"{path}: exported ONNX names differ from the expected ones: inputs {got_in} "
                           f"(want {list(input_names)}), outputs {got_out} (want {list(output_names)})")
    meta = dict(metadata or {})
    meta["slsdk_exporter"] = f"torch.onnx ({used})"
    set_metadata_props(model, meta)
    strip_debug_info(model)
    _save(model, path)
    return path


def _save(model, path: Path) -> None:
    """Write ``model`` to the ONNX file ``path`` atomically (a temp sibling, then a rename)."""
    fileio.atomic_write(path, model.SerializeToString())


def _dynamic_shapes(module, args, input_names, dynamic_axes):
    """Translate legacy dynamic_axes into torch.export dynamic_shapes (same symbol -> same Dim)."""
    dims = {}
    shapes = []
    for name in input_names[:len(args)]:
        axes = dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        spec = {}
        for ax, sym in axes.items():
            if isinstance(sym, tuple):  # (name, min, max)
                sym, lo, hi = sym
                dims.setdefault(sym, torch.export.Dim(sym, min=lo, max=hi))
            else:
                dims.setdefault(sym, torch.export.Dim(sym))
            spec[ax] = dims[sym]
        shapes.append(spec)
    try:
        params = list(inspect.signature(module.forward).parameters.values())
        if params and params[0].kind == inspect.Parameter.VAR_POSITIONAL:
            return (tuple(shapes),)
    except (TypeError, ValueError):
        pass
    return tuple(shapes)


def add_metadata(path: str | os.PathLike, meta: Mapping[str, str]) -> None:
    """Add/replace ``metadata_props`` entries of an ONNX file in place (atomically)."""
    path = Path(path)
    model = onnx.load(str(path))
    set_metadata_props(model, meta)
    _save(model, path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as onnxruntime reports them."""
    sess = _session(path)
    return dict(sess.get_modelmeta().custom_metadata_map)


def to_ort(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, target_platform: str = "arm",
           optimization_style: str = "Fixed", timeout: float = 600) -> tuple[Path, Path]:
    """Convert an .onnx file to ORT format with onnxruntime's own tool.

    Returns ``(model.ort, required_operators.config)``; the config feeds a reduced ONNX Runtime
    Mobile build (``build.sh --minimal_build --include_ops_by_config``). ``target_platform`` "arm" (the
    default: the phones ORT Mobile is for) gives a file any CPU runs; "amd64" bakes this host's NCHWc block
    size into the file (16 floats with AVX-512), and an AVX2 CPU (8) then fails in ReorderOutput ("Input
    channels must match the NCHWc block-aligned channel count"; seen under qemu-x86_64 -cpu Haswell).
    """
    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: no such ONNX file")
    with fileio.temp_dir("slsdk-ort") as work:
        src = work / "in" / onnx_path.name
        src.parent.mkdir()
        fileio.atomic_copy(onnx_path, src, fsync=False)
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(src),
               "--output_dir", str(work / "out"), "--optimization_style", optimization_style,
               "--target_platform", target_platform]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        produced = sorted((work / "out").glob("*.ort")) if (work / "out").exists() else []
        if proc.returncode != 0 or not produced:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"{onnx_path}: conversion to ORT format failed (exit {proc.returncode}):\n{tail}")
        configs = sorted((work / "out").glob("*.config"))
        if not configs:
            raise RuntimeError(f"{onnx_path}: ORT conversion wrote no required-operators config")
        ort_path = out_dir / (onnx_path.stem + ".ort")
        cfg_path = out_dir / "required_operators.config"
        for s, d in ((produced[0], ort_path), (configs[0], cfg_path)):
            fileio.atomic_copy(s, d)
    return ort_path, cfg_path


def _session(path):
    ort = load_onnxruntime()  # telemetry off, as for every session slsdk opens

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise RuntimeError(f"{path}: onnxruntime cannot load the model: {str(e).strip()[:500]}") from None


# -- the targets' exporters (named by the targets table) --------------------------------------------------
def _onnx_metadata(manifest, io) -> dict:
    """sherpa-onnx style flat keys + the manifest essentials as JSON."""
    essentials = {k: v for k, v in manifest.to_dict().items() if k not in ("files", "fidelity")}
    meta = {
        "model_type": f"slsdk-{io.kind}", "model_author": "slsdk", "slsdk_version": manifest.slsdk_version,
        "slsdk_manifest": json.dumps(essentials), "vocab": "\n".join(manifest.vocab),
        "vocab_size": str(len(manifest.vocab)), "blank_id": "0", "image_size": str(io.image_size),
        "mean": json.dumps(io.mean), "std": json.dumps(io.std),
        "resize_shorter": str(manifest.input.resize_shorter), "crop": manifest.input.crop,
        "fps": str(io.fps), "output_stride": str(io.output_stride), "mode": manifest.streaming.mode,
    }
    if io.streaming:
        meta["chunk_frames"] = str(io.chunk_frames)
        meta["max_batch"] = str(manifest.streaming.max_batch or 1)
        meta["state_names"] = ",".join(n for n, _ in io.state)
        meta["state_shapes"] = json.dumps([list(s) for _, s in io.state])
    return meta


def _onnx_file(job: ExportJob) -> Path:
    """``model.onnx`` written once: exported with its metadata in memory, or (int8) exported to a float scratch
    file that the recipe quantizes into ``model.onnx``."""
    io = job.io
    onnx_path = job.work / "model.onnx"
    exported = onnx_path if job.recipe is None else job.work / "float" / "model.onnx"
    dyn = {io.input_name: dict({1: io.dynamic_axes[io.input_name][1]})} if io.dynamic_axes else None
    if io.streaming:   # a batch axis on every input and output (the state too): many streams in one call
        dyn = {n: {0: ("batch", 1, MAX_BATCH)} for n in (*io.input_names, *io.output_names)}
        # the declared batch (before the metadata copies the manifest): a recipe that quantizes activations at run
        # time (no calibration: onnx-int8-dynamic) takes one scale per call over every row, so a stream's numbers
        # would depend on the others stacked with it: its file keeps a free axis but declares batch 1
        batch_exact = job.recipe is None or job.recipe.needs_calibration
        job.manifest.streaming.max_batch = MAX_BATCH if batch_exact else 1
    export_onnx(io.module, io.example_inputs, exported, input_names=io.input_names, output_names=io.output_names,
                dynamic_axes=dyn, metadata=_onnx_metadata(job.manifest, io))
    if job.recipe is not None:
        quantize_with_recipe(job, onnx_in=exported, onnx_out=onnx_path, input_names=io.input_names,
                             float_modules=io.float_modules)
    return onnx_path


def export_onnx_target(job: ExportJob) -> ExportResult:
    """``model.onnx`` (the manifest essentials in its metadata_props)."""
    return ExportResult({job.model_file: _onnx_file(job)})


def export_ort_target(job: ExportJob) -> ExportResult:
    """``model.ort`` + ``required_operators.config`` (ONNX Runtime Mobile)."""
    ort_path, cfg = to_ort(_onnx_file(job), job.work / "ort")
    files = {job.model_file: ort_path}
    for name in job.target.extra_files:
        if name != cfg.name:
            raise RuntimeError(f"{cfg.parent}: the ORT converter wrote {cfg.name}, the targets table expects {name}")
        files[name] = cfg
    return ExportResult(files)


def write_onnx_fidelity(path: Path, fidelity: dict) -> None:
    """Put the scalar fidelity figures into the .onnx file's metadata_props (``slsdk_fidelity``)."""
    scalars = {k: v for k, v in fidelity.items() if isinstance(v, (int, float, str, bool)) or v is None}
    add_metadata(path, {"slsdk_fidelity": json.dumps(scalars)})
