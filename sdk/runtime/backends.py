"""The serving side of every backend: the ``Backend`` base, opening a bundle or a checkpoint, streaming steps.

Serving (``slsdk.Recognizer``), conversion parity (``slsdk.convert``), int8 calibration, ``slsdk bench`` and the
demos all run models through this module: named numpy inputs in, named numpy outputs out, the names from the
bundle manifest's ``streaming`` section. The backend classes live with their toolchains
(``slsdk.toolchains.<name>.backend``); which one runs a bundle is its target's provider (``Target.toolchain`` in
``slsdk.targets``), resolved on use, so opening an ONNX bundle loads no torch. Where a target cannot run on this
machine, ``open_backend`` says why (the table's ``not_here``). :class:`StreamingStep` carries a streaming
model's state from chunk to chunk; :func:`run_video` runs a whole preprocessed video (chunked for streaming
models, at once for offline ones).

Only the torch backend touches the models (``slsdk.models``), and only when a checkpoint is opened with it
(:func:`open_checkpoint`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from slsdk.bundle import StreamingSpec
from slsdk.errors import SlsdkError
from slsdk.preprocess import chunk_video, output_frames
from slsdk.targets import get_target
from slsdk.toolchains import PROVIDERS, get_provider, resolve

__all__ = ["Backend", "BackendError", "ANY_BATCH", "backend_names", "backend_class", "open_backend", "opens_checkpoint",
           "open_checkpoint",
           "StreamingStep", "run_video", "default_threads"]


ANY_BATCH = 1 << 20   # ``Backend.max_batch`` of a backend that takes any batch (torch; an ONNX file's free axis)


class BackendError(SlsdkError, RuntimeError):
    """A backend cannot run this bundle (mismatch, missing package, unsupported platform)."""


class Backend:
    """One loaded model. ``run(inputs)`` -> outputs, both dicts keyed by the manifest's tensor names.

    Batches (``Recognizer.decode_streams`` stacks several streams' chunks and states along axis 0 of every input):
    ``max_batch`` is the most streams one call takes (1: a batch-1 file; the bundle's ``streaming.max_batch``),
    ``batch_sizes`` the only sizes it takes where the file has fixed ones (ExecuTorch methods; the bundle's
    ``streaming.batch_sizes``), None where any size up to ``max_batch`` runs. ``batch_inputs``: ``max_batch > 1``.
    """

    name = "base"
    max_batch = 1
    batch_sizes: tuple[int, ...] | None = None
    thread_safe = False  # several threads may call run() at once (else the recognizer serialises calls)

    @property
    def batch_inputs(self) -> bool:
        """Whether one call takes several streams (stacked along axis 0)."""
        return self.max_batch > 1

    def __init__(self, input_names: list[str], output_names: list[str]):
        self.input_names, self.output_names = list(input_names), list(output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _check_inputs(self, inputs: dict) -> None:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BackendError(f"{self.name}: missing inputs {missing} (the model takes {self.input_names})")

    @classmethod
    def for_bundle(cls, bundle, threads: int = 0) -> "Backend":
        """Open a loaded ``Bundle``'s model file (a toolchain's backend may check what its format needs)."""
        ins, outs = _io_names(bundle.manifest)
        return cls(bundle.model_path, ins, outs, threads=threads)


def _io_names(manifest) -> tuple[list[str], list[str]]:
    return ([io.name for io in manifest.streaming.inputs], [io.name for io in manifest.streaming.outputs])


def backend_names() -> list[str]:
    """Every registered backend's name (what ``--backend`` accepts), one per toolchain provider."""
    return [p.backend_name for p in PROVIDERS.values()]


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name`` (its toolchain's serving module imported on use)."""
    for p in PROVIDERS.values():
        if p.backend_name == name:
            return resolve(p.backend)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")


def open_backend(bundle, backend: str | None = None, threads: int = 0,
                 providers: str | list[str] | None = None) -> Backend:
    """Open the backend for a loaded ``Bundle`` (its target's provider's, unless ``backend`` names one); a
    bundle/backend mismatch or a platform that cannot run the target is a :class:`BackendError` saying why.
    ``providers``: onnxruntime execution providers in order of preference (``"tensorrt,cuda,cpu"``), for the
    backends that take them (``takes_providers``: onnxruntime); a missing one is a BackendError naming those
    available and what to install."""
    m = bundle.manifest
    t = get_target(m.target)
    serving = get_provider(t.toolchain)
    name = backend or serving.backend_name
    chosen = backend_class(name)
    if chosen is not resolve(serving.backend):
        usage = getattr(chosen, "usage", "")
        raise BackendError(f"{bundle.root}: a {m.target!r} bundle cannot run on the {name!r} backend; "
                           f"use {serving.backend_name}" + (f" ({usage})" if usage else ""))
    if not t.can_run_here:
        raise BackendError(f"{bundle.root}: {t.not_here}")
    if providers is not None:
        if not getattr(chosen, "takes_providers", False):
            raise BackendError(f"{bundle.root}: --providers selects onnxruntime execution providers; the {name!r} "
                               f"backend of this {m.target!r} bundle takes none")
        return chosen.for_bundle(bundle, threads=threads, providers=providers)
    return chosen.for_bundle(bundle, threads=threads)


def _checkpoint_provider(path: str | os.PathLike, backend: str | None = None):
    for p in PROVIDERS.values():
        if p.checkpoint_suffix and (backend == p.backend_name or Path(path).suffix == p.checkpoint_suffix):
            return p
    return None


def opens_checkpoint(path: str | os.PathLike, backend: str | None = None) -> bool:
    """Whether ``path`` is opened as a checkpoint (``backend`` names a checkpoint backend, or the file has its
    suffix) rather than loaded as a bundle."""
    return _checkpoint_provider(path, backend) is not None


def open_checkpoint(path: str | os.PathLike, threads: int = 0, backend: str | None = None):
    """``(manifest, backend)`` for a student checkpoint, run eagerly (the checkpoint provider's backend: torch):
    the one door from serving to ``slsdk.models`` (imported only here, only when a checkpoint is opened)."""
    provider = _checkpoint_provider(path, backend) or (None if backend else next(
        (p for p in PROVIDERS.values() if p.checkpoint_suffix), None))
    if provider is None:
        raise BackendError(f"{path}: no registered backend opens checkpoints"
                           + (f" under the name {backend!r}" if backend else ""))
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
    return manifest, resolve(provider.backend)(model.export_module(), ins, outs, threads=threads)


class StreamingStep:
    """A streaming model's chunk step over a backend: frames + carried state in, log-probs out.

    ``streaming`` is the manifest's ``streaming`` section (tensor names, state names and shapes).
    """

    def __init__(self, backend: Backend, streaming: StreamingSpec | Mapping):
        streaming = streaming_spec(streaming)
        self.backend = backend
        self.frames_input = streaming.inputs[0].name
        self.logits_output = streaming.outputs[0].name
        self.state_spec = [(st.input, st.output, tuple(st.shape)) for st in streaming.state]
        state_inputs = {st.input for st in streaming.state}
        # the data inputs before the state (a fusion model: frames and landmarks)
        self.data_inputs = [i.name for i in streaming.inputs if i.name not in state_inputs]
        self.chunk = streaming.chunk_frames

    def initial_state(self) -> dict[str, np.ndarray]:
        return {i: np.zeros(shape, np.float32) for i, _, shape in self.state_spec}

    def __call__(self, chunk, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """``chunk`` float32 ``[B, C, 3, S, S]`` (B streams, each state ``[B, ...]``; a model with several data
        inputs takes a mapping ``{input name: [B, C, ...]}``) -> (log-probs ``[B, C/stride, V]``, the state after
        the chunk)."""
        outs = self.backend.run(self.inputs(chunk, state))
        return outs[self.logits_output], {i: outs[o] for i, o, _ in self.state_spec}

    def inputs(self, chunk, state: dict) -> dict[str, np.ndarray]:
        if isinstance(chunk, Mapping):
            missing = [n for n in self.data_inputs if n not in chunk]
            if missing:
                raise ValueError(f"the model takes {self.data_inputs}; the chunk lacks {missing}")
            return {**{n: chunk[n] for n in self.data_inputs}, **state}
        if len(self.data_inputs) > 1:
            raise ValueError(f"the model takes {self.data_inputs}: give the chunk as a mapping of them")
        return {self.frames_input: chunk, **state}


def streaming_spec(streaming: StreamingSpec | Mapping) -> StreamingSpec:
    """The manifest's typed ``streaming`` section (a JSON object of it is read as one)."""
    return streaming if isinstance(streaming, StreamingSpec) else StreamingSpec.from_dict(streaming)


def run_video(backend: Backend, streaming: StreamingSpec | Mapping, video: np.ndarray, on_step=None) -> np.ndarray:
    """Log-probs ``[T', V]`` of one preprocessed video ``[T, 3, S, S]`` (float32).

    Streaming models run chunk by chunk carrying state, the last chunk zero-padded, trimmed to
    ``ceil(T / output_stride)`` (what a phone gets); offline models take the whole video at once.
    ``on_step(inputs)`` (optional) sees every call's named inputs (int8 calibration records them).
    """
    streaming = streaming_spec(streaming)
    if isinstance(video, Mapping):   # several data inputs (a fusion model): each chunked alike
        return _run_inputs(backend, streaming, video, on_step)
    video = np.asarray(video, dtype=np.float32)
    if streaming.mode != "streaming":
        inputs = {streaming.inputs[0].name: video[None]}
        if on_step is not None:
            on_step(inputs)
        lp = backend.run(inputs)[streaming.outputs[0].name]
        return np.asarray(lp, np.float32).reshape(-1, lp.shape[-1])
    step = StreamingStep(backend, streaming)
    state = step.initial_state()
    outs = []
    for chunk in chunk_video(video, int(streaming.chunk_frames)):
        if on_step is not None:
            on_step(step.inputs(chunk, state))
        lp, state = step(chunk, state)
        outs.append(np.asarray(lp, np.float32).reshape(-1, lp.shape[-1]))
    return np.concatenate(outs)[: output_frames(len(video), int(streaming.output_stride))]


def _run_inputs(backend: Backend, streaming: StreamingSpec, video: Mapping, on_step=None) -> np.ndarray:
    """:func:`run_video` of a model with several data inputs: ``video`` maps each input name to its ``[T, ...]``
    (the same T), chunked and zero-padded alike."""
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in video.items()}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"the inputs have different frame counts: {lengths}")
    if streaming.mode != "streaming":
        raise ValueError("several data inputs are served by streaming models only")
    step = StreamingStep(backend, streaming)
    state = step.initial_state()
    chunks = {k: chunk_video(v, int(streaming.chunk_frames)) for k, v in arrays.items()}
    outs = []
    for i in range(len(next(iter(chunks.values())))):
        chunk = {k: c[i] for k, c in chunks.items()}
        if on_step is not None:
            on_step(step.inputs(chunk, state))
        lp, state = step(chunk, state)
        outs.append(np.asarray(lp, np.float32).reshape(-1, lp.shape[-1]))
    t = next(iter(lengths.values()))
    return np.concatenate(outs)[: output_frames(t, int(streaming.output_stride))]


def default_threads() -> int:
    """Threads for the backend: SLSDK_THREADS, else 0 (the runtime's own default)."""
    return int(os.environ.get("SLSDK_THREADS", "0"))
