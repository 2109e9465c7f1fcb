"""What a ``.pte`` program says about its ``forward`` method (counts, static shapes, dtypes), without running it.

The ExecuTorch runtime is imported on use; without it nothing is read."""
from __future__ import annotations

from pathlib import Path

from slsdk.bundle import BundleError
from slsdk.quiet import native_stderr

__all__ = ["model_signature"]

_ET_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64"}


def model_signature(path: Path) -> dict | None:
    """The ExecuTorch program's ``forward`` method meta (counts, static shapes, dtypes; a .pte has no names)."""
    try:
        with native_stderr():   # the runtime's cpuinfo lines when its native library loads
            from executorch.runtime import Runtime, Verification  # heavy optional package
            Runtime.get()
    except Exception:  # noqa: BLE001 - not installed, or its native part does not load here
        return None
    try:
        program = Runtime.get().load_program(str(path), verification=Verification.Minimal)
        if "forward" not in program.method_names:
            raise BundleError(f"{path}: the ExecuTorch program has no 'forward' method "
                              f"(methods: {sorted(program.method_names)})")
        meta = program.metadata("forward")

        def tm(t):
            return None, list(t.sizes()), _ET_DTYPES.get(int(t.dtype()), str(t.dtype()))

        return {"inputs": [tm(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
                "outputs": [tm(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())],
                "meta": {}, "names": False}
    except BundleError:
        raise
    except Exception as e:  # noqa: BLE001 - the runtime raises RuntimeError / ValueError
        raise BundleError(f"{path}: not a readable ExecuTorch program ({_short(str(e).strip(), 200)})") from None


def _short(v, n: int = 60) -> str:
    """``repr(v)`` cut to ``n`` characters (messages never echo a huge value)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."
