"""The host runtime's API, thin and sherpa-onnx-style:

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
    rec.accept_streams(streams, batches)   # the same, the hand trackers of the round in parallel

Threads: a Recognizer may be shared by threads, a Stream may not (see :class:`Recognizer`).

The rooms a frame passes through: the stream's front end (:mod:`~slsdk.runtime.frontend`: resample to the
manifest's fps, hand crop with :mod:`~slsdk.runtime.hand_tracker`, :mod:`slsdk.preprocess`), the chunk runner
(:mod:`~slsdk.runtime.chunks`: fixed-size chunks through the backend, carrying the model's state tensors, the last
partial chunk zero-padded as the torch model pads a whole video, so streaming gives exactly the offline tokens),
the stream's CTC decoder (:mod:`slsdk.decode`); :mod:`~slsdk.runtime.feed` is the loop over a source. Event times
count model frames at ``1 / fps`` seconds each: with timestamps given, that is the source's clock.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from slsdk.bundle import load_bundle
from slsdk.decode import DEFAULT_BEAM, BeamStream, GreedyStream
from slsdk.errors import ConfigError
from slsdk.preprocess import Preprocess
from slsdk.runtime import feed
from slsdk.runtime.backends import Backend, BackendError, open_backend, open_checkpoint, opens_checkpoint
from slsdk.runtime.chunks import ChunkRunner
from slsdk.runtime.crop import CropConfig, preparation_mismatch
from slsdk.runtime.hand_tracker import CropperPool
from slsdk.runtime.landmark_frontend import LandmarkPool
from slsdk.runtime.landmark_source import is_landmark_bundle
from slsdk.runtime.results import RecognitionResult, Update
from slsdk.runtime.stream import Stream


class TrainServeSkewWarning(UserWarning):
    """The recognizer feeds the model frames unlike those it was trained on (crop policy or box geometry)."""


class Recognizer:
    """Streaming recognizer for a bundle (directory or .zip) or, with backend "torch", a student checkpoint.

    Threads: a Recognizer may be shared by threads, a Stream may not. Each stream carries its own model
    state, decoder and hand tracker; the recognizer holds only the loaded model, which several threads may
    call at once on ONNX Runtime and torch (their sessions are thread-safe) and one at a time, behind a lock,
    on ExecuTorch and Core ML, and the pool of hand trackers (with its threads). Feed each stream from one
    thread at a time (``decode_streams`` and ``accept_streams`` count as feeding every stream they are given;
    ``accept_streams`` runs each stream's front end on one pool thread).
    """

    def __init__(self, bundle: str | Path, backend: str | None = None, crop: str | None = None,
                 hand_model: str | Path | None = None, decoder: str = "greedy", beam: int = DEFAULT_BEAM,
                 threads: int = 0, endpoint=None, providers=None, face_model: str | Path | None = None,
                 pose_model: str | Path | None = None):
        path = Path(bundle)
        if opens_checkpoint(path, backend):
            if providers is not None:
                raise BackendError(f"{path}: --providers applies to onnx / ort bundles; a checkpoint runs on torch")
            self.manifest, self.backend = open_checkpoint(path, threads, backend)
        else:
            self.bundle = load_bundle(path)
            self.manifest = self.bundle.manifest
            self.backend: Backend = open_backend(self.bundle, backend, threads=threads, providers=providers)
        m = self.manifest
        if m.streaming.mode != "streaming":
            raise BackendError(f"{path}: an offline (teacher) bundle has no streaming step; "
                               "convert the student for streaming recognition")
        self.vocab = list(m.vocab)
        self.chunk = int(m.streaming.chunk_frames)
        self.stride = int(m.streaming.output_stride)
        self.fps = float(m.fps)
        self.frame_shift = self.stride / self.fps
        self.size = (int(m.input.height), int(m.input.width))
        # the manifest's preprocessing (slsdk.preprocess): shorter side to input.resize_shorter, centre crop,
        # normalise with the manifest's mean/std
        try:
            self.preprocessor = Preprocess.from_input_spec(m.input, where=str(path))
        except ValueError as e:
            raise BackendError(str(e)) from None
        self.resize_shorter = self.preprocessor.resize_shorter
        self.runner = ChunkRunner(self.backend, m.streaming)  # the model's chunk step, shared by the streams
        self.frames_input = self.runner.step.frames_input
        self.logits_output = self.runner.step.logits_output
        self.decoder_kind, self.beam, self.endpoint = decoder, beam, endpoint
        if decoder not in ("greedy", "beam"):
            raise ConfigError(f"decoder must be 'greedy' or 'beam', got {decoder!r}")
        crop_cfg = m.crop.section_json()   # the crop fields the bundle states
        if crop is not None:
            crop_cfg["policy"] = crop
        self.crop_policy = crop_cfg.get("policy", "full")
        if self.crop_policy not in ("full", "hands"):
            raise ConfigError(f"crop must be 'hands' or 'full', got {self.crop_policy!r}")
        # train/serve skew: the training data's `slsdk data prepare` settings (manifest.extra) against this crop
        preparation = (m.extra or {}).get("preparation")
        self.skew = preparation_mismatch(preparation, crop_cfg, self.resize_shorter)
        if crop is not None and not preparation and crop != m.crop.policy:
            self.skew.append(f"crop.policy: the bundle says {m.crop.policy!r}, served {crop!r}")
        if self.skew:
            warnings.warn(f"{path}: the model was trained on other frames than it is served: "
                          + "; ".join(self.skew), TrainServeSkewWarning, stacklevel=2)
        # the streams' hand trackers (crops come out square at the resize size, so a batch is one array op); the
        # first one is made now, so a missing hand model fails here
        self.croppers = (CropperPool(CropConfig.from_dict(crop_cfg), hand_model, size=self.resize_shorter)
                         if self.crop_policy == "hands" else None)
        self.cropper = self.croppers.first if self.croppers is not None else None  # the first stream's tracker
        # a landmark bundle: the streams' landmark models (hands from the crop pass or trackers of their own, lips,
        # body), opened on the first frame (a .pose recording needs none) or by landmarkers.check()
        # a fusion bundle (input.modality "fusion"): the hand crop and the landmarks of each frame, one hand pass
        self.fusion = getattr(m.input, "modality", None) == "fusion"
        self.landmarkers = (LandmarkPool(m, self.croppers, hand_model=hand_model, face_model=face_model,
                                         pose_model=pose_model, where=str(path))
                            if is_landmark_bundle(m) or self.fusion else None)

    @property
    def crop_config(self) -> CropConfig | None:
        """The hand crop settings of every stream (None with the "full" crop policy)."""
        return self.croppers.config if self.croppers is not None else None

    @crop_config.setter
    def crop_config(self, config: CropConfig) -> None:
        """Change the hand crop settings (e.g. the landmarker's schedule, ``detect_every``) of every stream."""
        if self.croppers is None:
            raise ValueError("this recognizer does not crop hands (crop policy 'full')")
        self.croppers.config = config

    # -- sherpa-style API -------------------------------------------------------------------------------
    def create_stream(self, max_gap: float | None = None, look_ahead: bool = False) -> Stream:
        """A new stream. ``max_gap`` (seconds, for live sources such as cameras): timed frames further apart
        than this are not bridged with repeated frames (see ``FrameResampler``); files leave it None.
        ``look_ahead`` (landmark bundles, files): normalise the landmarks as the whole recording is normalised
        (frames wait while a hand is not seen yet) instead of causally (:mod:`~slsdk.runtime.landmark_frontend`)."""
        return Stream(self, max_gap=max_gap, look_ahead=look_ahead)

    def result(self, stream: Stream) -> RecognitionResult:
        """The stream's glosses so far (committed + partial)."""
        return stream.result()

    def is_endpoint(self, stream: Stream) -> bool:
        """Whether the stream's decoder sees the end of an utterance."""
        return stream.is_endpoint()

    def reset(self, stream: Stream) -> None:
        """Start a new utterance on the same stream (time keeps running; model state is kept)."""
        stream.reset()

    def is_ready(self, stream: Stream) -> bool:
        """Whether the stream holds a full chunk the model has not run yet (``accept_frames(decode=False)``)."""
        return stream.ready

    def decode_stream(self, stream: Stream) -> None:
        """Run every ready chunk of one stream."""
        self.decode_streams([stream])

    def decode_streams(self, streams) -> None:
        """Run the ready chunks of several streams, as few model calls per round as the model file allows.

        With a model that takes a batch (the bundle's ``streaming.max_batch``: the ONNX / ORT students slsdk writes
        take up to 64 streams a call, the fp32 ExecuTorch ones 1, 4 or 16 -- ``streaming.batch_sizes`` --; torch any)
        the streams' chunks and their state tensors are stacked along axis 0 (:func:`~slsdk.runtime.chunks.
        batch_plan` splits a round into the sizes the file takes); a batch-1 file (int8 with run-time activation
        scales, Core ML, bundles written before the batch keys) runs them one after the other. Either way each
        stream gets exactly the log-probs it would get alone. ``runner.calls`` counts the model calls by batch size.
        """
        streams = list(streams)
        if len({id(s) for s in streams}) != len(streams):
            raise ValueError("decode_streams: a stream is listed twice")
        self.runner.run_streams(streams)

    def accept_streams(self, streams, frames, timestamps=None, decode: bool = True) -> None:
        """Feed several streams one batch of frames each (``frames[i]`` to ``streams[i]``, as
        ``Stream.accept_frames`` takes them; ``timestamps[i]`` or None), then with ``decode`` run their ready chunks
        together (:meth:`decode_streams`): a server's round over its cameras.

        Threads: with the "hands" crop policy the streams' front ends (resample, hand tracker, preprocess) run in
        parallel, one task per stream, on the hand-tracker pool (``croppers.workers`` threads, the cores by
        default; MediaPipe releases the GIL while it detects); without it, on this thread. The thread rule holds
        as for ``decode_streams``: the call feeds every stream it is given, each from one thread (a stream listed
        twice is refused), so no other thread may feed them meanwhile; the model and the decoders run on this
        thread. Crops, tokens and log-probs are those of feeding the streams one after the other (tested).
        """
        streams, frames = list(streams), list(frames)
        times = [None] * len(streams) if timestamps is None else list(timestamps)
        if len(frames) != len(streams) or len(times) != len(streams):
            raise ValueError(f"accept_streams: {len(streams)} streams but {len(frames)} frame batches"
                             + ("" if timestamps is None else f" and {len(times)} timestamp lists"))
        if len({id(s) for s in streams}) != len(streams):
            raise ValueError("accept_streams: a stream is listed twice")

        def feed(i: int) -> None:
            streams[i].accept_frames(frames[i], times[i], decode=False)

        if self.croppers is not None:
            self.croppers.run_all(feed, range(len(streams)))
        else:
            for i in range(len(streams)):
                feed(i)
        if decode:
            self.decode_streams(streams)

    def recognize(self, source, *, stream: Stream | None = None, batch_frames: int | None = None,
                  resample: bool = True, reset_at_endpoints: bool = False, max_seconds: float | None = None,
                  keep_frames: bool = False, name: str | None = None, read_ahead: int = 0,
                  pipeline: bool = False) -> Iterator[Update]:
        """The one feed loop (:mod:`slsdk.runtime.feed`): stream a frame source through the recognizer, one
        :class:`Update` per batch.

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
        tracker back to the recognizer when the loop ends (``Stream.close``). Without a hand crop (and without
        ``keep_frames``) a source with ``scale_hint`` (the file and camera sources) is asked for frames at the
        manifest's ``resize_shorter`` already: scaled in the decoder / at capture, the same pixels.
        """
        hint = getattr(source, "scale_hint", None)
        if hint is not None and self.croppers is None and self.landmarkers is None and not keep_frames:
            hint(self.resize_shorter)  # no hand crop: the source scales to the model's resize (decoder / capture)
        return feed.recognize(self, source, stream=stream, batch_frames=batch_frames, resample=resample,
                              reset_at_endpoints=reset_at_endpoints, max_seconds=max_seconds,
                              keep_frames=keep_frames, name=name, read_ahead=read_ahead, pipeline=pipeline)

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, H, W, 3] -> float32 [N, 3, S, S]: :mod:`slsdk.preprocess` with the manifest's ``input``
        (shorter side to ``input.resize_shorter``, centre crop, normalise with the manifest's mean/std)."""
        return self.preprocessor(np.asarray(frames))

    def new_decoder(self):
        """A fresh streaming CTC decoder as this recognizer was asked for (greedy or beam, its endpoint rule)."""
        kw = {"frame_shift": self.frame_shift}
        if self.endpoint is not None:
            kw["endpoint"] = self.endpoint
        return GreedyStream(**kw) if self.decoder_kind == "greedy" else BeamStream(beam=self.beam, **kw)


__all__ = ["Recognizer", "TrainServeSkewWarning"]
