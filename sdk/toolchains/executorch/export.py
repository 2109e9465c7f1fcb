"""The ExecuTorch toolchain's exporter: ``executorch`` (XNNPACK delegate) and ``executorch-coreml`` (Core ML
delegate).

torch.export -> to_edge_transform_and_lower(partitioner) -> to_executorch -> .pte, then the file is
loaded back: XNNPACK programs run in ``executorch.runtime.Runtime``; Core ML delegated programs are
validated structurally (the Linux ExecuTorch runtime has no CoreMLBackend).
Building code: torch and executorch are imported at the top (the module is loaded only when an ExecuTorch
target is exported); coremltools and the Core ML delegate only inside the functions that need them (optional).
"""
from __future__ import annotations

import logging
import math
import os
import platform
import warnings
from pathlib import Path
from typing import Sequence

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import to_edge_transform_and_lower
from executorch.exir._serialize._program import deserialize_pte_binary

from slsdk import fileio
from slsdk.convert.export import ExportJob, ExportResult, quantize_with_recipe
from slsdk.models.model_io import offline_wrapper
from slsdk.toolchains.executorch.backend import method_name

__all__ = ["export_executorch", "validate_pte", "BATCH_SIZES", "coreml_backend_available", "export_executorch_target",
           "export_executorch_coreml_target"]

DELEGATES = ("xnnpack", "coreml", "none")
# the batch sizes an fp32 XNNPACK student's .pte has methods for (streaming.batch_sizes): a server's round of N
# streams is split into them (slsdk.runtime.chunks.batch_plan); phones call ``forward`` (batch 1)
BATCH_SIZES = (1, 4, 16)


def _partitioners(delegate: str, compute_precision: str):
    if delegate == "xnnpack":

        return [XnnpackPartitioner()]
    if delegate == "coreml":
        import coremltools as ct  # noqa: PLC0415 (optional)
        from executorch.backends.apple.coreml.compiler import CoreMLBackend  # noqa: PLC0415 (optional)
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner  # noqa: PLC0415 (optional)

        prec = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}[compute_precision]
        specs = CoreMLBackend.generate_compile_specs(compute_precision=prec,
                                                     minimum_deployment_target=ct.target.iOS17)
        return [CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=False)]
    if delegate == "none":
        return []
    raise ValueError(f"unknown ExecuTorch delegate {delegate!r} (valid: {', '.join(DELEGATES)})")


def export_executorch(module, example_inputs: Sequence, path: str | os.PathLike, *, delegate: str = "xnnpack",
                      compute_precision: str = "fp32", dynamic_shapes=None,
                      batch_sizes: Sequence[int] = (1,)) -> Path:
    """Export ``module`` (an nn.Module or an already quantized GraphModule) to a .pte at ``path``.

    ``batch_sizes``: one method per size, the example inputs (batch 1) repeated along axis 0: ``forward`` for 1,
    ``forward_b<n>`` for n (XNNPACK refuses a dynamic batch axis: ExecuTorch's memory plan keeps the example's
    size). The methods share the program's constant weights.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(example_inputs)
    level = logging.getLogger("executorch").level
    logging.getLogger("executorch").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                eps = {}
                for b in batch_sizes:
                    ex = args if b == 1 else tuple(a.expand(b, *a.shape[1:]).contiguous() for a in args)
                    eps[method_name(b)] = torch.export.export(module, ex, dynamic_shapes=dynamic_shapes, strict=False)
                ep = eps["forward"] if len(eps) == 1 else eps
            except Exception as e:
                raise RuntimeError(f"{path}: torch.export failed for the ExecuTorch target: "
                                   f"{type(e).__name__}: {str(e)[:1500]}") from e
            try:
                edge = to_edge_transform_and_lower(ep, partitioner=_partitioners(delegate, compute_precision))
                program = edge.to_executorch()
            except Exception as e:
                raise RuntimeError(f"{path}: lowering to ExecuTorch ({delegate}) failed: "
                                   f"{type(e).__name__}: {str(e)[:1500]}") from e
    finally:
        logging.getLogger("executorch").setLevel(level)
    write = program.write_to_file if hasattr(program, "write_to_file") else lambda f: f.write(program.buffer)
    fileio.atomic_write(path, write)
    return path


def validate_pte(path: str | os.PathLike, *, expect_backend: str | None = None, num_inputs: int | None = None,
                 num_outputs: int | None = None, methods: Sequence[str] = ("forward",)) -> dict:
    """Parse a .pte and check its structure: one ``forward`` plan, input/output counts, delegates.

    ``expect_backend`` (e.g. "CoreMLBackend", "XnnpackBackend") must own at least one delegate
    with a non-empty blob. Returns a summary dict; raises ValueError naming the file otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .pte file")
    data = path.read_bytes()
    try:
        pte = deserialize_pte_binary(data)
    except Exception as e:
        raise ValueError(f"{path}: not a valid ExecuTorch program ({type(e).__name__}: {str(e)[:300]})") from None
    prog = getattr(pte, "program", pte)
    plans = {p.name: p for p in prog.execution_plan}
    for want in methods:
        if want not in plans:
            raise ValueError(f"{path}: ExecuTorch program has no {want!r} method (has {sorted(plans)})")
    plan = plans["forward"]
    backends = [d.id for d in plan.delegates]
    blobs = [len(b.data) for b in prog.backend_delegate_data]
    # segments hold large delegate blobs outside the flatbuffer
    seg_sizes = [s.size for s in getattr(prog, "segments", [])]
    if num_inputs is not None and len(plan.inputs) != num_inputs:
        raise ValueError(f"{path}: forward takes {len(plan.inputs)} inputs, expected {num_inputs}")
    if num_outputs is not None and len(plan.outputs) != num_outputs:
        raise ValueError(f"{path}: forward returns {len(plan.outputs)} outputs, expected {num_outputs}")
    if expect_backend is not None:
        if expect_backend not in backends:
            raise ValueError(f"{path}: no {expect_backend} delegate in the program (delegates: {backends or 'none'})")
        if not any(n > 0 for n in blobs + seg_sizes):
            raise ValueError(f"{path}: the {expect_backend} delegate blob is empty")
    return {"methods": sorted(plans), "num_inputs": len(plan.inputs), "num_outputs": len(plan.outputs),
            "delegates": backends, "delegate_blob_bytes": sum(blobs) + sum(seg_sizes), "bytes": len(data)}


