"""The host runtime, with a thin sherpa-onnx-style API.

    rec = slsdk.Recognizer("bundles/student-onnx-fp32")
    s = rec.create_stream()
    s.accept_frames(frames)            # uint8 RGB [N, H, W, 3], any N, already at the manifest's fps
    s.accept_frames(frames, timestamps=ts)   # or at any rate: resampled to the manifest's fps by time
    rec.result(s).text                 # committed + partial glosses so far
    rec.is_endpoint(s); rec.reset(s)
    for u in rec.recognize(source): ...      # the feed loop over a frame source, one Update per batch
    slsdk.recognize_video(bundle, "clip.mp4")   # the same, in one call (resampled by the file's timestamps)

    # many streams, one model call per round (sherpa-onnx's decode_streams):
    for s, frames in zip(streams, batches):
        s.accept_frames(frames, decode=False)
    rec.decode_streams(streams)

Threads: a Recognizer may be shared by threads, a Stream may not (see :class:`Recognizer`).

Frames -> (resample to the manifest's fps) -> (hand crop) -> :mod:`slsdk.preprocess` as the manifest says ->
fixed-size chunks through the backend (:mod:`slsdk.runtime.backends`), carrying the model's state tensors ->
streaming CTC decoder. The last partial chunk is zero-padded, as the torch model pads a whole video, so
streaming gives exactly the offline tokens. Event times count model frames at ``1 / fps`` seconds each: with
timestamps given, that is the source's clock (from its first frame).
"""
from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slsdk.preprocess import Preprocess
from slsdk.runtime.backends import Backend, BackendError, StreamingStep, open_backend, open_checkpoint
from slsdk.runtime.crop import preparation_mismatch
from slsdk.runtime.hands import CropStats
from slsdk.runtime.sources import LIVE_MAX_GAP_S, FrameResampler


@dataclass
class Timing:
    """Seconds spent per stage (summed over the stream)."""

    crop: float = 0.0
    preprocess: float = 0.0
    model: float = 0.0
    decode: float = 0.0
    frames: int = 0
    chunks: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RecognitionResult:
    """Glosses decoded so far for one stream."""

    glosses: list[str]
    committed: list[str]
    partial: list[str]
    events: list[dict]
    is_final: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.glosses)

    def to_dict(self) -> dict:
        return {"glosses": self.glosses, "committed": self.committed, "partial": self.partial,
                "events": self.events, "is_final": self.is_final}


@dataclass
class Update:
    """What one batch of :meth:`Recognizer.recognize` changed.

    ``events``: gloss events committed since the previous update (all remaining ones in the final update);
    ``utterance``: the result of an utterance an endpoint just closed (then the stream was reset), or the last
    one in the final update; ``frames``: ``(frame, CropResult, time_s)`` of the frames this batch cropped
    (with ``keep_frames``); ``final``: the source is exhausted and the stream finished.
    """

    stream: "Stream"
    result: RecognitionResult
    events: list[dict]
    utterance: RecognitionResult | None
    frames: list
    final: bool

    @property
    def time_s(self) -> float:
        """The stream's clock: model frames so far at the manifest's fps."""
        return self.stream.frame_index / self.stream._rec.fps


class TrainServeSkewWarning(UserWarning):
    """The recognizer feeds the model frames unlike those it was trained on (crop policy or box geometry)."""


