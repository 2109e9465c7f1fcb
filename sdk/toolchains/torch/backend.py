"""The eager torch backend: a module with flat tensor inputs/outputs (torch imported on use)."""
from __future__ import annotations

import numpy as np

from slsdk.runtime.backends import ANY_BATCH, Backend


class TorchBackend(Backend):
    """An eager torch module with flat tensor inputs/outputs (a student's ``export_module()``, an offline
    wrapper): the fp32 reference exported files are measured against, and ``--backend torch`` for checkpoints."""

    name = "torch"
    usage = "the torch backend opens a student checkpoint .pt"
    max_batch = ANY_BATCH   # an eager module takes any batch
    thread_safe = True

    def __init__(self, module, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        import torch  # heavy optional package

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.module = module.eval()

    def run(self, inputs):
        self._check_inputs(inputs)
        torch = self._torch
        with torch.inference_mode():
            outs = self.module(*(torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32))
                                 for n in self.input_names))
        if isinstance(outs, torch.Tensor):
            outs = (outs,)
        return {n: o.detach().float().numpy() for n, o in zip(self.output_names, outs)}
