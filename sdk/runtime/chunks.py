"""The chunk runner: fixed-size chunks of preprocessed frames through a streaming model, carrying its state tensors.

A streaming model takes ``chunk_frames`` frames at a time; a stream's last partial chunk is zero-padded
(:func:`slsdk.preprocess.pad_chunk`, as the torch model pads a whole video) and only the log-prob frames its real
frames make are kept (:func:`slsdk.preprocess.output_frames`), so streaming gives exactly the offline tokens.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping

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
        # model calls so far by batch size (padding rows counted: a fixed-size file's call size)
        self.calls: Counter = Counter()
        self._count_lock = threading.Lock()

    def initial_state(self) -> dict[str, np.ndarray]:
        """The model's state tensors before the first chunk (zeros)."""
        return self.step.initial_state()

    def run(self, chunks: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """float32 ``[B, C, 3, S, S]`` (a fusion model: ``{input name: [B, C, ...]}``) with each state ``[B, ...]``
        -> (log-probs ``[B, C/stride, V]``, new state)."""
        with self._count_lock:
            self.calls[int(_first(chunks).shape[0])] += 1
        if self._lock is None:
            return self.step(chunks, state)
        with self._lock:
            return self.step(chunks, state)

    def run_one(self, chunk: np.ndarray, state: dict) -> tuple[np.ndarray, dict, float]:
        """One stream's full chunk ``[C, 3, S, S]``: (log-probs ``[C/stride, V]``, new state, seconds in the model)."""
        t0 = time.perf_counter()
        lp, state = self.run(_batch1(chunk), state)
        return lp[0], state, time.perf_counter() - t0

    def run_last(self, frames: np.ndarray, state: dict) -> tuple[np.ndarray, dict, float]:
        """A stream's last ``n < C`` frames, zero-padded to a chunk; keeps the log-prob frames the real frames make
        (the model pads the last stride group, as for a whole video)."""
        padded = ({k: pad_chunk(v, self.chunk) for k, v in frames.items()} if isinstance(frames, Mapping)
                  else pad_chunk(frames, self.chunk))
        lp, state, seconds = self.run_one(padded, state)
        return lp[:output_frames(num_frames(frames), self.stride)], state, seconds

    def run_streams(self, streams: list) -> None:
        """Run the ready chunks of several streams, as few model calls per round as the model file allows.

        A file that takes a batch (``backend.max_batch`` > 1) gets the streams' chunks and state tensors stacked
        along axis 0, split by :func:`batch_plan` (at most ``max_batch`` streams a call; a file with fixed sizes,
        ``backend.batch_sizes``, gets a call of the next size up, its extra rows zero chunks with zero state, when
        that is at most twice the streams); a batch-1 file runs them one after the other. Either way each stream
        gets exactly the log-probs it would get alone (the rows of a batch do not mix).
        """
        max_batch = int(getattr(self.backend, "max_batch", 1))
        sizes = getattr(self.backend, "batch_sizes", None)
        while True:
            ready = [s for s in streams if s.ready]
            if not ready:
                return
            chunks = [s.take_chunk() for s in ready]
            at = 0
            for rows, size in batch_plan(len(ready), max_batch, sizes):
                group, batch = ready[at:at + rows], chunks[at:at + rows]
                at += rows
                if size == 1:
                    lp, group[0].state, seconds = self.run_one(batch[0], group[0].state)
                    group[0].accept_log_probs(lp, seconds)
                    continue
                t0 = time.perf_counter()
                lps, states = run_stacked(self.run, [_batch1(c) for c in batch], [s.state for s in group], size)
                seconds = (time.perf_counter() - t0) / rows
                for s, lp, state in zip(group, lps, states):
                    s.state = state
                    s.accept_log_probs(lp, seconds)


def run_stacked(run, chunks: list, states: list, size: int) -> tuple[list, list]:
    """One batched call for several streams: their chunks ``[1, C, 3, S, S]`` and states (each ``[1, ...]``)
    stacked along axis 0, zero rows (zero chunk, zero state) up to ``size`` for a fixed-size file. ``run(chunks,
    state) -> (log-probs, state)`` (a :class:`ChunkRunner`'s or a ``StreamingStep``). Returns each stream's
    log-probs ``[C/stride, V]`` and new state; the zero rows' are dropped."""
    rows = len(chunks)
    x = _stack(chunks, size)
    state = {k: np.concatenate([st[k] for st in states]) for k in states[0]}
    if size > rows:
        state = {k: np.concatenate([v, np.zeros((size - rows, *v.shape[1:]), v.dtype)]) for k, v in state.items()}
    lp, new = run(x, state)
    return ([lp[b] for b in range(rows)], [{k: v[b:b + 1].copy() for k, v in new.items()} for b in range(rows)])


def _first(x):
    return next(iter(x.values())) if isinstance(x, Mapping) else x


def _batch1(chunk):
    """One stream's chunk ``[C, ...]`` as a batch of one ``[1, C, ...]`` float32 (a mapping: each input so)."""
    if isinstance(chunk, Mapping):
        return {k: _batch1(v) for k, v in chunk.items()}
    return chunk[None].astype(np.float32, copy=False)


def _stack(chunks: list, size: int):
    """Chunks ``[1, C, ...]`` stacked along axis 0, zero rows up to ``size``; chunks that are mappings of a model's
    data inputs (a fusion model's frames and landmarks) stack input by input."""
    if isinstance(chunks[0], Mapping):
        return {k: _stack([c[k] for c in chunks], size) for k in chunks[0]}
    x = np.concatenate(chunks).astype(np.float32, copy=False)
    if size > len(chunks):
        x = np.concatenate([x, np.zeros((size - len(chunks), *x.shape[1:]), np.float32)])
    return x


def num_frames(video) -> int:
    """Frames of a model input ``[T, ...]``, or of a mapping of them (a fusion model's, all of the same T)."""
    return len(next(iter(video.values()))) if isinstance(video, Mapping) else len(video)


def batch_plan(n: int, max_batch: int = 1, sizes=None) -> list[tuple[int, int]]:
    """How ``n`` ready streams go through a model: ``[(streams, call batch), ...]`` in order.

    ``sizes`` None: calls of ``min(rest, max_batch)`` streams. Fixed ``sizes`` (increasing, starting at 1): the
    smallest size that holds the rest when it is at most twice the rest (the extra rows padded), else the largest
    size that the rest fills.
    """
    out = []
    while n > 0:
        if not sizes:
            k = min(n, max(1, max_batch))
            out.append((k, k))
        else:
            up = next((b for b in sizes if b >= n), None)
            if up is not None and up <= 2 * n:
                k = n
                out.append((n, up))
            else:
                k = max((b for b in sizes if b <= n), default=1)
                out.append((k, k))
        n -= k
    return out


__all__ = ["ChunkRunner", "batch_plan", "run_stacked", "num_frames"]
