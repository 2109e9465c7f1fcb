"""One folder per toolchain, each registering one :class:`Provider` (standard library only at import).

``onnx`` (ONNX and ONNX Runtime Mobile, served by onnxruntime), ``executorch`` (XNNPACK and the Core ML
delegate), ``coreml`` (ML Program packages) and ``torch`` (eager checkpoints). Each folder holds its exporter
(``export.py``), its int8 recipes (``int8.py``), its serving backend (``backend.py``) and its file inspector
(``inspect.py``); its ``__init__`` only registers the provider, by ``"module:attr"`` references. A new toolchain
is a new folder here plus its rows in ``slsdk.targets``.
"""
from __future__ import annotations

from slsdk.toolchains.registry import PROVIDERS, Provider, get_provider, provider_names, register_provider, resolve
# each registers its provider, in this order (the order of `--backend` choices)
from slsdk.toolchains import onnx, executorch, coreml, torch  # noqa: F401,I001

__all__ = ["Provider", "PROVIDERS", "register_provider", "get_provider", "provider_names", "resolve"]
