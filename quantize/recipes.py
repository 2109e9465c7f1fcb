"""int8 recipes, registered by name, with one typed interface per recipe family (as ExecuTorch's export
recipes have one per backend). A target's family is the targets table's ``int8_family`` column:

- ``pt2e-xnnpack`` (:class:`PT2ERecipe`): ``quantize(module=, example_inputs=, calib=) -> torch.fx.GraphModule``
  (PT2E, ready to re-export and lower to XNNPACK);
- ``onnx`` (:class:`OnnxRecipe`, the ``onnx`` and ``ort`` targets):
  ``quantize(onnx_in=, onnx_out=, input_names=, calib=) -> Path``;
- ``coreml`` (:class:`CoreMLRecipe`): ``quantize(mlmodel=, calib=) -> MLModel``.

``calib`` is a list of input tuples (see ``slsdk.quantize.calibration``); recipes with
``needs_calibration`` refuse an empty list. Toolchain modules are imported inside the recipes.
"""
from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

from slsdk import fileio
from slsdk.quantize.calibration import CalibrationError
from slsdk.targets import get_target

__all__ = ["QuantRecipe", "PT2ERecipe", "OnnxRecipe", "CoreMLRecipe", "FAMILIES", "RECIPES", "register_recipe",
           "get_recipe", "recipes_for", "COREML_ACTIVATION_REASON"]

COREML_ACTIVATION_REASON = ("Core ML activation quantization calibrates by running the model, which needs "
                            "macOS (coremltools prediction); only int8 weights are applied here")


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

    @property
    def backend(self) -> str:  # the older name of the family
        return self.family

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


