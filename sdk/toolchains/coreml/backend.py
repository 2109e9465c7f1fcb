"""The Core ML backend: ``.mlpackage`` prediction with coremltools (macOS only; imported on use)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slsdk.runtime.backends import Backend, BackendError


class CoreMLBackend(Backend):
    """coremltools MLModel.predict (macOS only)."""

    name = "coreml"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        try:
            import coremltools as ct  # heavy optional package
        except ImportError:
            raise BackendError(f"{model_path}: coremltools is not installed: pip install 'slsdk[export]'") from None
        try:
            self.model = ct.models.MLModel(str(model_path), compute_units=ct.ComputeUnit.CPU_ONLY)
        except Exception as e:
            raise BackendError(f"{model_path}: Core ML cannot load the package ({e})") from None

    def run(self, inputs):
        self._check_inputs(inputs)
        out = self.model.predict({n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names})
        return {n: np.asarray(out[n], dtype=np.float32) for n in self.output_names}
