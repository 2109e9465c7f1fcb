"""Eager torch: a student checkpoint served as it is (``--backend torch``); no file format, no exporter."""
from __future__ import annotations

from slsdk.toolchains.registry import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="torch", backend="slsdk.toolchains.torch.backend:TorchBackend", backend_name="torch",
    checkpoint_suffix=".pt"))
