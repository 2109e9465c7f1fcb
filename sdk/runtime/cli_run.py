"""`slsdk run`: stream a video file or a camera through a bundle; a live line or JSON lines out.

Frames go in with their timestamps, so the runtime resamples them to the manifest's ``fps`` (nearest frame by
presentation time); the summary's ``resample`` says how (source fps, frames dropped / repeated).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

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


def run_command(bundle: Path, video: Path | None = None, camera: int | None = None, backend: str | None = None,
                crop: str | None = None, hand_model: Path | None = None, decoder: str = "greedy", beam: int = 8,
                threads: int = 0, as_json: bool = False, overlay: Path | None = None, console=None,
                max_seconds: float | None = None) -> dict:
    """Run the recognizer over a source; print committed glosses as they come and a summary at the end."""
    from slsdk.runtime.sources import LIVE_MAX_GAP_S, CameraSource, VideoFileSource

    rec = Recognizer(bundle, backend=backend, crop=crop, hand_model=hand_model, decoder=decoder, beam=beam,
                     threads=threads)
    source = VideoFileSource(video) if video is not None else CameraSource(camera)
    stream = rec.create_stream(max_gap=LIVE_MAX_GAP_S if source.live else None)
    batch, times, overlay_items, printed, utterances = [], [], [], 0, []
    t_start = time.perf_counter()

    def keep_overlay():
        if overlay is not None and stream.last_crops:
            overlay_items.extend(list(zip(stream.last_frames, stream.last_crops))[::4])

    def flush():
        nonlocal printed
        if not batch:
            return
        stream.accept_frames(np.stack(batch), timestamps=list(times) if source.timed else None)
        keep_overlay()
        batch.clear()
        times.clear()
        res = rec.result(stream)
        for ev in res.events[printed:len(res.committed)]:
            _emit(as_json, console, {"type": "gloss", **ev},
                  f"[bold]{ev['gloss']}[/]  {ev['start']:.2f}-{ev['end']:.2f}s  conf {ev['confidence']:.2f}")
        printed = len(res.committed)
        if rec.is_endpoint(stream) and res.glosses:
            utterances.append(res.to_dict())
            _emit(as_json, console, {"type": "endpoint", "glosses": res.glosses}, f"-- {res.text}")
            rec.reset(stream)
            printed = 0

    try:
        for frame, ts in source:
            batch.append(frame)
            times.append(ts)
            if len(batch) >= rec.chunk:
                flush()
            if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                break
        flush()
    finally:
        if hasattr(source, "close"):
            source.close()
    if stream.source_frames == 0:
        from slsdk.data.video import VideoError

        raise VideoError(f"{video if video is not None else f'camera {camera}'}: no frames decoded")
    stream.input_finished()
    keep_overlay()
    res = rec.result(stream)
    for ev in res.events[printed:]:
        _emit(as_json, console, {"type": "gloss", **ev},
              f"[bold]{ev['gloss']}[/]  {ev['start']:.2f}-{ev['end']:.2f}s  conf {ev['confidence']:.2f}")
    if res.glosses:
        utterances.append(res.to_dict())
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
               "dropped_frames": getattr(source, "dropped", 0)}
    _emit(as_json, console, summary, f"[green]{' '.join(summary['glosses']) or '(nothing recognised)'}[/]\n"
          f"{summary['frames']} frames at {rec.fps:g} fps{_resample_note(summary['resample'])}, real-time factor "
          f"{summary['real_time_factor']}, hands in {summary['crop'].get('frames_with_hands', 0)} frames, "
          f"dropped by the reader {summary['dropped_frames']}")
    if overlay is not None and overlay_items:
        from slsdk.runtime.hands import save_overlay_png

        save_overlay_png(overlay, overlay_items[:24], title=" ".join(summary["glosses"])[:60])
        _emit(as_json, console, {"type": "overlay", "path": str(overlay)}, f"wrote {overlay}")
    return summary
