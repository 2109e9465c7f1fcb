"""The host runtime, with a thin sherpa-onnx-style API.

    rec = slsdk.Recognizer("bundles/student-onnx-fp32")
    s = rec.create_stream()
    s.accept_frames(frames)            # uint8 RGB [N, H, W, 3], any N
    rec.result(s).text                 # committed + partial glosses so far
    rec.is_endpoint(s); rec.reset(s)
    slsdk.recognize_video(bundle, "clip.mp4")   # the same, in one call

Frames -> (hand crop) -> resize/normalise as the manifest says -> fixed-size chunks through the backend,
carrying the model's state tensors -> streaming CTC decoder. The last partial chunk is zero-padded, as
the torch model pads a whole video, so streaming gives exactly the offline tokens.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slsdk.runtime.backends import Backend, BackendError, TorchBackend, open_backend
from slsdk.runtime.hands import CropStats


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

    def __init__(self, rec: "Recognizer"):
        self._rec = rec
        self._buffer: list[np.ndarray] = []  # preprocessed frames [3, S, S] not yet run
        self.state = rec._initial_state()
        self.decoder = rec._new_decoder()
        self.timing = Timing()
        self.crop_stats = CropStats(keep_boxes=False)  # counts only: bounded memory on long streams
        self.frame_index = 0  # global frames accepted (timestamps for the hand tracker)
        self.finished = False
        self.last_crops: list = []  # crop results of the latest accept_frames call (for overlays)

    def accept_frames(self, frames) -> None:
        """Feed RGB uint8 frames ([N, H, W, 3] array or a list of [H, W, 3]); runs every full chunk."""
        if self.finished:
            raise RuntimeError("stream is finished; call recognizer.reset(stream) to start again")
        self._rec._accept(self, frames)

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
        from slsdk.data.transforms import eval_transform

        self._transform = eval_transform(self.size[0], m.input["mean"], m.input["std"])
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
    def create_stream(self) -> Stream:
        if self.cropper is not None:
            self.cropper.reset_state()
        return Stream(self)

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
        """uint8 RGB [N, H, W, 3] -> float32 [N, 3, S, S]: the eval transform training used (resize, centre crop,
        normalise with the manifest's mean/std)."""
        return self._transform(np.asarray(frames)).numpy()

    def _accept(self, stream: Stream, frames) -> None:
        frames = _as_frames(frames)
        if not len(frames):
            return
        t0 = time.perf_counter()
        if self.cropper is not None:
            crops = []
            stream.last_crops = []
            for f in frames:
                res = self.cropper.crop(f, int(round(stream.frame_index * 1000.0 / self.fps)))
                stream.frame_index += 1
                stream.crop_stats.add(res)
                crops.append(res.image)
                stream.last_crops.append(res)
            frames = crops
        else:
            stream.frame_index += len(frames)
            stream.crop_stats.frames += len(frames)
        t1 = time.perf_counter()
        x = self.preprocess(np.stack(frames) if self.cropper else np.asarray(frames))
        t2 = time.perf_counter()
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
    """`recognize_video`'s answer: glosses with times, crop statistics, stage timings."""

    path: str
    result: RecognitionResult
    crop_stats: dict
    timing: dict
    frames: int
    fps: float
    overlay_frames: list = field(default_factory=list, repr=False)

    @property
    def real_time_factor(self) -> float:
        """Processing seconds per second of video (< 1: faster than real time)."""
        busy = sum(self.timing[k] for k in ("crop", "preprocess", "model", "decode"))
        return busy / (self.frames / self.fps) if self.frames else 0.0

    def to_dict(self) -> dict:
        return {"path": self.path, **self.result.to_dict(), "crop": self.crop_stats, "timing": self.timing,
                "frames": self.frames, "real_time_factor": round(self.real_time_factor, 4)}


def recognize_video(bundle, path: str | Path, recognizer: Recognizer | None = None, batch_frames: int = 32,
                    keep_overlay: bool = False, **kwargs) -> VideoRecognition:
    """Recognise a whole video file or frame folder by streaming it through the bundle."""
    from slsdk.data.video import iter_video

    rec = recognizer or Recognizer(bundle, **kwargs)
    s = rec.create_stream()
    batch: list[np.ndarray] = []
    overlay = []
    t_decode = 0.0
    it = iter(iter_video(path))
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        t_decode += time.perf_counter() - t0
        if frame is not None:
            batch.append(frame)
        if len(batch) == batch_frames or (frame is None and batch):
            s.accept_frames(np.stack(batch))
            if keep_overlay and s.last_crops:
                overlay.extend(zip(batch, s.last_crops))
            batch = []
        if frame is None:
            break
    if s.frame_index == 0:
        from slsdk.data.video import VideoError

        raise VideoError(f"{path}: no frames decoded")
    s.input_finished()
    timing = {"video_decode": t_decode, **s.timing.to_dict()}
    return VideoRecognition(str(path), rec.result(s), s.crop_stats.to_dict(), timing, s.frame_index, rec.fps,
                            overlay)
