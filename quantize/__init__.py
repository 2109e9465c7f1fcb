"""int8 quantization: recipes per target family (registered by name) and calibration data.

Importing this package loads no toolchain (torch, executorch, onnxruntime, coremltools are imported
inside the recipes).
"""
from __future__ import annotations

from slsdk.quantize.calibration import CalibrationError, as_calibration_inputs, calibration_chunks
from slsdk.quantize.recipes import RECIPES, QuantRecipe, get_recipe, recipes_for, register_recipe

__all__ = ["RECIPES", "QuantRecipe", "get_recipe", "recipes_for", "register_recipe", "CalibrationError",
           "as_calibration_inputs", "calibration_chunks"]
