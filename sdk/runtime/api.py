"""The host runtime, with a thin sherpa-onnx-style API.

    rec = slsdk.Recognizer("bundles/student-onnx-fp32")
    s = rec.create_stream()
    s.accept_frames(frames)            # uint8 RGB [N, H, W, 3], any N, already at the manifest's fps
    s.accept_frames(frames, timestamps=ts)   # or at any rate: resampled to the manifest's fps by time
    rec.result(s).text                 # committed + partial glosses so far
    rec.is_endpoint(s); rec.reset(s)
    slsdk.recognize_video(bundle, "clip.mp4")   # the same, in one call (resampled by the file's timestamps)

Frames -> (resample to the manifest's fps) -> (hand crop) -> resize/normalise as the manifest says ->
fixed-size chunks through the backend, carrying the model's state tensors -> streaming CTC decoder. The last
partial chunk is zero-padded, as the torch model pads a whole video, so streaming gives exactly the offline
tokens. Event times count model frames at ``1 / fps`` seconds each: with timestamps given, that is the
source's clock (from its first frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slsdk.runtime.backends import Backend, BackendError, TorchBackend, open_backend
from slsdk.runtime.hands import CropStats
from slsdk.runtime.sources import FrameResampler


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


class Stream:
    """One video or camera stream: buffered frames, the model state and the decoder state."""

    def __init__(self, rec: "Recognizer", max_gap: float | None = None):
        self._rec = rec
        self._buffer: list[np.ndarray] = []  # preprocessed frames [3, S, S] not yet run
        self.state = rec._initial_state()
        self.decoder = rec._new_decoder()
        self.timing = Timing()
        self.crop_stats = CropStats(keep_boxes=False)  # counts only: bounded memory on long streams
        self.frame_index = 0  # model frames so far, at the manifest's fps (the model's clock)
        self.source_frames = 0  # frames given to accept_frames
        self.resampler = FrameResampler(rec.fps, max_gap=max_gap)
        self._held: np.ndarray | None = None  # latest timed frame: released once the next frame's time is known
        self._timed: bool | None = None  # whether this stream's frames come with timestamps
        self.finished = False
        # the frames the latest accept_frames / input_finished call cropped (for overlays): crop results, the
        # source frames and their times on the model's clock (s)
        self.last_crops: list = []
        self.last_frames: list = []
        self.last_times: list = []

    def accept_frames(self, frames, timestamps=None) -> None:
        """Feed RGB uint8 frames ([N, H, W, 3] array or a list of [H, W, 3]); runs every full chunk.

        ``timestamps``: the frames' presentation times in seconds (one each, increasing, any origin). The
        frames are then resampled to the manifest's ``fps`` (:class:`~slsdk.runtime.sources.FrameResampler`:
        nearest frame by presentation time, so a faster source loses frames and a slower one repeats them);
        the latest frame waits for the next one's time or the end of input. Without timestamps the frames are
        taken to be at the manifest's rate already and each is one model frame. A stream takes one or the
        other throughout.
        """
        if self.finished:
            raise RuntimeError("stream is finished; call recognizer.reset(stream) to start again")
        self._rec._accept(self, frames, timestamps)

    @property
    def resample_stats(self) -> dict | None:
        """How the frames were resampled (policy, source fps, frames dropped / repeated); None without timestamps."""
        return self.resampler.stats() if self._timed else None

    def input_finished(self) -> None:
        """No more frames: run the zero-padded last chunk and commit everything."""
        self._rec._finish(self)


class Recognizer:
    """Streaming recognizer for a bundle (directory or .zip) or, with backend "torch", a student checkpoint."""

    def __init__(self, bundle: str | Path, backend: str | None = None, crop: str | None = None,
                 hand_model: str | Path | None = None, decoder: str = "greedy", beam: int = 8,
                 threads: int = 0, endpoint=None):
        path = Path(bundle)
        if backend == "torch" or path.suffix == ".pt":
            self.manifest, self.backend = _torch_manifest_and_backend(path, threads)
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
        from slsdk.data.transforms import VideoTransform

        # the manifest's preprocessing: shorter side to input.resize_shorter, centre crop, normalise
        s = self.size[0]
        self.resize_shorter = int(m.input["resize_shorter"])
        if m.input.get("crop", "center") != "center" or self.size[0] != self.size[1]:
            raise BackendError(f"{path}: this runtime feeds square centre crops, the manifest asks for a "
                               f"{m.input.get('crop')!r} crop of {self.size[0]}x{self.size[1]}")
        self._transform = VideoTransform(s, m.input["mean"], m.input["std"], train=False,
                                         resize_ratio=self.resize_shorter / s)
        assert self._transform.resize_to == self.resize_shorter, (self._transform.resize_to, self.resize_shorter)
        self.frames_input = m.streaming["inputs"][0]["name"]
        self.logits_output = m.streaming["outputs"][0]["name"]
        self.decoder_kind, self.beam, self.endpoint = decoder, beam, endpoint
        if decoder not in ("greedy", "beam"):
            raise ValueError(f"decoder must be 'greedy' or 'beam', got {decoder!r}")
        crop_cfg = dict(m.crop)
        if crop is not None:
            crop_cfg["policy"] = crop
        self.crop_policy = crop_cfg.get("policy", "full")
        if self.crop_policy not in ("full", "hands"):
            raise ValueError(f"crop must be 'hands' or 'full', got {self.crop_policy!r}")
        self.cropper = None
        if self.crop_policy == "hands":
            from slsdk.runtime.hands import CropConfig, HandCropper

            # crops come out square at the transform's resize size, so a batch is one tensor op
            self.cropper = HandCropper(CropConfig.from_dict(crop_cfg), model_path=hand_model,
                                       size=self._transform.resize_to, keep_boxes=False)

    # -- sherpa-style API -------------------------------------------------------------------------------
    def create_stream(self, max_gap: float | None = None) -> Stream:
        """A new stream. ``max_gap`` (seconds, for live sources such as cameras): timed frames further apart
        than this are not bridged with repeated frames (see ``FrameResampler``); files leave it None."""
        if self.cropper is not None:
            self.cropper.reset_state()
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

    # -- internals ----------------------------------------------------------------------------------------
    def _initial_state(self) -> dict[str, np.ndarray]:
        return {st["input"]: np.zeros(st["shape"], np.float32) for st in self.manifest.streaming["state"]}

    def _new_decoder(self):
        from slsdk.decode import BeamStream, GreedyStream

        kw = {"frame_shift": self.frame_shift}
        if self.endpoint is not None:
            kw["endpoint"] = self.endpoint
        return GreedyStream(**kw) if self.decoder_kind == "greedy" else BeamStream(beam=self.beam, **kw)

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, H, W, 3] -> float32 [N, 3, S, S]: the eval transform training used (shorter side to the
        manifest's ``input.resize_shorter``, centre crop, normalise with the manifest's mean/std)."""
        return self._transform(np.asarray(frames)).numpy()

    def _accept(self, stream: Stream, frames, timestamps=None) -> None:
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
            self._run_frames(stream, frames, None)
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
        self._run_frames(stream, keep, counts)

    def _run_frames(self, stream: Stream, frames, counts: list[int] | None) -> None:
        """Crop + preprocess ``frames`` (each once), repeat them ``counts`` times, run every full chunk."""
        if not len(frames):
            return
        t0 = time.perf_counter()
        if self.cropper is not None:
            crops = []
            index = stream.frame_index
            for i, f in enumerate(frames):
                t_model = index / self.fps
                res = self.cropper.crop(f, int(round(t_model * 1000.0)))
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
        stream._buffer.extend(x)
        while len(stream._buffer) >= self.chunk:
            chunk = np.stack(stream._buffer[: self.chunk])
            del stream._buffer[: self.chunk]
            self._run_chunk(stream, chunk)

    def _run_chunk(self, stream: Stream, chunk: np.ndarray) -> None:
        t0 = time.perf_counter()
        outs = self.backend.run({self.frames_input: chunk[None].astype(np.float32), **stream.state})
        t1 = time.perf_counter()
        stream.state = {st["input"]: outs[st["output"]] for st in self.manifest.streaming["state"]}
        stream.decoder.accept(outs[self.logits_output][0])
        stream.timing.model += t1 - t0
        stream.timing.decode += time.perf_counter() - t1
        stream.timing.chunks += 1

    def _finish(self, stream: Stream) -> None:
        stream.last_crops, stream.last_frames, stream.last_times = [], [], []
        if stream._held is not None:  # the last timed frame: now its share of the output frames is known
            held, stream._held = stream._held, None
            c = stream.resampler.finish()
            if c:
                self._run_frames(stream, [held], [c])
        if stream._buffer:
            n = len(stream._buffer)
            pad = (-n) % self.stride  # the torch model pads a whole video to a multiple of the stride
            chunk = np.zeros((self.chunk, *stream._buffer[0].shape), np.float32)
            chunk[:n] = np.stack(stream._buffer)
            stream._buffer.clear()
            keep = (n + pad) // self.stride
            # run the full fixed-size chunk, keep only the steps that real (and stride-padding) frames make
            t0 = time.perf_counter()
            outs = self.backend.run({self.frames_input: chunk[None], **stream.state})
            t1 = time.perf_counter()
            stream.decoder.accept(outs[self.logits_output][0][:keep])
            stream.timing.model += t1 - t0
            stream.timing.decode += time.perf_counter() - t1
            stream.timing.chunks += 1
        stream.decoder.finalize()
        stream.finished = True


