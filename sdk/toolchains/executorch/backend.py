"""The ExecuTorch runtime backend: ``.pte`` programs (the runtime's Python package needs torch, imported on use)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slsdk.quiet import native_stderr
from slsdk.runtime.backends import Backend, BackendError


def method_name(batch: int) -> str:
    """The .pte method that takes ``batch`` streams: ``forward`` for 1 (what phones call), ``forward_b<n>``."""
    return "forward" if batch == 1 else f"forward_b{batch}"


class ExecuTorchBackend(Backend):
    """executorch.runtime for .pte files (XNNPACK; portable kernels for what is not delegated).

    ``batch_sizes``: the fixed batch sizes the program has methods for (the bundle's ``streaming.batch_sizes``:
    ``forward`` takes one stream, ``forward_b<n>`` n streams); None: ``forward`` alone, batch 1.
    """

    name = "executorch"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0,
                 batch_sizes: list[int] | tuple[int, ...] | None = None):
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
        sizes = tuple(int(b) for b in (batch_sizes or (1,)))
        try:
            with native_stderr():   # XNNPACK's cpuinfo lines when the first delegated method loads
                program = Runtime.get().load_program(str(model_path))
                self.methods = {b: program.load_method(method_name(b)) for b in sizes}
        except Exception as e:
            raise BackendError(f"{model_path}: the ExecuTorch runtime cannot load this program "
                               f"({type(e).__name__}: {str(e)[:300]}; truncated/corrupt file, a method "
                               f"{', '.join(map(method_name, sizes))} missing, or a delegate this runtime lacks)") from None
        self.method = self.methods[1]
        if len(sizes) > 1:
            self.batch_sizes, self.max_batch = sizes, sizes[-1]
        n = self.method.metadata.num_inputs()
        if n != len(self.input_names):
            raise BackendError(f"{model_path}: the program takes {n} inputs, the manifest names "
                               f"{len(self.input_names)} ({self.input_names})")

    @classmethod
    def for_bundle(cls, bundle, threads: int = 0) -> "ExecuTorchBackend":
        """The bundle's .pte, with a method per batch size its manifest lists (``streaming.batch_sizes``)."""
        m = bundle.manifest
        return cls(bundle.model_path, [io.name for io in m.streaming.inputs], [io.name for io in m.streaming.outputs],
                   threads=threads, batch_sizes=m.streaming.batch_sizes)

    def run(self, inputs):
        self._check_inputs(inputs)
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)) for n in self.input_names]
        batch = int(args[0].shape[0]) if args and args[0].ndim else 1
        method = self.methods.get(batch, self.method)   # a size without a method: forward says what is wrong
        outs = method.execute(args)
        # copies: the program's planned memory is reused by the next call (state outputs feed it back)
        return {n: o.detach().numpy().copy() if hasattr(o, "detach") else np.array(o)
                for n, o in zip(self.output_names, outs)}
