"""The feed loop: a frame source streamed through a recognizer, one :class:`Update` per batch, optionally with a
reader thread ahead of it (``read_ahead``) and the front end on a thread of its own (``pipeline``).

``Recognizer.recognize``, ``recognize_video``, ``slsdk run`` and ``demos/webcam.py`` all use this loop.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from slsdk.data.video import VideoError
from slsdk.runtime.results import Update
from slsdk.runtime.sources import LIVE_MAX_GAP_S, BackgroundReader
from slsdk.runtime.stream import Stream


def recognize(rec, source, *, stream: Stream | None = None, batch_frames: int | None = None, resample: bool = True,
              reset_at_endpoints: bool = False, max_seconds: float | None = None, keep_frames: bool = False,
              name: str | None = None, read_ahead: int = 0, pipeline: bool = False) -> Iterator[Update]:
    """``Recognizer.recognize``: stream ``source`` through ``rec`` (see there). A stream made here (no ``stream``)
    gives its hand tracker back to the recognizer when the loop ends."""
    own = stream is None
    s = stream or rec.create_stream(max_gap=LIVE_MAX_GAP_S if getattr(source, "live", False) else None)
    try:
        yield from _feed(s, rec.chunk, source, batch_frames, resample, reset_at_endpoints, max_seconds, keep_frames,
                         name, read_ahead, pipeline)
    finally:
        if own:
            s.close()


def _feed(s: Stream, chunk: int, source, batch_frames, resample, reset_at_endpoints, max_seconds, keep_frames,
          name, read_ahead, pipeline) -> Iterator[Update]:
    batch_frames = int(batch_frames or chunk)
    printed = 0
    t_start = time.perf_counter()
    reader = None
    if read_ahead and not getattr(source, "live", False):
        reader = BackgroundReader(source, capacity=int(read_ahead), policy="block")

    def update(final: bool) -> Update:
        nonlocal printed
        res = s.result()
        upto = len(res.events) if final else len(res.committed)
        events, printed = res.events[printed:upto], upto
        frames = (list(zip(s.last_frames, s.last_crops, s.last_times)) if keep_frames and s.last_crops
                  else [])
        u = Update(s, res, events, None, frames, final)
        if (final or (reset_at_endpoints and s.is_endpoint())) and res.glosses:
            u.utterance = res
        if reset_at_endpoints and not final and u.utterance is not None:
            s.reset()
            printed = 0
        return u

    batches = _batches(reader if reader is not None else source, s, batch_frames,
                       resample and getattr(source, "timed", True), max_seconds, t_start)
    try:
        if pipeline and not keep_frames:
            yield from _pipelined(s, batches, update)
        else:
            for frames, times in batches:
                s.accept_frames(frames, timestamps=times)
                yield update(False)
    finally:
        batches.close()
        if reader is not None:
            reader.stop()
        if hasattr(source, "close"):
            source.close()
    if s.source_frames == 0:
        raise VideoError(f"{name or getattr(source, 'path', 'the source')}: no frames decoded")
    s.input_finished()
    s.wall_seconds += time.perf_counter() - t_start
    yield update(True)


def _pipelined(s: Stream, batches, update) -> Iterator[Update]:
    """The two-thread loop: a front-end thread crops and preprocesses (``accept_frames(decode=False)``), this
    thread runs every chunk that is ready and yields an update per round."""
    cond = threading.Condition()
    state = {"done": False, "error": None, "stop": False}

    def front():
        try:
            for frames, times in batches:
                s.accept_frames(frames, timestamps=times, decode=False)
                with cond:
                    cond.notify()
                if state["stop"]:
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised on the consumer's thread
            state["error"] = e
        finally:
            with cond:
                state["done"] = True
                cond.notify()

    t = threading.Thread(target=front, name="slsdk-front-end", daemon=True)
    t.start()
    try:
        while True:
            with cond:
                while not (state["done"] or s.ready):
                    cond.wait()
                done = state["done"]
            if s.ready:
                s.decode()
                yield update(False)
            elif done:
                break
    finally:
        state["stop"] = True
        t.join()
    error, state["error"] = state["error"], None  # no cycle (traceback -> front's frame -> state) keeps the stream
    if error is not None:
        try:
            raise error
        finally:
            del error


def _batches(source, s: Stream, batch_frames: int, resample: bool, max_seconds: float | None, t_start: float):
    """``(frames [N,H,W,3], timestamps or None)`` batches of a frame source, as the feed loop feeds them (the time
    spent waiting for the source is added to ``s.source_seconds``). ``resample``: False when the frames are to be
    used as they are (asked for, or a source whose times are made up, such as a frame folder)."""
    batch: list[np.ndarray] = []
    times: list[float | None] = []
    timed, last_t = None, None
    it = iter(source)
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        s.source_seconds += time.perf_counter() - t0
        if item is not None:
            frame, t = item if isinstance(item, tuple) else (item, None)
            if timed is None:
                timed = resample and t is not None
            if timed and t is None:  # a frame without a timestamp amid timed ones: one model frame later
                t = last_t + 1.0 / s.fps if last_t is not None else 0.0
            batch.append(frame)
            times.append(t)
            last_t = t
        stop = item is None or (max_seconds is not None and time.perf_counter() - t_start > max_seconds)
        if len(batch) >= batch_frames or (stop and batch):
            yield np.stack(batch), (times if timed else None)
            batch, times = [], []
        if stop:
            return


__all__ = ["recognize"]
