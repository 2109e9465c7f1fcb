"""The one table of conversion targets (the bottom layer: standard library only).

Each row says everything the rest of the SDK needs to know about a target, so nothing else branches on a
target's name: its toolchain provider (``slsdk.toolchains``: the backend that runs the file, the inspector that
reads it, the int8 recipes), the exporter that writes it (a function in the provider's folder), its int8 recipe
family, the extra files its bundle carries and, where it cannot run on this machine, why. ``slsdk convert
--target``, ``slsdk bench``, the bundle validator, the README table and the tests all read ``TARGETS``. A new
target is a row (:func:`register_target` at run time) plus, for a new toolchain, its provider folder.
"""
from __future__ import annotations

import difflib
import importlib.util
import platform
from dataclasses import dataclass, field

from slsdk.errors import ConfigError
from slsdk.toolchains import get_provider, resolve

__all__ = ["Target", "TARGETS", "PRECISIONS", "get_target", "check_precision", "target_names",
           "missing_modules", "targets_markdown", "target_rows", "resolve", "register_target"]

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Target:
    name: str                    # what a user types: `slsdk convert --target NAME`
    suffix: str                  # model file suffix inside the bundle
    description: str
    exporter: str                # "module:function" in the provider's folder that writes the model file(s)
    toolchain: str               # the slsdk.toolchains provider: its backend runs the file, its inspector reads it
    precisions: tuple            # allowed precisions
    default_precision: str
    delegate: str                # backend / execution provider on device
    min_os: str                  # minimum OS / notes for phones
    modules: tuple               # python modules the conversion needs
    int8_family: str = ""        # slsdk.quantize recipe family ("" = no int8)
    int8_recipe: str = ""        # default int8 recipe of that family (slsdk.quantize.RECIPES)
    platforms: tuple = ()        # platform.system() values whose runtime runs the file (empty: any)
    not_here: str = ""           # why the file cannot run on other platforms (validated structurally instead)
    offline: bool = True         # takes the whole-video (teacher) model too
    offline_fixed_frames: bool = False  # whole-video export takes one fixed frame count (an unrolled BiLSTM)
    fidelity_writer: str = ""    # "module:function" that also writes the fidelity into the model file itself
    web: bool = False            # ONNX Runtime Web runs the file in a browser (the web demo serves it)
    notes: str = ""
    extra_files: tuple = field(default_factory=tuple)  # other files the bundle carries

    @property
    def can_run_here(self) -> bool:
        """Whether this machine's runtime can execute the file (else it is validated structurally only)."""
        return not self.platforms or platform.system() in self.platforms

    @property
    def backend(self) -> str:
        """The name of the backend that runs the file (the provider's)."""
        return get_provider(self.toolchain).backend_name

    @property
    def checked_here_with(self) -> str:
        """The backend that checks the file on this machine (structurally, where it cannot run here)."""
        return self.backend if self.can_run_here else f"{self.backend} (structural validation)"


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target(
        name="onnx", suffix=".onnx", description="ONNX model (opset 17+), manifest also in metadata_props",
        exporter="slsdk.toolchains.onnx.export:export_onnx_target", toolchain="onnx",
        precisions=("fp32", "int8"), default_precision="fp32",
        delegate="ONNX Runtime CPU EP (XNNPACK / NNAPI / CoreML EPs on phones)",
        min_os="any ONNX Runtime 1.17+", modules=("onnx", "onnxruntime"),
        int8_family="onnx", int8_recipe="onnx-int8-static",
        fidelity_writer="slsdk.toolchains.onnx.export:write_onnx_fidelity",
        web=True,
        notes="int8: QDQ per-channel static, or dynamic (onnx-int8-dynamic)"),
    Target(
        name="ort", suffix=".ort", description="ONNX Runtime Mobile (ORT format) + required-operators config",
        exporter="slsdk.toolchains.onnx.export:export_ort_target", toolchain="onnx",
        precisions=("fp32", "int8"), default_precision="fp32",
        delegate="ONNX Runtime Mobile (reduced build: --include_ops_by_config)",
        min_os="Android 7+ / iOS 13+ (onnxruntime-mobile)", modules=("onnx", "onnxruntime"),
        int8_family="onnx", int8_recipe="onnx-int8-static", extra_files=("required_operators.config",),
        web=True,
        notes="optimised for ARM (Fixed; no NCHWc layout, which would bind the file to the host's vector width): the file phones run, and any x86 CPU"),
    Target(
        name="executorch", suffix=".pte", description="ExecuTorch program, XNNPACK delegate",
        exporter="slsdk.toolchains.executorch.export:export_executorch_target", toolchain="executorch",
        precisions=("fp32", "int8"), default_precision="fp32",
        delegate="XNNPACK", min_os="Android 9+ / iOS 15+ (ExecuTorch runtime)",
        modules=("executorch", "torchao"), int8_family="pt2e-xnnpack", int8_recipe="xnnpack-int8-static",
        offline_fixed_frames=True,
        notes="int8: PT2E XNNPACKQuantizer per-channel static or dynamic activations"),
    Target(
        name="executorch-coreml", suffix=".pte", description="ExecuTorch program, Core ML delegate",
        exporter="slsdk.toolchains.executorch.export:export_executorch_coreml_target",
        toolchain="executorch",
        precisions=("fp32", "fp16"), default_precision="fp16",
        delegate="Core ML (ANE / GPU / CPU)", min_os="iOS 17+ / macOS 14+",
        modules=("executorch", "coremltools"), platforms=("Darwin",), offline=False,
        not_here="the ExecuTorch runtime here has no CoreMLBackend (Apple platforms only): the program and its "
                 "delegate blobs are validated",
        notes="the Linux ExecuTorch runtime has no CoreMLBackend: program and delegate blobs are validated"),
    Target(
        name="coreml", suffix=".mlpackage", description="Core ML ML Program (.mlpackage)",
        exporter="slsdk.toolchains.coreml.export:export_coreml_target", toolchain="coreml",
        precisions=("fp32", "fp16", "int8"), default_precision="fp16",
        delegate="Core ML (ANE / GPU / CPU)", min_os="iOS 17+ / macOS 14+",
        modules=("coremltools",), int8_family="coreml", int8_recipe="coreml-int8-weights",
        platforms=("Darwin",), offline=False,
        not_here="Core ML prediction needs macOS (coremltools cannot run models on Linux): the spec and MIL "
                 "program are validated",
        notes="prediction needs macOS; on Linux the spec and MIL program are validated"),
)}


