"""Host runtime cost per stage and real-time factor per backend, on a data set's videos (measured, never asserted).

    python benchmarks/bench_runtime.py --data DATA_ROOT [--split test_si] [--limit 8]
        [--bundles slsdk_demo/bundles] [--checkpoint student.pt] [--crop auto|hands|full] [--hand-model PATH]
        [--threads 0] [--decoder greedy|beam] [--warmup 1] [--out runtime.json|runtime.csv]
    python benchmarks/bench_runtime.py --videos CLIP.mp4 ... [--phone 1080,2160] [--hand-every 1,2] --bundles DIR
    python benchmarks/bench_runtime.py --long-stream 3600 --bundles DIR [--crop full]   # memory over a long stream
    python benchmarks/bench_runtime.py --clip-memory    # peak RSS of a 4 s 1080p clip in the train/eval data path
    python benchmarks/bench_runtime.py --videos CLIP --gil --crop hands --bundles DIR   # which stages release the GIL

``--videos`` times given files instead of a data set split; ``--phone 1080,2160`` adds synthetic phone clips
made from the first video (upscaled to that shorter side, stored landscape with a 90-degree display matrix,
30 fps, H.264) so decoding at phone resolution is measured too (the runtime's source scales frames above
``slsdk.runtime.sources.DECODE_MAX_SHORTER`` down in the decoder). ``--hand-every N[,M]`` runs the hand crop with
``CropConfig.detect_every = N`` (policy "search") for each value, one row each.

``--long-stream SECONDS`` feeds that many seconds of 25 fps camera-style frames (the first video's frames scaled to
``--long-shorter`` pixels, in a loop, live timestamps, ``max_gap`` as for a camera, endpoint resets as ``slsdk run`` does) through each bundle and
samples the process RSS (``/proc/self/statm``, not only the Python heap) every 10 s of stream: the answer is the
RSS after the first minute and the largest growth beyond it (the bound).

Every bundle under --bundles whose target has a runtime on this machine (onnx, ort: onnxruntime; executorch:
the ExecuTorch runtime) is run, plus the eager torch student of --checkpoint. Core ML bundles (coreml,
executorch-coreml) and offline (teacher) bundles are listed as skipped with the reason.

Each video is streamed through the backend by ``slsdk.recognize_video`` (as the runtime always does), and the figures are the
runtime's own stage timers (``VideoRecognition.timing``):

  decode      PyAV video decoding (slsdk.data.video.iter_video_timed)
  crop        MediaPipe hand detection + signing-space crop per frame (hands), or nothing (full)
  preprocess  resize / centre crop / normalise (the manifest's input spec)
  model       one backend call per chunk of ``chunk_frames`` frames: the bundle's model is ONE step, frame
              encoder + streaming head together, so the runtime cannot time them apart and neither does this
  ctc         the streaming CTC decoder (greedy or prefix beam search), per chunk

Real-time factor = processing seconds / video seconds (video seconds = model frames / the manifest's fps, the
runtime's clock). ``rtf`` includes video decoding; ``rtf_runtime`` is the runtime's own figure (without it);
``rtf_wall`` is the feed loop's wall time (decoding in turn with the rest) and ``rtf_wall_read_ahead`` the same
videos run again with decoding on a reader thread (``read_ahead=16``, as ``slsdk run`` does for files).
All rows come from this one run (the machine is shared: compare rows, not runs). ``--warmup`` videos are run
once per backend before timing and left out of the figures.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STAGES = ("video_decode", "crop", "preprocess", "model", "decode")
STAGE_LABELS = {"video_decode": "decode", "crop": "crop", "preprocess": "preprocess", "model": "model",
                "decode": "ctc"}
SHARED_HAND_MODEL = Path("/work/shared/models/hand_landmarker.task")


@dataclass
class Row:
    """One backend: its stage costs summed over the timed videos."""

    backend: str
    source: str
    target: str | None = None
    precision: str | None = None
    status: str = "ok"
    crop: str | None = None
    load_s: float | None = None
    videos: int = 0
    frames: int = 0
    chunks: int = 0
    video_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time (all threads) of the timed videos: less disturbed by other load
    wall_s: float = 0.0  # the feed loop's wall time, decoding in turn with the rest (read_ahead=0)
    wall_read_ahead_s: float = 0.0  # the same videos again with decoding on a reader thread (read_ahead=16)
    seconds: dict = field(default_factory=lambda: {k: 0.0 for k in STAGES})
    note: str = ""

    # -- derived figures (filled by finish) --
    def finish(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "seconds"}
        busy = sum(self.seconds[k] for k in STAGES)
        runtime_busy = busy - self.seconds["video_decode"]
        for k in STAGES:
            lab = STAGE_LABELS[k]
            d[f"{lab}_s"] = round(self.seconds[k], 5)
            d[f"{lab}_ms_per_frame"] = round(1e3 * self.seconds[k] / self.frames, 4) if self.frames else None
        d["model_ms_per_chunk"] = round(1e3 * self.seconds["model"] / self.chunks, 4) if self.chunks else None
        d["ctc_ms_per_chunk"] = round(1e3 * self.seconds["decode"] / self.chunks, 4) if self.chunks else None
        d["total_s"] = round(busy, 4)
        d["frames_per_s"] = round(self.frames / busy, 1) if busy else None
        d["rtf"] = round(busy / self.video_s, 4) if self.video_s else None
        d["rtf_runtime"] = round(runtime_busy / self.video_s, 4) if self.video_s else None
        d["rtf_cpu"] = round(self.cpu_s / self.video_s, 4) if self.video_s else None
        d["rtf_wall"] = round(self.wall_s / self.video_s, 4) if self.video_s else None
        d["rtf_wall_read_ahead"] = round(self.wall_read_ahead_s / self.video_s, 4) if self.video_s else None
        d["cpu_s"] = round(self.cpu_s, 4)
        return d


# --------------------------------------------------------------------------------------------------
def resolve_crop(crop: str, hand_model: str | None) -> tuple[str, Path | None, str]:
    """(policy, hand model path, reason) the way the runtime finds a model: --hand-model, $SLSDK_HAND_MODEL,
    the cache, then the shared copy (never a download: a benchmark must not wait on the network)."""
    if crop == "full":
        return "full", None, "--crop full"
    from slsdk.runtime.hand_model import (ENV_HAND_MODEL, HandModelNotFound, InvalidHandModel, resolve_hand_model,
                                          validate_hand_model)

    try:
        path = resolve_hand_model(hand_model, download=False)
        return "hands", path, f"hand model {path}"
    except (HandModelNotFound, InvalidHandModel) as e:
        err = e
    if hand_model is None and not os.environ.get(ENV_HAND_MODEL) and SHARED_HAND_MODEL.is_file():
        try:
            return "hands", validate_hand_model(SHARED_HAND_MODEL), f"hand model {SHARED_HAND_MODEL}"
        except InvalidHandModel as e:
            err = e
    if crop == "hands":
        raise SystemExit(f"--crop hands: {err}")
    return "full", None, f"no hand model found ({str(err).split('. ')[0]}): full-frame crop instead"


def list_videos(data: Path, split: str, limit: int | None) -> list[Path]:
    from slsdk.data import read_folder

    samples = read_folder(data, split)
    return [s.video for s in samples[:limit]]


def candidates(bundles: Path | None, checkpoint: Path | None) -> list[tuple[str, Path]]:
    out = []
    if bundles is not None:
        if not bundles.is_dir():
            raise SystemExit(f"{bundles}: no bundles folder (run `slsdk demo` first, or pass --bundles DIR)")
        out += [("bundle", p) for p in sorted(bundles.iterdir()) if (p / "manifest.json").is_file()
                or (p.suffix == ".zip" and not p.with_suffix("").is_dir())]
    if checkpoint is not None:
        out.append(("torch", checkpoint))
    return out


def skip_reason(path: Path) -> tuple[Row | None, str | None]:
    """A Row marked skipped when this bundle cannot stream here (Core ML, offline teacher, unknown target)."""
    from slsdk.bundle import load_bundle
    from slsdk.targets import get_target

    m = load_bundle(path).manifest
    row = Row("-", str(path), m.target, m.precision, status="skipped")
    t = get_target(m.target)
    if not t.can_run_here:
        row.note = f"{m.target}: {t.not_here}; validated at conversion, not run here"
        return row, row.note
    if m.streaming.mode != "streaming":
        row.note = "offline (teacher) bundle: no streaming step for the runtime"
        return row, row.note
    return None, None


def bench_one(kind: str, path: Path, videos: list[Path], crop: str, hand_model: Path | None, threads: int,
              decoder: str, beam: int, warmup: int, batch_frames: int, per_video: list,
              hand_every: int | None = None) -> Row:
    from slsdk.runtime import Recognizer, recognize_video
    from slsdk.runtime.backends import BackendError

    if kind == "bundle":
        row, _ = skip_reason(path)
        if row is not None:
            return row
    t0 = time.perf_counter()
    try:
        rec = Recognizer(path, backend="torch" if kind == "torch" else None, crop=crop, hand_model=hand_model,
                         decoder=decoder, beam=beam, threads=threads)
    except BackendError as e:
        return Row("-", str(path), status="skipped", note=str(e).split(": ", 1)[-1][:120])
    load_s = time.perf_counter() - t0
    if hand_every is not None and rec.cropper is not None:
        rec.crop_config = dataclasses.replace(rec.crop_config, detect_every=int(hand_every))
    m = rec.manifest
    row = Row(rec.backend.name, str(path), m.target if kind == "bundle" else "torch (eager)", m.precision,
              crop=rec.crop_policy if rec.cropper is None else
              f"{rec.crop_policy} (every {rec.crop_config.detect_every}, {rec.crop_config.detect_policy})",
              load_s=round(load_s, 4))
    for v in videos[:warmup]:
        recognize_video(None, v, recognizer=rec, batch_frames=batch_frames)
    for v in videos:
        c0 = time.process_time()
        r = recognize_video(None, v, recognizer=rec, batch_frames=batch_frames)
        row.cpu_s += time.process_time() - c0
        t = r.timing
        row.wall_s += float(t["wall"])
        row.videos += 1
        row.frames += int(t["frames"])
        row.chunks += int(t["chunks"])
        row.video_s += r.frames / r.fps
        for k in STAGES:
            row.seconds[k] += float(t[k])
        per_video.append({"backend": row.backend, "source": row.source, "target": row.target, "video": str(v),
                          "frames": r.frames, "source_frames": r.source_frames, "video_s": round(r.frames / r.fps, 4),
                          **{f"{STAGE_LABELS[k]}_s": round(float(t[k]), 5) for k in STAGES},
                          "chunks": int(t["chunks"]), "rtf_runtime": round(r.real_time_factor, 4),
                          "hands_frames": r.crop_stats.get("frames_with_hands"), "glosses": r.result.glosses})
    for v in videos:  # the pipeline: decoding on a reader thread, overlapping the crop and the model
        r = recognize_video(None, v, recognizer=rec, batch_frames=batch_frames, read_ahead=16)
        row.wall_read_ahead_s += float(r.timing["wall"])
    return row


def phone_clips(src: Path, sides: list[int], folder: Path) -> list[Path]:
    """Synthetic phone clips from ``src``: upscaled to each shorter side, 30 fps, stored landscape + display matrix."""
    import numpy as np
    from PIL import Image

    from slsdk.data.video import load_video, write_video

    frames, _ = load_video(src)
    out = []
    for side in sides:
        h, w = frames.shape[1:3]
        r = side / min(h, w)
        size = (int(round(w * r)) // 2 * 2, int(round(h * r)) // 2 * 2)
        big = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
        stored = np.ascontiguousarray(np.rot90(big, -1, axes=(1, 2)))  # sensor-landscape, shown upright
        del big
        out.append(write_video(folder / f"phone_{size[0]}x{size[1]}_rot90.mp4", stored, fps=30, crf=23, rotation=90))
        del stored
    return out


def rss_bytes() -> int:
    """Resident set size of this process (/proc/self/statm; falls back to the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def long_stream(path: Path, frames, seconds: float, crop: str, hand_model, threads: int, console) -> dict:
    """Camera-style input for ``seconds`` at 25 fps through one bundle; RSS sampled every 10 s of stream."""
    import numpy as np

    from slsdk.runtime.recognizer import Recognizer
    from slsdk.runtime.sources import LIVE_MAX_GAP_S

    rec = Recognizer(path, crop=crop, hand_model=hand_model, threads=threads)
    stream = rec.create_stream(max_gap=LIVE_MAX_GAP_S)
    n = int(seconds * 25)
    samples, batch, times, utterances = [], [], [], 0
    t0 = time.perf_counter()
    for i in range(n):
        batch.append(frames[i % len(frames)])
        times.append(i / 25.0)
        if len(batch) >= rec.chunk:
            stream.accept_frames(np.stack(batch), timestamps=times)
            batch, times = [], []
            res = rec.result(stream)
            if rec.is_endpoint(stream) and res.glosses:
                utterances += 1
                rec.reset(stream)
        if i % 250 == 0:
            samples.append((i / 25.0, rss_bytes()))
            if i % 7500 == 0:  # every 5 min of stream: a line, so a long run shows its progress
                console.print(f"  {i / 25.0:6.0f} s of stream: RSS {samples[-1][1] / 2**20:.1f} MB "
                              f"({time.perf_counter() - t0:.0f} s wall)")
    wall = time.perf_counter() - t0
    base = next((r for t, r in samples if t >= 60), samples[-1][1])
    peak = max(r for _, r in samples)
    out = {"bundle": str(path), "crop": rec.crop_policy, "stream_s": seconds, "frames": n, "wall_s": round(wall, 1),
           "rss_start_mb": round(samples[0][1] / 2**20, 1), "rss_after_60s_mb": round(base / 2**20, 1),
           "rss_peak_mb": round(peak / 2**20, 1), "rss_end_mb": round(samples[-1][1] / 2**20, 1),
           "growth_after_60s_mb": round((peak - base) / 2**20, 2), "utterances": utterances,
           "samples": [(round(t), round(r / 2**20, 1)) for t, r in samples]}
    console.print(f"{path.name}: {seconds:g} s of 25 fps frames ({n} frames, crop {rec.crop_policy}) in {wall:.0f} s; "
                  f"RSS {out['rss_start_mb']} MB at start, {out['rss_after_60s_mb']} MB after 60 s, peak "
                  f"{out['rss_peak_mb']} MB, end {out['rss_end_mb']} MB: growth beyond the first minute "
                  f"{out['growth_after_60s_mb']} MB")
    return out


_CLIP_MEMORY = """
import sys
from slsdk.data import Sample, Vocabulary
from slsdk.data.dataset import VideoDataset
from slsdk.data.transforms import resize_shorter
from slsdk.data.video import read_video
if sys.argv[1] == "dataset":  # what train / eval do per clip now: frames scaled in the decoder
    item = VideoDataset([Sample("x", ["a"], sys.argv[2])], Vocabulary(["<blank>", "a"]), 224)[0]
else:  # the former path: the whole clip at full size, then the resize
    item = resize_shorter(read_video(sys.argv[2]), 256)
# VmHWM: this process's peak RSS (getrusage's ru_maxrss would include the parent's peak, inherited over fork)
print([int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM")][0] / 1024)
"""


def clip_memory(folder: Path, seconds: float = 4.0) -> dict:
    """Peak RSS of one 1080p clip through the dataset path (each in a fresh process), now vs full-size-then-resize."""
    import subprocess

    import numpy as np

    from slsdk.data.video import write_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1080 // 8, 1920 // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    path = write_video(folder / "hd.mp4", np.stack([np.roll(base, 4 * i, axis=1) for i in range(int(seconds * 25))]),
                       fps=25, crf=30)
    out = {}
    for mode in ("dataset", "full_then_resize"):
        r = subprocess.run([sys.executable, "-c", _CLIP_MEMORY, mode, str(path)], capture_output=True, text=True,
                           check=True)
        out[f"{mode}_peak_rss_mb"] = round(float(r.stdout.strip().splitlines()[-1]), 1)
    return {"clip": f"{seconds:g} s 1920x1080 at 25 fps", **out}


