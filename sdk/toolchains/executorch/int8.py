"""The ExecuTorch toolchain's int8 recipes (family ``pt2e-xnnpack``): PT2E with XNNPACKQuantizer, static or
dynamic activations. Registered with ``slsdk.quantize.recipes`` when imported; torch / executorch / torchao
are imported inside the recipes (heavy optional packages; ``# noqa: PLC0415``: every provider's recipes register
when ``slsdk.quantize`` loads, so registering must not load a toolchain).
"""
from __future__ import annotations

import warnings
from typing import Sequence

from slsdk.quantize.recipes import register_recipe

__all__ = ["xnnpack_int8_static", "xnnpack_int8_dynamic"]


def _pt2e(module, example_inputs, calib, *, dynamic: bool, float_modules: Sequence[str] = (),
          float_activation_modules: Sequence[str] = ()):
    import torch  # noqa: PLC0415 (recipes register light)
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (  # noqa: PLC0415 (recipes register light)
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: PLC0415

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
    from torchao.quantization.pt2e.quantizer import Quantizer  # noqa: PLC0415 (recipes register light)

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
