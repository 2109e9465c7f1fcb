"""Preprocessing at the model's cost (issue #32): ms per frame end to end through the runtime, crop off.

    python benchmarks/bench_preprocess.py [--bundle slsdk_demo/bundles/onnx-int8] [--frames 48] [--repeat 3]

For 1920x1080, 1280x720, 720x540 and model-size frames (the manifest's ``resize_shorter``, 4:3), one run:

  api numpy    ``Stream.accept_frames`` with full-size frames, the float numpy resize (``resize_shorter_numpy``,
               what main did): the "before"
  api pillow   the same with the runtime's resize (``slsdk.preprocess.resize_image``: Pillow)
  camera       a camera frame (PyAV ``VideoFrame``, yuv420p) as ``CameraSource`` turns it into numpy: full-size RGB
               (before) or scaled at capture to ``resize_shorter`` (after, what the runtime asks for without a hand
               crop; on the capture thread), then ``accept_frames``. ``capture`` and ``runtime`` are its two parts.

Each figure is the best of ``--repeat`` passes of ``--frames`` frames (model, CTC decoding included), ms per frame;
``x model`` is the ratio to the model-size frame of the same column. Also the resize alone per candidate library
(``--candidates``). The machine is shared: compare rows of one run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SIZES = [("1920x1080", 1920, 1080), ("1280x720", 1280, 720), ("720x540", 720, 540)]


def _base_image() -> np.ndarray:
    """A real photo when the test material is there (texture matters little for timing), else a smooth pattern."""
    from PIL import Image

    for root in (Path("shared"), Path("../shared"), Path("/work/shared")):
        files = sorted((root / "data" / "hands").glob("*.jpg"))
        if files:
            return np.array(Image.open(files[0]).convert("RGB"))
    y, x = np.mgrid[0:1080, 0:1920]
    return np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256], -1).astype(np.uint8)


def _frames(base: np.ndarray, w: int, h: int, n: int) -> np.ndarray:
    from slsdk.preprocess import resize_image

    f = resize_image(base, h, w)
    rng = np.random.default_rng(0)
    return np.stack([np.roll(f, int(rng.integers(0, 8)), axis=1) for _ in range(n)])


def _per_frame(fn, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e3


def _api(rec, frames, repeat):
    def run():
        s = rec.create_stream()
        for f in frames:
            s.accept_frames(f[None])
        s.input_finished()
        s.close()
    run()  # warm-up
    return _per_frame(run, len(frames), repeat)


def _camera(rec, frames, repeat, scale: bool):
    import av

    from slsdk.data.video import rgb_image, target_size
    from slsdk.preprocess import resize_image

    vf = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in frames]
    s_ = rec.resize_shorter

    def capture(frame):
        if not scale or min(frame.width, frame.height) <= s_:
            return frame.to_ndarray(format="rgb24")
        w, h = target_size(frame.width, frame.height, shorter=s_)
        return resize_image(rgb_image(frame), h, w)

    def run():
        s = rec.create_stream()
        t0, cap = time.perf_counter(), 0.0
        for frame in vf:
            t = time.perf_counter()
            arr = capture(frame)
            cap += time.perf_counter() - t
            s.accept_frames(arr[None])
        s.input_finished()
        s.close()
        return time.perf_counter() - t0, cap
    run()  # warm-up
    total, cap = min(run() for _ in range(repeat))
    return total / len(vf) * 1e3, cap / len(vf) * 1e3


def _candidates(base: np.ndarray, size: int) -> list[str]:
    from PIL import Image

    from slsdk.preprocess import resize_image, resize_shorter_numpy, shorter_size

    libs = {"numpy (float, main)": lambda f, h, w: resize_shorter_numpy(f[None], min(h, w))[0],
            "Pillow BILINEAR": resize_image,
            "Pillow BILINEAR reducing_gap=2": lambda f, h, w: np.asarray(
                Image.fromarray(f).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0))}
    try:
        import cv2
        libs["OpenCV INTER_AREA"] = lambda f, h, w: cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
    except ImportError:
        pass
    import av
    libs["swscale BILINEAR (RGB)"] = lambda f, h, w: av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
        width=w, height=h, interpolation="BILINEAR").to_ndarray()
    out = [f"| resize alone, ms (-> shorter {size}) | " + " | ".join(n for n, *_ in SIZES) + " |",
           "|---|" + "---|" * len(SIZES)]
    for name, fn in libs.items():
        row = []
        for _, w, h in SIZES:
            f = _frames(base, w, h, 1)[0]
            nh, nw = shorter_size(h, w, size)
            row.append(f"{_per_frame(lambda: [fn(f, nh, nw) for _ in range(10)], 10, 3):.2f}")
        out.append(f"| {name} | " + " | ".join(row) + " |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="slsdk_demo/bundles/onnx-int8")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-candidates", dest="candidates", action="store_false")
    args = ap.parse_args(argv)

    import slsdk.preprocess as pp
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(args.bundle, crop="full", threads=args.threads)
    s = rec.resize_shorter
    base = _base_image()
    model_w = int(round(s * 4 / 3))
    sizes = SIZES + [(f"{model_w}x{s} (model size)", model_w, s)]
    rows = {}
    fast = pp.resize_shorter
    for name, w, h in sizes:
        frames = _frames(base, w, h, args.frames)
        pp.resize_shorter = pp.resize_shorter_numpy  # before: main's numpy resize
        try:
            api_np = _api(rec, frames, args.repeat)
            cam_before, cap_before = _camera(rec, frames, args.repeat, scale=False)
        finally:
            pp.resize_shorter = fast
        api_pil = _api(rec, frames, args.repeat)
        cam_after, cap_after = _camera(rec, frames, args.repeat, scale=True)
        rows[name] = (api_np, api_pil, cam_before, cap_before, cam_after, cap_after)
    m = rows[sizes[-1][0]]
    print(f"bundle {args.bundle} ({rec.manifest.input.height} px, resize_shorter {s}), crop off, "
          f"{args.frames} frames x best of {args.repeat}; ms per frame (x model-size frame)")
    print("| frame | api numpy (before) | api Pillow (after) | camera before: total (capture) "
          "| camera after: total (capture) | camera after, runtime only |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        def c(i):
            return f"{r[i]:.2f} ({r[i] / m[i]:.1f}x)"
        rt, rt_m = r[4] - r[5], m[4] - m[5]
        print(f"| {name} | {c(0)} | {c(1)} | {c(2)} ({r[3]:.2f}) | {c(4)} ({r[5]:.2f}) | {rt:.2f} ({rt / rt_m:.1f}x) |")
    if args.candidates:
        print()
        print("\n".join(_candidates(base, s)))


if __name__ == "__main__":
    main()
