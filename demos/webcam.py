"""Live sign recognition from a camera: one live line of glosses, a new line at each endpoint.

    python demos/webcam.py BUNDLE                      # camera 0 (PyAV: v4l2 / avfoundation / dshow)
    python demos/webcam.py BUNDLE --source /dev/video2 --crop hands --hand-model hand_landmarker.task
    python demos/webcam.py BUNDLE --source clip.mp4    # a video file instead of a camera (no camera needed)

The loop is the runtime's one feed loop, ``rec.recognize(source, reset_at_endpoints=True)`` (the sherpa-style
``accept_frames`` / ``result`` / ``is_endpoint`` -> ``reset`` steps, one update per chunk). The runtime resamples
the frames to the manifest's frame rate by their timestamps (nearest frame by presentation time; for a camera,
stalls longer than ``LIVE_MAX_GAP_S`` are skipped rather than filled); when the model is slower than the camera
the camera reader drops the oldest frames (``slsdk.runtime.sources``), so the line stays live. Ctrl-C stops.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import slsdk
from slsdk import quiet
from slsdk.data.video import VideoError
from slsdk.runtime.backends import backend_names
from slsdk.runtime.sources import LIVE_MAX_GAP_S, CameraError, CameraSource, VideoFileSource


def parse_args(argv=None) -> argparse.Namespace:

    p = argparse.ArgumentParser(description="Live sign recognition from a camera with an slsdk bundle.")
    p.add_argument("bundle", type=Path, help="bundle directory or .zip")
    p.add_argument("--source", default="0", help="camera index, /dev/videoN, or a video file (default: 0)")
    p.add_argument("--device", default=None, help="camera name (Windows dshow) or device path")
    p.add_argument("--size", default=None, help="camera frame size WxH, e.g. 640x480")
    p.add_argument("--camera-fps", type=float, default=None,
                   help="rate to ask the camera for (default: the manifest's fps, else the camera's own)")
    p.add_argument("--backend", choices=backend_names(), default=None)
    p.add_argument("--crop", choices=("full", "hands"), default=None, help="override the manifest's crop policy")
    p.add_argument("--hand-model", type=Path, default=None, help="MediaPipe hand_landmarker.task (crop 'hands')")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    return p.parse_args(argv)


def open_source(args, fps: float):
    """A camera (asking for ``fps``, falling back to the camera's own rate) or a video file."""

    spec = str(args.source)
    if not (spec.isdigit() or spec.startswith("/dev/video") or args.device):
        return VideoFileSource(spec)
    index = int(spec) if spec.isdigit() else spec
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    try:
        return CameraSource(index, fps=args.camera_fps or fps, size=size, device=args.device)
    except CameraError:
        if args.camera_fps:
            raise
        return CameraSource(index, size=size, device=args.device)  # the runtime resamples to the model's rate


class LiveLine:
    """Rewrites one terminal line in place; on a pipe prints a line only when the text changes."""

    def __init__(self, out=sys.stdout):
        self.out, self.tty, self.last = out, out.isatty(), None

    def show(self, text: str, t: float) -> None:
        if self.tty:
            self.out.write(f"\r\033[K[{t:7.2f}s] {text}")
            self.out.flush()
        elif text != self.last:
            print(f"[{t:7.2f}s] {text}", file=self.out, flush=True)
        self.last = text

    def commit(self, text: str, t: float) -> None:
        if self.tty:
            self.out.write(f"\r\033[K[{t:7.2f}s] {text}\n")
        else:
            print(f"[{t:7.2f}s] == {text}", file=self.out, flush=True)
        self.last = None


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet.install()   # other libraries' warnings and logs off, before they load

    rec = slsdk.Recognizer(args.bundle, backend=args.backend, crop=args.crop, hand_model=args.hand_model,
                           threads=args.threads)
    try:
        source = open_source(args, rec.fps)
    except (CameraError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    s = rec.create_stream(max_gap=LIVE_MAX_GAP_S if source.live else None)
    line = LiveLine()
    sentences: list[str] = []
    updates = rec.recognize(source, stream=s, reset_at_endpoints=True, max_seconds=args.max_seconds,
                            name=str(args.source))
    try:
        for u in updates:  # about one model step per chunk: the lowest latency the model allows
            if u.utterance is not None:  # a pause after glosses, a long silence, or a too-long utterance
                line.commit(u.utterance.text, u.time_s)
                sentences.append(u.utterance.text)
            elif not u.final:
                line.show(u.result.text, u.time_s)
    except KeyboardInterrupt:
        updates.close()  # closes the camera
        if s.source_frames:
            s.input_finished()
            res = rec.result(s)
            if res.glosses:
                line.commit(res.text, s.frame_index / rec.fps)
                sentences.append(res.text)
    except VideoError as e:  # nothing came from the source
        print(f"error: {e}", file=sys.stderr)
        return 1
    if line.tty and not sentences:
        print()
    dropped = getattr(source, "dropped", 0)
    r = s.resample_stats
    how = (f" (resampled from {r['source_frames']} frames at {r['source_fps'] or 0:.3g} fps: {r['dropped']} "
           f"dropped, {r['repeated']} repeated, {r['gaps']} gap(s) skipped)") if r else ""
    print(f"{s.frame_index} frames at {rec.fps:g} fps{how}, {len(sentences)} sentence(s), {dropped} frame(s) "
          "dropped by the reader", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