def gil_check(video: Path, bundle: Path | None, hand_model: Path | None, seconds: float = 2.0) -> list[dict]:
    """Which runtime stages release the GIL: each loops on a thread while the main thread times its own stalls.

    A stage that holds the GIL for a whole call stalls the main thread about once per call (``stalls_per_call``
    near 1, as the ``sorted()`` reference does); one that releases it, near 0. Calls shorter than twice the switch
    interval cannot be told apart this way (marked ``short``); on a loaded machine the process itself is
    descheduled now and then, which counts as a stall for short calls.
    """
    import threading

    import av
    import numpy as np

    from slsdk.data.video import load_video

    frames, _ = load_video(video)
    stages = {}
    if hand_model is not None:
        from slsdk.runtime.crop import CropConfig
        from slsdk.runtime.hand_tracker import HandCropper

        cropper = HandCropper(CropConfig(detect_every=1), hand_model)
        k = [0]

        def detect():
            cropper.detect(frames[k[0] % len(frames)], k[0] * 40)
            k[0] += 1

        stages["mediapipe detect"] = detect
    container = av.open(str(video))
    it = [container.decode(video=0)]

    def decode():
        try:
            next(it[0])
        except StopIteration:
            container.seek(0)
            it[0] = container.decode(video=0)

    stages["pyav decode"] = decode
    first = next(av.open(str(video)).decode(video=0))
    stages["swscale rgb + scale"] = lambda: first.reformat(format="rgb24").reformat(width=224, height=298,
                                                                                  interpolation="BILINEAR")
    if bundle is not None and (bundle / "manifest.json").is_file():
        from slsdk.runtime.recognizer import Recognizer

        rec = Recognizer(bundle, crop="full")
        x = np.zeros((1, rec.chunk, 3, *rec.size), np.float32)
        stages["backend run (chunk)"] = lambda: rec.backend.run({rec.frames_input: x, **rec.runner.initial_state()})

    data = list(np.random.default_rng(0).random(200_000))
    stages["sorted() (holds the GIL: reference)"] = lambda: sorted(data)
    out = []
    for name, work in stages.items():
        stop, durs = threading.Event(), []

        def loop():
            while not stop.is_set():
                t = time.perf_counter()
                work()
                durs.append(time.perf_counter() - t)

        th = threading.Thread(target=loop)
        th.start()
        last = time.perf_counter()
        end, gaps = last + seconds, []
        while last < end:
            for _ in range(200):
                pass
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        stop.set()
        th.join()
        d = float(np.median(durs))
        stalls = float((np.asarray(gaps) >= 0.8 * d).sum()) / max(1, len(durs))
        out.append({"stage": name, "call_ms": round(1e3 * d, 3), "stalls_per_call": round(stalls, 2),
                    "short": d < 2 * sys.getswitchinterval()})
    return out