class Stream:
    """One video or camera stream: buffered frames, the model state, the decoder state and its hand tracker.

    Not thread-safe: feed a stream from one thread at a time.
    """

    def __init__(self, rec: "Recognizer", max_gap: float | None = None):
        self._rec = rec
        self._buffer: list[np.ndarray] = []  # preprocessed frames [3, S, S] not yet run
        self._buffer_lock = threading.Lock()  # the pipelined feed loop fills the buffer on its front-end thread
        self.state = rec._initial_state()
        self.decoder = rec._new_decoder()
        self.timing = Timing()
        self.crop_stats = CropStats(keep_boxes=False)  # counts only: bounded memory on long streams
        self.cropper = None  # this stream's hand tracker (taken from the recognizer's pool on the first frame)
        self.frame_index = 0  # model frames so far, at the manifest's fps (the model's clock)
        self.source_frames = 0  # frames given to accept_frames
        # time Recognizer.recognize waited for the source's next frame: its decoding, or with read_ahead only the
        # stalls of the reader thread; wall_seconds: the whole feed loop
        self.source_seconds = 0.0
        self.wall_seconds = 0.0
        self.resampler = FrameResampler(rec.fps, max_gap=max_gap)
        self._held: np.ndarray | None = None  # latest timed frame: released once the next frame's time is known
        self._timed: bool | None = None  # whether this stream's frames come with timestamps
        self.finished = False
        # the frames the latest accept_frames / input_finished call cropped (for overlays): crop results, the
        # source frames and their times on the model's clock (s)
        self.last_crops: list = []
        self.last_frames: list = []
        self.last_times: list = []

    def accept_frames(self, frames, timestamps=None, decode: bool = True) -> None:
        """Feed RGB uint8 frames ([N, H, W, 3] array or a list of [H, W, 3]); runs every full chunk.

        ``timestamps``: the frames' presentation times in seconds (one each, increasing, any origin). The
        frames are then resampled to the manifest's ``fps`` (:class:`~slsdk.runtime.sources.FrameResampler`:
        nearest frame by presentation time, so a faster source loses frames and a slower one repeats them);
        the latest frame waits for the next one's time or the end of input. Without timestamps the frames are
        taken to be at the manifest's rate already and each is one model frame. A stream takes one or the
        other throughout. ``decode=False``: crop and preprocess only; full chunks wait for
        ``Recognizer.decode_streams`` (``Recognizer.is_ready`` says when one is waiting).
        """
        if self.finished:
            raise RuntimeError("stream is finished; call recognizer.reset(stream) to start again")
        self._rec._accept(self, frames, timestamps, decode)

    def feed(self, frames, timestamps=None) -> RecognitionResult:
        """``accept_frames`` then the result so far (one step of the feed loop)."""
        self.accept_frames(frames, timestamps)
        return self._rec.result(self)

    @property
    def resample_stats(self) -> dict | None:
        """How the frames were resampled (policy, source fps, frames dropped / repeated); None without timestamps."""
        return self.resampler.stats() if self._timed else None

    def input_finished(self) -> None:
        """No more frames: run the zero-padded last chunk and commit everything."""
        self._rec._finish(self)

    def close(self) -> None:
        """Give the stream's hand tracker back to the recognizer (for the next stream)."""
        cropper, self.cropper = self.cropper, None
        self._rec._give_back_cropper(cropper)

    def _take_chunk(self) -> np.ndarray:
        with self._buffer_lock:
            frames = self._buffer[: self._rec.chunk]
            del self._buffer[: self._rec.chunk]
        return np.stack(frames)


