"""The registry of toolchain providers (the bottom layer: standard library only).

A provider is one toolchain's folder under ``slsdk.toolchains``: its exporters, its int8 recipes, the backend
that serves its files and the inspector that reads a file's signature without running it. Every reference is a
``"module:attr"`` string resolved on use, so serving code never imports building code or torch by looking a
provider up. The targets table (``slsdk.targets``) names each row's provider in ``Target.toolchain``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["Provider", "PROVIDERS", "register_provider", "get_provider", "provider_names", "resolve"]


@dataclass(frozen=True)
class Provider:
    """One toolchain: ``backend`` / ``inspector`` / ``exporters`` values are ``"module:attr"`` references,
    ``int8`` a module that registers the family's recipes with ``slsdk.quantize.recipes`` when imported."""

    name: str
    backend: str                       # "module:Class" of the serving backend (a slsdk.runtime.backends.Backend)
    backend_name: str                  # what ``--backend`` calls it (the class's ``name``)
    inspector: str = ""                # "module:function": ``model_signature(path) -> dict | None``
    int8: str = ""                     # module whose import registers the int8 recipes ("" = none)
    exporters: dict = field(default_factory=dict)   # exporter name -> "module:function"
    checkpoint_suffix: str = ""        # files of this suffix are opened as checkpoints by this backend (".pt")


PROVIDERS: dict[str, Provider] = {}


def register_provider(provider: Provider) -> Provider:
    """Add ``provider`` to the registry (a name registered twice must be the same provider)."""
    have = PROVIDERS.get(provider.name)
    if have is not None and have != provider:
        raise ValueError(f"toolchain provider {provider.name!r} is already registered differently")
    PROVIDERS[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider:
    """The registered provider ``name``; unknown names raise ValueError listing the registered ones."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown toolchain provider {name!r} (registered: {', '.join(PROVIDERS)})")
    return PROVIDERS[name]


def provider_names() -> list[str]:
    return list(PROVIDERS)


def resolve(ref: str):
    """The object a ``"module:attribute"`` reference names (its module imported on use)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