def get_recipe(name: str) -> QuantRecipe:
    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(str(name), list(RECIPES), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown quantization recipe {name!r}{hint} (registered: {', '.join(RECIPES)})")


def recipes_for(target: str) -> list[QuantRecipe]:
    """The recipes of a target's int8 family (the targets table's ``int8_family``; ``ort`` shares ONNX's)."""
    family = get_target(target).int8_family
    return [r for r in RECIPES.values() if family and r.family == family]


# ---------------------------------------------------------------------------------------------------
# ExecuTorch / XNNPACK: PT2E
# ---------------------------------------------------------------------------------------------------
def _pt2e(module, example_inputs, calib, *, dynamic: bool, float_modules: Sequence[str] = (),
          float_activation_modules: Sequence[str] = ()):
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(module.eval(), tuple(example_inputs), strict=False).module()
        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
        if dynamic:
            # dynamic activations: linear layers only (XNNPACK's dynamically quantized conv path
            # fails to export on 5-D video inputs: "required rank 4 tensor to use channels_last")
            quantizer = XNNPACKQuantizer().set_module_type(torch.nn.Linear, config)
        else:
            quantizer = XNNPACKQuantizer().set_global(config)
            # the global (static) config skips these modules; the dynamic config annotates only their linear
            # layers, so their element-wise ops (LSTM gates, cell state) and outputs (logits) stay float
            dynamic_config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
            for name in float_activation_modules:
                quantizer.set_module_name(name, dynamic_config)
        prepared = prepare_pt2e(gm, _LeaveFloat(quantizer, float_modules) if float_modules else quantizer)
        with torch.no_grad():
            for inputs in (calib if not dynamic else (calib or [tuple(example_inputs)])):
                prepared(*inputs)
        return convert_pt2e(prepared)


@register_recipe("xnnpack-int8-static", "pt2e-xnnpack",
                 "PT2E XNNPACKQuantizer: int8 per-channel weights, int8 static activations calibrated on chunks",
                 needs_calibration=True)
def xnnpack_int8_static(module, example_inputs, calib, float_modules=(), float_activation_modules=()):
    return _pt2e(module, example_inputs, calib, dynamic=False, float_modules=float_modules,
                 float_activation_modules=float_activation_modules)


@register_recipe("xnnpack-int8-dynamic", "pt2e-xnnpack",
                 "PT2E XNNPACKQuantizer: int8 per-channel Linear weights, activations quantized dynamically "
                 "per call (convs stay fp32)",
                 needs_calibration=False)
def xnnpack_int8_dynamic(module, example_inputs, calib=None, float_modules=(), float_activation_modules=()):
    # every activation is float here already (linear layers take dynamically quantized inputs)
    return _pt2e(module, example_inputs, list(calib or []), dynamic=True, float_modules=float_modules)


def _LeaveFloat(quantizer, modules: Sequence[str]):
    """``quantizer`` with its annotations removed from the nodes of ``modules`` (and their submodules) and from
    the nodes feeding them, so PT2E leaves them float (XNNPACKQuantizer.set_module_name takes no "None" config)."""
    from torchao.quantization.pt2e.quantizer import Quantizer

    prefixes = tuple(modules)

    def inside(node) -> bool:
        return any(path == m or path.startswith(m + ".") for path, _ in node.meta.get("nn_module_stack", {}).values()
                   for m in prefixes)

    class LeaveFloat(Quantizer):
        def transform_for_annotation(self, model):
            return quantizer.transform_for_annotation(model)

        def annotate(self, model):
            quantizer.annotate(model)
            left = {node for node in model.graph.nodes if inside(node)}
            # and their direct producers: XNNPACK lowers no float conv fed a quantized (dequantized) input
            left |= {node for node in model.graph.nodes if any(u in left for u in node.users)}
            for node in left:
                node.meta.pop("quantization_annotation", None)
            return model

        def validate(self, model) -> None:
            quantizer.validate(model)

    return LeaveFloat()


# ---------------------------------------------------------------------------------------------------
# ONNX Runtime: quantize_static (QDQ) / quantize_dynamic
# ---------------------------------------------------------------------------------------------------
# Weight range. ONNX Runtime's x86 int8 kernels on CPUs without VNNI (AVX2, AVX-512 without VNNI: many laptops,
# AMD Zen 2/3) multiply u8 x s8 pairs with VPMADDUBSW, whose int16 pair sums saturate for full-range weights.
# Weights stay full-range (8-bit) all the same: onnxruntime's session option ``session.x64quantprecision``
# rewrites a graph's int8 weights to uint8 at load for its exact U8U8 kernels, and slsdk's runtime sets it on
# exactly those CPUs (slsdk.runtime.backends.u8s8_saturates). 7-bit weights (``reduce_range``) avoided the
# saturation by losing a bit: on the isharah preset's Lite0 they cost int8 ONNX +0.86 WER on 400 test_si videos
# (cosine 0.99934), where 8-bit weights gave -0.18 (0.99969). Measured under qemu-x86_64 -cpu Haswell (AVX2, no
# VNNI; onnxruntime 1.31.1), 4 videos: 8-bit weights cosine 0.99548 by default, 0.99948 with the option (= this
# VNNI host's), 7-bit weights 0.99925 either way. Two things the option's rewrite cannot do, so the recipe
# avoids them: convert a weight that several nodes share (an LSTM's, reused every step: those stay 7-bit, which
# the rewrite skips) and convert convolutions that share one zero point (each Conv keeps its own:
# _drop_conv_zero_points drops only the int32 bias ones).
STATIC_REDUCE_RANGE = False
SHARED_WEIGHTS_REDUCE_RANGE = True
# quantize_dynamic: per-tensor weights shared by an unrolled LSTM's steps: 7-bit (the rewrite cannot take them)
DYNAMIC_REDUCE_RANGE = True
# uint8 activations (U8S8, asymmetric: the same 256 levels as int8): onnxruntime's CPU QDQ fusions take u8 inputs.
# With int8 activations 16 of EfficientNet-Lite0's 51 convolutions stayed DequantizeLinear -> float Conv after
# graph optimisation (the rest QLinearConv, with 31 layout Transposes between the two), no QLinearAdd, and int8
# ran barely faster than fp32 (44.7 vs 47.3 ms per 8-frame chunk, 1 thread); with uint8 all 51 fuse, the 9
# residual Adds become QLinearAdd, Transposes 31 -> 7, and int8 takes 36.3 ms (AVX-512 VNNI host, 2026-12-03).
ACTIVATION_TYPE_NAME = "QUInt8"
_FLOAT_OPS = ("LayerNormalization", "Softmax", "LogSoftmax", "ReduceMean", "Pow", "Sqrt", "Div", "Erf")


def classifier_nodes(model) -> list[str]:
    """Names of the final classifier MatMul/Gemm (+ its bias Add): the MatMul/Gemm nearest the
    first graph output, walking back through element-wise ops."""
    producers = {o: n for n in model.graph.node for o in n.output}
    names: list[str] = []
    seen = set()
    frontier = [model.graph.output[0].name]
    while frontier:
        t = frontier.pop()
        n = producers.get(t)
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        if n.op_type in ("MatMul", "Gemm"):
            names.append(n.name)
            continue
        if n.op_type in ("Add", "LogSoftmax", "Softmax", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                         "Identity", "Cast", "Concat"):
            if n.op_type == "Add":
                names.append(n.name)
            frontier.extend(n.input)
    return names


def module_nodes(model, modules: Sequence[str]) -> list[str]:
    """Names of the Conv/MatMul/Gemm nodes whose weight belongs to one of ``modules`` (torch module names: the
    exporter names a weight initializer after its parameter, ``<module>.weight``)."""
    prefixes = tuple(f"{m}." for m in modules)
    if not prefixes:
        return []
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and len(n.input) > 1
            and n.input[1] in inits and n.input[1].startswith(prefixes)]


