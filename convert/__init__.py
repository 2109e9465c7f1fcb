"""Conversion: torch model -> target file(s) -> bundle -> fidelity measured on the written bundle.

    from slsdk.convert import convert, TARGETS
    bundle = convert(student, "executorch", "int8", "out/student-et-int8", vocab=vocab,
                     calib=train_videos, heldout=[(frames, gloss_ids), ...])
    bundle.manifest.fidelity        # max_abs_err, cosine, WER torch vs target, meets_int8_budget

One job per module: ``pipeline`` (``convert``), ``export`` (one exporter per target, named by the targets
table), ``parity`` (fidelity through the serving backend), ``onnx`` / ``executorch`` / ``coreml`` (the
toolchains). The model description exporters read (``ModelIO``) lives with the models
(``slsdk.models.model_io``); the targets table at the bottom layer (``slsdk.targets``). Importing this package
loads no toolchain and no torch: names load on first use.
"""
from __future__ import annotations

from slsdk.targets import (  # noqa: F401  (stdlib only)
    TARGETS,
    Target,
    check_precision,
    get_target,
    missing_modules,
    target_names,
    targets_markdown,
)

_LAZY = {
    "convert": ("slsdk.convert.pipeline", "convert"),
    "Int8BudgetWarning": ("slsdk.convert.pipeline", "Int8BudgetWarning"),
    "ModelIO": ("slsdk.models.model_io", "ModelIO"),
    "model_io": ("slsdk.models.model_io", "model_io"),
    "manifest_for_model": ("slsdk.models.model_io", "manifest_for_model"),
}

__all__ = ["TARGETS", "Target", "get_target", "check_precision", "target_names", "targets_markdown",
           "missing_modules", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'slsdk.convert' has no attribute {name!r}")
