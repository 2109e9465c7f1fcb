"""`slsdk bench`: what each target costs and keeps, measured in one run beside the eager fp32 torch teacher.

Figures are ratios taken in the same process (these machines are shared and noisy); nothing here is
asserted by tests. Rows come from the targets table: one per bundle found, plus the eager torch models.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from slsdk.bundle import load_bundle
from slsdk.fileio import atomic_path, atomic_write_text, check_replace, output_lock, reading, temp_dir
from slsdk.runtime import backends as runtime_backends   # called through the module (tests replace open_backend)
from slsdk.tables import NA, fit_table, num


@dataclass
class BenchRow:
    """One line of the benchmark table."""

    format: str
    precision: str
    status: str
    size_mb: float | None = None
    wer: float | None = None
    load_s: float | None = None
    chunk_ms_p50: float | None = None
    chunk_ms_p90: float | None = None
    frames_per_s: float | None = None
    speed_vs_teacher: float | None = None  # frames/s over the eager fp32 teacher's frames/s (same run)
    size_vs_fp32: float | None = None
    gmacs_per_frame: float | None = None
    note: str = ""


def dir_size_mb(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def matmul_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Measured fp32 matmul throughput of this CPU with torch's threads (GFLOP/s)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def _percentiles(times_s: list[float]) -> tuple[float, float]:
    a = np.asarray(times_s) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 90))


def time_calls(fn, iters: int = 20, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_bundles(paths, iters: int = 20, threads: int = 0, warmup: int = 3) -> list[BenchRow]:
    """Time several bundles interleaved: every round runs one chunk on each open backend in turn (random frames,
    zero state), so load on a shared machine slows them alike and their ratios (int8 vs fp32, target vs
    target) are measured in one run. Timed back to back instead, one bundle can take a busy spell alone: in the
    2026-12-03 students run a Lite0 .ort int8 file measured 0.55x its .onnx twin timed in sequence; a Lite0's
    .ort and .onnx int8 files timed interleaved ran alike (11.0 vs 11.5 ms per chunk, 2026-12-04). One row per
    path, in order."""
    rows, calls = [], []
    rng = np.random.default_rng(0)
    for path in paths:
        bundle = load_bundle(path)
        m = bundle.manifest
        row = BenchRow(m.target, m.precision, "ok", size_mb=round(dir_size_mb(bundle.model_path), 3),
                       wer=m.fidelity.get("wer"))
        rows.append(row)
        t0 = time.perf_counter()
        try:
            backend = runtime_backends.open_backend(bundle, threads=threads)
        except runtime_backends.BackendError as e:
            row.status, row.note = "validated only", str(e).split(": ", 1)[-1][:80]
            continue
        row.load_s = round(time.perf_counter() - t0, 4)
        inputs = {io.name: rng.standard_normal(io.shape).astype(np.float32) * 0.5
                  for io in m.streaming.inputs}
        calls.append((row, m.streaming.chunk_frames, lambda b=backend, x=inputs: b.run(x), []))
    for i in range(warmup + iters):
        if not calls:
            break
        k = i % len(calls)   # who goes first rotates
        for call in calls[k:] + calls[:k]:
            row, _, fn, times = call
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - the row says what failed; the others go on
                row.status, row.note = "failed", f"{type(e).__name__}: {e}"[:80]
                calls.remove(call)
                continue
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    for row, chunk_frames, _, times in calls:
        p50, p90 = _percentiles(times)
        row.chunk_ms_p50, row.chunk_ms_p90 = round(p50, 3), round(p90, 3)
        row.frames_per_s = round(chunk_frames / (p50 / 1e3), 1)
    return rows


def bench_torch_model(model, frames: int, image_size: int, label: str, iters: int = 10) -> BenchRow:
    """Eager fp32 torch: frames/s of a whole-clip forward (teacher) or of streaming steps (student)."""
    import torch

    from slsdk.models.flops import count_macs_per_frame

    model = model.eval()
    x = torch.randn(1, frames, 3, image_size, image_size)
    lengths = torch.tensor([frames])
    with torch.inference_mode():
        times = time_calls(lambda: model(x, lengths), iters=iters, warmup=2)
    # outside inference mode: the FLOP counter's module hooks need autograd-visible tensors
    macs = count_macs_per_frame(lambda v: model(v, lengths), (x,), frames=frames)
    p50, p90 = _percentiles(times)
    size = sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1e6
    return BenchRow(label, "fp32", "ok", size_mb=round(size, 3), chunk_ms_p50=round(p50, 3),
                    chunk_ms_p90=round(p90, 3), frames_per_s=round(frames / (p50 / 1e3), 1),
                    gmacs_per_frame=round(macs / 1e9, 4), note=f"{frames}-frame clip per call")


def finish_table(rows: list[BenchRow], teacher_fps: float | None) -> list[BenchRow]:
    """Fill the ratios: speed vs the eager teacher, size vs the same target's fp32."""
    fp32 = {r.format: r.size_mb for r in rows if r.precision == "fp32" and r.size_mb}
    for r in rows:
        if teacher_fps and r.frames_per_s:
            r.speed_vs_teacher = round(r.frames_per_s / teacher_fps, 2)
        if r.size_mb and fp32.get(r.format):
            r.size_vs_fp32 = round(r.size_mb / fp32[r.format], 3)
    return rows


