"""Host runtime cost per stage and real-time factor per backend, on a data set's videos (measured, never asserted).

    python benchmarks/bench_runtime.py --data DATA_ROOT [--split test_si] [--limit 8]
        [--bundles slsdk_demo/bundles] [--checkpoint student.pt] [--crop auto|hands|full] [--hand-model PATH]
        [--threads 0] [--decoder greedy|beam] [--warmup 1] [--out runtime.json|runtime.csv]

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
runtime's clock). ``rtf`` includes video decoding; ``rtf_runtime`` is the runtime's own figure (without it).
All rows come from this one run (the machine is shared: compare rows, not runs). ``--warmup`` videos are run
once per backend before timing and left out of the figures.
"""
from __future__ import annotations

import argparse
import csv
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
        return d


# --------------------------------------------------------------------------------------------------
def resolve_crop(crop: str, hand_model: str | None) -> tuple[str, Path | None, str]:
    """(policy, hand model path, reason) the way the runtime finds a model: --hand-model, $SLSDK_HAND_MODEL,
    the cache, then the shared copy (never a download: a benchmark must not wait on the network)."""
    if crop == "full":
        return "full", None, "--crop full"
    from slsdk.runtime.hands import (ENV_HAND_MODEL, HandModelNotFound, InvalidHandModel, resolve_hand_model,
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
    if m.streaming.get("mode", "streaming") != "streaming":
        row.note = "offline (teacher) bundle: no streaming step for the runtime"
        return row, row.note
    return None, None


def bench_one(kind: str, path: Path, videos: list[Path], crop: str, hand_model: Path | None, threads: int,
              decoder: str, beam: int, warmup: int, batch_frames: int, per_video: list) -> Row:
    from slsdk.runtime.api import Recognizer, recognize_video
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
    m = rec.manifest
    row = Row(rec.backend.name, str(path), m.target if kind == "bundle" else "torch (eager)", m.precision,
              crop=rec.crop_policy, load_s=round(load_s, 4))
    for v in videos[:warmup]:
        recognize_video(None, v, recognizer=rec, batch_frames=batch_frames)
    for v in videos:
        r = recognize_video(None, v, recognizer=rec, batch_frames=batch_frames)
        t = r.timing
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
    return row


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
              ("rtf", "RTF"), ("rtf_runtime", "RTF w/o decode")]


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
    ap.add_argument("--data", type=Path, required=True, help="data set root in the folder format (annotations.csv)")
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
    videos = list_videos(a.data, a.split, a.limit)
    if not videos:
        raise SystemExit(f"{a.data}: no videos in split {a.split!r}")
    crop, hand_model, why = resolve_crop(a.crop, a.hand_model)
    settings = thread_settings(threads)
    console.print(f"host: {settings['machine']}, {settings['cpu_count']} CPUs "
                  f"(affinity {settings['sched_affinity']}), python {settings['python']}")
    console.print(f"threads: --threads {threads} -> onnxruntime {settings['onnxruntime']}; torch "
                  f"{settings['torch_threads']} threads; {settings['executorch']}; OMP_NUM_THREADS="
                  f"{settings['OMP_NUM_THREADS']}, SLSDK_THREADS={settings['SLSDK_THREADS']}")
    console.print(f"crop: {crop} ({why}; used for every backend, whatever crop policy a manifest names)")
    console.print(f"videos: {len(videos)} from {a.data} split {a.split}; warm-up {min(a.warmup, len(videos))} "
                  f"video(s) per backend, not timed")

    rows, per_video = [], []
    for kind, path in candidates(None if a.no_bundles else a.bundles, a.checkpoint):
        console.print(f"-- {path}", style="dim")
        row = bench_one(kind, path, videos, crop, hand_model, threads, a.decoder, a.beam, a.warmup,
                        a.batch_frames, per_video)
        rows.append(row.finish())
    if not rows:
        raise SystemExit("nothing to benchmark: no bundles found and no --checkpoint")
    print_table(rows, console, f"slsdk runtime cost per stage ({a.decoder} CTC, crop {crop})")
    console.print("* model = one backend call per chunk: frame encoder + streaming head run as one exported step "
                  "(the runtime does not split them). RTF = processing s / video s (< 1: faster than real time); "
                  "'no decode' leaves out video decoding, as the runtime's own real_time_factor does.")
    if a.out is not None:
        meta = {"host": settings, "crop": {"policy": crop, "reason": why, "hand_model": str(hand_model or "")},
                "data": {"root": str(a.data), "split": a.split, "limit": a.limit, "videos": len(videos)},
                "decoder": a.decoder, "beam": a.beam if a.decoder == "beam" else None, "warmup": a.warmup,
                "batch_frames": a.batch_frames,
                "note": "model = frame encoder + streaming head in one call per chunk (not split by the runtime)"}
        write_out(a.out, rows, per_video, meta)
        console.print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
