"""How many 25 fps streams one machine sustains in real time, per backend, with and without hand cropping.

    python benchmarks/bench_streams.py [--bundles DIR] [--cores 2] [--seconds 4] [--max-streams 64]
        [--video CLIP.mp4] [--hand-model PATH] [--feed-threads 1,2] [--out streams.json]

N streams share one ``slsdk.Recognizer`` (one loaded model): every stream is fed the clip (looped to
``--seconds`` of video at the manifest's 25 fps, untimed frames, already decoded: video decoding is not
counted) one chunk at a time, round-robin, and ``Recognizer.decode_streams`` runs the ready chunks of all streams
each round -- one batched model call when the model file takes a batch (the torch backend), one call per stream
for the fixed-batch ONNX / ExecuTorch students slsdk writes. With ``hands`` every stream also runs its own
MediaPipe hand tracker on every frame. A count N is sustained when the wall time for N streams x S seconds of
video is at most S seconds; the answer is the largest sustained N (N doubles until it fails, then the gap is
bisected). The process is pinned to ``--cores`` CPU cores and the backends get that many threads.
``--feed-threads``: each round feeds the streams (crop + preprocess) on that many threads, one task per stream,
then one ``decode_streams`` call (a server's pattern; 1 = everything on the main thread).

Without ``--bundles`` the default (phone) student is built with random weights (speed does not depend on
them) and converted to onnx fp32, onnx int8 (dynamic) and executorch fp32; the torch backend runs its
checkpoint. Figures are measured, never asserted; the machine may be shared, so compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _shared_file(rel: str) -> Path | None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import find_shared_dir

    d = find_shared_dir()
    return d / rel if d is not None and (d / rel).exists() else None


def build_bundles(out: Path) -> list[tuple[str, Path, str | None]]:
    """(label, bundle or checkpoint, backend) for the default student, random weights."""
    import torch

    from slsdk.convert import convert
    from slsdk.models.student import StreamingStudent, StudentConfig
    from slsdk.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    vocab = ["<blank>", *(f"G{i}" for i in range(99))]
    model = StreamingStudent(StudentConfig(num_classes=len(vocab))).eval()
    rows = []
    for target, precision, recipe in (("onnx", "fp32", None), ("onnx", "int8", "onnx-int8-dynamic"),
                                      ("executorch", "fp32", None)):
        b = convert(model, target, precision, out / f"student-{target}-{precision}", vocab=vocab, recipe=recipe)
        rows.append((f"{target} {precision}", b.root, None))
    ckpt = save_checkpoint(out / "student.pt", kind="student", config=model.config.to_dict(), vocab=vocab,
                           model=model.state_dict())
    rows.append(("torch fp32", ckpt, "torch"))
    return rows


def wall_for(rec, clip_chunks, n: int, pool=None) -> float:
    """Seconds to run n streams over the clip's chunks (fed round-robin, decode_streams per round).

    With ``pool`` (a thread pool) each round feeds the streams on its threads, one task per stream, and waits for
    them before the model call: the server pattern the thread rule allows (a stream is fed by one thread at a
    time; MediaPipe runs each stream's tracker on its own executor thread, so the trackers use every core)."""
    streams = [rec.create_stream() for _ in range(n)]
    t0 = time.perf_counter()
    for chunk in clip_chunks:
        if pool is None:
            for s in streams:
                s.accept_frames(chunk, decode=False)
        else:
            for f in [pool.submit(s.accept_frames, chunk, decode=False) for s in streams]:
                f.result()
        rec.decode_streams(streams)
    for s in streams:
        s.input_finished()
        s.close()
    return time.perf_counter() - t0


def sustained(rec, clip_chunks, seconds: float, max_streams: int, pool=None) -> tuple[int, dict]:
    """Largest N with wall(N) <= seconds, and the wall times tried."""
    tried: dict[int, float] = {}

    def ok(n):
        if n not in tried:
            tried[n] = wall_for(rec, clip_chunks, n, pool)
        return tried[n] <= seconds

    wall_for(rec, clip_chunks[:2], 1, pool)  # warm-up: sessions, caches, the hand tracker
    if not ok(1):
        return 0, tried
    lo, hi = 1, None
    while hi is None:
        n = lo * 2
        if n > max_streams:
            return lo, tried
        if ok(n):
            lo = n
        else:
            hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, tried


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundles", type=Path, default=None, help="folder of bundles (default: build the default student)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of video per stream")
    p.add_argument("--max-streams", type=int, default=64)
    p.add_argument("--video", type=Path, default=None, help="default: ../shared/data/hands/webcam_gestures.mp4")
    p.add_argument("--hand-model", type=Path, default=None)
    p.add_argument("--crops", default="full,hands", help="crop policies to measure")
    p.add_argument("--feed-threads", default="1,2", help="threads that feed (crop, preprocess) the streams each "
                   "round: one row per value (1 = all in the main thread)")
    p.add_argument("--out", type=Path, default=Path("streams.json"))
    args = p.parse_args(argv)

    import numpy as np

    from slsdk.data.video import read_video
    from slsdk.runtime.recognizer import Recognizer

    if hasattr(os, "sched_setaffinity"):
        have = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(have[: args.cores]))
    video = args.video or _shared_file("data/hands/webcam_gestures.mp4")
    hand_model = args.hand_model or _shared_file("models/hand_landmarker.task")
    clip = read_video(video)
    with tempfile.TemporaryDirectory(prefix="slsdk-streams-") as tmp:
        if args.bundles is not None:
            items = [(d.name, d, None) for d in sorted(args.bundles.iterdir()) if (d / "manifest.json").exists()]
        else:
            items = build_bundles(Path(tmp))
        rows = []
        for label, path, backend in items:
            for crop in args.crops.split(","):
                try:
                    rec = Recognizer(path, backend=backend, crop=crop, hand_model=hand_model, threads=args.cores)
                except Exception as e:  # noqa: BLE001 - a bundle this machine cannot run is a row saying why
                    rows.append({"model": label, "crop": crop, "status": f"not run: {e}"})
                    break
                n_frames = int(round(args.seconds * rec.fps))
                frames = clip[np.arange(n_frames) % len(clip)]
                chunks = [frames[i:i + rec.chunk] for i in range(0, n_frames, rec.chunk)]
                for feed in (int(x) for x in args.feed_threads.split(",") if x):
                    pool = ThreadPoolExecutor(feed, thread_name_prefix="feed") if feed > 1 else None
                    try:
                        n, tried = sustained(rec, chunks, n_frames / rec.fps, args.max_streams, pool)
                    finally:
                        if pool is not None:
                            pool.shutdown()
                    per_stream = min(w / k for k, w in tried.items()) / (n_frames / rec.fps)
                    rows.append({"model": label, "backend": rec.backend.name, "crop": crop, "feed_threads": feed,
                                 "batched": bool(rec.backend.batch_inputs), "streams": n,
                                 "stream_rtf": round(per_stream, 4),
                                 "tried": {k: round(v, 3) for k, v in sorted(tried.items())},
                                 "load_average": round(os.getloadavg()[0], 2)})
                    print(f"{label:<16} {rec.backend.name:<12} {crop:<6} feed threads {feed} {n:>3} streams in real "
                          f"time (best per-stream RTF {per_stream:.3f}; wall s per N {rows[-1]['tried']}; load "
                          f"{rows[-1]['load_average']})", flush=True)
    info = {"cores": args.cores, "seconds": args.seconds, "video": str(video), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}  # a shared machine says so
    args.out.write_text(json.dumps({"settings": info, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
