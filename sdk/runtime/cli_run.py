"""`slsdk run`: stream a video file or a camera through a bundle; a live line or JSON lines out.

Frames go in with their timestamps, so the runtime resamples them to the manifest's ``fps`` (nearest frame by
presentation time); the summary's ``resample`` says how (source fps, frames dropped / repeated).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

from slsdk.decode import DEFAULT_BEAM
from slsdk.errors import SlsdkError
from slsdk.fileio import check_replace, output_lock, reading
from slsdk.runtime.landmark_source import (POSE_SUFFIXES, LandmarkInputError, check_landmark_bundle,
                                           is_landmark_bundle, recognize_pose_file)
from slsdk.runtime.overlay import save_overlay_png, sheet_note
from slsdk.runtime.recognizer import Recognizer, TrainServeSkewWarning
from slsdk.runtime.landmark_frontend import display_scale
from slsdk.runtime.sources import LIVE_MAX_GAP_S, CameraSource, VideoFileSource
from slsdk.terminal import plain

# --read-ahead: decoded frames waiting on the reader thread are bounded by memory, not by count: at most this many
# bytes of frames (frames x width x height x 3 at the decoded size). 64 MiB holds the default 16 frames of a 720p
# decode (2.8 MB each) with room to spare; a larger request is lowered, and a note says so.
READ_AHEAD_MAX_BYTES = 64 << 20
SIGPIPE_EXIT = 141   # 128 + SIGPIPE: the exit code of a Unix tool whose reader went away (`slsdk run ... | head`)

class StdoutClosedError(SlsdkError):
    """Standard output is closed (``>&-``): there is nowhere to print the results."""


class _ReaderGone(Exception):
    """The reader of standard output went away (a closed pipe)."""


def _emit(as_json: bool, console, record: dict, live: str | None = None) -> None:
    try:
        if as_json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        elif live is not None and console is not None:
            console.print(live, emoji=False, highlight=False)
    except BrokenPipeError:
        raise _ReaderGone() from None


def _quiet_exit_after_broken_pipe() -> None:
    """Exit as a Unix tool does when its reader is gone: no traceback, no message, code 141."""
    try:   # Python flushes stdout at exit: point it at /dev/null so that flush cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
    raise SystemExit(SIGPIPE_EXIT)


def capped_read_ahead(requested: int, width: int, height: int) -> tuple[int, int]:
    """``(frames, frame_bytes)``: ``requested`` lowered so that the frames fit :data:`READ_AHEAD_MAX_BYTES`."""
    frame_bytes = max(1, int(width)) * max(1, int(height)) * 3
    return max(1, min(int(requested), READ_AHEAD_MAX_BYTES // frame_bytes)), frame_bytes


def _decoded_size(source) -> tuple[int, int]:
    """``(width, height)`` of the frames the file source hands out (scaled in the decoder); 1280x720 if unknown."""
    size = getattr(getattr(source, "reader", None), "out_size", None)
    try:
        w, h = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError):
        return 1280, 720
    return (w, h) if w > 0 and h > 0 else (1280, 720)


def _resample_note(r: dict | None) -> str:
    if not r or (r["dropped"] == 0 and r["repeated"] == 0 and r["gaps"] == 0):
        return ""
    src = f"{r['source_fps']:.3g} fps" if r["source_fps"] else "the source"
    return (f" (from {src}: {r['source_frames']} frames, {r['dropped']} dropped, {r['repeated']} repeated"
            + (f", {r['gaps']} gaps skipped" if r["gaps"] else "") + ")")


def _gloss_line(ev: dict) -> str:
    return f"[bold]{plain(ev['gloss'])}[/]  {ev['start']:.2f}-{ev['end']:.2f}s  conf {ev['confidence']:.2f}"


def run_command(bundle: Path, video: Path | None = None, camera: int | None = None, backend: str | None = None,
                crop: str | None = None, hand_model: Path | None = None, decoder: str = "greedy", beam: int = DEFAULT_BEAM,
                threads: int = 0, as_json: bool = False, overlay: Path | None = None, console=None,
                max_seconds: float | None = None, hand_every: int | None = None, read_ahead: int = 16,
                pipeline: bool = True, overwrite: bool = False, providers: str | None = None,
                face_model: Path | None = None, pose_model: Path | None = None) -> dict:
    """Run the recognizer over a source; print committed glosses as they come and a summary at the end.

    ``overlay``: a new PNG (or one slsdk wrote, with ``overwrite``), checked before the run starts: a contact sheet
    of the frames with the hand crops, or the model's input region where the bundle crops no hands.

    The loop is :meth:`Recognizer.recognize` (the one feed loop), resetting at endpoints as live captions do.
    ``real_time_factor``: seconds the recognizer worked (crop, preprocess, model, decoder) per second of video;
    ``real_time_factor_wall``: the whole loop's wall time per second of video, the source's decoding included
    (overlapped with the rest on a reader thread when ``read_ahead`` > 0; with ``pipeline`` cropping runs on a
    front-end thread beside the model).

    A landmark bundle serves a ``.pose`` recording as it is, and a video or camera through the landmark front end
    (:mod:`~slsdk.runtime.landmark_frontend`: hands, lips and body per frame with MediaPipe, ``face_model`` /
    ``pose_model`` / ``hand_model`` found as ``data prepare --landmarks`` finds them; a file is normalised as a
    whole, a camera causally); the summary says ``"input": "landmarks from video"`` and the cost per frame of the
    landmarks against the model's.
    """
    if sys.stdout is None and overlay is None:
        raise StdoutClosedError("standard output is closed: there is nowhere to print the recognised glosses; "
                                "run without closing it (>&-), or redirect it to a file")
    inputs = [p for p in (bundle, video, hand_model, face_model, pose_model) if p is not None]
    with reading(*inputs), output_lock(overlay, overwrite=overwrite) if overlay is not None else nullcontext():
        if overlay is not None:
            check_replace(overlay, overwrite=overwrite)
        try:
            return _run(bundle, video, camera, backend, crop, hand_model, decoder, beam, threads, as_json, overlay,
                        console, max_seconds, hand_every, read_ahead, pipeline, providers, face_model, pose_model)
        except (_ReaderGone, BrokenPipeError):
            _quiet_exit_after_broken_pipe()
    raise AssertionError("not reached")    # the recognizer returned or the process exited above


def _emit_update(u, as_json: bool, console, utterances: list) -> None:
    """One update's output: its glosses, and an endpoint line for a closed utterance (collected in ``utterances``)."""
    for ev in u.events:
        _emit(as_json, console, {"type": "gloss", **ev}, _gloss_line(ev))
    if u.utterance is not None:
        utterances.append(u.utterance.to_dict())
        if not u.final:
            _emit(as_json, console, {"type": "endpoint", "glosses": u.utterance.glosses}, f"-- {plain(u.utterance.text)}")