def thread_settings(threads: int) -> dict:
    import torch

    try:
        import onnxruntime as ort

        ort_version = ort.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads_arg": threads,
        "onnxruntime": (f"intra_op_num_threads={threads}, inter_op=1" if threads
                        else "onnxruntime default (intra-op = physical cores)"),
        "executorch": "ExecuTorch runtime default threadpool (not set by the runtime)",
        "torch_threads": threads or torch.get_num_threads(),  # the torch backend sets --threads when given
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "SLSDK_THREADS": os.environ.get("SLSDK_THREADS"),
        "mediapipe": "MediaPipe's own (not set by the runtime)",
        "onnxruntime_version": ort_version, "torch_version": torch.__version__,
        "python": sys.version.split()[0], "machine": f"{platform.system()} {platform.machine()}",
    }


TABLE_COLS = [("backend", "backend"), ("model", "model"), ("crop", "crop"), ("frames", "frames"),
              ("video_s", "video s"), ("decode_ms_per_frame", "decode"), ("crop_ms_per_frame", "crop"),
              ("preprocess_ms_per_frame", "preproc"), ("model_ms_per_frame", "model*"),
              ("ctc_ms_per_frame", "ctc"), ("model_ms_per_chunk", "model* ms/chunk"), ("total_s", "total s"),
              ("rtf", "RTF"), ("rtf_runtime", "RTF w/o decode"), ("rtf_cpu", "RTF cpu"), ("rtf_wall", "RTF wall"),
              ("rtf_wall_read_ahead", "RTF wall, read-ahead")]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def print_table(rows: list[dict], console, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, caption="decode .. ctc: ms per model frame, summed over the timed videos")
    for key, label in TABLE_COLS:
        t.add_column(label, justify="left" if key in ("backend", "model", "crop") else "right")
    for r in rows:
        if r["status"] != "ok":
            continue
        r = {**r, "model": f"{r['target']} {r['precision']}"}
        t.add_row(*(_fmt(r.get(k)) for k, _ in TABLE_COLS))
    console.print(t)
    for r in rows:
        if r["status"] != "ok":
            console.print(f"[yellow]skipped[/] {r['source']}: {r['note']}")


