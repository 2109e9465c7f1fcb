"""Inference backends for a bundle's model: ONNX Runtime, the ExecuTorch runtime, Core ML (macOS), torch.

Each backend runs one streaming step: named numpy inputs in, named numpy outputs out, with the names
from the bundle manifest. Which backends can run which target comes from the targets table.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

BACKENDS = ("onnxruntime", "executorch", "coreml", "torch")

class BackendError(RuntimeError):
    """A backend cannot run this bundle (mismatch, missing package, unsupported platform)."""


def backends_for_target(target: str) -> tuple[str, ...]:
    """Backends that run a target's file, read off the targets table (the default first)."""
    from slsdk.convert.targets import get_target

    t = get_target(target)
    if t.runtime_here == "onnxruntime":
        return ("onnxruntime",)
    if t.suffix == ".pte":
        return ("executorch",)
    return ("coreml",)


class Backend:
    """One loaded model. `run(inputs)` -> outputs, both dicts keyed by the manifest's tensor names."""

    name = "base"

    def __init__(self, input_names: list[str], output_names: list[str]):
        self.input_names, self.output_names = list(input_names), list(output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OnnxRuntimeBackend(Backend):
    """onnxruntime InferenceSession for .onnx and .ort; CUDA/TensorRT providers are used when installed."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0,
                 providers: list[str] | None = None):
        super().__init__(input_names, output_names)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        if providers is None:
            preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in preferred if p in available]
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{model_path}: onnxruntime cannot load this model ({e})") from None
        self.providers = self.session.get_providers()
        have = {i.name for i in self.session.get_inputs()}
        if set(self.input_names) - have:
            raise BackendError(f"{model_path}: model inputs {sorted(have)} do not match the manifest's "
                               f"{self.input_names}")

    def run(self, inputs):
        outs = self.session.run(self.output_names, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return dict(zip(self.output_names, outs))


class ExecuTorchBackend(Backend):
    """executorch.runtime for XNNPACK .pte files (portable kernels for what is not delegated)."""

    name = "executorch"

    def __init__(self, model_path: Path, input_names, output_names, delegate: str | None = None):
        super().__init__(input_names, output_names)
        if delegate == "coreml" and platform.system() != "Darwin":
            raise BackendError(f"{model_path}: a Core ML delegated .pte runs only on Apple platforms "
                               "(this ExecuTorch runtime has no CoreMLBackend)")
        import torch
        from executorch.runtime import Runtime

        self._torch = torch
        try:
            program = Runtime.get().load_program(str(model_path))
            self.method = program.load_method("forward")
        except Exception as e:
            raise BackendError(f"{model_path}: the ExecuTorch runtime cannot load this program ({e})") from None

    def run(self, inputs):
        args = [self._torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        outs = self.method.execute(args)
        return {n: o.detach().numpy() if hasattr(o, "detach") else np.asarray(o)
                for n, o in zip(self.output_names, outs)}


class CoreMLBackend(Backend):
    """coremltools MLModel.predict: macOS only."""

    name = "coreml"

    def __init__(self, model_path: Path, input_names, output_names):
        super().__init__(input_names, output_names)
        if platform.system() != "Darwin":
            raise BackendError(f"{model_path}: Core ML prediction needs macOS; on this machine use the "
                               "onnx/ort or executorch bundle of the same model")
        import coremltools as ct

        self.model = ct.models.MLModel(str(model_path))

    def run(self, inputs):
        out = self.model.predict({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return {n: np.asarray(out[n]) for n in self.output_names}


class TorchBackend(Backend):
    """The eager torch student from a checkpoint (the reference the exported targets are measured against)."""

    name = "torch"

    def __init__(self, model, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.step = model.export_module()

    def run(self, inputs):
        torch = self._torch
        with torch.inference_mode():
            outs = self.step(*(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names))
        return {n: o.numpy() for n, o in zip(self.output_names, outs)}


def open_backend(bundle, backend: str | None = None, threads: int = 0) -> Backend:
    """Open the backend for a loaded Bundle; a bundle/backend mismatch is a clear error."""
    m = bundle.manifest
    allowed = backends_for_target(m.target)
    name = backend or allowed[0]
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name not in allowed:
        raise BackendError(f"{bundle.root}: a {m.target!r} bundle cannot run on the {name!r} backend; "
                           f"use {' or '.join(allowed)}")
    ins = [io["name"] for io in m.streaming["inputs"]]
    outs = [io["name"] for io in m.streaming["outputs"]]
    path = bundle.model_path
    if name == "onnxruntime":
        return OnnxRuntimeBackend(path, ins, outs, threads=threads)
    if name == "executorch":
        return ExecuTorchBackend(path, ins, outs, delegate="coreml" if m.target == "executorch-coreml" else None)
    return CoreMLBackend(path, ins, outs)


def default_threads() -> int:
    """Threads for the backend: SLSDK_THREADS, else 0 (the runtime's own default)."""
    return int(os.environ.get("SLSDK_THREADS", "0"))
