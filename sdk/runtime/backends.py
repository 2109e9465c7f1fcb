"""The one backend layer: ONNX Runtime, the ExecuTorch runtime, Core ML (macOS) and eager torch.

Serving (``slsdk.Recognizer``), conversion parity (``slsdk.convert``), int8 calibration, ``slsdk bench`` and the
demos all run models through this module: named numpy inputs in, named numpy outputs out, the names from the
bundle manifest's ``streaming`` section. Which backend runs a bundle is the targets table's ``backend`` column
(``slsdk.targets``); where a target cannot run on this machine, ``open_backend`` says why (the table's
``not_here``). :class:`StreamingStep` carries a streaming model's state from chunk to chunk; :func:`run_video`
runs a whole preprocessed video (chunked for streaming models, at once for offline ones).

Only the torch backend touches the models (``slsdk.models``), and only when a checkpoint is opened with it
(:func:`open_checkpoint`); the other backends need no torch (the ExecuTorch runtime's Python package itself
depends on torch, so ``.pte`` bundles do).
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path

import numpy as np

from slsdk.errors import SlsdkError
from slsdk.preprocess import chunk_video, output_frames

__all__ = ["BACKENDS", "Backend", "BackendError", "OnnxRuntimeBackend", "ExecuTorchBackend", "CoreMLBackend",
           "TorchBackend", "load_onnxruntime", "open_backend", "open_checkpoint", "backends_for_target",
           "StreamingStep", "run_video", "default_threads", "u8s8_saturates", "X64_QUANT_PRECISION"]


class BackendError(SlsdkError, RuntimeError):
    """A backend cannot run this bundle (mismatch, missing package, unsupported platform)."""


class Backend:
    """One loaded model. ``run(inputs)`` -> outputs, both dicts keyed by the manifest's tensor names.

    ``batch_inputs``: True when every input takes a batch larger than one along axis 0 (so
    ``Recognizer.decode_streams`` can stack several streams into one call); False for fixed-batch files.
    """

    name = "base"
    batch_inputs = False
    thread_safe = False  # several threads may call run() at once (else the recognizer serialises calls)

    def __init__(self, input_names: list[str], output_names: list[str]):
        self.input_names, self.output_names = list(input_names), list(output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _check_inputs(self, inputs: dict) -> None:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BackendError(f"{self.name}: missing inputs {missing} (the model takes {self.input_names})")


_TELEMETRY_OFF = False


def load_onnxruntime():
    """onnxruntime, with its telemetry events disabled (once per process, for every session slsdk opens)."""
    global _TELEMETRY_OFF
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("onnxruntime is not installed: pip install 'slsdk[runtime]'") from None
    if not _TELEMETRY_OFF:
        ort.disable_telemetry_events()
        _TELEMETRY_OFF = True
    return ort


X64_QUANT_PRECISION = "session.x64quantprecision"   # onnxruntime's exact (U8U8) int8 kernels on x86 without VNNI
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@functools.lru_cache(maxsize=1)   # the CPU does not change: probe once per process, not per session
def _cpu_has_vnni() -> bool:
    """AVX-512 VNNI from numpy's CPUID probe (``/proc/cpuinfo`` where numpy has none); AVX-VNNI (Alder Lake
    and later, which numpy does not report) from ``/proc/cpuinfo``."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            features = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    avx512_vnni = features["AVX512VNNI"] if "AVX512VNNI" in features else "avx512_vnni" in flags
    # /proc/cpuinfo describes the host: under an emulator (qemu -cpu Haswell) or a hypervisor that masks
    # features it can list what this process cannot execute. Its avx_vnni is believed only where it agrees
    # with numpy's CPUID probe on every flag both report.
    both = {"avx2": "AVX2", "fma": "FMA3", "f16c": "F16C", "avx512f": "AVX512F", "avx512bw": "AVX512BW",
            "avx512_vnni": "AVX512VNNI"}
    agrees = all((flag in flags) == bool(features[key]) for flag, key in both.items() if key in features)
    return bool(avx512_vnni) or ("avx_vnni" in flags and agrees)


