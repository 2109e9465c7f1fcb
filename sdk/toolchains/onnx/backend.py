"""The onnxruntime backend: ``.onnx`` and ``.ort`` files (torch-free; onnxruntime imported on use).

On x86 CPUs without VNNI the session sets ``session.x64quantprecision`` so int8 models use onnxruntime's exact
U8U8 kernels (:func:`u8s8_saturates`).

Execution providers: by default TensorRT > CUDA > CPU, whichever this onnxruntime offers (onnxruntime falls back
quietly). An explicit, ordered list (``providers="tensorrt,cuda,cpu"``, ``slsdk run --providers``, or the
``SLSDK_ORT_PROVIDERS`` environment variable) is strict: a provider this onnxruntime lacks, or one that does not
start for the model (CUDA / cuDNN / TensorRT libraries missing), is a :class:`BackendError` of one line naming
what is available and what to install (:func:`parse_providers`, :func:`check_providers`).
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path

import numpy as np

from slsdk.runtime.backends import ANY_BATCH, Backend, BackendError

try:   # numpy's CPUID probe (numpy 2; numpy 1 names the module numpy.core)
    from numpy._core._multiarray_umath import __cpu_features__ as _NUMPY_CPU_FEATURES
except ImportError:
    try:
        from numpy.core._multiarray_umath import __cpu_features__ as _NUMPY_CPU_FEATURES
    except ImportError:
        _NUMPY_CPU_FEATURES = {}

__all__ = ["OnnxRuntimeBackend", "load_onnxruntime", "u8s8_saturates", "X64_QUANT_PRECISION", "PROVIDER_NAMES",
           "PROVIDERS_ENV", "parse_providers", "check_providers", "default_providers"]


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


# --------------------------------------------------------------------------------------- execution providers
PROVIDERS_ENV = "SLSDK_ORT_PROVIDERS"    # the default ordered list, as --providers takes it ("cuda,cpu")
PROVIDER_NAMES = {                       # short name -> onnxruntime's
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "azure": "AzureExecutionProvider",
}
_PACKAGE = {     # which onnxruntime build carries a provider (pip names)
    "CUDAExecutionProvider": "onnxruntime-gpu (pip uninstall onnxruntime; pip install onnxruntime-gpu; it needs "
                             "the CUDA and cuDNN libraries of its release)",
    "TensorrtExecutionProvider": "onnxruntime-gpu and NVIDIA TensorRT (pip uninstall onnxruntime; pip install "
                                 "onnxruntime-gpu tensorrt)",
    "ROCMExecutionProvider": "onnxruntime-rocm (AMD's build)",
    "MIGraphXExecutionProvider": "onnxruntime-migraphx (AMD's build)",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml (Windows)",
    "QNNExecutionProvider": "onnxruntime-qnn",
    "CoreMLExecutionProvider": "onnxruntime on macOS",
}


def _short(name: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda`` (what --providers takes); unknown names as they are."""
    return next((k for k, v in PROVIDER_NAMES.items() if v == name), name)


