"""What the recognizer answers: stage timings, the glosses of a stream, the feed loop's updates and a whole video's
result. Plain data, no logic beyond formatting."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    one in the final update; ``frames``: ``(frame, CropResult or None without a hand crop, time_s)`` of the frames this batch cropped
    (with ``keep_frames``); ``final``: the source is exhausted and the stream finished.
    """

    stream: "Stream"  # noqa: F821 - slsdk.runtime.stream.Stream (which imports this module)
    result: RecognitionResult
    events: list[dict]
    utterance: RecognitionResult | None
    frames: list
    final: bool

    @property
    def time_s(self) -> float:
        """The stream's clock: model frames so far at the manifest's fps."""
        return self.stream.frame_index / self.stream.fps


@dataclass
class VideoRecognition:
    """`recognize_video`'s answer: glosses with times, crop statistics, stage timings.

    ``frames`` are model frames at the manifest's ``fps`` (after resampling), ``source_frames`` the frames
    decoded from the file, ``resample`` how one became the other (None when the frames were used as they are).
    ``overlay_frames``: ``(frame, CropResult or None without a hand crop, time_s)`` of the cropped frames (with ``keep_overlay``).
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


__all__ = ["Timing", "RecognitionResult", "Update", "VideoRecognition"]