def u8s8_saturates() -> bool:
    """Whether onnxruntime's int8 kernels (uint8 activations x int8 weights) can saturate on this CPU: x86
    without VNNI, whose VPMADDUBSW sums pairs of products in int16. There the onnxruntime backend sets
    ``session.x64quantprecision`` (exact U8U8 kernels; it would cost 1.5x time on a VNNI CPU, where U8S8 is
    exact). ``SLSDK_ORT_X64_PRECISION=1`` / ``0`` overrides the detection."""
    forced = os.environ.get("SLSDK_ORT_X64_PRECISION", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return platform.machine().lower() in _X86 and not _cpu_has_vnni()


class OnnxRuntimeBackend(Backend):
    """onnxruntime InferenceSession for .onnx and .ort; CUDA/TensorRT providers are used when installed."""

    name = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads at once

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0,
                 providers: list[str] | None = None):
        super().__init__(input_names, output_names)
        ort = load_onnxruntime()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        if providers is None:
            preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in preferred if p in available]
        if not Path(model_path).is_file():
            raise BackendError(f"{model_path}: no such model file")
        # x86 without VNNI: exact int8 kernels (onnxruntime rewrites int8 weights to uint8 at load)
        self.x64_quant_precision = u8s8_saturates()
        if self.x64_quant_precision:
            opts.add_session_config_entry(X64_QUANT_PRECISION, "1")

        def session():
            try:
                return ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types
                raise BackendError(f"{model_path}: onnxruntime cannot load this model ({str(e).strip()[:500]})") from None

        try:
            self.session = session()
        except BackendError as e:
            if not self.x64_quant_precision:
                raise
            opts.add_session_config_entry(X64_QUANT_PRECISION, "0")
            self.session = session()
            self.x64_quant_precision = False
            warnings.warn(f"{model_path}: onnxruntime could not rewrite this int8 model for exact kernels on this CPU "
                          f"(x86 without VNNI: {str(e)[:300]}); its int8 results may differ from other CPUs'",
                          RuntimeWarning, stacklevel=2)
        self.providers = self.session.get_providers()
        ins = {i.name: i for i in self.session.get_inputs()}
        if set(self.input_names) - set(ins):
            raise BackendError(f"{model_path}: model inputs {sorted(ins)} do not match the manifest's "
                               f"{self.input_names}")
        have_out = {o.name for o in self.session.get_outputs()}
        if set(self.output_names) - have_out:
            raise BackendError(f"{model_path}: model outputs {sorted(have_out)} do not match the manifest's "
                               f"{self.output_names}")
        # a symbolic (or unknown) first dimension on every input: several streams fit in one call
        self.batch_inputs = all(ins[n].shape and not isinstance(ins[n].shape[0], int) for n in self.input_names)

    def run(self, inputs):
        self._check_inputs(inputs)
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        outs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outs))


class ExecuTorchBackend(Backend):
    """executorch.runtime for .pte files (XNNPACK; portable kernels for what is not delegated)."""

    name = "executorch"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        try:
            import torch
            from executorch.runtime import Runtime
        except ImportError as e:
            raise BackendError(f"{model_path}: the ExecuTorch runtime is not installed ({e}): "
                               "pip install 'slsdk[executorch]'") from None
        self._torch = torch
        if not Path(model_path).is_file():
            raise BackendError(f"{model_path}: no such .pte file")
        try:
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


class CoreMLBackend(Backend):
    """coremltools MLModel.predict (macOS only)."""

    name = "coreml"

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        try:
            import coremltools as ct
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


class TorchBackend(Backend):
    """An eager torch module with flat tensor inputs/outputs (a student's ``export_module()``, an offline
    wrapper): the fp32 reference exported files are measured against, and ``--backend torch`` for checkpoints."""

    name = "torch"
    batch_inputs = True
    thread_safe = True

    def __init__(self, module, input_names, output_names, threads: int = 0):
        super().__init__(input_names, output_names)
        import torch

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


BACKENDS: dict[str, type[Backend]] = {"onnxruntime": OnnxRuntimeBackend, "executorch": ExecuTorchBackend,
                                      "coreml": CoreMLBackend, "torch": TorchBackend}


def backends_for_target(target: str) -> tuple[str, ...]:
    """Backends that run a target's file (the targets table's ``backend`` column)."""
    from slsdk.targets import get_target

    return (get_target(target).backend,)


def _io_names(manifest) -> tuple[list[str], list[str]]:
    return ([io["name"] for io in manifest.streaming["inputs"]], [io["name"] for io in manifest.streaming["outputs"]])


