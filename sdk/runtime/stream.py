"""One video or camera stream of a :class:`~slsdk.runtime.recognizer.Recognizer`: its front end (resampler, held
frame, hand tracker), the preprocessed frames waiting for a full chunk, the model's state tensors, the CTC decoder
and the stage timings. Not thread-safe: feed a stream from one thread at a time.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from slsdk.runtime.chunks import ChunkRunner
from slsdk.runtime.frontend import FrontEnd
from slsdk.runtime.landmark_frontend import FusionFrontEnd, LandmarkFrontEnd
from slsdk.runtime.results import RecognitionResult, Timing


class Stream:
    """One stream's state, made by ``Recognizer.create_stream``.

    ``max_gap`` (seconds, for live sources such as cameras): timed frames further apart than this are not
    bridged with repeated frames (see ``FrameResampler``); files leave it None. A landmark bundle's stream turns
    frames into landmarks (:mod:`~slsdk.runtime.landmark_frontend`); ``look_ahead`` (files) normalises them as the
    whole recording is normalised, holding frames back while a hand has not been seen, else causally.
    """

    def __init__(self, rec, max_gap: float | None = None, look_ahead: bool = False):
        self.fps = rec.fps
        self.vocab = rec.vocab
        self.runner: ChunkRunner = rec.runner
        self.state = self.runner.initial_state()  # the model's state tensors, carried from chunk to chunk
        self.decoder = rec.new_decoder()
        self.timing = Timing()
        landmarkers = getattr(rec, "landmarkers", None)   # a landmark bundle: frames -> landmarks, not pixels
        if landmarkers is None:
            self.frontend = FrontEnd(rec.fps, rec.preprocessor, rec.croppers, self.timing, max_gap=max_gap)
        elif getattr(rec, "fusion", False):   # a fusion bundle: the hand crop and the landmarks of each frame
            self.frontend = FusionFrontEnd(rec.fps, landmarkers, self.timing, rec.preprocessor, max_gap=max_gap,
                                           look_ahead=look_ahead, crops=rec.croppers is not None)
        else:
            self.frontend = LandmarkFrontEnd(rec.fps, landmarkers, self.timing, max_gap=max_gap,
                                             look_ahead=look_ahead)
        self._buffer: list[np.ndarray] = []  # preprocessed frames [3, S, S] not yet run
        self._buffer_lock = threading.Lock()  # the pipelined feed loop fills the buffer on its front-end thread
        # time Recognizer.recognize waited for the source's next frame: its decoding, or with read_ahead only the
        # stalls of the reader thread; wall_seconds: the whole feed loop
        self.source_seconds = 0.0
        self.wall_seconds = 0.0
        self.finished = False

    # -- frames in ------------------------------------------------------------------------------------------
    def accept_frames(self, frames, timestamps=None, decode: bool = True) -> None:
        """Feed RGB uint8 frames ([N, H, W, 3] array or a list of [H, W, 3]); runs every full chunk.

        ``timestamps``: the frames' presentation times in seconds (one each, increasing, any origin). The
        frames are then resampled to the manifest's ``fps`` (:class:`~slsdk.runtime.sources.FrameResampler`:
        nearest frame by presentation time, so a faster source loses frames and a slower one repeats them);
        the latest frame waits for the next one's time or the end of input. Without timestamps the frames are
        taken to be at the manifest's rate already and each is one model frame. A stream takes one or the
        other throughout. ``decode=False``: crop and preprocess only; full chunks wait for
        ``Recognizer.decode_streams`` (:attr:`ready` says when one is waiting).
        """
        if self.finished:
            raise RuntimeError("stream is finished; call recognizer.reset(stream) to start again")
        self._append(self.frontend.push(frames, timestamps))
        if decode:
            self.decode()

    def accept_inputs(self, inputs, decode: bool = True) -> None:
        """Feed model inputs made outside the front end, one per model frame (a landmark bundle's normalised points
        ``[N, P, 2]``, :mod:`slsdk.runtime.landmark_source`); runs every full chunk unless ``decode=False``."""
        if self.finished:
            raise RuntimeError("stream is finished; call recognizer.reset(stream) to start again")
        self._append(np.asarray(inputs, np.float32))
        if decode:
            self.decode()

    def feed(self, frames, timestamps=None) -> RecognitionResult:
        """``accept_frames`` then the result so far (one step of the feed loop)."""
        self.accept_frames(frames, timestamps)
        return self.result()

    def input_finished(self) -> None:
        """No more frames: run the zero-padded last chunk and commit everything."""
        self._append(self.frontend.flush())
        self.decode()  # chunks held back by accept_frames(decode=False)
        with self._buffer_lock:
            rest, self._buffer = self._buffer, []
        if rest:
            lp, self.state, seconds = self.runner.run_last(_stack(rest), self.state)
            self.accept_log_probs(lp, seconds)
        self.decoder.finalize()
        self.finished = True

    # -- chunks ---------------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether a full chunk waits for the model (``accept_frames(decode=False)``)."""
        return len(self._buffer) >= self.runner.chunk

    def take_chunk(self) -> np.ndarray:
        """The next full chunk ``[C, 3, S, S]``, out of the waiting frames (call when :attr:`ready`)."""
        with self._buffer_lock:
            frames = self._buffer[: self.runner.chunk]
            del self._buffer[: self.runner.chunk]
        return _stack(frames)

    def decode(self) -> None:
        """Run every full chunk waiting, this stream alone."""
        while self.ready:
            lp, self.state, seconds = self.runner.run_one(self.take_chunk(), self.state)
            self.accept_log_probs(lp, seconds)

    def accept_log_probs(self, log_probs: np.ndarray, model_seconds: float) -> None:
        """Decode one chunk's log-probs ``[T, V]`` (``model_seconds``: the model's time for it)."""
        t1 = time.perf_counter()
        self.decoder.accept(log_probs)
        self.timing.model += model_seconds
        self.timing.decode += time.perf_counter() - t1
        self.timing.chunks += 1

    # -- results --------------------------------------------------------------------------------------------
    def result(self) -> RecognitionResult:
        """The glosses decoded so far (committed + partial), with their events."""
        r = self.decoder.result()
        name = self.vocab.__getitem__
        events = [{"gloss": name(e.id), "start": round(e.start, 4), "end": round(e.end, 4),
                   "confidence": round(float(e.confidence), 4)} for e in r.events]
        return RecognitionResult([name(i) for i in r.tokens], [name(i) for i in r.committed_tokens],
                                 [name(i) for i in r.partial_tokens], events, r.is_final)

    def is_endpoint(self) -> bool:
        """Whether the decoder sees the end of an utterance (a pause long enough)."""
        return self.decoder.is_endpoint()

    def reset(self) -> None:
        """Start a new utterance (time keeps running; the model state is kept)."""
        self.decoder.reset()
        if self.finished:
            self.frontend.restart()  # frames after input_finished start a new segment of the clock
        self.finished = False

    def close(self) -> None:
        """Give the stream's hand tracker back to the recognizer (for the next stream)."""
        self.frontend.close()

    # -- the front end's counters ---------------------------------------------------------------------------
    @property
    def frame_index(self) -> int:
        """Model frames so far, at the manifest's fps (the model's clock)."""
        return self.frontend.frame_index

    @property
    def source_frames(self) -> int:
        """Frames given to ``accept_frames``."""
        return self.frontend.source_frames

    @property
    def crop_stats(self):
        """:class:`~slsdk.runtime.crop.CropStats` of this stream (counts only)."""
        return self.frontend.crop_stats

    @property
    def cropper(self):
        """This stream's hand tracker (None before the first frame, or with the "full" crop policy)."""
        return self.frontend.cropper

    @property
    def resample_stats(self) -> dict | None:
        """How the frames were resampled (policy, source fps, frames dropped / repeated); None without timestamps."""
        return self.frontend.resample_stats

    @property
    def last_crops(self) -> list:
        """Crop results of the frames the latest ``accept_frames`` / ``input_finished`` cropped (for overlays)."""
        return self.frontend.last_crops

    @property
    def last_frames(self) -> list:
        """The source frames of :attr:`last_crops`."""
        return self.frontend.last_frames

    @property
    def last_times(self) -> list:
        """The times of :attr:`last_crops` on the model's clock (s)."""
        return self.frontend.last_times

    def _append(self, x) -> None:
        if isinstance(x, dict):   # a fusion front end's {input name: [N, ...]}: one dict per model frame
            n = len(next(iter(x.values())))
            x = [{k: v[i] for k, v in x.items()} for i in range(n)]
        if x is not None and len(x):
            with self._buffer_lock:
                self._buffer.extend(x)


def _stack(frames: list):
    """The buffered model frames as one array ``[n, ...]``, or (a fusion bundle's) one per input name."""
    if frames and isinstance(frames[0], dict):
        return {k: np.stack([f[k] for f in frames]) for k in frames[0]}
    return np.stack(frames)


__all__ = ["Stream"]
