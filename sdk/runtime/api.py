"""``recognize_video``: a whole video file or frame folder through a bundle, in one call (the feed loop of
:meth:`Recognizer.recognize` over the file's frames)."""
from __future__ import annotations

from pathlib import Path

from slsdk.data.video import VideoReader, iter_video_timed
from slsdk.runtime.landmark_frontend import display_scale
from slsdk.runtime.recognizer import Recognizer
from slsdk.runtime.results import VideoRecognition
from slsdk.runtime.sources import DECODE_MAX_SHORTER


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
    A landmark bundle gets the frames' 86-point landmarks (:mod:`~slsdk.runtime.landmark_frontend`), in the
    video's display pixels and normalised as the whole recording (``look_ahead``): what ``data prepare
    --landmarks`` writes into the clip's ``.pose``, so the tokens are those of serving that ``.pose``.
    """
    rec = recognizer or Recognizer(bundle, **kwargs)
    if rec.landmarkers is not None:   # a landmark bundle: normalised as the whole file (= its .pose), display pixels
        rec.landmarkers.check()
        reader = VideoReader(path, max_shorter=DECODE_MAX_SHORTER)
        s = rec.create_stream(look_ahead=True)
        s.frontend.point_scale = display_scale(reader)
        frames = ((f, t if reader.timed else None) for f, t in reader)
    else:
        s = rec.create_stream()
        frames = iter_video_timed(path, max_shorter=DECODE_MAX_SHORTER)
    overlay = []
    try:
        for u in rec.recognize(frames, stream=s,
                               batch_frames=batch_frames, resample=resample, keep_frames=keep_overlay, name=str(path),
                               read_ahead=read_ahead, pipeline=pipeline):
            overlay.extend(u.frames)
    finally:
        s.close()
    timing = {"video_decode": s.source_seconds, **s.timing.to_dict(), "wall": s.wall_seconds}
    if rec.landmarkers is not None:   # crop = the landmarks (hands, lips, body), preprocess = their normalisation
        timing["landmarks"] = dict(s.frontend.landmark_seconds)
    return VideoRecognition(str(path), s.result(), s.crop_stats.to_dict(), timing, s.frame_index, rec.fps,
                            overlay, source_frames=s.source_frames, resample=s.resample_stats)


__all__ = ["recognize_video"]
