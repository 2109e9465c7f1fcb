"""The Core ML toolchain's int8 recipe (family ``coreml``): int8 weights with coremltools. Registered with
``slsdk.quantize.recipes`` when imported; coremltools is imported inside the recipe (``# noqa: PLC0415``: every
provider's recipes register when ``slsdk.quantize`` loads, so registering must not load a toolchain).
"""
from __future__ import annotations

import warnings

from slsdk.quantize.recipes import register_recipe

__all__ = ["coreml_int8_weights"]


@register_recipe("coreml-int8-weights", "coreml",
                 "coremltools linear_quantize_weights: int8 symmetric per-channel weights, fp16 compute "
                 "(activation quantization needs macOS)", needs_calibration=False)
def coreml_int8_weights(mlmodel, calib=None):
    import coremltools.optimize.coreml as cto  # noqa: PLC0415 (recipes register light)

    cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cto.linear_quantize_weights(mlmodel, config=cfg)
