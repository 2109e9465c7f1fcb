"""ONNX export (``onnx`` target) and ONNX Runtime Mobile conversion (``ort`` target).

onnx / onnxruntime are imported inside the functions: ``import slsdk.convert`` stays light.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from slsdk import fileio

__all__ = ["export_onnx", "add_metadata", "read_metadata", "to_ort", "strip_debug_info", "strip_debug_info_file",
           "DEFAULT_OPSET"]

DEFAULT_OPSET = 18


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
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(example_inputs)
    errors = []
    order = {"auto": ("dynamo", "legacy"), "dynamo": ("dynamo",), "legacy": ("legacy",)}[exporter]
    used = None
    with fileio.atomic_path(path, suffix=".onnx") as tmp:
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
                        prog.save(str(tmp))
                    else:
                        legacy = None
                        if dynamic_axes:
                            legacy = {k: {ax: (s[0] if isinstance(s, tuple) else s) for ax, s in axes.items()}
                                      for k, axes in dynamic_axes.items()}
                        torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=list(input_names),
                                          output_names=list(output_names), opset_version=opset,
                                          dynamic_axes=legacy)
                used = kind
                break
            except Exception as e:  # try the next exporter
                errors.append(f"{kind}: {type(e).__name__}: {str(e)[:800]}")
        if used is None:
            raise RuntimeError(f"{path}: ONNX export failed with every exporter:\n" + "\n".join(errors))
        model = onnx.load(str(tmp))
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
        _set_props(model, meta)
        strip_debug_info(model)
        onnx.save(model, str(tmp))
    return path


def strip_debug_info(model) -> int:
    """Drop what a shipped model does not need: the exporter's per-node metadata (stack traces with the
    exporting machine's file paths, fx node names, class hierarchies: ~1 % of a Lite0 file), node doc strings and
    the graph's ``value_info`` (intermediate shapes, which runtimes infer at load). Model ``metadata_props``
    (the manifest essentials) and node names stay. Returns the bytes of serialized model saved."""
    before = model.ByteSize()
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]
    return before - model.ByteSize()


def strip_debug_info_file(path: str | os.PathLike) -> int:
    """:func:`strip_debug_info` on an ONNX file, in place (atomically). Returns the bytes saved."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    saved = strip_debug_info(model)
    if saved:
        _save_in_place(model, path)
    return saved


def _save_in_place(model, path: Path) -> None:
    """Write ``model`` over the ONNX file ``path`` atomically (a temp sibling, then a rename)."""
    fileio.atomic_write(path, model.SerializeToString())


def _dynamic_shapes(module, args, input_names, dynamic_axes):
    """Translate legacy dynamic_axes into torch.export dynamic_shapes (same symbol -> same Dim)."""
    import inspect

    import torch

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


def _set_props(model, meta: Mapping[str, str]) -> None:
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in meta.items():
        model.metadata_props.add(key=str(k), value=v if isinstance(v, str) else json.dumps(v))


def add_metadata(path: str | os.PathLike, meta: Mapping[str, str]) -> None:
    """Add/replace ``metadata_props`` entries of an ONNX file in place (atomically)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    _set_props(model, meta)
    _save_in_place(model, path)


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
    from slsdk.runtime.backends import load_onnxruntime

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
