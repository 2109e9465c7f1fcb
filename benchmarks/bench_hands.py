"""Hand-cropping levers on real clips and phone-resolution videos (measured, never asserted).

    python benchmarks/bench_hands.py [--video PATH ...] [--hand-model PATH] [--size 64] [--every 1,2,3,4,5,6]
                                     [--detect-side 0,256] [--phone 1080,2160] [--repeat 2] [--out hands.json]
                                     [--call-costs] [--compare-model OTHER.task]

For each video the frames are decoded with ``slsdk.data.video.VideoReader`` and resampled to 25 fps by
timestamp exactly as the runtime does (``FrameResampler``), then cropped by ``HandCropper`` with
``CropConfig(detect_every=N)`` for each N (policy "hold": between detections the last hands are held). Reported
per policy and N: ms per frame of the landmarker and of the whole crop (detect + box + crop + resize to --size),
the crop's process CPU ms per frame (all threads; less disturbed by other load than wall time), the hands-found
count, landmarker calls, and the crop-box IoU against every-frame detection (mean and minimum over frames). ``--detect-side`` also times the landmarker
on a copy whose shorter side is scaled to that many pixels in the decoder (0 = as decoded). ``--phone`` makes
synthetic phone-resolution clips (the real clip upscaled to that shorter side, 2 s, H.264) and times decoding
them to numpy at full size vs scaled in the decoder to the size cropping needs. ``--call-costs``: what one
landmarker call costs by what it does, on every frame in VIDEO mode (tracking) and IMAGE mode, for num_hands 1
and 2, grouped by the hands it returned (0 hands: palm detection only; num_hands=2 with one hand tracked: palm
detection again on every frame, looking for the second hand, plus the landmark model); with ``--compare-model``
the same for another .task file (for example one with MediaPipe's lite landmark model). The load average is
printed: the machine is shared, so compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
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


def resampled_frames(path, fps: float = 25.0, **reader_kw):
    """The frames the runtime crops: decoded upright, resampled to ``fps`` by timestamp (nearest frame)."""
    from slsdk.data.video import VideoReader
    from slsdk.runtime.sources import FrameResampler

    rs, held, out = FrameResampler(fps), None, []
    for f, t in VideoReader(path, **reader_kw):
        c = rs.push(t)
        if c:
            out.extend([held] * c)
        held = f
    c = rs.finish()
    if c:
        out.extend([held] * c)
    return out


def crop_run(frames, model, every: int, size: int, fps: float = 25.0, policy: str = "search"):
    """(boxes, hands_found_frames, detections, detect_ms/frame, crop_ms/frame, crop_cpu_ms/frame) for detect_every."""
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.hand_tracker import HandCropper

    with HandCropper(CropConfig(detect_every=every, detect_policy=policy), model, size=size) as c:
        c.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        det = 0.0
        boxes = []
        for i, f in enumerate(frames):
            a = time.perf_counter()
            r = c.crop(f, int(round(i * 1000.0 / fps)))
            if r.detected:
                det += time.perf_counter() - a
            boxes.append(r.box)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = c.stats
    n = len(frames)
    return boxes, st.frames_with_hands, st.detections, 1e3 * det / n, 1e3 * total / n, 1e3 * cpu / n


def call_costs(frames, model, repeat: int = 2) -> list[dict]:
    """Median ms per landmarker call by mode, num_hands and hands returned (every frame, after one warm pass)."""
    from slsdk.runtime.landmarker import Landmarker

    rows = []
    for mode in ("VIDEO", "IMAGE"):
        for num_hands in (1, 2):
            lm = Landmarker(model, mode, num_hands, 0.5, 0.5, 0.5)
            per: dict[int, list[float]] = {}
            try:
                for rep in range(max(2, repeat)):
                    for i, f in enumerate(frames):
                        t0 = time.perf_counter()   # includes the image conversion and the Hand records
                        r = lm.detect_for_video(f, rep * 10**6 + i * 40) if mode == "VIDEO" else lm.detect(f)
                        dt = 1e3 * (time.perf_counter() - t0)
                        if rep:
                            per.setdefault(len(r), []).append(dt)
            finally:
                lm.close()
            for hands, ms in sorted(per.items()):
                rows.append({"model": str(model), "mode": mode, "num_hands": num_hands, "hands_returned": hands,
                             "calls": len(ms), "ms_median": round(statistics.median(ms), 2)})
    return rows


def main(argv=None) -> int:
    shared = _default_shared()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", nargs="*", default=[str(shared / "data/hands/webcam_gestures.mp4")])
    ap.add_argument("--hand-model", default=None, help="hand_landmarker.task (default: resolve_hand_model())")
    ap.add_argument("--size", type=int, default=64, help="crop size (the tiny student's resize size)")
    ap.add_argument("--every", default="2,3,4")
    ap.add_argument("--policy", default="search,hold", help="CropConfig.detect_policy values")
    ap.add_argument("--detect-side", default="0,256")
    ap.add_argument("--phone", default="1080,2160", help="synthetic phone clips: shorter sides ('' = none)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the rows as JSON")
    ap.add_argument("--phone-only", action="store_true", help="only the phone-resolution decoding rows")
    ap.add_argument("--call-costs", action="store_true", help="ms per landmarker call by mode, num_hands, hands found")
    ap.add_argument("--compare-model", default=None, help="--call-costs also for this .task file")
    args = ap.parse_args(argv)

    from slsdk.runtime.geometry import box_iou
    from slsdk.runtime.hand_model import resolve_hand_model

    model = args.hand_model
    if model is None and (shared / "models/hand_landmarker.task").exists() and not os.environ.get("SLSDK_HAND_MODEL"):
        model = shared / "models/hand_landmarker.task"
    model = resolve_hand_model(model)
    print(f"host {platform.machine()} cpus={os.cpu_count()} python {sys.version.split()[0]} "
          f"load avg {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    rows = []
    if args.call_costs:
        frames = resampled_frames(args.video[0])
        print(f"\nlandmarker call costs on {args.video[0]} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]})")
        print(f"{'model':>28} {'mode':>5} {'num_hands':>9} {'hands':>5} {'calls':>5} {'ms/call':>7}")
        for m in [model] + ([Path(args.compare_model)] if args.compare_model else []):
            for r in call_costs(frames, m, args.repeat):
                rows.append(r)
                print(f"{Path(r['model']).name:>28} {r['mode']:>5} {r['num_hands']:>9} {r['hands_returned']:>5} "
                      f"{r['calls']:>5} {r['ms_median']:>7.2f}")
    for video in ([] if args.phone_only else args.video):
        frames = resampled_frames(video)
        h, w = frames[0].shape[:2]
        print(f"\n{video}: {len(frames)} frames at 25 fps after resampling, {w}x{h}")
        ref = None
        print(f"{'policy':>6} {'every':>5} {'detect ms/f':>11} {'crop ms/f':>9} {'crop cpu ms/f':>13} {'hands':>5} "
              f"{'dets':>4} {'IoU mean':>8} {'IoU min':>7}")
        for policy, n in [("search", 1)] + [(p, int(x)) for p in args.policy.split(",") for x in args.every.split(",")
                                            if x and int(x) > 1]:
            best = None
            for _ in range(max(1, args.repeat)):
                r = crop_run(frames, model, n, args.size, policy=policy)
                best = r if best is None or r[5] < best[5] else best  # least-disturbed repeat
            boxes, hands, dets, det_ms, crop_ms, cpu_ms = best
            if ref is None:
                ref = boxes
            ious = [box_iou(a, b) for a, b in zip(boxes, ref)]
            row = {"video": str(video), "policy": policy, "every": n, "detect_ms_per_frame": round(det_ms, 3),
                   "crop_ms_per_frame": round(crop_ms, 3), "crop_cpu_ms_per_frame": round(cpu_ms, 3),
                   "frames_with_hands": hands, "detections": dets,
                   "iou_mean": round(statistics.fmean(ious), 4), "iou_min": round(min(ious), 4),
                   "frames": len(frames), "load_avg": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(f"{policy:>6} {n:>5} {det_ms:>11.2f} {crop_ms:>9.2f} {cpu_ms:>13.2f} {hands:>5} {dets:>4} "
                  f"{row['iou_mean']:>8.3f} {row['iou_min']:>7.3f}")
        for side in [int(x) for x in args.detect_side.split(",") if x]:
            small = resampled_frames(video, shorter=side) if side else frames
            best = min((crop_run(small, model, 1, args.size) for _ in range(max(1, args.repeat))), key=lambda r: r[5])
            print(f"landmarker on a {small[0].shape[1]}x{small[0].shape[0]} copy: {best[3]:.2f} ms/frame "
                  f"({best[5]:.2f} CPU ms/frame with the crop), hands in {best[1]} frames")
            rows.append({"video": str(video), "detect_side": side, "detect_ms_per_frame": round(best[3], 3),
                         "crop_cpu_ms_per_frame": round(best[5], 3), "frames_with_hands": best[1]})
    phone = [int(x) for x in args.phone.split(",") if x]
    if phone:
        import numpy as np
        from PIL import Image

        from slsdk.data.video import VideoReader, write_video

        base = resampled_frames(args.video[0])[:50]
        with tempfile.TemporaryDirectory() as tmp:
            for side in phone:
                ratio = side / min(base[0].shape[:2])
                sz = (int(round(base[0].shape[1] * ratio)) // 2 * 2, int(round(base[0].shape[0] * ratio)) // 2 * 2)
                big = np.stack([np.asarray(Image.fromarray(f).resize(sz, Image.BILINEAR)) for f in base])
                p = write_video(Path(tmp) / f"phone{side}.mp4", big, fps=25, crf=23)
                del big
                res = {}
                for label, kw in (("full", {}), ("scaled448", {"shorter": 448})):
                    c0 = time.process_time()
                    n = sum(1 for _ in VideoReader(p, **kw))
                    res[label] = 1e3 * (time.process_time() - c0) / n
                # the lever not taken: YUV -> RGB and the scaling in one swscale pass (chroma scaled apart)
                import av

                from slsdk.data.transforms import resize_shorter

                with av.open(str(p)) as c:
                    vf = list(c.decode(video=0))
                w448, h448 = VideoReader(p, shorter=448).out_size
                c0 = time.process_time()
                one = np.stack([f.to_ndarray(width=w448, height=h448, format="rgb24", interpolation="BILINEAR")
                                for f in vf])
                res["one_pass"] = 1e3 * (time.process_time() - c0) / len(vf)
                ref = resize_shorter(np.stack([f.to_ndarray(format="rgb24") for f in vf[:10]]), 448)
                err = np.abs(one[:10].astype(int) - ref.astype(int))
                print(f"phone {sz[0]}x{sz[1]}: decode to numpy {res['full']:.1f} CPU ms/frame at full "
                      f"size, {res['scaled448']:.1f} scaled exactly in the decoder to 448; one swscale pass "
                      f"{res['one_pass']:.1f} (mean {err.mean():.2f}, max {err.max()} grey levels off)")
                rows.append({"phone": f"{sz[0]}x{sz[1]}", "decode_full_cpu_ms": round(res["full"], 2),
                             "decode_scaled448_cpu_ms": round(res["scaled448"], 2),
                             "decode_one_pass_cpu_ms": round(res["one_pass"], 2),
                             "one_pass_mean_err": round(float(err.mean()), 3), "one_pass_max_err": int(err.max())})
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