class _Reader:
    """onnxruntime CalibrationDataReader over input tuples."""

    def __init__(self, calib: Sequence, input_names: Sequence[str]):
        import numpy as np

        self._items = [{n: np.ascontiguousarray(np.asarray(x, dtype=np.float32)) for n, x in zip(input_names, it)}
                       for it in calib]
        self._i = 0

    def get_next(self):
        if self._i >= len(self._items):
            return None
        self._i += 1
        return self._items[self._i - 1]

    def rewind(self):
        self._i = 0


def _preprocess(onnx_in: Path, work: Path) -> Path:
    """onnxruntime's quant_pre_process (shape inference + graph optimisation) when it succeeds."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        out = work / "pre.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(onnx_in), str(out), skip_symbolic_shape=True)
        return out
    except Exception:
        return onnx_in


@register_recipe("onnx-int8-static", "onnx",
                 "onnxruntime quantize_static, QDQ, int8 per-channel weights + uint8 activations calibrated on "
                 "chunks; LayerNorm/Softmax stay float, the final classifier has int8 weights (per channel) on float "
                 "activations and logits",
                 needs_calibration=True,
                 weight_range="int8 [-127, 127]; weights shared by several nodes (an LSTM's) [-64, 64]. On x86 "
                              "without VNNI a .onnx file needs onnxruntime's session.x64quantprecision=1 (slsdk's "
                              "runtime sets it); a .ort file is loaded as saved and saturates there (ARM is exact)")
def onnx_int8_static(onnx_in, onnx_out, calib, input_names, float_modules=()):
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    with fileio.temp_dir("slsdk-q") as work:
        src = _preprocess(onnx_in, work)
        model = onnx.load(str(src))
        classifier = classifier_nodes(model)
        # float modules keep their fp32 weights too: int8-stored (dequantized) weights in the stem and
        # blocks 0-2 took the int8 Lite0's logits from cosine 0.99934 to 0.99801 to fp32 (isharah preset,
        # 8-epoch Lite0, 60 test_si videos, 2026-12-04), for 37 KB (int8/fp32 size 0.2667 -> 0.2687)
        exclude = classifier + [n.name for n in model.graph.node if n.op_type in _FLOAT_OPS]
        exclude += module_nodes(model, float_modules)
        overrides = {w: [{"axis": axis, "reduce_range": SHARED_WEIGHTS_REDUCE_RANGE}]
                     for w, axis in _shared_weights(model).items()}
        with fileio.atomic_path(onnx_out, suffix=".onnx") as tmp:
            quantize_static(str(src), str(tmp), _Reader(calib, input_names), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=STATIC_REDUCE_RANGE,
                            activation_type=getattr(QuantType, ACTIVATION_TYPE_NAME), weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=exclude,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "DefaultTensorType": onnx.TensorProto.FLOAT,
                                           "TensorQuantOverrides": overrides})
            quantized = onnx.load(str(tmp))
            if (_int8_weights_only(quantized, classifier) + _drop_conv_zero_points(quantized)
                    + _derived_bias_scales(quantized) + _copy_metadata(onnx_in, quantized)):
                onnx.save(quantized, str(tmp))
    return onnx_out


def _output_channel_axis(node) -> int:
    """The axis of a Conv/MatMul/Gemm weight that holds its output channels (the per-channel axis)."""
    trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
    return 0 if node.op_type == "Conv" or trans_b else 1


def _shared_weights(model) -> dict[str, int]:
    """The weight initializers that several Conv/MatMul/Gemm nodes read (an unrolled LSTM's, every step) ->
    their output-channel axis (the per-channel quantization axis)."""
    inits = {i.name for i in model.graph.initializer}
    readers: dict[str, list] = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits:
            readers.setdefault(n.input[1], []).append(n)
    return {w: _output_channel_axis(nodes[0]) for w, nodes in readers.items() if len(nodes) > 1}


def _int8_weights_only(model, node_names) -> int:
    """The float MatMul/Gemm/Conv nodes among ``node_names`` (the classifier) get int8
    *stored* weights: a per-output-channel symmetric int8 initializer -> Cast -> Mul(scale) -> the float op.
    Activations, logits and the op stay float; runtimes fold Cast/Mul into a float weight at load. Not
    DequantizeLinear: onnxruntime's CPU optimiser fuses DequantizeLinear -> MatMul into MatMulNBits, which
    computes with int8 activations (logits 0.008 off the unfused graph, which onnxruntime-web runs). Returns the
    number of weights replaced."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    wanted = set(node_names)
    uses = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    done = 0
    for node in list(model.graph.node):
        if node.name not in wanted or node.op_type not in ("MatMul", "Gemm", "Conv") or len(node.input) < 2:
            continue
        w_name = node.input[1]
        if w_name not in inits or uses.get(w_name, 0) != 1:
            continue
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
        if w.ndim != (4 if node.op_type == "Conv" else 2):
            continue
        axis = _output_channel_axis(node)
        amax = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != axis))
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shape = tuple(-1 if a == axis else 1 for a in range(w.ndim))
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        base = f"{w_name}_int8"
        model.graph.initializer.remove(inits[w_name])
        model.graph.initializer.extend([numpy_helper.from_array(q, base),
                                        numpy_helper.from_array(scale.reshape(shape), f"{base}_scale")])
        at = list(model.graph.node).index(node)
        model.graph.node.insert(at, helper.make_node("Mul", [f"{base}_float", f"{base}_scale"], [f"{base}_weight"],
                                                     name=f"{node.name}_weight_scale"))
        model.graph.node.insert(at, helper.make_node("Cast", [base], [f"{base}_float"], name=f"{node.name}_weight_cast",
                                                     to=onnx.TensorProto.FLOAT))
        node.input[1] = f"{base}_weight"
        done += 1
    return done


