"""A quiet console: other libraries' warnings and logs kept off the terminal (``slsdk --verbose`` shows them).

What `slsdk` would otherwise print on stderr, and where each line comes from:

* torch's logging (``W1206 08:17:26 ... _registration.py:107] torchvision is not installed. Skipping ...`` from the
  ONNX exporter, ``... is an Enum subclass ...`` from torch.utils._pytree when torchao registers its enums): torch
  resets its own loggers when it loads, so the level is set through ``TORCH_LOGS=-all`` (errors only);
* torchao's logger (``Failed to load .../torchao/_C_*.so``: kernels built for another Python / CUDA);
* coremltools' logger (``scikit-learn version ... is not supported``, ``Torch version ... has not been tested
  with coremltools``, ``Failed to load _MLModelProxy`` on Linux) and its tqdm progress bars (``TQDM_DISABLE=1``);
* ExecuTorch, onnxscript / onnx_ir and the other loggers in ``NOISY_LOGGERS``, and Python warnings raised inside
  those packages (``NOISY_PACKAGES``);
* MediaPipe's native lines (TF Lite ``INFO: Created TensorFlow Lite XNNPACK delegate``, ``WARNING: ...``, absl /
  glog ``W0000 ... inference_feedback_manager.cc:121] ...``): C++ writes them to file descriptor 2 and no
  environment variable of this MediaPipe build turns them off, so the calls that print them run inside
  :func:`native_stderr`, which drops those lines and passes every other line on. glog's and TF's environment
  variables (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL``) are set too, for the builds that read them.

Every environment variable is set only where the user has not set it. Errors still show: loggers keep ERROR and
above, glog ``E``/``F`` lines pass, and nothing slsdk prints itself is touched (slsdk's own warnings print as one
``warning: MESSAGE`` line, without the source line). Call :func:`install` before those libraries load (the CLI's
callback and the demos' entry points do). Standard library only.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

__all__ = ["install", "is_quiet", "native_stderr", "is_native_noise", "ENV_DEFAULTS", "NOISY_LOGGERS",
           "NOISY_PACKAGES"]

# environment read by the libraries when they load (set only where the user has not set it)
ENV_DEFAULTS = {
    "TORCH_LOGS": "-all",            # torch's loggers: errors only (torch resets logger levels when it loads)
    "GLOG_minloglevel": "2",         # glog: errors only
    "TF_CPP_MIN_LOG_LEVEL": "2",     # TensorFlow / TF Lite C++: errors only
    "TQDM_DISABLE": "1",             # coremltools' pass-pipeline progress bars (slsdk's own bars are rich's)
    "KMP_WARNINGS": "0",             # Intel OpenMP's informational lines
}

# loggers of other libraries: ERROR and above only
NOISY_LOGGERS = ("torch", "torchao", "coremltools", "executorch", "onnxscript", "onnx_ir", "onnx", "onnxruntime",
                 "mediapipe", "absl", "tensorflow", "jax", "timm", "open_clip", "huggingface_hub", "urllib3", "PIL",
                 "matplotlib", "numba", "sklearn", "torchvision")

# Python warnings raised inside these packages are not shown
NOISY_PACKAGES = ("torch", "torchao", "coremltools", "executorch", "onnxscript", "onnx_ir", "onnx", "onnxruntime",
                  "mediapipe", "google.protobuf", "absl", "tensorflow", "timm", "open_clip", "huggingface_hub",
                  "sklearn", "torchvision", "PIL", "matplotlib", "numba", "pkg_resources", "setuptools",
                  "tokenizers", "transformers")

# warnings about other libraries, whatever module they are attributed to (a library's stacklevel may point at
# the caller)
_NOISY_MESSAGES = (r".*torch\.utils\._pytree\._register_pytree_node is deprecated",
                   r".*TypedStorage is deprecated", r".*has not been tested with coremltools",
                   r".*scikit-learn version .* is not supported", r".*torchvision is not installed",
                   r".*The given NumPy array is not writable")

# a native line of another library: glog / absl info and warning lines (E and F lines are errors: kept), TF Lite's
# INFO / WARNING lines, absl's notice before its logging is set up
_NATIVE_NOISE = re.compile(r"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] "
                           r"|INFO: |WARNING: |WARNING: All log messages before absl::InitializeLog\(\)"
                           r"|\[cpuinfo_utils\.cpp:\d+\] )")   # ExecuTorch's cpuinfo lines when its runtime loads

_state = {"installed": False, "quiet": False}
_native_lock = threading.RLock()


def is_quiet() -> bool:
    """Whether :func:`install` made the console quiet (False before it runs, and with ``verbose=True``)."""
    return _state["quiet"]


def is_native_noise(line: str) -> bool:
    """Whether ``line`` (one stderr line, without its newline) is another library's native info / warning line."""
    return bool(_NATIVE_NOISE.match(line))


