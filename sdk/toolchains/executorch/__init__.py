"""The ExecuTorch toolchain: ``.pte`` programs lowered to XNNPACK or the Core ML delegate."""
from __future__ import annotations

from slsdk.toolchains.registry import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="executorch",
    backend="slsdk.toolchains.executorch.backend:ExecuTorchBackend", backend_name="executorch",
    inspector="slsdk.toolchains.executorch.inspect:model_signature",
    int8="slsdk.toolchains.executorch.int8",
    exporters={"xnnpack": "slsdk.toolchains.executorch.export:export_executorch_target",
               "coreml": "slsdk.toolchains.executorch.export:export_executorch_coreml_target"}))