def target_names() -> list[str]:
    return list(TARGETS)


def register_target(target: Target) -> Target:
    """Add a row at run time (its provider must be registered: ``slsdk.toolchains.register_provider``)."""
    get_provider(target.toolchain)
    have = TARGETS.get(target.name)
    if have is not None and have != target:
        raise ValueError(f"target {target.name!r} is already in the table")
    TARGETS[target.name] = target
    return target


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
    raise ConfigError(f"unknown target {name!r}{_did_you_mean(key, TARGETS)} "
                     f"(valid targets: {', '.join(TARGETS)})")


def check_precision(target: str | Target, precision: str) -> str:
    """Return ``precision`` if ``target`` allows it; otherwise ValueError with the allowed ones."""
    t = get_target(target)
    p = str(precision).strip().lower()
    if p in t.precisions:
        return p
    hint = _did_you_mean(p, t.precisions) if p not in PRECISIONS else ""
    raise ConfigError(f"precision {precision!r} is not available for target {t.name!r}{hint} "
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
        rows.append(f"| `{t.name}` | `{t.suffix}` | {prec} | {t.delegate} | {t.checked_here_with} | {t.min_os} | "
                    f"{t.notes} |")
    return "\n".join([head, *rows])


def target_rows() -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The targets table as plain text cells, (headers, rows): what ``slsdk targets`` prints (the facts of
    :func:`targets_markdown`, the default precision marked ``(default)``)."""
    headers = ("target", "file", "precisions", "delegate / runtime on device", "checked here with", "min OS",
               "notes")
    rows = []
    for t in TARGETS.values():
        prec = ", ".join(f"{p} (default)" if p == t.default_precision else p for p in t.precisions)
        rows.append((t.name, t.suffix, prec, t.delegate, t.checked_here_with, t.min_os, t.notes))
    return headers, rows
