"""The ONNX toolchain's int8 recipes (family ``onnx``, the ``onnx`` and ``ort`` targets): onnxruntime's
``quantize_static`` (QDQ) and ``quantize_dynamic``, and the graph surgery around them (float classifier and
float modules, int8-stored classifier weights, smaller bias zero points and scales).

Registered with ``slsdk.quantize.recipes`` when imported; onnx / onnxruntime are imported inside the functions
(heavy optional packages; ``# noqa: PLC0415``: every provider's recipes register when
``slsdk.quantize`` loads, so registering must not load a toolchain).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from slsdk import fileio
from slsdk.quantize.recipes import register_recipe
from slsdk.toolchains.onnx.proto import strip_debug_info

__all__ = ["onnx_int8_static", "onnx_int8_dynamic", "classifier_nodes", "module_nodes"]


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
        from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415 (recipes register light)

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
    import onnx  # noqa: PLC0415 (recipes register light)
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # noqa: PLC0415

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
        scratch = work / "quantized.onnx"
        quantize_static(str(src), str(scratch), _Reader(calib, input_names), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=STATIC_REDUCE_RANGE,
                        activation_type=getattr(QuantType, ACTIVATION_TYPE_NAME), weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                       "DefaultTensorType": onnx.TensorProto.FLOAT,
                                       "TensorQuantOverrides": overrides})
        quantized = onnx.load(str(scratch))
        _int8_weights_only(quantized, classifier)
        _drop_conv_zero_points(quantized)
        _derived_bias_scales(quantized)
        _save_quantized(onnx_in, quantized, onnx_out)
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
    import onnx  # noqa: PLC0415 (recipes register light)
    from onnx import helper, numpy_helper  # noqa: PLC0415 (recipes register light)

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
    import onnx  # noqa: PLC0415 (recipes register light)
    from onnx import numpy_helper  # noqa: PLC0415 (recipes register light)

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
    from onnx import helper, numpy_helper  # noqa: PLC0415 (recipes register light)

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
    import onnx  # noqa: PLC0415 (recipes register light)
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415 (recipes register light)

    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    with fileio.temp_dir("slsdk-q") as work:
        src = work / "untied.onnx"
        fileio.atomic_write(src, _pretranspose_gemm_weights(onnx.load(str(onnx_in))).SerializeToString(),
                            fsync=False)
        scratch = work / "quantized.onnx"
        quantize_dynamic(str(src), str(scratch), per_channel=False, reduce_range=DYNAMIC_REDUCE_RANGE,
                         weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         nodes_to_exclude=module_nodes(onnx.load(str(src)), float_modules),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
        _save_quantized(onnx_in, onnx.load(str(scratch)), onnx_out)
    return onnx_out


def _save_quantized(onnx_in: Path, quantized, onnx_out: Path) -> None:
    """The quantized model with the source file's metadata_props and without debug info (the quantizer's shape
    inference wrote value_info again), written to ``onnx_out`` in one atomic write."""
    _copy_metadata(onnx_in, quantized)
    strip_debug_info(quantized)
    fileio.atomic_write(onnx_out, quantized.SerializeToString())


def _pretranspose_gemm_weights(model):
    """Gemm(transB=1) with an initializer B -> Gemm(transB=0) with one shared B^T initializer.

    onnxruntime's quantize_dynamic rewrites Gemm into MatMul + Add, transposing B in place; a weight
    shared by several Gemms (an unrolled LSTM cell) gets transposed more than once and the graph no
    longer loads. Pre-transposing once per weight avoids that.
    """
    from onnx import numpy_helper  # noqa: PLC0415 (recipes register light)

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
    import onnx  # noqa: PLC0415 (recipes register light)

    props = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    have = {p.key for p in model.metadata_props}
    for k, v in props.items():
        if k not in have:
            model.metadata_props.add(key=k, value=v)
    return len(props.keys() - have)