def _as_frames(frames) -> np.ndarray | list:
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be RGB uint8 [N, H, W, 3], got shape {frames.shape}")
        return frames
    return [np.asarray(f) for f in frames]


def _torch_manifest_and_backend(path: Path, threads: int):
    """A manifest for an eager student checkpoint (the torch backend), built as convert builds one."""
    from slsdk.convert import manifest_for_model
    from slsdk.train.checkpoint import load_model

    model, vocab, kind = load_model(path)
    if kind != "student":
        raise BackendError(f"{path}: the torch backend streams a student checkpoint, this one is a {kind}")
    manifest = manifest_for_model(model, vocab, target="onnx", precision="fp32")
    ins = [io["name"] for io in manifest.streaming["inputs"]]
    outs = [io["name"] for io in manifest.streaming["outputs"]]
    return manifest, TorchBackend(model.eval(), ins, outs, threads=threads)


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
                    keep_overlay: bool = False, resample: bool = True, **kwargs) -> VideoRecognition:
    """Recognise a whole video file or frame folder by streaming it through the bundle.

    A file's frames are resampled to the manifest's ``fps`` by their presentation times (nearest frame; see
    ``FrameResampler``), so a 30 fps clip feeds a 25 fps model 25 frames a second and event times are the
    file's. ``resample=False`` feeds every frame as one model frame instead. A frame folder has no timing:
    its frames are used as they are.
    """
    from slsdk.data.video import iter_video_timed

    rec = recognizer or Recognizer(bundle, **kwargs)
    s = rec.create_stream()
    batch: list[np.ndarray] = []
    times: list[float] = []
    timed = None
    last_t = None
    overlay = []
    t_decode = 0.0
    it = iter(iter_video_timed(path))

    def keep_crops():
        if keep_overlay and s.last_crops:
            overlay.extend(zip(s.last_frames, s.last_crops, s.last_times))

    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        t_decode += time.perf_counter() - t0
        if item is not None:
            frame, t = item
            if timed is None:
                timed = resample and t is not None
            if timed and t is None:  # a frame without a timestamp amid timed ones: one model frame later
                t = last_t + 1.0 / rec.fps if last_t is not None else 0.0
            batch.append(frame)
            times.append(t)
            last_t = t
        if len(batch) == batch_frames or (item is None and batch):
            s.accept_frames(np.stack(batch), timestamps=times if timed else None)
            keep_crops()
            batch, times = [], []
        if item is None:
            break
    if s.source_frames == 0:
        from slsdk.data.video import VideoError

        raise VideoError(f"{path}: no frames decoded")
    s.input_finished()
    keep_crops()
    timing = {"video_decode": t_decode, **s.timing.to_dict()}
    return VideoRecognition(str(path), rec.result(s), s.crop_stats.to_dict(), timing, s.frame_index, rec.fps,
                            overlay, source_frames=s.source_frames, resample=s.resample_stats)