def _run_landmarks(rec, path: Path, as_json: bool, console) -> dict:
    """`slsdk run BUNDLE FILE.pose`: a landmark recording through a landmark bundle (no front end, no crop)."""
    check_landmark_bundle(rec.manifest, str(path))
    utterances, stream = [], None
    for u in recognize_pose_file(rec, path, reset_at_endpoints=True):
        stream = u.stream
        _emit_update(u, as_json, console, utterances)
    stream.close()
    frames = stream.landmark_frames
    seconds = frames / rec.fps
    busy = sum(getattr(stream.timing, k) for k in ("preprocess", "model", "decode"))
    summary = {"type": "summary", "source": str(path), "input": "landmarks", "backend": rec.backend.name,
               "target": rec.manifest.target, "precision": rec.manifest.precision, "frames": frames, "fps": rec.fps,
               "source_frames": stream.landmark_source_frames, "seconds": round(seconds, 3),
               "glosses": [g for u in utterances for g in u["glosses"]],
               "timing_s": {k: round(v, 4) if isinstance(v, float) else v for k, v in stream.timing.to_dict().items()},
               "real_time_factor": round(busy / seconds, 4) if seconds else None,
               "wall_s": round(stream.wall_seconds, 4)}
    _emit(as_json, console, summary, f"[green]{plain(' '.join(summary['glosses'])) or '(nothing recognised)'}[/]\n"
          f"{frames} landmark frames at {rec.fps:g} fps (from {summary['source_frames']}), real-time factor "
          f"{summary['real_time_factor']}")
    return summary


def _landmark_summary(stream, frames: int) -> tuple[dict, str]:
    """The summary's ``landmarks`` record (what the landmark front end found, its cost per model frame against the
    model's) and its line."""
    fe = stream.frontend
    per = {k: v * 1000.0 / frames if frames else None for k, v in fe.landmark_seconds.items()}
    if frames:
        per["landmarks"] = sum(per[k] for k in ("hands", "lips", "body"))
        per["model"] = stream.timing.model * 1000.0 / frames
        per["decode"] = stream.timing.decode * 1000.0 / frames
        per["total"] = per["landmarks"] + per["normalise"] + per["model"] + per["decode"]
    record = {"normalisation": "as the whole file" if fe.look_ahead else "causal (no look-ahead)",
              "extracted_frames": fe.extracted, "found": dict(fe.found),
              "per_frame_ms": {k: round(v, 4) if v is not None else None for k, v in per.items()}}
    found = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fe.found.items())
    line = (f"landmarks {per['landmarks']:.2f} ms/frame (hands {per['hands']:.2f}, lips {per['lips']:.2f}, body "
            f"{per['body']:.2f}) vs model {per['model']:.2f} ms/frame; of {fe.extracted} frames found: {found}"
            if frames else "no landmark frames")
    return record, line