def coreml_backend_available() -> bool:
    """Whether this machine's ExecuTorch runtime can run Core ML delegated programs (macOS only)."""
    if platform.system() != "Darwin":
        return False
    try:
        from executorch.runtime import Runtime  # noqa: PLC0415 (optional)

        return Runtime.get().backend_registry.is_available("CoreMLBackend")
    except Exception:
        return False


# -- the targets' exporters (named by the targets table) --------------------------------------------------
def _dynamic_shapes_for_export(io):
    if io.streaming or not io.dynamic_axes:
        return None

    _, lo, hi = io.dynamic_axes[io.input_name][1]
    if lo == hi:  # one fixed frame count (what an ExecuTorch teacher takes: its BiLSTM unrolls over time)
        return None
    # whole-video models pad to a multiple of the output stride internally; keep T a multiple of it
    k = torch.export.Dim("k", min=max(1, math.ceil(lo / io.output_stride)), max=hi // io.output_stride)
    return ({1: io.output_stride * k},)


def _pte(job: ExportJob, delegate: str, expect_backend: str | None) -> ExportResult:
    io = job.io
    module = io.module if io.streaming else offline_wrapper(io.source_model, plain_lstm=True)
    if job.recipe is not None:
        module = quantize_with_recipe(job, module=module, example_inputs=io.example_inputs,
                           float_modules=job.io.float_modules, float_activation_modules=io.float_activation_modules)
    # a batch method per size for the fp32 XNNPACK student (the int8 PT2E graph is traced at batch 1; Core ML
    # delegates keep what phones run)
    sizes = BATCH_SIZES if io.streaming and job.recipe is None and delegate == "xnnpack" else (1,)
    if len(sizes) > 1:
        job.manifest.streaming.max_batch, job.manifest.streaming.batch_sizes = sizes[-1], list(sizes)
    path = export_executorch(module, io.example_inputs, job.work / job.model_file, delegate=delegate,
                             compute_precision="fp32" if job.precision == "int8" else job.precision,
                             dynamic_shapes=_dynamic_shapes_for_export(io), batch_sizes=sizes)
    validation = validate_pte(path, expect_backend=expect_backend, num_inputs=len(io.input_names),
                              num_outputs=len(io.output_names), methods=[method_name(b) for b in sizes])
    return ExportResult({job.model_file: path}, validation)


def export_executorch_target(job: ExportJob) -> ExportResult:
    """``model.pte`` lowered to XNNPACK."""
    return _pte(job, "xnnpack", None)


def export_executorch_coreml_target(job: ExportJob) -> ExportResult:
    """``model.pte`` with a Core ML delegate (validated: the delegate blob is there and non-empty)."""
    return _pte(job, "coreml", "CoreMLBackend")
