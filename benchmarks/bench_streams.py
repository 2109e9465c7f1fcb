"""How many 25 fps streams one machine sustains in real time, per backend, with and without hand cropping.

    python benchmarks/bench_streams.py [--models demo,lite0-96] [--targets onnx-fp32,onnx-int8,executorch-fp32,torch]
        [--bundles DIR] [--cores 2] [--seconds 2] [--max-streams 64] [--compare 16] [--procs 8]
        [--video CLIP.mp4] [--hand-model PATH] [--crops full,hands] [--out streams.json]

One run, per model file and crop policy (one table row each):

- ``streams``: the largest N of 25 fps streams sustained in real time. N streams share one ``slsdk.Recognizer``
  (one loaded model); every round ``Recognizer.accept_streams`` feeds each stream one chunk of the clip (looped
  to ``--seconds`` of video, untimed frames, already decoded: video decoding is not counted; crop off, scaled to
  the manifest's ``resize_shorter`` as the file and camera sources deliver them, or at the clip's 720x540 with
  ``--camera-size``) -- with ``hands``
  the streams' MediaPipe trackers run on the recognizer's pool of hand-tracker threads (one per core) -- and
  runs the ready chunks of all of them in as few model calls as the file takes (``decode_streams``: one
  batched call for up to ``streaming.max_batch`` streams). N is sustained when N streams x S seconds of video
  take at most S seconds of wall time; N doubles until it fails, then the gap is bisected.
- ``batched_x`` (crop off): wall time of ``--compare`` streams decoded one by one (``decode_stream`` per stream per
  round: one model call each) over the same streams decoded together (``decode_streams``); ``decode_x`` the same
  ratio of the time in the decode calls alone (the model and the CTC decoders; feeding is the same both ways).
- ``procs``: the same N streams (capped at ``--procs``) as separate ``slsdk run`` processes on an mp4 of the
  looped clip (what a user would do otherwise), started together: ``procs_rtf`` is the worst process's
  ``real_time_factor_wall`` (its feed loop, decoding included, start-up not: <= 1 is real time) and
  ``procs_wall_s`` the wall time until the last one exits (start-up included).
- ``rss_mb_per_stream``: the process's resident memory growth per added stream, from 1 to ``--compare`` live
  streams that have each run a chunk (with ``hands``: one MediaPipe landmarker each).

Without ``--bundles`` the models are built with random weights (speed does not depend on them): ``demo`` (the
demo's and phones' default student, ViT-tiny at 48 px) and ``lite0-96`` (EfficientNet-Lite0 at 96 px), converted
to each of ``--targets`` (int8: the static ONNX recipe, calibrated on random chunks; the torch backend runs the
checkpoint). The process is pinned to ``--cores`` CPU cores, the backends get that many threads and the
``slsdk run`` processes the same cores. MediaPipe's cost per frame (one landmarker call, this machine) is
measured too, for the goal ``hands streams >= 0.8 x cores x (40 ms / that cost)``. Figures are measured, never
asserted; the machine may be shared (the load average is recorded), so compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {"demo": {}, "lite0-96": {"encoder": "efficientnet-lite0", "image_size": 96}}


def _shared_file(rel: str) -> Path | None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import find_shared_dir

    d = find_shared_dir()
    return d / rel if d is not None and (d / rel).exists() else None


def build_bundles(out: Path, models: list[str], targets: list[str]) -> list[tuple[str, Path, str | None]]:
    """(label, bundle or checkpoint, backend) for each model and target, random weights."""
    import torch

    from slsdk.convert import convert
    from slsdk.models.student import StreamingStudent, StudentConfig
    from slsdk.train.checkpoint import save_checkpoint

    vocab = ["<blank>", *(f"G{i}" for i in range(99))]
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = StreamingStudent(StudentConfig(num_classes=len(vocab), **MODELS[name])).eval()
        s = model.config.image_size
        calib = [torch.randn(24, 3, s, s, generator=torch.Generator().manual_seed(k)) for k in range(4)]
        for t in targets:
            if t == "torch":
                ckpt = save_checkpoint(out / f"{name}.pt", kind="student", config=model.config.to_dict(),
                                       vocab=vocab, model=model.state_dict())
                rows.append((f"{name} torch", ckpt, "torch"))
                continue
            target, precision = t.rsplit("-", 1)
            b = convert(model, target, precision, out / f"{name}-{t}", vocab=vocab,
                        calib=calib if precision == "int8" else None)
            rows.append((f"{name} {t}", b.root, None))
    return rows


def rss_mb() -> float:
    """This process's resident memory (MB; Linux /proc, else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def wall_for(rec, clip_chunks, n: int, batched: bool = True, decode_seconds: list | None = None) -> float:
    """Seconds to run n streams over the clip's chunks, round-robin: ``accept_streams`` (the trackers of a round
    in parallel) then ``decode_streams`` (``batched``) or ``decode_stream`` per stream. ``decode_seconds`` (a
    list) gets the seconds spent in the decode calls alone (model + CTC; the last partial chunks not counted)."""
    streams = [rec.create_stream() for _ in range(n)]
    decode = 0.0
    t0 = time.perf_counter()
    for chunk in clip_chunks:
        rec.accept_streams(streams, [chunk] * n, decode=False)
        t1 = time.perf_counter()
        if batched:
            rec.decode_streams(streams)
        else:
            for s in streams:
                rec.decode_stream(s)
        decode += time.perf_counter() - t1
    for s in streams:
        s.input_finished()
        s.close()
    if decode_seconds is not None:
        decode_seconds.append(decode)
    return time.perf_counter() - t0