def write_table(rows: list[BenchRow], out_dir: Path, extra: dict | None = None, *,
                overwrite: bool = False) -> dict[str, Path]:
    """CSV, JSON and a PNG of latency per target (new files, or ones slsdk wrote when ``overwrite``)."""
    out_dir = Path(out_dir)
    dicts = [asdict(r) for r in rows]
    paths = {"csv": out_dir / "bench.csv", "json": out_dir / "bench.json", "png": out_dir / "bench.png"}
    for p in paths.values():       # all three or none
        check_replace(p, overwrite=overwrite)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(dicts[0]))
    w.writeheader()
    w.writerows(dicts)
    atomic_write_text(paths["csv"], buf.getvalue(), overwrite=overwrite)
    atomic_write_text(paths["json"], json.dumps({"rows": dicts, **(extra or {})}, indent=2), overwrite=overwrite)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.frames_per_s]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(timed) + 1.5))
    labels = [f"{r.format} {r.precision}" for r in timed]
    ax.barh(labels, [r.frames_per_s for r in timed], color="#4477aa")
    ax.set_xlabel("frames per second (higher is better)")
    ax.set_title("throughput per target, measured in one run")
    ax.invert_yaxis()
    fig.tight_layout()
    with atomic_path(paths["png"], overwrite=overwrite, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return paths


BENCH_HEADERS = ("target", "status", "size MB", "WER %", "ms per chunk p50 / p90", "frames per s", "x eager teacher")


def rich_table(rows: list[BenchRow], title: str, console: Console | None = None):
    """The rows as a table that fits ``console`` (one block per row where it cannot), numbers to meaningful
    digits; GMACs, the size ratio to fp32 and the notes go under it (all of them are in bench.csv / .json)."""
    cells, notes = [], []
    for r in rows:
        name = f"{r.format} {r.precision}"
        ms = NA if r.chunk_ms_p50 is None else f"{num(r.chunk_ms_p50)} / {num(r.chunk_ms_p90)}"
        cells.append((name, r.status, num(r.size_mb), num(r.wer), ms, num(r.frames_per_s), num(r.speed_vs_teacher)))
        extra = [f"{num(r.gmacs_per_frame)} GMACs per frame"] if r.gmacs_per_frame else []
        if r.size_vs_fp32 is not None and r.precision != "fp32":
            extra.append(f"{num(r.size_vs_fp32)} x the fp32 size")
        extra += [r.note] if r.note else []
        if extra:
            notes.append(f"{name}: {'; '.join(extra)}")
    return fit_table(console or Console(), title, BENCH_HEADERS, cells, notes=notes)


def run_bench(bundles_dir: Path | None = None, arch: bool = False, out_dir: Path = Path("bench"),
              data_root: Path | None = None, console=None, teacher_checkpoint: Path | None = None,
              overwrite: bool = False) -> list[BenchRow]:
    """Benchmark every bundle under BUNDLES_DIR (or, with arch, the real model sizes on random weights).

    Writes ``bench.{csv,json,png}`` into ``out_dir``: new files, or ones slsdk wrote when ``overwrite``
    (checked before anything is timed; the folder is locked while it is written).
    """
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"{data_root}: no such data set folder (--data)")
    if not arch:
        bundles_dir = Path(bundles_dir or "slsdk_demo/bundles")
        if not bundles_dir.is_dir():
            raise FileNotFoundError(f"{bundles_dir}: no bundles folder; run `slsdk demo` first or pass --bundles")
        if not any(bundles_dir.glob("*/manifest.json")):
            raise FileNotFoundError(f"{bundles_dir}: holds no bundles (folders with a manifest.json); pass the folder "
                                    "`slsdk convert` wrote them into (default: bundles)")
    with reading(bundles_dir, data_root), output_lock(out_dir, overwrite=overwrite):
        for name in ("bench.csv", "bench.json", "bench.png"):
            check_replace(Path(out_dir) / name, overwrite=overwrite)
        return _run_bench(bundles_dir, arch, Path(out_dir), console, teacher_checkpoint)


