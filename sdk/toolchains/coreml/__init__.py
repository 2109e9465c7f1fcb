"""The Core ML toolchain: ML Program ``.mlpackage`` files (prediction on macOS only)."""
from __future__ import annotations

from slsdk.toolchains.registry import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="coreml",
    backend="slsdk.toolchains.coreml.backend:CoreMLBackend", backend_name="coreml",
    inspector="slsdk.toolchains.coreml.inspect:model_signature",
    int8="slsdk.toolchains.coreml.int8",
    exporters={"coreml": "slsdk.toolchains.coreml.export:export_coreml_target"}))