def parse_providers(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """An ordered list of onnxruntime provider names from ``"tensorrt,cuda,cpu"`` (short names, any case) or
    onnxruntime's own names (``CUDAExecutionProvider``); repeats dropped. Unknown names are a BackendError."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    full = {v.lower(): v for v in PROVIDER_NAMES.values()}
    out: list[str] = []
    for raw in items:
        name = str(raw).strip()
        if not name:
            continue
        key = name.lower()
        resolved = PROVIDER_NAMES.get(key) or full.get(key) or (name if name.endswith("ExecutionProvider") else None)
        if resolved is None:
            short = sorted(set(PROVIDER_NAMES) - {"trt", "directml"})
            raise BackendError(f"unknown onnxruntime execution provider {name!r}; use short names "
                               f"({', '.join(short)}) or onnxruntime's (CUDAExecutionProvider), in order of "
                               "preference, e.g. --providers cuda,cpu")
        if resolved not in out:
            out.append(resolved)
    if not out:
        raise BackendError(f"no execution provider in {spec!r}; e.g. --providers cuda,cpu")
    return out


def _install_hint(missing: list[str]) -> str:
    hints = list(dict.fromkeys(_PACKAGE[m] for m in missing if m in _PACKAGE))
    return f"; install {' / '.join(hints)}" if hints else ""


def check_providers(requested: list[str], available: list[str], version: str = "") -> None:
    """Refuse (one-line BackendError) providers this onnxruntime does not offer, naming those it does and the
    package that carries the missing ones (CUDA / TensorRT: onnxruntime-gpu)."""
    missing = [p for p in requested if p not in available]
    if missing:
        ort = f"onnxruntime {version}" if version else "this onnxruntime"
        raise BackendError(f"execution provider(s) {', '.join(_short(m) for m in missing)} ({', '.join(missing)}) "
                           f"not available in {ort}, which offers {', '.join(_short(a) for a in available) or 'none'}"
                           f"{_install_hint(missing)}")


def default_providers(available: list[str]) -> list[str] | None:
    """The ordered list from ``$SLSDK_ORT_PROVIDERS`` (strict), else None: TensorRT > CUDA > CPU as available."""
    spec = os.environ.get(PROVIDERS_ENV, "").strip()
    return parse_providers(spec) if spec else None


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
    """onnxruntime InferenceSession for .onnx and .ort; CUDA/TensorRT providers are used when installed.

    ``providers``: an ordered list (``"tensorrt,cuda,cpu"`` or onnxruntime's names), strict: each must be
    offered by this onnxruntime and start for the model. None: ``$SLSDK_ORT_PROVIDERS`` if set, else TensorRT >
    CUDA > CPU, whichever are offered.
    """

    name = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads at once
    takes_providers = True  # open_backend(providers=...) / slsdk run --providers apply

    def __init__(self, model_path: Path, input_names, output_names, threads: int = 0,
                 providers: str | list[str] | None = None):
        super().__init__(input_names, output_names)
        ort = load_onnxruntime()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        available = list(ort.get_available_providers())
        strict = providers is not None
        providers = parse_providers(providers) if strict else default_providers(available)
        if providers is None:
            preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in preferred if p in available]
        else:
            strict = True
            check_providers(providers, available, getattr(ort, "__version__", ""))
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
        dropped = [p for p in providers if p not in self.providers] if strict else []
        if dropped:   # offered, but it did not start (onnxruntime falls back to the next provider quietly)
            raise BackendError(f"{model_path}: execution provider(s) {', '.join(_short(p) for p in dropped)} are in "
                               f"this onnxruntime but did not start for this model (running on "
                               f"{', '.join(_short(p) for p in self.providers)}): check the CUDA / cuDNN / TensorRT "
                               "libraries its release needs are installed and on the library path")
        ins = {i.name: i for i in self.session.get_inputs()}
        if set(self.input_names) - set(ins):
            raise BackendError(f"{model_path}: model inputs {sorted(ins)} do not match the manifest's "
                               f"{self.input_names}")
        have_out = {o.name for o in self.session.get_outputs()}
        if set(self.output_names) - have_out:
            raise BackendError(f"{model_path}: model outputs {sorted(have_out)} do not match the manifest's "
                               f"{self.output_names}")
        # a symbolic (or unknown) first dimension on every input: several streams fit in one call (a bundle's
        # streaming.max_batch bounds it: for_bundle)
        free = all(ins[n].shape and not isinstance(ins[n].shape[0], int) for n in self.input_names)
        self.max_batch = ANY_BATCH if free else 1

    def run(self, inputs):
        self._check_inputs(inputs)
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        outs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outs))

    @classmethod
    def for_bundle(cls, bundle, threads: int = 0, providers: str | list[str] | None = None) -> "OnnxRuntimeBackend":
        """The bundle's .onnx/.ort file (``providers``: as the constructor takes them); warns where an int8 .ort
        file may saturate on this CPU."""
        m = bundle.manifest
        opened = cls(bundle.model_path, [io.name for io in m.streaming.inputs], [io.name for io in m.streaming.outputs],
                     threads=threads, providers=providers)
        # the batch the bundle declares (streaming.max_batch; absent: 1), within what the file's axis takes
        opened.max_batch = min(opened.max_batch, int(m.streaming.max_batch or 1))
        if opened.x64_quant_precision and bundle.manifest.precision == "int8" and bundle.model_path.suffix == ".ort":
            # an ORT-format file is loaded as saved: onnxruntime's uint8 rewrite does not run on it
            warnings.warn(f"{bundle.root}: an int8 .ort file on an x86 CPU without VNNI: onnxruntime's exact-kernel "
                          "rewrite (session.x64quantprecision) does not apply to ORT-format files, so full-range int8 "
                          "weights may saturate here (ARM phones and VNNI CPUs are exact); serve the model's .onnx "
                          "bundle on this CPU", RuntimeWarning, stacklevel=3)
        return opened