def install(verbose: bool = False) -> None:
    """Silence other libraries' warnings and logs for this process (``verbose=True``: leave everything as it is).
    Call it before torch, coremltools, ExecuTorch, MediaPipe load; calling it again changes nothing."""
    if _state["installed"]:
        return
    _state["installed"] = True
    if verbose:
        return
    _state["quiet"] = True
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    root = logging.getLogger()
    if not root.handlers:   # a library's logging.basicConfig(level=INFO) would then do nothing
        root.addHandler(_StderrHandler(logging.WARNING))
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.ERROR:
            logger.setLevel(logging.ERROR)
    pkgs = "|".join(re.escape(p) for p in NOISY_PACKAGES)
    warnings.filterwarnings("ignore", module=rf"(?:{pkgs})(?:\.|$)")
    for message in _NOISY_MESSAGES:
        warnings.filterwarnings("ignore", message=message)
    _own_warnings_as_lines()


def _other_libraries_errors_only(record: logging.LogRecord) -> bool:
    """Another library's record passes at ERROR and above (a module may set its own logger's level, which the
    levels set on its package's logger do not override)."""
    noisy = record.name.split(".")[0] in NOISY_LOGGERS
    return record.levelno >= logging.ERROR or not noisy


class _StderrHandler(logging.StreamHandler):
    """Log records on the current ``sys.stderr`` (as ``logging.lastResort`` does), one ``LEVEL:name: message``
    line each."""

    def __init__(self, level):
        super().__init__()
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
        self.addFilter(_other_libraries_errors_only)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):   # StreamHandler.__init__ sets it: the current sys.stderr is used instead
        pass


def _slsdk_roots() -> tuple[str, ...]:
    """The folders of slsdk's packages (sdk/, convert/, quantize/, demos/ in a checkout; slsdk/ when installed)."""
    roots = {str(Path(__file__).resolve().parent)}
    for name in ("slsdk.convert", "slsdk.quantize", "slsdk.demos"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            roots.add(str(Path(mod.__file__).resolve().parent))
    return tuple(r + os.sep for r in roots)


def _own_warnings_as_lines() -> None:
    """slsdk's own warnings print as ``warning: MESSAGE`` (one line, no source line); any other warning that is
    still shown prints as Python prints it."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if str(Path(filename).resolve()).startswith(_slsdk_roots()) or category.__module__.startswith("slsdk"):
            out = file if file is not None else sys.stderr
            try:
                out.write(f"warning: {message}\n")
            except (OSError, ValueError, AttributeError):   # no stderr (pythonw) or closed: as Python does
                pass
            return
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


@contextmanager
def native_stderr():
    """Run the block with file descriptor 2 captured; afterwards, write back every captured line that is not
    another library's native info / warning line (:func:`is_native_noise`). For calls into C++ that print on
    stderr (MediaPipe, TF Lite). Does nothing unless the console is quiet (``slsdk --verbose`` shows all)."""
    if not _state["quiet"]:
        yield
        return
    with _native_lock:   # one capture at a time (fd 2 is the process's); nested blocks share the outer one
        if _state.get("capturing"):
            yield
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        saved = os.dup(2)
        _state["capturing"] = True
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError, AttributeError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                _state["capturing"] = False
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                kept = [ln for ln in text.splitlines() if ln.strip() and not is_native_noise(ln)]
                if kept:
                    os.write(2, ("\n".join(kept) + "\n").encode("utf-8", errors="replace"))
