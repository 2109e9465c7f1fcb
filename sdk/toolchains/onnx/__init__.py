"""The ONNX toolchain: ``.onnx`` and ONNX Runtime Mobile ``.ort`` files, served by onnxruntime."""
from __future__ import annotations

from slsdk.toolchains.registry import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="onnx",
    backend="slsdk.toolchains.onnx.backend:OnnxRuntimeBackend", backend_name="onnxruntime",
    inspector="slsdk.toolchains.onnx.inspect:model_signature",
    int8="slsdk.toolchains.onnx.int8",
    exporters={"onnx": "slsdk.toolchains.onnx.export:export_onnx_target",
               "ort": "slsdk.toolchains.onnx.export:export_ort_target"}))
