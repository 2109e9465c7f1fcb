"""The chunk runner: fixed-size chunks of preprocessed frames through a streaming model, carrying its state tensors.

A streaming model takes ``chunk_frames`` frames at a time; a stream's last partial chunk is zero-padded
(:func:`slsdk.preprocess.pad_chunk`, as the torch model pads a whole video) and only the log-prob frames its real
frames make are kept (:func:`slsdk.preprocess.output_frames`), so streaming gives exactly the offline tokens.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from slsdk.bundle import StreamingSpec
from slsdk.preprocess import output_frames, pad_chunk
from slsdk.runtime.backends import Backend, StreamingStep


class ChunkRunner:
    """A loaded streaming model's chunk step (``streaming``: the manifest's section), safe to share by threads.

    Backends whose sessions are thread-safe (ONNX Runtime, torch) are called by several threads at once; the
    others (ExecuTorch, Core ML) one at a time, behind a lock.
    """

    def __init__(self, backend: Backend, streaming: StreamingSpec):
        self.backend = backend
        self.step = StreamingStep(backend, streaming)
        self.chunk = int(streaming.chunk_frames)
        self.stride = int(streaming.output_stride)
        self._lock = None if getattr(backend, "thread_safe", False) else threading.Lock()

    def initial_state(self) -> dict[str, np.ndarray]:
        """The model's state tensors before the first chunk (zeros)."""
        return self.step.initial_state()

    def run(self, chunks: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """float32 ``[B, C, 3, S, S]`` with each state ``[B, ...]`` -> (log-probs ``[B, C/stride, V]``, new state)."""
        if self._lock is None:
            return self.step(chunks, state)
        with self._lock:
            return self.step(chunks, state)

    def run_one(self, chunk: np.ndarray, state: dict) -> tuple[np.ndarray, dict, float]:
        """One stream's full chunk ``[C, 3, S, S]``: (log-probs ``[C/stride, V]``, new state, seconds in the model)."""
        t0 = time.perf_counter()
        lp, state = self.run(chunk[None].astype(np.float32, copy=False), state)
        return lp[0], state, time.perf_counter() - t0

    def run_last(self, frames: np.ndarray, state: dict) -> tuple[np.ndarray, dict, float]:
        """A stream's last ``n < C`` frames, zero-padded to a chunk; keeps the log-prob frames the real frames make
        (the model pads the last stride group, as for a whole video)."""
        lp, state, seconds = self.run_one(pad_chunk(frames, self.chunk), state)
        return lp[:output_frames(len(frames), self.stride)], state, seconds

    def run_streams(self, streams: list) -> None:
        """Run the ready chunks of several streams, one model call per round for all of them.

        With a model that takes a batch (``backend.batch_inputs``) the streams' chunks and state tensors are
        stacked along axis 0; a fixed-batch model runs them one after the other. Either way each stream gets
        exactly the log-probs it would get alone.
        """
        while True:
            ready = [s for s in streams if s.ready]
            if not ready:
                return
            chunks = [s.take_chunk() for s in ready]
            if len(ready) > 1 and self.backend.batch_inputs:
                t0 = time.perf_counter()
                state = {k: np.concatenate([s.state[k] for s in ready]) for k in ready[0].state}
                lp, new = self.run(np.stack(chunks), state)
                seconds = (time.perf_counter() - t0) / len(ready)
                for b, s in enumerate(ready):
                    s.state = {k: v[b:b + 1] for k, v in new.items()}
                    s.accept_log_probs(lp[b], seconds)
            else:
                for s, c in zip(ready, chunks):
                    lp, s.state, seconds = self.run_one(c, s.state)
                    s.accept_log_probs(lp, seconds)


__all__ = ["ChunkRunner"]
