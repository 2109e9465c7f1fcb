"""The ExecuTorch runtime backend: ``.pte`` programs (the runtime's Python package needs torch, imported on use)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slsdk.quiet import native_stderr
from slsdk.runtime.backends import Backend, BackendError


class ExecuTorchBackend(Backend):
    """executorch.runtime for .pte files (XNNPACK; portable kernels for what is not delegated)."""

    name = "executorch"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        try:
            with native_stderr():   # the runtime's native start-up lines
                import torch  # heavy optional package
                from executorch.runtime import Runtime
                Runtime.get()
        except ImportError as e:
            raise BackendError(f"{model_path}: the ExecuTorch runtime is not installed ({e}): "
                               "pip install 'slsdk[executorch]'") from None
        self._torch = torch
        if not Path(model_path).is_file():
            raise BackendError(f"{model_path}: no such .pte file")
        try:
            with native_stderr():   # XNNPACK's cpuinfo lines when the first delegated method loads
                program = Runtime.get().load_program(str(model_path))
                self.method = program.load_method("forward")
        except Exception as e:
            raise BackendError(f"{model_path}: the ExecuTorch runtime cannot load this program "
                               f"({type(e).__name__}: {str(e)[:300]}; truncated/corrupt file, or a delegate this "
                               "runtime lacks)") from None
        n = self.method.metadata.num_inputs()
        if n != len(self.input_names):
            raise BackendError(f"{model_path}: the program takes {n} inputs, the manifest names "
                               f"{len(self.input_names)} ({self.input_names})")

    def run(self, inputs):
        self._check_inputs(inputs)
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)) for n in self.input_names]
        outs = self.method.execute(args)
        # copies: the program's planned memory is reused by the next call (state outputs feed it back)
        return {n: o.detach().numpy().copy() if hasattr(o, "detach") else np.array(o)
                for n, o in zip(self.output_names, outs)}
