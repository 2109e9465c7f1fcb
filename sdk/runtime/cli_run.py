"""`slsdk run`: stream a video file or a camera through a bundle; a live line or JSON lines out.

Frames go in with their timestamps, so the runtime resamples them to the manifest's ``fps`` (nearest frame by
presentation time); the summary's ``resample`` says how (source fps, frames dropped / repeated).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from slsdk.runtime.api import Recognizer


def _emit(as_json: bool, console, record: dict, live: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    elif live is not None:
        console.print(live)


def _resample_note(r: dict | None) -> str:
    if not r or (r["dropped"] == 0 and r["repeated"] == 0 and r["gaps"] == 0):
        return ""
    src = f"{r['source_fps']:.3g} fps" if r["source_fps"] else "the source"
    return (f" (from {src}: {r['source_frames']} frames, {r['dropped']} dropped, {r['repeated']} repeated"
            + (f", {r['gaps']} gaps skipped" if r["gaps"] else "") + ")")


def _gloss_line(ev: dict) -> str:
    return f"[bold]{ev['gloss']}[/]  {ev['start']:.2f}-{ev['end']:.2f}s  conf {ev['confidence']:.2f}"


def run_command(bundle: Path, video: Path | None = None, camera: int | None = None, backend: str | None = None,
                crop: str | None = None, hand_model: Path | None = None, decoder: str = "greedy", beam: int = 8,
                threads: int = 0, as_json: bool = False, overlay: Path | None = None, console=None,
                max_seconds: float | None = None, hand_every: int | None = None, read_ahead: int = 16,
                pipeline: bool = True) -> dict:
    """Run the recognizer over a source; print committed glosses as they come and a summary at the end.

    The loop is :meth:`Recognizer.recognize` (the one feed loop), resetting at endpoints as live captions do.
    ``real_time_factor``: seconds the recognizer worked (crop, preprocess, model, decoder) per second of video;
    ``real_time_factor_wall``: the whole loop's wall time per second of video, the source's decoding included
    (overlapped with the rest on a reader thread when ``read_ahead`` > 0; with ``pipeline`` cropping runs on a
    front-end thread beside the model).
    """
    from slsdk.runtime.sources import CameraSource, VideoFileSource

    import warnings

    from slsdk.runtime.api import TrainServeSkewWarning

    with warnings.catch_warnings():  # said once below, as a line of the output
        warnings.simplefilter("ignore", TrainServeSkewWarning)
        rec = Recognizer(bundle, backend=backend, crop=crop, hand_model=hand_model, decoder=decoder, beam=beam,
                         threads=threads)
    for w in rec.skew:
        if as_json:
            _emit(True, console, {"type": "warning", "kind": "train_serve_skew", "message": w})
        elif console is not None:
            console.print(f"[yellow]warning[/]: trained on other frames than served: {w}")
    if hand_every is not None and rec.cropper is not None:  # the landmarker schedule (CropConfig.detect_every)
        rec.cropper.config = type(rec.cropper.config).from_dict({**rec.cropper.config.to_dict(), "detect_every": hand_every})
    source = VideoFileSource(video) if video is not None else CameraSource(camera)
    name = str(video) if video is not None else f"camera {camera}"
    overlay_items, utterances, stream = [], [], None
    for u in rec.recognize(source, reset_at_endpoints=True, max_seconds=max_seconds, keep_frames=overlay is not None,
                           name=name, read_ahead=read_ahead if video is not None else 0, pipeline=pipeline):
        stream = u.stream
        overlay_items.extend((f, c) for f, c, _ in u.frames[::4])
        for ev in u.events:
            _emit(as_json, console, {"type": "gloss", **ev}, _gloss_line(ev))
        if u.utterance is not None:
            utterances.append(u.utterance.to_dict())
            if not u.final:
                _emit(as_json, console, {"type": "endpoint", "glosses": u.utterance.glosses}, f"-- {u.utterance.text}")
    stream.close()
    seconds = stream.frame_index / rec.fps
    busy = sum(getattr(stream.timing, k) for k in ("crop", "preprocess", "model", "decode"))
    summary = {"type": "summary", "source": str(video) if video is not None else f"camera:{camera}",
               "backend": rec.backend.name, "target": rec.manifest.target, "precision": rec.manifest.precision,
               "frames": stream.frame_index, "fps": rec.fps, "source_frames": stream.source_frames,
               "resample": stream.resample_stats, "seconds": round(seconds, 3),
               "glosses": [g for u in utterances for g in u["glosses"]],
               "crop": stream.crop_stats.to_dict(), "timing_s": {k: round(v, 4) if isinstance(v, float) else v
                                                                 for k, v in stream.timing.to_dict().items()},
               "real_time_factor": round(busy / seconds, 4) if seconds else None,
               "real_time_factor_wall": round(stream.wall_seconds / seconds, 4) if seconds else None,
               "wall_s": round(stream.wall_seconds, 4), "source_wait_s": round(stream.source_seconds, 4),
               "read_ahead": read_ahead if video is not None else 0, "pipeline": pipeline and overlay is None,
               "dropped_frames": getattr(source, "dropped", 0)}
    _emit(as_json, console, summary, f"[green]{' '.join(summary['glosses']) or '(nothing recognised)'}[/]\n"
          f"{summary['frames']} frames at {rec.fps:g} fps{_resample_note(summary['resample'])}, real-time factor "
          f"{summary['real_time_factor']} ({summary['real_time_factor_wall']} wall, decoding included), hands in {summary['crop'].get('frames_with_hands', 0)} frames, "
          f"dropped by the reader {summary['dropped_frames']}")
    if overlay is not None and overlay_items:
        from slsdk.runtime.hands import save_overlay_png

        save_overlay_png(overlay, overlay_items[:24], title=" ".join(summary["glosses"])[:60])
        _emit(as_json, console, {"type": "overlay", "path": str(overlay)}, f"wrote {overlay}")
    return summary
