"""Recognise signing in a video file with a bundle and print the glosses with their timestamps.

    python demos/video_file.py BUNDLE VIDEO
    python demos/video_file.py BUNDLE VIDEO --crop hands --hand-model hand_landmarker.task --overlay crops.png
    python demos/video_file.py BUNDLE VIDEO --json

BUNDLE is a bundle directory or .zip (``slsdk convert``); VIDEO a video file or a folder of frames. The runtime
resamples a file's frames to the model's frame rate (the manifest's ``fps``) by their timestamps, so the times
printed are the video's.
``--overlay`` writes a PNG contact sheet of evenly spaced frames with the gloss active at each: the hand crops
(crop policy "hands"), or the region of the frame the model sees (crop "full"); an existing file there is replaced
only with ``--overwrite`` and only if slsdk wrote it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import slsdk
from slsdk import fileio, quiet
from slsdk.errors import SlsdkError
from slsdk.runtime.backends import backend_names
from slsdk.runtime.overlay import save_overlay_png, sheet_note


def parse_args(argv=None) -> argparse.Namespace:

    p = argparse.ArgumentParser(description="Recognise a video file with an slsdk bundle: glosses with timestamps.")
    p.add_argument("bundle", type=Path, help="bundle directory or .zip (or a student .pt with --backend torch)")
    p.add_argument("video", type=Path, help="video file or folder of frames")
    p.add_argument("--backend", choices=backend_names(), default=None, help="default: the one the bundle's target needs")
    p.add_argument("--crop", choices=("full", "hands"), default=None, help="override the manifest's crop policy")
    p.add_argument("--hand-model", type=Path, default=None, help="MediaPipe hand_landmarker.task (crop 'hands')")
    p.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    p.add_argument("--beam", type=int, default=8, help="beam width for --decoder beam")
    p.add_argument("--threads", type=int, default=0, help="backend threads (0: the runtime's default)")
    p.add_argument("--overlay", type=Path, default=None,
                   help="write a PNG contact sheet here: frames with the hand crops or the model's input region")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --overlay PNG written by slsdk before (never another file)")
    p.add_argument("--overlay-frames", type=int, default=12, help="frames on the contact sheet")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def gloss_at(events: list[dict], t: float) -> str:
    """The gloss whose event covers time ``t`` (seconds), or ""."""
    return next((e["gloss"] for e in events if e["start"] <= t < e["end"]), "")


def write_overlay(path: Path, rec_result, n: int, preprocess, *, overwrite: bool = False) -> str | None:
    """Write a contact sheet of ``n`` evenly spaced (frame, crop) pairs captioned with time and gloss (the model's
    input region boxed where there is no hand crop); returns its note on what the boxes are (``sheet_note``)."""
    items = rec_result.overlay_frames  # (frame, crop or None, time in seconds)
    step = max(1, len(items) // max(1, n))
    events = rec_result.result.events
    picked = [(frame, crop, f"{t:.2f}s {gloss_at(events, t)}")
              for i, (frame, crop, t) in enumerate(items) if i % step == 0][:n]
    save_overlay_png(path, picked, preprocess=preprocess, title=rec_result.result.text[:60] or "(no glosses)",
                     overwrite=overwrite)
    return sheet_note((crop for _, crop, _ in picked), preprocess)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet.install()   # other libraries' warnings and logs off, before they load

    rec = slsdk.Recognizer(args.bundle, backend=args.backend, crop=args.crop, hand_model=args.hand_model,
                           decoder=args.decoder, beam=args.beam, threads=args.threads)
    out = slsdk.recognize_video(args.bundle, args.video, recognizer=rec, keep_overlay=args.overlay is not None)
    note = None
    if args.overlay is not None:
        try:
            with fileio.reading(args.bundle, args.video, args.hand_model):   # never written onto
                note = write_overlay(args.overlay, out, args.overlay_frames, rec.preprocessor,
                                     overwrite=args.overwrite)
        except SlsdkError as e:    # e.g. the path holds a file slsdk did not write: one line, no traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.json:
        overlay = str(args.overlay) if args.overlay is not None else None
        print(json.dumps({**out.to_dict(), "overlay": overlay, "overlay_note": note}))
        return 0
    m = rec.manifest
    r = out.resample
    how = (f", resampled from {r['source_frames']} at {r['source_fps'] or 0:.3g} fps ({r['dropped']} dropped, "
           f"{r['repeated']} repeated)") if r and (r["dropped"] or r["repeated"]) else ""
    print(f"{args.video}: {out.frames} frames (model rate {rec.fps:g} fps{how}) | {m.target} {m.precision} on "
          f"{rec.backend.name} | crop {rec.crop_policy}")
    for e in out.result.events:
        print(f"  {e['start']:7.2f} - {e['end']:7.2f} s  {e['gloss']:<20} conf {e['confidence']:.2f}")
    print(f"glosses: {out.result.text or '(nothing recognised)'}")
    print(f"real-time factor {out.real_time_factor:.3f} ({out.timing['chunks']} chunks of {rec.chunk} frames)")
    if args.overlay is not None:
        print(f"wrote {args.overlay}" + (f" ({note})" if note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
