"""int8 quantization: recipes per family (registered by name, one typed ``quantize`` per family; a target's
family is the targets table's ``int8_family``) and calibration data.

The recipes live with their toolchains (``slsdk.toolchains.<name>.int8``) and register here. Importing this
package loads torch (calibration runs the torch model) but no toolchain: executorch, onnxruntime and coremltools
are imported inside the recipes.
"""
from __future__ import annotations

from slsdk.quantize.calibration import CalibrationError, as_calibration_inputs, calibration_chunks
from slsdk.quantize.recipes import (FAMILIES, RECIPES, CoreMLRecipe, OnnxRecipe, PT2ERecipe, QuantRecipe, get_recipe,
                                    recipes_for, register_recipe)

__all__ = ["RECIPES", "FAMILIES", "QuantRecipe", "PT2ERecipe", "OnnxRecipe", "CoreMLRecipe", "get_recipe",
           "recipes_for", "register_recipe", "CalibrationError", "as_calibration_inputs", "calibration_chunks"]