def write_out(path: Path, rows: list[dict], per_video: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps({**meta, "rows": rows, "videos": per_video}, indent=2, default=str))
    elif path.suffix == ".csv":
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    else:
        raise SystemExit(f"--out {path}: use a .json or .csv file name")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="data set root in the folder format (annotations.csv)")
    ap.add_argument("--videos", type=Path, nargs="*", default=None, help="video files instead of --data")
    ap.add_argument("--phone", default="", help="add synthetic phone clips at these shorter sides, e.g. 1080,2160")
    ap.add_argument("--hand-every", default="", help="CropConfig.detect_every values, one row each (e.g. 1,2)")
    ap.add_argument("--long-stream", type=float, default=None, help="seconds of camera-style input: RSS over time")
    ap.add_argument("--long-shorter", type=int, default=240, help="--long-stream frames: shorter side (240: 240x320)")
    ap.add_argument("--clip-memory", action="store_true", help="peak RSS of a 4 s 1080p clip in the dataset path")
    ap.add_argument("--gil", action="store_true", help="which stages release the GIL (first video, first bundle)")
    ap.add_argument("--split", default="test_si")
    ap.add_argument("--limit", type=int, default=8, help="videos from the split (first N)")
    ap.add_argument("--bundles", type=Path, default=Path("slsdk_demo/bundles"),
                    help="folder of bundles (one per sub-folder)")
    ap.add_argument("--no-bundles", action="store_true", help="only the --checkpoint torch backend")
    ap.add_argument("--checkpoint", type=Path, default=None, help="student checkpoint for the eager torch backend")
    ap.add_argument("--crop", choices=("auto", "hands", "full"), default="auto",
                    help="auto: MediaPipe hand crop when a hand model is found, else the full frame")
    ap.add_argument("--hand-model", default=None, help="hand_landmarker.task (default: $SLSDK_HAND_MODEL, the "
                    f"cache, {SHARED_HAND_MODEL})")
    ap.add_argument("--threads", type=int, default=None, help="backend threads (default $SLSDK_THREADS or 0 = "
                    "the backend's own default)")
    ap.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1, help="videos run once per backend before timing")
    ap.add_argument("--batch-frames", type=int, default=32, help="frames handed to the stream per call")
    ap.add_argument("--out", type=Path, default=None, help="write the figures to FILE.json or FILE.csv")
    a = ap.parse_args(argv)
    if a.out is not None and a.out.suffix not in (".json", ".csv"):
        ap.error(f"--out {a.out}: use a .json or .csv file name")

    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ info lines
    from rich.console import Console

    from slsdk.runtime.backends import default_threads

    console = Console(width=max(Console().width, 150))  # the table stays whole when piped to a file
    threads = default_threads() if a.threads is None else a.threads
    import tempfile

    tmp = tempfile.TemporaryDirectory()
    if a.clip_memory:
        from rich.console import Console

        res = clip_memory(Path(tmp.name))
        Console().print(res)
        if a.out is not None:
            a.out.write_text(json.dumps(res, indent=1))
        return 0
    if a.videos:
        videos = list(a.videos)
    elif a.data is not None:
        videos = list_videos(a.data, a.split, a.limit)
    else:
        raise SystemExit("give --data DATA_ROOT or --videos FILE ...")
    if not videos:
        raise SystemExit(f"{a.data}: no videos in split {a.split!r}")
    if a.phone:
        videos += phone_clips(videos[0], [int(x) for x in a.phone.split(",") if x], Path(tmp.name))
    crop, hand_model, why = resolve_crop(a.crop, a.hand_model)
    settings = thread_settings(threads)
    console.print(f"host: {settings['machine']}, {settings['cpu_count']} CPUs "
                  f"(affinity {settings['sched_affinity']}), python {settings['python']}")
    console.print(f"threads: --threads {threads} -> onnxruntime {settings['onnxruntime']}; torch "
                  f"{settings['torch_threads']} threads; {settings['executorch']}; OMP_NUM_THREADS="
                  f"{settings['OMP_NUM_THREADS']}, SLSDK_THREADS={settings['SLSDK_THREADS']}")
    console.print(f"crop: {crop} ({why}; used for every backend, whatever crop policy a manifest names)")
    console.print(f"videos: {len(videos)} ({', '.join(Path(v).name for v in videos)}); warm-up "
                  f"{min(a.warmup, len(videos))} video(s) per backend, not timed")
    load = os.getloadavg()
    console.print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine: compare rows of one run)")
    if a.gil:
        bundle = next((p for k, p in candidates(None if a.no_bundles else a.bundles, None) if k == "bundle"), None)
        res = gil_check(Path(videos[0]), bundle, hand_model if crop == "hands" else None)
        for r in res:
            console.print(f"{r['stage']:26s} call {r['call_ms']:8.2f} ms; main-thread stalls per call "
                          f"{r['stalls_per_call']:.2f}" + ("  (call shorter than the switch interval: can't tell)"
                                                          if r["short"] else ""))
        if a.out is not None:
            a.out.write_text(json.dumps({"gil": res, "load_avg": load}, indent=1))
        return 0
    if a.long_stream:
        from slsdk.data.video import load_video

        frames = list(load_video(videos[0], shorter=a.long_shorter)[0])  # webcam-sized frames by default
        results = [long_stream(path, frames, a.long_stream, crop, hand_model, threads, console)
                   for kind, path in candidates(None if a.no_bundles else a.bundles, None) if kind == "bundle"
                   and skip_reason(path)[0] is None]
        if a.out is not None:
            a.out.write_text(json.dumps({"long_stream": results, "load_avg": load}, indent=1))
        return 0

    rows, per_video = [], []
    everies = [int(x) for x in a.hand_every.split(",") if x] or [None]
    for kind, path in candidates(None if a.no_bundles else a.bundles, a.checkpoint):
        for every in (everies if crop == "hands" else [None]):
            console.print(f"-- {path}" + (f" (hand every {every})" if every else ""), style="dim")
            row = bench_one(kind, path, videos, crop, hand_model, threads, a.decoder, a.beam, a.warmup,
                            a.batch_frames, per_video, hand_every=every)
            rows.append(row.finish())
    if not rows:
        raise SystemExit("nothing to benchmark: no bundles found and no --checkpoint")
    print_table(rows, console, f"slsdk runtime cost per stage ({a.decoder} CTC, crop {crop})")
    console.print("* model = one backend call per chunk: frame encoder + streaming head run as one exported step "
                  "(the runtime does not split them). RTF = processing s / video s (< 1: faster than real time); "
                  "'no decode' leaves out video decoding, as the runtime's own real_time_factor does; 'RTF cpu' is "
                  "process CPU seconds (all threads, decoding included) per video second: what a quiet machine's "
                  "wall-clock RTF would be when stages do not overlap, and far less disturbed by other load.")
    if a.out is not None:
        meta = {"host": settings, "load_avg": load,
                "crop": {"policy": crop, "reason": why, "hand_model": str(hand_model or "")},
                "data": {"root": str(a.data), "split": a.split, "limit": a.limit, "videos": [str(v) for v in videos]},
                "decoder": a.decoder, "beam": a.beam if a.decoder == "beam" else None, "warmup": a.warmup,
                "batch_frames": a.batch_frames,
                "note": "model = frame encoder + streaming head in one call per chunk (not split by the runtime)"}
        write_out(a.out, rows, per_video, meta)
        console.print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