def _drop_conv_zero_points(model) -> int:
    """Drop the all-zero zero points of the DequantizeLinear nodes that read an int32 constant (a bias) and
    feed only Conv nodes. The input is optional in ONNX (0 by default); quantize_static writes one per output
    channel, and on a per-channel CNN the int32 bias zero points alone are ~2 % of the int8 file
    (EfficientNet-Lite0: int8/fp32 size 0.276 -> 0.269). onnxruntime still fuses DequantizeLinear -> Conv ->
    QuantizeLinear into QLinearConv (same optimised graph, same logits). The weights' (int8) zero points stay:
    without them onnxruntime's fusion gives every QLinearConv one shared zero-point initializer, which its
    x86 saturation guard (session.x64quantprecision) then fails to rewrite ("Attempt to replace the existing
    tensor"). Gemm/MatMul are left alone, since its QGemm fusion needs the zero points. Returns the number of
    zero points removed."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    done = 0
    for n in model.graph.node:
        if (n.op_type != "DequantizeLinear" or len(n.input) != 3 or n.input[0] not in inits
                or n.input[2] not in inits or inits[n.input[2]].data_type != onnx.TensorProto.INT32
                or set(consumers.get(n.output[0], ())) != {"Conv"}):
            continue
        if not numpy_helper.to_array(inits[n.input[2]]).any():
            del n.input[2]
            done += 1
    if done:
        used = {i for n in model.graph.node for i in n.input}
        keep = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return done


def _derived_bias_scales(model) -> int:
    """Replace each Conv's stored int32-bias scale by ``Mul(input scale, weight scale)``, where it equals that
    product exactly (quantize_static computes it so, in float32). The per-channel bias scales duplicate the
    weight scales' size (Lite0: 84 KB, 1.7 % of the int8 file); onnxruntime folds the Mul of two initializers at
    load, before its QLinearConv fusion, so the optimised graph and the logits are unchanged. Returns the number
    of scales replaced."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def const_dq_scale(tensor):   # scale initializer of the DequantizeLinear producing ``tensor``
        dq = producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
            return None
        return dq.input[1]

    done = 0
    for conv in list(model.graph.node):
        if conv.op_type != "Conv" or len(conv.input) < 3:
            continue
        bias_dq = producer.get(conv.input[2])
        x_scale, w_scale = const_dq_scale(conv.input[0]), const_dq_scale(conv.input[1])
        if (bias_dq is None or bias_dq.op_type != "DequantizeLinear" or None in (x_scale, w_scale)
                or bias_dq.input[1] not in inits or len(consumers.get(bias_dq.input[1], ())) != 1
                or [c.op_type for c in consumers.get(conv.input[2], ())] != ["Conv"]):
            continue
        b_scale = numpy_helper.to_array(inits[bias_dq.input[1]])
        product = (numpy_helper.to_array(inits[x_scale]) * numpy_helper.to_array(inits[w_scale])).astype(np.float32)
        if product.shape != b_scale.shape or not np.array_equal(product, b_scale):
            continue
        name = bias_dq.input[1]
        model.graph.initializer.remove(inits.pop(name))
        at = list(model.graph.node).index(bias_dq)
        model.graph.node.insert(at, helper.make_node("Mul", [x_scale, w_scale], [name], name=f"{name}_product"))
        done += 1
    return done


