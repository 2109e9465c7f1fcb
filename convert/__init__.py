"""Conversion: torch model -> target file(s) -> bundle -> fidelity measured on the written bundle.

    from slsdk.convert import convert, TARGETS
    bundle = convert(student, "executorch", "int8", "out/student-et-int8", vocab=vocab,
                     calib=train_videos, heldout=[(frames, gloss_ids), ...])
    bundle.manifest.fidelity        # max_abs_err, cosine, WER torch vs target, meets_int8_budget

One job per module: ``pipeline`` (``convert``), ``export`` (what every exporter gets and returns), ``parity``
(fidelity through the serving backend). The exporters themselves live with their toolchains
(``slsdk.toolchains.<name>.export``, named by the targets table); the model description exporters read
(``ModelIO``) with the models (``slsdk.models.model_io``); the targets table at the bottom layer
(``slsdk.targets``). Importing this package loads torch (the models) but no toolchain: onnx, executorch and
coremltools load when a target is exported.
"""
from __future__ import annotations

from slsdk.convert.pipeline import Int8BudgetWarning, convert
from slsdk.models.model_io import ModelIO, manifest_for_model, model_io
from slsdk.targets import TARGETS, Target, check_precision, get_target, missing_modules, target_names, targets_markdown

__all__ = ["TARGETS", "Target", "get_target", "check_precision", "target_names", "targets_markdown",
           "missing_modules", "convert", "Int8BudgetWarning", "ModelIO", "model_io", "manifest_for_model"]
