"""int8 recipes, registered by name, with one typed interface per recipe family (as ExecuTorch's export
recipes have one per backend). A target's family is the targets table's ``int8_family`` column:

- ``pt2e-xnnpack`` (:class:`PT2ERecipe`): ``quantize(module=, example_inputs=, calib=) -> torch.fx.GraphModule``
  (PT2E, ready to re-export and lower to XNNPACK);
- ``onnx`` (:class:`OnnxRecipe`, the ``onnx`` and ``ort`` targets):
  ``quantize(onnx_in=, onnx_out=, input_names=, calib=) -> Path``;
- ``coreml`` (:class:`CoreMLRecipe`): ``quantize(mlmodel=, calib=) -> MLModel``.

``calib`` is a list of input tuples (see ``slsdk.quantize.calibration``); recipes with
``needs_calibration`` refuse an empty list. The recipes themselves live with their toolchains
(``slsdk.toolchains.<name>.int8``, each provider's ``int8`` module) and register here when imported: this
registry imports every registered provider's recipes on first lookup.
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

from slsdk.errors import ConfigError
from slsdk.quantize.calibration import CalibrationError
from slsdk.quiet import native_stderr
from slsdk.targets import get_target
from slsdk.toolchains import PROVIDERS

__all__ = ["QuantRecipe", "PT2ERecipe", "OnnxRecipe", "CoreMLRecipe", "FAMILIES", "RECIPES", "register_recipe",
           "get_recipe", "recipes_for", "load_recipes"]


@dataclass(frozen=True)
class QuantRecipe:
    """A named int8 recipe of one family; call ``quantize`` with the family's keyword arguments."""

    name: str
    description: str
    needs_calibration: bool
    fn: Callable
    weight_range: str = ""    # the int8 weights' range and why (recorded in the manifest's quantization section)
    family: ClassVar[str] = ""
    keeps_float_modules: ClassVar[bool] = False   # quantize() takes float_modules (mixed precision)
    keeps_float_activations: ClassVar[bool] = False   # quantize() takes float_activation_modules

    def info(self, n_calib: int | None = None, float_modules: Sequence[str] = (),
             float_activation_modules: Sequence[str] = ()) -> dict:
        d = {"recipe": self.name, "family": self.family, "description": self.description, "weights": "int8"}
        if self.weight_range:
            d["weight_range"] = self.weight_range
        if n_calib is not None and self.needs_calibration:
            d["calibration_chunks"] = n_calib
        if float_modules and self.keeps_float_modules:
            d["float_modules"] = list(float_modules)
        if float_activation_modules and self.keeps_float_activations:
            d["float_activation_modules"] = list(float_activation_modules)
        return d

    def _calib(self, calib) -> list:
        calib = list(calib or [])
        if self.needs_calibration and not calib:
            raise CalibrationError(f"recipe {self.name!r} needs calibration data, but the calibration set is empty")
        return calib


@dataclass(frozen=True)
class PT2ERecipe(QuantRecipe):
    family: ClassVar[str] = "pt2e-xnnpack"
    keeps_float_modules: ClassVar[bool] = True
    keeps_float_activations: ClassVar[bool] = True

    def quantize(self, *, module, example_inputs: Sequence, calib: Sequence | None = None,
                 float_modules: Sequence[str] = (), float_activation_modules: Sequence[str] = ()):
        """An nn.Module and its example inputs -> the quantized ``torch.fx.GraphModule`` (PT2E convert).
        ``float_modules``: names of ``module``'s submodules left float; ``float_activation_modules``: submodules
        whose linear layers get int8 weights and dynamically quantized inputs, their other ops float."""
        return self.fn(module, tuple(example_inputs), self._calib(calib), float_modules=tuple(float_modules),
                       float_activation_modules=tuple(float_activation_modules))


@dataclass(frozen=True)
class OnnxRecipe(QuantRecipe):
    family: ClassVar[str] = "onnx"
    keeps_float_modules: ClassVar[bool] = True

    def quantize(self, *, onnx_in: str | os.PathLike, onnx_out: str | os.PathLike, input_names: Sequence[str],
                 calib: Sequence | None = None, float_modules: Sequence[str] = ()) -> Path:
        """An .onnx file -> the quantized .onnx at ``onnx_out`` (metadata_props kept). ``float_modules``: the
        exported module's submodules whose Conv/MatMul/Gemm nodes stay float (matched by weight names)."""
        return self.fn(Path(onnx_in), Path(onnx_out), self._calib(calib), list(input_names),
                       float_modules=tuple(float_modules))


@dataclass(frozen=True)
class CoreMLRecipe(QuantRecipe):
    family: ClassVar[str] = "coreml"

    def quantize(self, *, mlmodel, calib: Sequence | None = None):
        """A coremltools MLModel -> the quantized MLModel."""
        return self.fn(mlmodel, self._calib(calib))


FAMILIES: dict[str, type[QuantRecipe]] = {c.family: c for c in (PT2ERecipe, OnnxRecipe, CoreMLRecipe)}
RECIPES: dict[str, QuantRecipe] = {}


def register_recipe(name: str, family: str, description: str, needs_calibration: bool, weight_range: str = ""):
    """Register ``fn`` as the recipe ``name`` of ``family`` (a key of :data:`FAMILIES`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown recipe family {family!r} (known: {', '.join(FAMILIES)})")

    def deco(fn):
        if name in RECIPES:
            raise ValueError(f"quantization recipe {name!r} is already registered")
        RECIPES[name] = FAMILIES[family](name, description, needs_calibration, fn, weight_range)
        return fn
    return deco


def load_recipes() -> dict[str, QuantRecipe]:
    """Import every registered provider's int8 module (each registers its recipes once); returns RECIPES."""
    for provider in list(PROVIDERS.values()):
        if provider.int8 and provider.int8 not in sys.modules:
            with native_stderr():   # native start-up lines of the toolchain's libraries (ExecuTorch's cpuinfo)
                importlib.import_module(provider.int8)
    return RECIPES


def get_recipe(name: str) -> QuantRecipe:
    """The registered recipe ``name``; unknown names raise ValueError listing the registered ones."""
    load_recipes()
    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(str(name), list(RECIPES), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown quantization recipe {name!r}{hint} (registered: {', '.join(RECIPES)})")


def recipes_for(target: str) -> list[QuantRecipe]:
    """The recipes of a target's int8 family (the targets table's ``int8_family``; ``ort`` shares ONNX's)."""
    family = get_target(target).int8_family
    load_recipes()
    return [r for r in RECIPES.values() if family and r.family == family]


load_recipes()   # the built-in providers' recipes (their modules import this one, already defined above)
