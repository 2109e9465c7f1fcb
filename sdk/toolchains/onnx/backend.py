"""The onnxruntime backend: ``.onnx`` and ``.ort`` files (torch-free; onnxruntime imported on use).

On x86 CPUs without VNNI the session sets ``session.x64quantprecision`` so int8 models use onnxruntime's exact
U8U8 kernels (:func:`u8s8_saturates`).
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path

import numpy as np

from slsdk.runtime.backends import Backend, BackendError

try:   # numpy's CPUID probe (numpy 2; numpy 1 names the module numpy.core)
    from numpy._core._multiarray_umath import __cpu_features__ as _NUMPY_CPU_FEATURES
except ImportError:
    try:
        from numpy.core._multiarray_umath import __cpu_features__ as _NUMPY_CPU_FEATURES
    except ImportError:
        _NUMPY_CPU_FEATURES = {}

__all__ = ["OnnxRuntimeBackend", "load_onnxruntime", "u8s8_saturates", "X64_QUANT_PRECISION"]


_TELEMETRY_OFF = False


def load_onnxruntime():
    """onnxruntime, with its telemetry events disabled (once per process, for every session slsdk opens)."""
    global _TELEMETRY_OFF
    try:
        import onnxruntime as ort  # heavy optional package
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
    features = _NUMPY_CPU_FEATURES
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

    @classmethod
    def for_bundle(cls, bundle, threads: int = 0) -> "OnnxRuntimeBackend":
        """The bundle's .onnx/.ort file; warns where an int8 .ort file may saturate on this CPU."""
        opened = super().for_bundle(bundle, threads)
        if opened.x64_quant_precision and bundle.manifest.precision == "int8" and bundle.model_path.suffix == ".ort":
            # an ORT-format file is loaded as saved: onnxruntime's uint8 rewrite does not run on it
            warnings.warn(f"{bundle.root}: an int8 .ort file on an x86 CPU without VNNI: onnxruntime's exact-kernel "
                          "rewrite (session.x64quantprecision) does not apply to ORT-format files, so full-range int8 "
                          "weights may saturate here (ARM phones and VNNI CPUs are exact); serve the model's .onnx "
                          "bundle on this CPU", RuntimeWarning, stacklevel=3)
        return opened