class Recognizer:
    """Streaming recognizer for a bundle (directory or .zip) or, with backend "torch", a student checkpoint.

    Threads: a Recognizer may be shared by threads, a Stream may not. Each stream carries its own model
    state, decoder and hand tracker; the recognizer holds only the loaded model, which several threads may
    call at once on ONNX Runtime and torch (their sessions are thread-safe) and one at a time, behind a lock,
    on ExecuTorch and Core ML. Feed each stream from one thread at a time (``decode_streams`` counts as
    feeding every stream it is given).
    """

    def __init__(self, bundle: str | Path, backend: str | None = None, crop: str | None = None,
                 hand_model: str | Path | None = None, decoder: str = "greedy", beam: int = 8,
                 threads: int = 0, endpoint=None):
        path = Path(bundle)
        if backend == "torch" or path.suffix == ".pt":
            self.manifest, self.backend = open_checkpoint(path, threads)
        else:
            from slsdk.bundle import load_bundle

            self.bundle = load_bundle(path)
            self.manifest = self.bundle.manifest
            self.backend: Backend = open_backend(self.bundle, backend, threads=threads)
        m = self.manifest
        if m.streaming.get("mode", "streaming") != "streaming":
            raise BackendError(f"{path}: an offline (teacher) bundle has no streaming step; "
                               "convert the student for streaming recognition")
        self.vocab = list(m.vocab)
        self.chunk = int(m.streaming["chunk_frames"])
        self.stride = int(m.streaming["output_stride"])
        self.fps = float(m.fps)
        self.frame_shift = self.stride / self.fps
        self.size = (int(m.input["height"]), int(m.input["width"]))
        # the manifest's preprocessing (slsdk.preprocess): shorter side to input.resize_shorter, centre crop,
        # normalise with the manifest's mean/std
        try:
            self._pre = Preprocess.from_input_spec(m.input, where=str(path))
        except ValueError as e:
            raise BackendError(str(e)) from None
        self.resize_shorter = self._pre.resize_shorter
        self._step = StreamingStep(self.backend, m.streaming)
        self.frames_input = self._step.frames_input
        self.logits_output = self._step.logits_output
        self._lock = None if getattr(self.backend, "thread_safe", False) else threading.Lock()
        self.decoder_kind, self.beam, self.endpoint = decoder, beam, endpoint
        if decoder not in ("greedy", "beam"):
            raise ValueError(f"decoder must be 'greedy' or 'beam', got {decoder!r}")
        crop_cfg = dict(m.crop)
        if crop is not None:
            crop_cfg["policy"] = crop
        self.crop_policy = crop_cfg.get("policy", "full")
        if self.crop_policy not in ("full", "hands"):
            raise ValueError(f"crop must be 'hands' or 'full', got {self.crop_policy!r}")
        self._crop_cfg, self._hand_model = crop_cfg, hand_model
        # train/serve skew: the training data's `slsdk data prepare` settings (manifest.extra) against this crop
        preparation = (m.extra or {}).get("preparation")
        self.skew = preparation_mismatch(preparation, crop_cfg, self._pre.resize_shorter)
        if crop is not None and not preparation and crop != m.crop.get("policy", "full"):
            self.skew.append(f"crop.policy: the bundle says {m.crop.get('policy', 'full')!r}, served {crop!r}")
        if self.skew:
            warnings.warn(f"{path}: the model was trained on other frames than it is served: "
                          + "; ".join(self.skew), TrainServeSkewWarning, stacklevel=2)
        self._idle_croppers: list = []
        self._pool_lock = threading.Lock()
        self.cropper = self._take_cropper() if self.crop_policy == "hands" else None  # resolves the model now
        if self.cropper is not None:
            self._idle_croppers.append(self.cropper)

    # -- sherpa-style API -------------------------------------------------------------------------------
    def create_stream(self, max_gap: float | None = None) -> Stream:
        """A new stream. ``max_gap`` (seconds, for live sources such as cameras): timed frames further apart
        than this are not bridged with repeated frames (see ``FrameResampler``); files leave it None."""
        return Stream(self, max_gap=max_gap)

    def result(self, stream: Stream) -> RecognitionResult:
        r = stream.decoder.result()
        name = self.vocab.__getitem__
        events = [{"gloss": name(e.id), "start": round(e.start, 4), "end": round(e.end, 4),
                   "confidence": round(float(e.confidence), 4)} for e in r.events]
        return RecognitionResult([name(i) for i in r.tokens], [name(i) for i in r.committed_tokens],
                                 [name(i) for i in r.partial_tokens], events, r.is_final)

    def is_endpoint(self, stream: Stream) -> bool:
        return stream.decoder.is_endpoint()

    def reset(self, stream: Stream) -> None:
        """Start a new utterance on the same stream (time keeps running; model state is kept)."""
        stream.decoder.reset()
        if stream.finished:
            stream.resampler.restart()  # frames after input_finished start a new segment of the clock
        stream.finished = False

    def is_ready(self, stream: Stream) -> bool:
        """Whether the stream holds a full chunk the model has not run yet (``accept_frames(decode=False)``)."""
        return len(stream._buffer) >= self.chunk

    def decode_stream(self, stream: Stream) -> None:
        """Run every ready chunk of one stream."""
        self.decode_streams([stream])

    def decode_streams(self, streams) -> None:
        """Run the ready chunks of several streams, one model call per round for all of them.

        With a model file that takes a batch (every input's first dimension free: torch, an ONNX file exported
        with a batch axis), the streams' chunks and their state tensors are stacked along axis 0 into one call;
        a fixed-batch file (the ONNX / ExecuTorch students slsdk writes take batch 1) runs them one after the
        other. Either way each stream gets exactly the log-probs it would get alone.
        """
        streams = list(streams)
        if len({id(s) for s in streams}) != len(streams):
            raise ValueError("decode_streams: a stream is listed twice")
        while True:
            ready = [s for s in streams if self.is_ready(s)]
            if not ready:
                return
            chunks = [s._take_chunk() for s in ready]
            if len(ready) > 1 and self.backend.batch_inputs:
                t0 = time.perf_counter()
                state = {k: np.concatenate([s.state[k] for s in ready]) for k in ready[0].state}
                lp, new = self._run_step(np.stack(chunks), state)
                dt = (time.perf_counter() - t0) / len(ready)
                for b, s in enumerate(ready):
                    s.state = {k: v[b:b + 1] for k, v in new.items()}
                    self._decode(s, lp[b], dt)
            else:
                for s, c in zip(ready, chunks):
                    self._run_chunk(s, c)

    def recognize(self, source, *, stream: Stream | None = None, batch_frames: int | None = None,
                  resample: bool = True, reset_at_endpoints: bool = False, max_seconds: float | None = None,
                  keep_frames: bool = False, name: str | None = None, read_ahead: int = 0,
                  pipeline: bool = False) -> Iterator[Update]:
        """The one feed loop: stream a frame source through the recognizer, one :class:`Update` per batch.

        ``source``: an iterable of ``(frame, timestamp_s)`` pairs (``VideoFileSource``, ``CameraSource``,
        ``iter_video_timed``; a timestamp may be None) or of bare frames; a ``live`` source (a camera) skips
        gaps instead of bridging them, and ``close()`` is called at the end. Frames go in ``batch_frames`` at a
        time (default one chunk: the lowest latency the model allows), resampled to the manifest's fps by their
        timestamps (``resample=False`` feeds every frame as one model frame). ``reset_at_endpoints``: an
        endpoint closes the utterance (``Update.utterance``) and the stream starts a new one, as a live caption
        does. The last update (``final``) comes after ``input_finished``. ``recognize_video``, ``slsdk run``
        and ``demos/webcam.py`` all use this loop. ``name``: what errors call the source (default its ``path``).

        Threads (the frames and results are the same either way; only the timing changes):
        ``read_ahead`` (files): decode up to that many frames ahead on a reader thread (``BackgroundReader``,
        blocking, nothing dropped); a live source (a camera) has its own reader thread. ``pipeline``: resampling,
        hand cropping and preprocessing run on a front-end thread, the model and the CTC decoder on this one, so
        MediaPipe (which releases the GIL while it detects) overlaps the model. Ignored with ``keep_frames``
        (the overlay frames are collected in turn). A stream this loop made itself (no ``stream``) gives its hand
        tracker back to the recognizer when the loop ends (``Stream.close``).
        """
        own = stream is None
        s = stream or self.create_stream(max_gap=LIVE_MAX_GAP_S if getattr(source, "live", False) else None)
        try:
            yield from self._recognize(s, source, batch_frames, resample, reset_at_endpoints, max_seconds,
                                       keep_frames, name, read_ahead, pipeline)
        finally:
            if own:
                s.close()

    def _recognize(self, s: Stream, source, batch_frames, resample, reset_at_endpoints, max_seconds, keep_frames,
                   name, read_ahead, pipeline) -> Iterator[Update]:
        batch_frames = int(batch_frames or self.chunk)
        printed = 0
        t_start = time.perf_counter()
        reader = None
        if read_ahead and not getattr(source, "live", False):
            from slsdk.runtime.sources import BackgroundReader

            reader = BackgroundReader(source, capacity=int(read_ahead), policy="block")

        def update(final: bool) -> Update:
            nonlocal printed
            res = self.result(s)
            upto = len(res.events) if final else len(res.committed)
            events, printed = res.events[printed:upto], upto
            frames = (list(zip(s.last_frames, s.last_crops, s.last_times)) if keep_frames and s.last_crops
                      else [])
            u = Update(s, res, events, None, frames, final)
            if (final or (reset_at_endpoints and self.is_endpoint(s))) and res.glosses:
                u.utterance = res
            if reset_at_endpoints and not final and u.utterance is not None:
                self.reset(s)
                printed = 0
            return u

        batches = _batches(reader if reader is not None else source, s, batch_frames,
                           resample and getattr(source, "timed", True), max_seconds, t_start)
        try:
            if pipeline and not keep_frames:
                yield from self._pipelined(s, batches, update)
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
            from slsdk.data.video import VideoError

            raise VideoError(f"{name or getattr(source, 'path', 'the source')}: no frames decoded")
        s.input_finished()
        s.wall_seconds += time.perf_counter() - t_start
        yield update(True)

    def _pipelined(self, s: Stream, batches, update) -> Iterator[Update]:
        """``recognize``'s two-thread loop: a front-end thread crops and preprocesses (``accept_frames(decode=
        False)``), this thread runs every chunk that is ready and yields an update per round."""
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
                    while not (state["done"] or self.is_ready(s)):
                        cond.wait()
                    done = state["done"]
                if self.is_ready(s):
                    self.decode_stream(s)
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
    # -- internals ----------------------------------------------------------------------------------------
    def _take_cropper(self):
        if self.crop_policy != "hands":
            return None
        with self._pool_lock:
            if self._idle_croppers:
                c = self._idle_croppers.pop()
                c.reset_state()
                return c
        from slsdk.runtime.hands import CropConfig, HandCropper

        # crops come out square at the resize size, so a batch is one array op
        return HandCropper(CropConfig.from_dict(self._crop_cfg), model_path=self._hand_model,
                           size=self._pre.resize_shorter, keep_boxes=False)

    def _give_back_cropper(self, cropper) -> None:
        if cropper is not None:
            with self._pool_lock:
                self._idle_croppers.append(cropper)

    def _initial_state(self) -> dict[str, np.ndarray]:
        return self._step.initial_state()

    def _new_decoder(self):
        from slsdk.decode import BeamStream, GreedyStream

        kw = {"frame_shift": self.frame_shift}
        if self.endpoint is not None:
            kw["endpoint"] = self.endpoint
        return GreedyStream(**kw) if self.decoder_kind == "greedy" else BeamStream(beam=self.beam, **kw)

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, H, W, 3] -> float32 [N, 3, S, S]: :mod:`slsdk.preprocess` with the manifest's ``input``
        (shorter side to ``input.resize_shorter``, centre crop, normalise with the manifest's mean/std)."""
        return self._pre(np.asarray(frames))

    def _accept(self, stream: Stream, frames, timestamps=None, decode: bool = True) -> None:
        frames = _as_frames(frames)
        stream.last_crops, stream.last_frames, stream.last_times = [], [], []
        if not len(frames):
            return
        timed = timestamps is not None
        if stream._timed is None:
            stream._timed = timed
        elif stream._timed != timed:
            raise ValueError("a stream takes frames with timestamps or without them, not both: "
                             f"this one started {'with' if stream._timed else 'without'}")
        if not timed:
            stream.source_frames += len(frames)
            self._run_frames(stream, frames, None, decode)
            return
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(ts) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(ts)} timestamps")
        stream.source_frames += len(frames)
        keep, counts = [], []
        for f, t in zip(frames, ts):
            c = stream.resampler.push(t)
            if c:  # the held frame is final now: c output frames (0: dropped)
                keep.append(stream._held)
                counts.append(c)
            stream._held = f
        stream._held = np.array(stream._held, copy=True)  # not a view that keeps the caller's batch alive
        self._run_frames(stream, keep, counts, decode)

    def _run_frames(self, stream: Stream, frames, counts: list[int] | None, decode: bool = True) -> None:
        """Crop + preprocess ``frames`` (each once), repeat them ``counts`` times, run every full chunk."""
        if not len(frames):
            return
        t0 = time.perf_counter()
        if self.crop_policy == "hands":
            if stream.cropper is None:
                stream.cropper = self._take_cropper()
            crops = []
            index = stream.frame_index
            for i, f in enumerate(frames):
                t_model = index / self.fps
                res = stream.cropper.crop(f, int(round(t_model * 1000.0)))
                stream.crop_stats.add(res)
                crops.append(res.image)
                stream.last_crops.append(res)
                stream.last_frames.append(f)
                stream.last_times.append(t_model)
                index += counts[i] if counts is not None else 1
            frames = crops
        else:
            stream.crop_stats.frames += len(frames)
        t1 = time.perf_counter()
        x = self.preprocess(np.stack(frames) if isinstance(frames, list) else frames)
        if counts is not None and any(c != 1 for c in counts):
            x = np.repeat(x, counts, axis=0)  # a repeated frame is preprocessed once
        t2 = time.perf_counter()
        stream.frame_index += len(x)
        stream.timing.crop += t1 - t0
        stream.timing.preprocess += t2 - t1
        stream.timing.frames += len(x)
        with stream._buffer_lock:
            stream._buffer.extend(x)
        if decode:
            while len(stream._buffer) >= self.chunk:
                self._run_chunk(stream, stream._take_chunk())

    def _run_step(self, chunk: np.ndarray, state: dict):
        if self._lock is None:
            return self._step(chunk, state)
        with self._lock:
            return self._step(chunk, state)

    def _decode(self, stream: Stream, log_probs: np.ndarray, model_s: float) -> None:
        t1 = time.perf_counter()
        stream.decoder.accept(log_probs)
        stream.timing.model += model_s
        stream.timing.decode += time.perf_counter() - t1
        stream.timing.chunks += 1

    def _run_chunk(self, stream: Stream, chunk: np.ndarray, keep: int | None = None) -> None:
        t0 = time.perf_counter()
        lp, stream.state = self._run_step(chunk[None].astype(np.float32, copy=False), stream.state)
        self._decode(stream, lp[0] if keep is None else lp[0][:keep], time.perf_counter() - t0)

    def _finish(self, stream: Stream) -> None:
        stream.last_crops, stream.last_frames, stream.last_times = [], [], []
        if stream._held is not None:  # the last timed frame: now its share of the output frames is known
            held, stream._held = stream._held, None
            c = stream.resampler.finish()
            if c:
                self._run_frames(stream, [held], [c])
        while len(stream._buffer) >= self.chunk:  # chunks held back by accept_frames(decode=False)
            self._run_chunk(stream, stream._take_chunk())
        if stream._buffer:
            n = len(stream._buffer)
            pad = (-n) % self.stride  # the torch model pads a whole video to a multiple of the stride
            chunk = np.zeros((self.chunk, *stream._buffer[0].shape), np.float32)
            chunk[:n] = np.stack(stream._buffer)
            stream._buffer.clear()
            # run the full fixed-size chunk, keep only the steps that real (and stride-padding) frames make
            self._run_chunk(stream, chunk, keep=(n + pad) // self.stride)
        stream.decoder.finalize()
        stream.finished = True


def _batches(source, s: Stream, batch_frames: int, resample: bool, max_seconds: float | None, t_start: float):
    """``(frames [N,H,W,3], timestamps or None)`` batches of a frame source, as ``Recognizer.recognize`` feeds them
    (the time spent waiting for the source is added to ``s.source_seconds``). ``resample``: False when the frames
    are to be used as they are (asked for, or a source whose times are made up, such as a frame folder)."""
    batch: list[np.ndarray] = []
    times: list[float | None] = []
    timed, last_t = None, None
    fps = s._rec.fps
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
                t = last_t + 1.0 / fps if last_t is not None else 0.0
            batch.append(frame)
            times.append(t)
            last_t = t
        stop = item is None or (max_seconds is not None and time.perf_counter() - t_start > max_seconds)
        if len(batch) >= batch_frames or (stop and batch):
            yield np.stack(batch), (times if timed else None)
            batch, times = [], []
        if stop:
            return


def _as_frames(frames) -> np.ndarray | list:
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be RGB uint8 [N, H, W, 3], got shape {frames.shape}")
        return frames
    return [np.asarray(f) for f in frames]


@dataclass
class VideoRecognition:
    """`recognize_video`'s answer: glosses with times, crop statistics, stage timings.

    ``frames`` are model frames at the manifest's ``fps`` (after resampling), ``source_frames`` the frames
    decoded from the file, ``resample`` how one became the other (None when the frames were used as they are).
    ``overlay_frames``: ``(frame, CropResult, time_s)`` of the cropped frames (with ``keep_overlay``).
    """

    path: str
    result: RecognitionResult
    crop_stats: dict
    timing: dict
    frames: int
    fps: float
    overlay_frames: list = field(default_factory=list, repr=False)
    source_frames: int = 0
    resample: dict | None = None

    @property
    def real_time_factor(self) -> float:
        """Processing seconds per second of video (< 1: faster than real time)."""
        busy = sum(self.timing[k] for k in ("crop", "preprocess", "model", "decode"))
        return busy / (self.frames / self.fps) if self.frames else 0.0

    def to_dict(self) -> dict:
        return {"path": self.path, **self.result.to_dict(), "crop": self.crop_stats, "timing": self.timing,
                "frames": self.frames, "fps": self.fps, "source_frames": self.source_frames,
                "resample": self.resample, "real_time_factor": round(self.real_time_factor, 4)}


def recognize_video(bundle, path: str | Path, recognizer: Recognizer | None = None, batch_frames: int = 32,
                    keep_overlay: bool = False, resample: bool = True, read_ahead: int = 0,
                    pipeline: bool = False, **kwargs) -> VideoRecognition:
    """Recognise a whole video file or frame folder by streaming it through the bundle.

    A file's frames are resampled to the manifest's ``fps`` by their presentation times (nearest frame; see
    ``FrameResampler``), so a 30 fps clip feeds a 25 fps model 25 frames a second and event times are the
    file's. ``resample=False`` feeds every frame as one model frame instead. A frame folder has no timing:
    its frames are used as they are. The feed loop is :meth:`Recognizer.recognize` (``read_ahead``: frames
    decoded ahead on a reader thread, then ``timing["video_decode"]`` is only the time spent waiting for them;
    ``pipeline``: cropping on a front-end thread beside the model; ``timing["wall"]``: the whole loop).
    The file is decoded as the runtime's file source decodes it (shorter side capped at ``DECODE_MAX_SHORTER``
    in the decoder, as ``slsdk data prepare`` does for hands), so memory does not grow with the source size.
    """
    from slsdk.data.video import iter_video_timed
    from slsdk.runtime.sources import DECODE_MAX_SHORTER

    rec = recognizer or Recognizer(bundle, **kwargs)
    s = rec.create_stream()
    overlay = []
    try:
        for u in rec.recognize(iter_video_timed(path, max_shorter=DECODE_MAX_SHORTER), stream=s,
                               batch_frames=batch_frames, resample=resample, keep_frames=keep_overlay, name=str(path),
                               read_ahead=read_ahead, pipeline=pipeline):
            overlay.extend(u.frames)
    finally:
        s.close()
    timing = {"video_decode": s.source_seconds, **s.timing.to_dict(), "wall": s.wall_seconds}
    return VideoRecognition(str(path), rec.result(s), s.crop_stats.to_dict(), timing, s.frame_index, rec.fps,
                            overlay, source_frames=s.source_frames, resample=s.resample_stats)