def _run(bundle, video, camera, backend, crop, hand_model, decoder, beam, threads, as_json, overlay, console,
         max_seconds, hand_every, read_ahead, pipeline, providers=None, face_model=None, pose_model=None) -> dict:
    with warnings.catch_warnings():  # said once below, as a line of the output
        warnings.simplefilter("ignore", TrainServeSkewWarning)
        rec = Recognizer(bundle, backend=backend, crop=crop, hand_model=hand_model, decoder=decoder, beam=beam,
                         threads=threads, providers=providers, face_model=face_model, pose_model=pose_model)
    for w in rec.skew:
        _emit(as_json, console, {"type": "warning", "kind": "train_serve_skew", "message": w},
              f"[yellow]warning[/]: trained on other frames than served: {plain(w)}" if console is not None else None)
    if video is not None and Path(video).suffix.lower() in POSE_SUFFIXES:   # a landmark recording
        if overlay is not None:
            raise LandmarkInputError(f"{video}: --overlay draws video frames; a .pose recording has none")
        if rec.fusion:
            raise LandmarkInputError(f"{video}: the bundle's model takes video frames and their landmarks "
                                     "(input.modality fusion); a .pose recording has no frames: give it the video")
        return _run_landmarks(rec, video, as_json, console)
    name = str(video) if video is not None else f"camera {camera}"
    landmarks = is_landmark_bundle(rec.manifest) or rec.fusion   # fusion: the hand crops and their landmarks
    if landmarks:   # landmarks from the frames: the models are found (or the error said) before the first frame
        if overlay is not None and rec.fusion:
            raise LandmarkInputError(f"{name}: --overlay is not drawn for a fusion bundle (frames and landmarks)")
        if overlay is not None:
            raise LandmarkInputError(f"{name}: --overlay draws the hand crops a frames bundle is fed; this bundle's "
                                     "model takes landmarks")
        check_landmark_bundle(rec.manifest, name)
    if hand_every is not None and rec.crop_config is not None:  # the landmarker schedule (CropConfig.detect_every)
        rec.crop_config = dataclasses.replace(rec.crop_config, detect_every=hand_every)
    elif hand_every is not None and landmarks:                   # the landmarks' own hand trackers
        rec.landmarkers.hand_config = dataclasses.replace(rec.landmarkers.hand_config, detect_every=hand_every)
    source = VideoFileSource(video) if video is not None else CameraSource(camera)
    stream = None
    if landmarks:   # a file is normalised as a whole (its .pose's numbers), a camera causally
        try:
            rec.landmarkers.check()
        except BaseException:
            if hasattr(source, "close"):
                source.close()
            raise
        live = getattr(source, "live", False)
        stream = rec.create_stream(max_gap=LIVE_MAX_GAP_S if live else None, look_ahead=not live)
        stream.frontend.point_scale = display_scale(getattr(source, "reader", None))
    if video is not None and read_ahead > 0:
        w, h = _decoded_size(source)
        capped, frame_bytes = capped_read_ahead(read_ahead, w, h)
        if capped < read_ahead:
            note = (f"--read-ahead {read_ahead} lowered to {capped} frames: decoded {w}x{h} frames take "
                    f"{frame_bytes} bytes each and the read-ahead holds at most {READ_AHEAD_MAX_BYTES >> 20} MiB")
            _emit(as_json, console, {"type": "warning", "kind": "read_ahead_capped", "message": note,
                                     "requested": read_ahead, "frames": capped}, f"note: {note}")
            read_ahead = capped
    overlay_items, utterances = [], []
    try:
        for u in rec.recognize(source, stream=stream, reset_at_endpoints=True, max_seconds=max_seconds,
                               keep_frames=overlay is not None, name=name,
                               read_ahead=read_ahead if video is not None else 0, pipeline=pipeline):
            stream = u.stream
            overlay_items.extend((f, c) for f, c, _ in u.frames[::4])
            _emit_update(u, as_json, console, utterances)
    finally:
        if stream is not None:
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
    landmark_line = ""
    if landmarks:
        summary["input"] = (("hand crops" if rec.croppers is not None else "frames") + " and landmarks from video"
                            if rec.fusion else "landmarks from video")
        summary["landmarks"], landmark_line = _landmark_summary(stream, stream.frame_index)
        landmark_line = "\n" + landmark_line
    _emit(as_json, console, summary, f"[green]{plain(' '.join(summary['glosses'])) or '(nothing recognised)'}[/]\n"
          f"{summary['frames']} frames at {rec.fps:g} fps{_resample_note(summary['resample'])}, real-time factor "
          f"{summary['real_time_factor']} ({summary['real_time_factor_wall']} wall, decoding included), hands in {summary['crop'].get('frames_with_hands', 0)} frames, "
          f"dropped by the reader {summary['dropped_frames']}" + landmark_line)
    if overlay is not None and overlay_items:
        sheet = overlay_items[:24]
        save_overlay_png(overlay, sheet, preprocess=rec.preprocessor, title=" ".join(summary["glosses"])[:60])
        note = sheet_note((c for _, c in sheet), rec.preprocessor)
        _emit(as_json, console, {"type": "overlay", "path": str(overlay), "note": note},
              f"wrote {plain(overlay)}" + (f" ({plain(note)})" if note else ""))
    elif overlay is not None:
        _emit(as_json, console, {"type": "overlay", "path": None, "reason": "no frames kept"},
              f"[yellow]note[/]: no overlay written to {plain(overlay)}: the run kept no frames to draw")
    return summary