def _run_bench(bundles_dir: Path | None, arch: bool, out_dir: Path, console, teacher_checkpoint) -> list[BenchRow]:
    import torch

    console = console or Console()
    peak = matmul_peak_gflops()
    console.print(f"fp32 matmul peak on this CPU: {num(peak)} GFLOP/s ({torch.get_num_threads()} threads)")
    if arch:
        rows = _arch_rows(console)
    else:
        teacher_checkpoint = teacher_checkpoint or _find_teacher(bundles_dir)
        rows = []
        if teacher_checkpoint is not None:
            from slsdk.models.factory import load_model

            teacher, _, _ = load_model(teacher_checkpoint)
            rows.append(bench_torch_model(teacher, 16, teacher.config.input_size, "torch teacher"))
        rows += bench_bundles([m.parent for m in sorted(bundles_dir.glob("*/manifest.json"))])
    teacher_fps = next((r.frames_per_s for r in rows if r.format.startswith("torch teacher")), None)
    rows = finish_table(rows, teacher_fps)
    for r in rows:
        if r.gmacs_per_frame and r.frames_per_s:
            r.note = (r.note + "; " if r.note else "") + \
                f"{2 * r.gmacs_per_frame * r.frames_per_s / peak:.0%} of matmul peak"
    paths = write_table(rows, out_dir, {"matmul_peak_gflops": round(peak, 1), "threads": torch.get_num_threads()})
    console.print(rich_table(rows, "slsdk bench", console))
    console.print(f"wrote {paths['csv']}, {paths['json']}, {paths['png']}")
    return rows


def _find_teacher(bundles_dir: Path) -> Path | None:
    for cand in (bundles_dir.parent / "teacher" / "best.pt", bundles_dir.parent / "teacher" / "last.pt"):
        if cand.is_file():
            return cand
    return None


def _arch_rows(console) -> list[BenchRow]:
    """The real sizes with random weights: ViT-B/16 AdaptSign teacher and the default student per target."""

    import torch

    from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
    from slsdk.models.student import StreamingStudent, StudentConfig

    torch.manual_seed(0)
    teacher = CSLRRecognizer(RecognizerConfig(backbone="ViT-B/16", num_classes=389, hidden=1024))
    rows = [bench_torch_model(teacher, 16, 224, "torch teacher ViT-B/16 AdaptSign", iters=2)]  # >= 16: K5-P2-K5-P2
    student = StreamingStudent(StudentConfig(num_classes=389)).eval()
    rows.append(bench_torch_model(student, student.config.chunk_frames, student.config.image_size,
                                  "torch student", iters=20))
    from slsdk.convert import convert

    vocab = ["<blank>", *(f"G{i}" for i in range(388))]
    with temp_dir("slsdk-bench") as tmp:
        converted = []
        for name in ("onnx", "executorch"):
            for precision in ("fp32", "int8"):
                calib = [student.example_inputs()] if precision == "int8" else None
                try:
                    converted.append(convert(student, name, precision, Path(tmp) / f"{name}-{precision}",
                                             vocab=vocab, calib=calib).root)
                except Exception as e:  # report, keep benchmarking the rest
                    rows.append(BenchRow(name, precision, "failed", note=str(e)[:80]))
                    console.print(f"[yellow]{name} {precision}: {e}")
        rows += bench_bundles(converted)
    return rows
