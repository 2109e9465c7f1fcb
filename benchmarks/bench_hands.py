"""Hand detection + signing-space crop speed on a real webcam clip (measured, never asserted).

    python benchmarks/bench_hands.py [--video PATH] [--hand-model PATH] [--size 224] [--repeat 3]
                                     [--sheet out.png]

Prints ms per frame for MediaPipe HandLandmarker (VIDEO mode) alone and for the full crop
(detection + box smoothing + crop + antialiased resize), plus the hands found.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _default_shared() -> Path:
    env = os.environ.get("SLSDK_SHARED")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    for base in (root, *root.parents):
        if (base / "shared" / "data").is_dir():
            return base / "shared"
    return Path("/work/shared")


def main(argv=None) -> int:
    shared = _default_shared()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(shared / "data/hands/webcam_gestures.mp4"))
    ap.add_argument("--hand-model", default=None, help="hand_landmarker.task (default: resolve_hand_model())")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sheet", default=None, help="write a contact sheet PNG of the overlays")
    args = ap.parse_args(argv)

    from slsdk.data.video import read_video, video_info
    from slsdk.runtime.hands import CropConfig, HandCropper, resolve_hand_model, save_overlay_png

    model = args.hand_model
    if model is None and (shared / "models/hand_landmarker.task").exists() and not os.environ.get("SLSDK_HAND_MODEL"):
        model = shared / "models/hand_landmarker.task"
    model = resolve_hand_model(model)
    frames = read_video(args.video)
    fps = video_info(args.video).fps or 25.0
    t, h, w = frames.shape[:3]
    print(f"video {args.video}: {t} frames {w}x{h} @ {fps:.2f} fps; model {model}")
    print(f"host {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} python {sys.version.split()[0]}")

    det_ms, crop_ms = [], []
    with HandCropper(CropConfig(), model, size=args.size) as cropper:
        for _ in range(args.repeat):
            cropper.reset()
            for i, f in enumerate(frames):
                t0 = time.perf_counter()
                cropper.detect(f, int(i * 1000 / fps))
                det_ms.append((time.perf_counter() - t0) * 1000)
            cropper.reset()
            results = []
            for i, f in enumerate(frames):
                t0 = time.perf_counter()
                results.append(cropper.crop(f, int(i * 1000 / fps)))
                crop_ms.append((time.perf_counter() - t0) * 1000)
        stats = cropper.stats

    def fmt(xs):
        xs = sorted(xs)
        return (f"mean {statistics.fmean(xs):6.2f}  median {statistics.median(xs):6.2f}  "
                f"p90 {xs[int(0.9 * (len(xs) - 1))]:6.2f} ms/frame")

    print(f"detection only            : {fmt(det_ms)}")
    print(f"detect+crop+resize {args.size:>4}  : {fmt(crop_ms)}")
    print(f"hands found in {stats.frames_with_hands}/{stats.frames} frames, mean hands {stats.mean_hands:.2f}, "
          f"held {stats.held_frames}, fallback {stats.fallback_frames}")
    if args.sheet:
        step = max(1, t // 12)
        save_overlay_png(args.sheet, [(frames[i], results[i]) for i in range(0, t, step)])
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