def sustained(rec, clip_chunks, seconds: float, max_streams: int) -> tuple[int, dict]:
    """Largest N with wall(N) <= seconds, and the wall times tried."""
    tried: dict[int, float] = {}

    def ok(n):
        if n not in tried:
            tried[n] = wall_for(rec, clip_chunks, n)
        return tried[n] <= seconds

    wall_for(rec, clip_chunks[:2], 2)  # warm-up: sessions, caches, the hand trackers
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


def rss_per_stream(rec, chunk, n: int) -> float:
    """MB of resident memory per stream added, from 1 to n live streams that each ran a chunk."""
    def live(k):
        streams = [rec.create_stream() for _ in range(k)]
        rec.accept_streams(streams, [chunk] * k)
        return streams, rss_mb()

    one, base = live(1)
    many, top = live(n)
    for s in one + many:
        s.input_finished()
        s.close()
    return (top - base) / n   # n streams added to the one


def run_processes(path: Path, backend: str | None, crop: str, video: Path, n: int, cores: int,
                  hand_model: Path | None) -> dict:
    """n ``slsdk run`` processes on ``video`` at once: the worst real-time factor of their feed loops, the wall."""
    cmd = [sys.executable, "-m", "slsdk.cli", "run", str(path), str(video), "--json", "--crop", crop,
           "--threads", "1"]
    if backend:
        cmd += ["--backend", backend]
    if hand_model is not None and crop == "hands":
        cmd += ["--hand-model", str(hand_model)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pin = sorted(os.sched_getaffinity(0))[:cores] if hasattr(os, "sched_getaffinity") else None
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                              preexec_fn=(lambda: os.sched_setaffinity(0, set(pin))) if pin else None)
             for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    rtfs = []
    for p, out in zip(procs, outs):
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        summary = next((x for x in reversed(lines) if "real_time_factor_wall" in x), None)
        if p.returncode != 0 or summary is None:
            return {"procs": n, "procs_error": f"exit {p.returncode}"}
        rtfs.append(summary["real_time_factor_wall"])
    return {"procs": n, "procs_rtf": round(max(rtfs), 3), "procs_wall_s": round(wall, 2)}


