"""Re-export of the targets table, which lives at the bottom layer in :mod:`slsdk.targets` (standard library
only, so the bundle, the runtime, quantize and convert all read one table without importing each other)."""
from slsdk.targets import (  # noqa: F401
    PRECISIONS,
    TARGETS,
    Target,
    check_precision,
    get_target,
    missing_modules,
    resolve,
    target_names,
    targets_markdown,
)

__all__ = ["Target", "TARGETS", "PRECISIONS", "get_target", "check_precision", "target_names",
           "missing_modules", "targets_markdown", "resolve"]