def open_backend(bundle, backend: str | None = None, threads: int = 0) -> Backend:
    """Open the backend for a loaded ``Bundle``; a bundle/backend mismatch or a platform that cannot run the
    target is a :class:`BackendError` saying why."""
    from slsdk.targets import get_target

    m = bundle.manifest
    t = get_target(m.target)
    name = backend or t.backend
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name != t.backend:
        hint = " (the torch backend opens a student checkpoint .pt)" if name == "torch" else ""
        raise BackendError(f"{bundle.root}: a {m.target!r} bundle cannot run on the {name!r} backend; "
                           f"use {t.backend}{hint}")
    if not t.can_run_here:
        raise BackendError(f"{bundle.root}: {t.not_here}")
    ins, outs = _io_names(m)
    opened = BACKENDS[name](bundle.model_path, ins, outs, threads=threads)
    if getattr(opened, "x64_quant_precision", False) and m.precision == "int8" and bundle.model_path.suffix == ".ort":
        # an ORT-format file is loaded as saved: onnxruntime's uint8 rewrite does not run on it
        warnings.warn(f"{bundle.root}: an int8 .ort file on an x86 CPU without VNNI: onnxruntime's exact-kernel "
                      "rewrite (session.x64quantprecision) does not apply to ORT-format files, so full-range int8 "
                      "weights may saturate here (ARM phones and VNNI CPUs are exact); serve the model's .onnx "
                      "bundle on this CPU", RuntimeWarning, stacklevel=2)
    return opened


def open_checkpoint(path: str | os.PathLike, threads: int = 0):
    """``(manifest, TorchBackend)`` for a student checkpoint: the one door from serving to ``slsdk.models``
    (imported only here, only when the torch backend is chosen)."""
    try:
        from slsdk.models.factory import load_model
        from slsdk.models.model_io import manifest_for_model
    except ImportError as e:
        raise BackendError(f"{path}: the torch backend needs torch ({e}): pip install 'slsdk[train]', or run an "
                           "onnx/ort bundle of the model") from None

    model, vocab, kind = load_model(path)
    if kind != "student":
        raise BackendError(f"{path}: the torch backend streams a student checkpoint, this one is a {kind}")
    manifest = manifest_for_model(model, vocab, target="onnx", precision="fp32")
    ins, outs = _io_names(manifest)
    return manifest, TorchBackend(model.export_module(), ins, outs, threads=threads)


class StreamingStep:
    """A streaming model's chunk step over a backend: frames + carried state in, log-probs out.

    ``streaming`` is the manifest's ``streaming`` section (tensor names, state names and shapes).
    """

    def __init__(self, backend: Backend, streaming: dict):
        self.backend = backend
        self.frames_input = streaming["inputs"][0]["name"]
        self.logits_output = streaming["outputs"][0]["name"]
        self.state_spec = [(st["input"], st["output"], tuple(st["shape"])) for st in streaming.get("state", [])]
        self.chunk = streaming.get("chunk_frames")

    def initial_state(self) -> dict[str, np.ndarray]:
        return {i: np.zeros(shape, np.float32) for i, _, shape in self.state_spec}

    def __call__(self, chunk: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """``chunk`` float32 ``[B, C, 3, S, S]`` (B streams, each state ``[B, ...]``) -> (log-probs ``[B, C/stride,
        V]``, the state after the chunk)."""
        outs = self.backend.run({self.frames_input: chunk, **state})
        return outs[self.logits_output], {i: outs[o] for i, o, _ in self.state_spec}

    def inputs(self, chunk: np.ndarray, state: dict) -> dict[str, np.ndarray]:
        return {self.frames_input: chunk, **state}


def run_video(backend: Backend, streaming: dict, video: np.ndarray, on_step=None) -> np.ndarray:
    """Log-probs ``[T', V]`` of one preprocessed video ``[T, 3, S, S]`` (float32).

    Streaming models run chunk by chunk carrying state, the last chunk zero-padded, trimmed to
    ``ceil(T / output_stride)`` (what a phone gets); offline models take the whole video at once.
    ``on_step(inputs)`` (optional) sees every call's named inputs (int8 calibration records them).
    """
    video = np.asarray(video, dtype=np.float32)
    if streaming.get("mode", "streaming") != "streaming":
        name = streaming["inputs"][0]["name"]
        inputs = {name: video[None]}
        if on_step is not None:
            on_step(inputs)
        lp = backend.run(inputs)[streaming["outputs"][0]["name"]]
        return np.asarray(lp, np.float32).reshape(-1, lp.shape[-1])
    step = StreamingStep(backend, streaming)
    state = step.initial_state()
    outs = []
    for chunk in chunk_video(video, int(streaming["chunk_frames"])):
        if on_step is not None:
            on_step(step.inputs(chunk, state))
        lp, state = step(chunk, state)
        outs.append(np.asarray(lp, np.float32).reshape(-1, lp.shape[-1]))
    return np.concatenate(outs)[: output_frames(len(video), int(streaming["output_stride"]))]


def default_threads() -> int:
    """Threads for the backend: SLSDK_THREADS, else 0 (the runtime's own default)."""
    return int(os.environ.get("SLSDK_THREADS", "0"))