@register_recipe("onnx-int8-dynamic", "onnx",
                 "onnxruntime quantize_dynamic: int8 per-tensor MatMul/Gemm weights (7-bit range), activations quantized at "
                 "run time (no calibration)", needs_calibration=False)
def onnx_int8_dynamic(onnx_in, onnx_out, calib=None, input_names=None, float_modules=()):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    with fileio.temp_dir("slsdk-q") as work:
        src = work / "untied.onnx"
        fileio.atomic_write(src, _pretranspose_gemm_weights(onnx.load(str(onnx_in))).SerializeToString(),
                            fsync=False)
        with fileio.atomic_path(onnx_out, suffix=".onnx") as tmp:
            quantize_dynamic(str(src), str(tmp), per_channel=False, reduce_range=DYNAMIC_REDUCE_RANGE, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"],
                             nodes_to_exclude=module_nodes(onnx.load(str(src)), float_modules),
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
            quantized = onnx.load(str(tmp))
            if _copy_metadata(onnx_in, quantized):
                onnx.save(quantized, str(tmp))
    return onnx_out


def _pretranspose_gemm_weights(model):
    """Gemm(transB=1) with an initializer B -> Gemm(transB=0) with one shared B^T initializer.

    onnxruntime's quantize_dynamic rewrites Gemm into MatMul + Add, transposing B in place; a weight
    shared by several Gemms (an unrolled LSTM cell) gets transposed more than once and the graph no
    longer loads. Pre-transposing once per weight avoids that.
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    made: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        attrs = {a.name: a for a in node.attribute}
        if "transB" not in attrs or attrs["transB"].i != 1:
            continue
        b = node.input[1]
        if b not in made:
            arr = numpy_helper.to_array(inits[b]).T.copy()
            made[b] = f"{b}__T"
            model.graph.initializer.append(numpy_helper.from_array(arr, made[b]))
        node.input[1] = made[b]
        attrs["transB"].i = 0
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model


def _copy_metadata(src: Path, model) -> int:
    """The source file's metadata_props onto the quantized ``model`` (those it lacks). Returns how many."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    have = {p.key for p in model.metadata_props}
    for k, v in props.items():
        if k not in have:
            model.metadata_props.add(key=k, value=v)
    return len(props.keys() - have)


# ---------------------------------------------------------------------------------------------------
# Core ML
# ---------------------------------------------------------------------------------------------------
@register_recipe("coreml-int8-weights", "coreml",
                 "coremltools linear_quantize_weights: int8 symmetric per-channel weights, fp16 compute "
                 "(activation quantization needs macOS)", needs_calibration=False)
def coreml_int8_weights(mlmodel, calib=None):
    import coremltools.optimize.coreml as cto

    cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cto.linear_quantize_weights(mlmodel, config=cfg)
