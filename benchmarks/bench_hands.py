"""Hand-cropping levers on real clips and phone-resolution videos (measured, never asserted).

    python benchmarks/bench_hands.py [--video PATH ...] [--hand-model PATH] [--size 64] [--every 1,2,3,4,5,6]
                                     [--detect-side 0,256] [--phone 1080,2160] [--repeat 2] [--out hands.json]
                                     [--call-costs] [--compare-model OTHER.task]
    python benchmarks/bench_hands.py --lite [lite|PATH] [--call-costs] [--repeat 3] [--out lite.json]

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

``--lite``: MediaPipe's full hand models (``--hand-model``) against the lite ones (``hand_landmarker_lite.task``,
``slsdk import hand-lite WHEEL``), and nothing else (but ``--call-costs``, then for both models), in one run: on the real photos (``data/hands/gestures``, IMAGE
mode, and the generated signer) and clips (``--video``, VIDEO mode at 25 fps, the landmarker on every frame and on
the runtime's default schedule), per model the hit rate (photos or frames where a hand is found), the crop-box IoU
of lite against full on the frames both find hands in (the signing-space square ``HandCropper`` would cut), the
frames only one of them finds, and the cost: ms per landmarker call (wall, median for photos, mean for clips) and
the crop's process CPU ms per frame (least of ``--repeat`` runs).
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
    """(boxes, hands_found_frames, detections, detect_ms/frame, crop_ms/frame, crop_cpu_ms/frame, hands found per
    frame) for detect_every."""
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.hand_tracker import HandCropper

    with HandCropper(CropConfig(detect_every=every, detect_policy=policy), model, size=size) as c:
        c.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        det = 0.0
        boxes, found = [], []
        for i, f in enumerate(frames):
            a = time.perf_counter()
            r = c.crop(f, int(round(i * 1000.0 / fps)))
            if r.detected:
                det += time.perf_counter() - a
            boxes.append(r.box)
            found.append(r.hands_found)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = c.stats
    n = len(frames)
    return boxes, st.frames_with_hands, st.detections, 1e3 * det / n, 1e3 * total / n, 1e3 * cpu / n, found


def photo_run(images, model, repeat: int = 2):
    """(crop box or None per image, median ms per IMAGE-mode call, process CPU ms per call) on independent photos."""
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.geometry import hands_box_params, square_box
    from slsdk.runtime.landmarker import HandDetector

    cfg, boxes, ms = CropConfig(), [], []
    with HandDetector(model) as d:
        d.detect(images[0])  # warm-up
        c0 = time.process_time()
        for img in images:
            h, w = img.shape[:2]
            times = []
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                hands = d.detect(img)
                times.append(1e3 * (time.perf_counter() - t0))
            ms.append(min(times))
            boxes.append(square_box(*hands_box_params(hands, w, h, cfg), w, h) if hands else None)
        cpu = 1e3 * (time.process_time() - c0) / (len(images) * max(1, repeat))
    return boxes, statistics.median(ms), cpu


def agreement(full: list, lite: list) -> dict:
    """Hit counts and the IoU of lite's boxes against full's on the items both found hands in (None = none)."""
    from slsdk.runtime.geometry import box_iou

    both = [box_iou(b, a) for a, b in zip(full, lite) if a is not None and b is not None]
    return {"items": len(full), "full_hits": sum(a is not None for a in full),
            "lite_hits": sum(b is not None for b in lite), "both": len(both),
            "full_only": sum(a is not None and b is None for a, b in zip(full, lite)),
            "lite_only": sum(a is None and b is not None for a, b in zip(full, lite)),
            "iou_mean": round(statistics.fmean(both), 4) if both else None,
            "iou_min": round(min(both), 4) if both else None}


def lite_compare(full_model, lite_model, photos, videos, repeat: int, size: int) -> list[dict]:
    """Full vs lite hand models on photos (IMAGE mode) and clips (VIDEO mode): hits, box IoU, cost (printed)."""
    from slsdk.data.video import read_image

    rows = []
    print(f"\nfull: {full_model}\nlite: {lite_model}")
    print(f"{'source':>34} {'schedule':>8} {'n':>4} {'hits full':>9} {'hits lite':>9} {'full only':>9} "
          f"{'lite only':>9} {'IoU mean':>8} {'IoU min':>7} {'ms full':>7} {'ms lite':>7} {'cpu full':>8} "
          f"{'cpu lite':>8}")

    def show(source, schedule, a, cost):
        row = {"source": source, "schedule": schedule, **a, **cost, "load_avg": round(os.getloadavg()[0], 2)}
        rows.append(row)
        iou = (f"{a['iou_mean']:>8.3f} {a['iou_min']:>7.3f}" if a["both"] else f"{'-':>8} {'-':>7}")
        print(f"{source:>34} {schedule:>8} {a['items']:>4} {a['full_hits']:>9} {a['lite_hits']:>9} "
              f"{a['full_only']:>9} {a['lite_only']:>9} {iou} {cost['ms_full']:>7.2f} {cost['ms_lite']:>7.2f} "
              f"{cost['cpu_ms_full']:>8.2f} {cost['cpu_ms_lite']:>8.2f}")

    if photos:
        images = [read_image(p) for p in photos]
        (bf, mf, cf), (bl, ml, cl) = (photo_run(images, m, repeat) for m in (full_model, lite_model))
        show(f"{len(photos)} photos", "image", agreement(bf, bl),
             {"ms_full": round(mf, 3), "ms_lite": round(ml, 3), "cpu_ms_full": round(cf, 3), "cpu_ms_lite": round(cl, 3)})
    for video in videos:
        frames = resampled_frames(video)
        for every, schedule in ((1, "every"), (2, "search2")):
            res = {}
            for name, m in (("full", full_model), ("lite", lite_model)):
                runs = [crop_run(frames, m, every, size) for _ in range(max(1, repeat))]
                res[name] = (runs[0], min(r[3] for r in runs), min(r[5] for r in runs))
            boxes = {k: [b if n else None for b, n in zip(v[0][0], v[0][6])] for k, v in res.items()}
            show(Path(video).name, schedule, agreement(boxes["full"], boxes["lite"]),
                 {"ms_full": round(res["full"][1], 3), "ms_lite": round(res["lite"][1], 3),
                  "cpu_ms_full": round(res["full"][2], 3), "cpu_ms_lite": round(res["lite"][2], 3),
                  "detections_full": res["full"][0][2], "detections_lite": res["lite"][0][2]})
    return rows


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
    ap.add_argument("--compare-model", default=None, help="--call-costs also for this .task file (or 'lite')")
    ap.add_argument("--lite", nargs="?", const="lite", default=None, metavar="MODEL",
                    help="only compare the full hand models with the lite ones (default: hand_landmarker_lite.task "
                         "in the cache) on the real photos and --video clips")
    ap.add_argument("--photos", nargs="*", default=None, help="--lite: photos (default: shared data/hands)")
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
    if args.lite:
        photos = args.photos if args.photos is not None else [
            *sorted((shared / "data/hands/gestures").glob("*/*.jpg")), shared / "data/hands/generated_signer.png"]
        photos = [p for p in map(Path, photos) if p.is_file()]
        rows = lite_compare(model, resolve_hand_model(args.lite), photos, args.video, args.repeat, args.size)
        args.phone, args.phone_only = "", True       # nothing else, but --call-costs: full and lite
        args.compare_model = args.compare_model or args.lite
    if args.call_costs:
        frames = resampled_frames(args.video[0])
        print(f"\nlandmarker call costs on {args.video[0]} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]})")
        print(f"{'model':>28} {'mode':>5} {'num_hands':>9} {'hands':>5} {'calls':>5} {'ms/call':>7}")
        for m in [model] + ([resolve_hand_model(args.compare_model)] if args.compare_model else []):
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
