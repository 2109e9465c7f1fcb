"""The one table of conversion targets.

Every place that needs to know about targets (``slsdk convert --target``, the bundle validator,
``slsdk bench``, the tests, the README table) reads ``TARGETS``; adding a target is adding a row
here plus its module. Standard library only.
"""
from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass, field

__all__ = ["Target", "TARGETS", "PRECISIONS", "get_target", "check_precision", "target_names",
           "missing_modules", "targets_markdown"]

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Target:
    name: str                    # what a user types: `slsdk convert --target NAME`
    suffix: str                  # model file suffix inside the bundle
    description: str
    runtime_here: str            # how the file is checked on this (host) machine
    precisions: tuple            # allowed precisions
    default_precision: str
    delegate: str                # backend / execution provider on device
    min_os: str                  # minimum OS / notes for phones
    modules: tuple               # python modules the conversion needs
    int8_recipe: str             # default int8 recipe (slsdk.quantize.RECIPES)
    can_run_here: bool = True    # False: validated structurally only (no runtime on Linux)
    notes: str = ""
    extra_files: tuple = field(default_factory=tuple)  # other files the bundle carries


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target(
        name="onnx", suffix=".onnx", description="ONNX model (opset 17+), manifest also in metadata_props",
        runtime_here="onnxruntime", precisions=("fp32", "int8"), default_precision="fp32",
        delegate="ONNX Runtime CPU EP (XNNPACK / NNAPI / CoreML EPs on phones)",
        min_os="any ONNX Runtime 1.17+", modules=("onnx", "onnxruntime"),
        int8_recipe="onnx-int8-static", notes="int8: QDQ per-channel static, or dynamic (onnx-int8-dynamic)"),
    Target(
        name="ort", suffix=".ort", description="ONNX Runtime Mobile (ORT format) + required-operators config",
        runtime_here="onnxruntime", precisions=("fp32", "int8"), default_precision="fp32",
        delegate="ONNX Runtime Mobile (reduced build: --include_ops_by_config)",
        min_os="Android 7+ / iOS 13+ (onnxruntime-mobile)", modules=("onnx", "onnxruntime"),
        int8_recipe="onnx-int8-static", extra_files=("required_operators.config",),
        notes="host-optimised (amd64, Fixed) file; rebuild with --target_platform arm for phones"),
    Target(
        name="executorch", suffix=".pte", description="ExecuTorch program, XNNPACK delegate",
        runtime_here="executorch", precisions=("fp32", "int8"), default_precision="fp32",
        delegate="XNNPACK", min_os="Android 9+ / iOS 15+ (ExecuTorch runtime)",
        modules=("executorch", "torchao"), int8_recipe="xnnpack-int8-static",
        notes="int8: PT2E XNNPACKQuantizer per-channel static or dynamic activations"),
    Target(
        name="executorch-coreml", suffix=".pte", description="ExecuTorch program, Core ML delegate",
        runtime_here="executorch-validate", precisions=("fp32", "fp16"), default_precision="fp16",
        delegate="Core ML (ANE / GPU / CPU)", min_os="iOS 17+ / macOS 14+",
        modules=("executorch", "coremltools"), int8_recipe="", can_run_here=False,
        notes="the Linux ExecuTorch runtime has no CoreMLBackend: program and delegate blobs are validated"),
    Target(
        name="coreml", suffix=".mlpackage", description="Core ML ML Program (.mlpackage)",
        runtime_here="coremltools-validate", precisions=("fp32", "fp16", "int8"), default_precision="fp16",
        delegate="Core ML (ANE / GPU / CPU)", min_os="iOS 17+ / macOS 14+",
        modules=("coremltools",), int8_recipe="coreml-int8-weights", can_run_here=False,
        notes="prediction needs macOS; on Linux the spec and MIL program are validated"),
)}


def target_names() -> list[str]:
    return list(TARGETS)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_target(name: str | Target) -> Target:
    """The table row for ``name``; unknown names raise ValueError listing the valid ones."""
    if isinstance(name, Target):
        return name
    key = str(name).strip().lower()
    if key in TARGETS:
        return TARGETS[key]
    raise ValueError(f"unknown target {name!r}{_did_you_mean(key, TARGETS)} "
                     f"(valid targets: {', '.join(TARGETS)})")


def check_precision(target: str | Target, precision: str) -> str:
    """Return ``precision`` if ``target`` allows it; otherwise ValueError with the allowed ones."""
    t = get_target(target)
    p = str(precision).strip().lower()
    if p in t.precisions:
        return p
    hint = _did_you_mean(p, t.precisions) if p not in PRECISIONS else ""
    raise ValueError(f"precision {precision!r} is not available for target {t.name!r}{hint} "
                     f"(allowed: {', '.join(t.precisions)})")


def missing_modules(target: str | Target) -> list[str]:
    """Python modules the target's conversion needs that are not installed."""
    return [m for m in get_target(target).modules if importlib.util.find_spec(m) is None]


def targets_markdown() -> str:
    """The targets table as Markdown (README / docs)."""
    head = ("| target | file | precisions (default) | delegate / runtime on device | checked here with | "
            "min OS | notes |\n|---|---|---|---|---|---|---|")
    rows = []
    for t in TARGETS.values():
        prec = ", ".join(f"**{p}**" if p == t.default_precision else p for p in t.precisions)
        rows.append(f"| `{t.name}` | `{t.suffix}` | {prec} | {t.delegate} | {t.runtime_here} | {t.min_os} | "
                    f"{t.notes} |")
    return "\n".join([head, *rows])