def mediapipe_ms(frames, hand_model: Path) -> float:
    """MediaPipe's cost per frame here: one VIDEO-mode landmarker over the frames (ms, after a warm-up)."""
    from slsdk.runtime.landmarker import Landmarker

    lm = Landmarker(hand_model, "VIDEO")
    try:
        for i, f in enumerate(frames[:5]):
            lm.detect_for_video(f, i * 40)
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            lm.detect_for_video(f, 1000 + i * 40)
        return (time.perf_counter() - t0) / len(frames) * 1e3
    finally:
        lm.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundles", type=Path, default=None, help="folder of bundles (default: build --models x --targets)")
    p.add_argument("--models", default="demo,lite0-96", help=f"models to build: {', '.join(MODELS)}")
    p.add_argument("--targets", default="onnx-fp32,onnx-int8,executorch-fp32,torch")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of video per stream")
    p.add_argument("--max-streams", type=int, default=64)
    p.add_argument("--compare", type=int, default=16, help="streams for batched vs one-by-one and for RSS")
    p.add_argument("--procs", type=int, default=8, help="most `slsdk run` processes started at once (0: none)")
    p.add_argument("--video", type=Path, default=None, help="default: ../shared/data/hands/webcam_gestures.mp4")
    p.add_argument("--hand-model", type=Path, default=None)
    p.add_argument("--crops", default="full,hands", help="crop policies to measure")
    p.add_argument("--camera-size", action="store_true", help="crop off: feed the clip's own frames (720x540) "
                   "instead of frames the source scaled to the model's resize (what `slsdk run` and cameras do)")
    p.add_argument("--out", type=Path, default=Path("streams.json"))
    args = p.parse_args(argv)

    import numpy as np

    from slsdk.data.video import read_video, write_video
    from slsdk.preprocess import resize_shorter
    from slsdk.runtime.recognizer import Recognizer

    if hasattr(os, "sched_setaffinity"):
        have = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(have[: args.cores]))
    video = args.video or _shared_file("data/hands/webcam_gestures.mp4")
    hand_model = args.hand_model or _shared_file("models/hand_landmarker.task")
    clip = read_video(video)
    mp_ms = mediapipe_ms(clip, hand_model) if hand_model is not None and "hands" in args.crops else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="slsdk-streams-") as tmp:
        n_frames = int(round(args.seconds * 25))
        looped = clip[np.arange(n_frames) % len(clip)]
        mp4 = write_video(Path(tmp) / "looped.mp4", looped, fps=25)
        if args.bundles is not None:
            items = [(d.name, d, None) for d in sorted(args.bundles.iterdir()) if (d / "manifest.json").exists()]
        else:
            items = build_bundles(Path(tmp), args.models.split(","), args.targets.split(","))
        for label, path, backend in items:
            for crop in args.crops.split(","):
                try:
                    rec = Recognizer(path, backend=backend, crop=crop, hand_model=hand_model, threads=args.cores)
                except Exception as e:  # noqa: BLE001 - a bundle this machine cannot run is a row saying why
                    rows.append({"model": label, "crop": crop, "status": f"not run: {e}"})
                    print(f"{label:<24} {crop:<6} not run: {e}", flush=True)
                    break
                frames = looped if rec.fps == 25 else clip[np.arange(int(args.seconds * rec.fps)) % len(clip)]
                if crop == "full" and not args.camera_size:
                    # as the file and camera sources deliver them without a hand crop: scaled to the manifest's
                    # resize_shorter in the decoder / at capture (Recognizer.recognize's scale_hint)
                    frames = resize_shorter(frames, rec.resize_shorter)
                chunks = [frames[i:i + rec.chunk] for i in range(0, len(frames), rec.chunk)]
                seconds = len(frames) / rec.fps
                n, tried = sustained(rec, chunks, seconds, args.max_streams)
                row = {"model": label, "backend": rec.backend.name, "crop": crop, "max_batch": rec.backend.max_batch,
                       "streams": n, "tried": {k: round(v, 3) for k, v in sorted(tried.items())}}
                if crop == "full" and args.compare > 1:
                    dec: list[float] = []
                    one = wall_for(rec, chunks, args.compare, batched=False, decode_seconds=dec)
                    together = wall_for(rec, chunks, args.compare, batched=True, decode_seconds=dec)
                    row.update(one_by_one_s=round(one, 3), batched_s=round(together, 3),
                               batched_x=round(one / together, 2), decode_one_by_one_s=round(dec[0], 3),
                               decode_batched_s=round(dec[1], 3), decode_x=round(dec[0] / dec[1], 2))
                if args.compare > 1:
                    row["rss_mb_per_stream"] = round(rss_per_stream(rec, chunks[0], args.compare), 2)
                if args.procs and n:
                    row.update(run_processes(Path(path), backend, crop, mp4, min(n, args.procs), args.cores,
                                             hand_model))
                row["load_average"] = round(os.getloadavg()[0], 2)
                if rec.croppers is not None:
                    rec.croppers.shutdown()
                rows.append(row)
                print(f"{label:<24} {crop:<6} {n:>3} streams  " + "  ".join(
                    f"{k} {v}" for k, v in row.items() if k not in ("model", "crop", "streams")), flush=True)
    info = {"cores": args.cores, "seconds": args.seconds, "video": str(video), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "mediapipe_ms_per_frame": round(mp_ms, 2) if mp_ms else None,
            "hands_goal_streams": round(0.8 * args.cores * 40 / mp_ms, 2) if mp_ms else None,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}  # a shared machine says so
    print(json.dumps(info))
    args.out.write_text(json.dumps({"settings": info, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
