"""A loader that feeds a GPU: AdaptSign's BaseFeeder (PNG frames per item) vs slsdk's prepared cache (issue #33).

    python benchmarks/bench_loader.py --reference /tmp/adaptsign_ref --out runs/loader
        [--clips 40] [--min-frames 60] [--max-frames 120] [--workers 1 2] [--repeats 3] [--data DIR] [--profile]
        [--mfu 0.4]

One run, the same frames, both loaders, alternating:

* **data**: a PHOENIX-2014 layout of synthetic signing (``slsdk.data.synthetic.render_sentence``, 256 x 256, a
  little sensor noise so the PNGs compress about as camera frames do, ~1.2 bytes per pixel) written as AdaptSign's
  preprocessing leaves it: ``phoenix2014/phoenix-2014-multisigner/features/fullFrame-256x256px/train/<id>/1/*.png``
  (``cv2.imwrite``), ``annotations/manual/train.corpus.csv`` (``id|folder|signer|annotation``) and, in the
  working folder the reference runs from, ``preprocess/phoenix2014/train_info.npy`` (``csv2dict``'s dict:
  ``prefix`` + one record per clip) and ``gloss_dict.npy`` (``{gloss: [id, count]}``). slsdk's PHOENIX reader
  looks for the frames in ``fullFrame-210x260px`` (the release's own folder); that name is a link to the
  256 x 256 folder here, so both read the very same PNG files.
* **(a) reference**: ``dataset/dataloader_video.py``'s ``BaseFeeder`` imported from the reference checkout named by
  ``--reference`` (never copied here), built as its ``main.py`` builds the train feeder with
  ``configs/baseline.yaml`` (``datatype video``, ``transform_mode`` train: RandomCrop 224, flip 0.5, ToTensor,
  TemporalRescale 0.2, ``x / 127.5 - 1``; ``kernel_size`` K5-P2-K5-P2), in ``torch.utils.data.DataLoader``
  (batch 2, shuffle, drop_last, its ``collate_fn``, ``worker_init_fn`` seeding numpy). Its ``utils`` package is
  entered without running ``utils/__init__.py`` (which imports ``ctcdecode``, the beam decoder, unused by the
  loader and not installable here); ``dataset/dataloader_video.py`` and ``utils/video_augmentation.py`` run as
  they are.
* **(b) slsdk**: ``slsdk data prepare`` (``--layout phoenix2014 --crop full --size 256``) once into a cache, then
  what ``slsdk train CACHE --config adaptsign-phoenix2014`` builds (``slsdk.train.loop``): ``VideoDataset`` on the
  cache's samples (train augmentation: temporal rescale 0.2, random 224 crop of 256, flip; mean = std = 0.5),
  ``DistributedSampler`` (one replica, shuffled), ``collate``, batch 2, ``persistent_workers=False``. The item is
  the uint8 crop read straight from the memory-mapped clip (frames and crop window indexed there, one copy, nothing
  kept in memory), the batch is built in shared memory in the worker, and the normalisation runs on the training
  device after ``.to(device)`` (``slsdk.data.dataset.batch_to_device``, not timed here: microseconds on a GPU).

Each measurement is one epoch through a fresh DataLoader (workers started, every clip read once, workers joined),
both loaders and worker counts in turn, the order alternated each repeat; the page cache is warm (the files were
just written or read), so this is the CPU cost of loading, the reference's best case (a disk adds to it).
Rates: clips/s and frames/s (source frames of the clips delivered, wall clock), per worker (wall / workers) and
per CPU-second (user + system time of the main process and its workers, from ``getrusage``: robust on a shared
machine). ``pin_memory`` is off on both sides (no GPU here). The GPU side is computed: ViT-B/16 AdaptSign
GMACs per frame from ``slsdk.models.flops.info_rows``, a training step ~ 3 forwards (the recipe's gradient
checkpointing recomputes the forward; the frozen CLIP weights need no weight gradients), a stated peak and
utilisation -> frames/s the GPU consumes -> CPU cores each loader needs to keep up.

Writes ``OUT/loader.json`` and prints one table; figures are measured, never asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import functools
import importlib
import io
import json
import os
import platform
import pstats
import resource
import sys
import time
import types
from pathlib import Path
from statistics import median

import numpy as np
import torch

from slsdk.data.dataset import VideoDataset, collate
from slsdk.data.prepare import PrepareConfig, prepare_dataset
from slsdk.data.splits import read_split
from slsdk.data.synthetic import make_lexicon, render_sentence
from slsdk.data.vocab import Vocabulary

DATASET = "phoenix2014"
SPLIT = "train"
KERNEL_SIZES = ["K5", "P2", "K5", "P2"]      # conv_type 2 (AdaptSign's baseline.yaml)
INPUT_SIZE = 224
BATCH = 2
MEAN = STD = (0.5, 0.5, 0.5)                 # x / 127.5 - 1, as the reference and the adaptsign recipe
TRAIN_FORWARDS = 3.0                         # training step ~ this many forwards
GPUS = {  # name: (dense peak FLOP/s, what the peak is)
    "H100 SXM": (989e12, "bf16 dense tensor"),
    "RTX 3090": (71e12, "bf16/fp16 tensor, fp32 accumulate"),
}
DATA_MARK = "bench_loader.json"
LABELS = {"reference": "(a) AdaptSign BaseFeeder: PNG frames per item",
          "slsdk": "(b) slsdk prepared cache + VideoDataset (as `slsdk train`: uint8 crop, normalised on the GPU)"}
SHORT = {"reference": "reference", "slsdk": "slsdk"}


# ---------------------------------------------------------------------------------------------- data
def phoenix_base(root: Path) -> Path:
    return root / "phoenix2014" / "phoenix-2014-multisigner"


def _png_writer():
    """AdaptSign's preprocessing writes its frames with ``cv2.imwrite`` (default settings): so does this, where
    OpenCV is installed (the reference needs it anyway); PIL otherwise (the tests without the reference)."""
    try:
        import cv2  # noqa: PLC0415  (optional: installed with the reference's requirements / mediapipe)
    except ImportError:
        from PIL import Image

        return (lambda path, rgb: Image.fromarray(rgb).save(path)), "PIL"
    return (lambda path, rgb: cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))), "cv2.imwrite"


@contextlib.contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_phoenix(root: Path, *, clips: int = 40, min_frames: int = 60, max_frames: int = 120, size: int = 256,
                  noise: float = 1.0, seed: int = 0, log=print) -> dict:
    """Write the synthetic PHOENIX-2014 train split (frames + corpus csv) and the reference's preprocess files
    under ``root`` (reused when ``root`` holds one written with the same settings). Returns the settings with
    ``frames`` (per clip id) and ``png_bytes``."""
    write_png, writer = _png_writer()
    settings = {"clips": clips, "min_frames": min_frames, "max_frames": max_frames, "size": size, "noise": noise,
                "seed": seed, "version": 1}
    mark = root / DATA_MARK
    if mark.is_file():
        old = json.loads(mark.read_text())
        if old.get("settings") == settings:
            return old
        raise SystemExit(f"{root}: holds a benchmark data set written with other settings ({old.get('settings')}); "
                         "choose another --data folder or remove it")
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root}: not empty and not this benchmark's data folder; choose another --data")
    base = phoenix_base(root)
    feat = base / "features" / "fullFrame-256x256px" / SPLIT
    lex = make_lexicon(12)
    rng = np.random.default_rng(seed)
    rows = ["id|folder|signer|annotation"]
    info: dict = {"prefix": f"{base}/features/fullFrame-210x260px"}
    frames_of, png_bytes, t0 = {}, 0, time.perf_counter()
    for i in range(clips):
        fileid = f"{1 + i % 28:02d}December_2026_Sunday_heute_default-{i}"
        glosses = [lex[int(j)].name for j in rng.choice(len(lex), int(rng.integers(3, 7)), replace=False)]
        signer = f"Signer{1 + i % 8:02d}"
        video = render_sentence(glosses, signer=i % 8, rng=seed * 100_003 + i, lexicon=lex, image_size=size,
                                noise=noise)
        t = int(rng.integers(min_frames, max_frames + 1))
        video = video[np.round(np.linspace(0, len(video) - 1, t)).astype(np.int64)]
        folder = feat / fileid / "1"
        folder.mkdir(parents=True)
        for k, frame in enumerate(video):
            p = folder / f"{fileid}.avi_pid0_fn{k:06d}-0.png"
            write_png(p, frame)
            png_bytes += p.stat().st_size
        original = f"{fileid}|{fileid}/1/*.png|{signer}|{' '.join(glosses)}"
        rows.append(original)
        info[i] = {"fileid": fileid, "folder": f"{SPLIT}/{fileid}/1/*.png", "signer": signer,
                   "label": " ".join(glosses), "num_frames": t, "original_info": original}
        frames_of[fileid] = t
        log(f"  data: clip {i + 1}/{clips} ({t} frames, {time.perf_counter() - t0:.0f} s)")
    ann = base / "annotations" / "manual" / f"{SPLIT}.corpus.csv"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text("\n".join(rows) + "\n")
    # slsdk's PHOENIX reader reads the release's fullFrame-210x260px folder: the same PNGs here
    (base / "features" / "fullFrame-210x260px").symlink_to("fullFrame-256x256px", target_is_directory=True)
    pre = root / "preprocess" / DATASET
    pre.mkdir(parents=True)
    np.save(pre / f"{SPLIT}_info.npy", info)
    counts: dict[str, int] = {}
    for rec in (v for k, v in info.items() if isinstance(k, int)):
        for g in rec["label"].split():
            counts[g] = counts.get(g, 0) + 1
    np.save(pre / "gloss_dict.npy", {g: [i + 1, c] for i, (g, c) in enumerate(sorted(counts.items()))})
    out = {"settings": settings, "frames": frames_of, "png_bytes": png_bytes, "png_writer": writer}
    mark.write_text(json.dumps(out, indent=1))
    return out


def prepare_cache(root: Path, log=print) -> dict:
    """``slsdk data prepare ROOT/phoenix2014 -o ROOT/cache --layout phoenix2014 --split train --crop full --size
    256`` through its function; returns its wall and CPU seconds (zero when the cache was already complete)."""
    cache = root / "cache"
    t0, c0 = time.perf_counter(), _cpu_now()
    res = prepare_dataset(root / "phoenix2014", cache, PrepareConfig(crop="full", size=256), layout="phoenix2014",
                          splits=[SPLIT], workers=1, progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu_now() - c0
    if res.failures:
        raise SystemExit(f"prepare failed: {res.failures}")
    log(f"  prepare: {res.prepared} clips prepared, {res.reused} kept, {res.frames} frames, {wall:.1f} s")
    return {"cache": str(cache), "prepared": res.prepared, "reused": res.reused, "frames": res.frames,
            "wall_s": wall if res.prepared else None, "cpu_s": cpu if res.prepared else None,
            "bytes": sum(f.stat().st_size for f in (cache / "clips").glob("*.npy"))}


# ------------------------------------------------------------------------------------------- loaders
def load_reference(ref: str | Path):
    """The reference's ``dataset.dataloader_video`` module, imported from its checkout (see the module doc)."""
    ref = Path(ref).resolve()
    if not (ref / "dataset" / "dataloader_video.py").is_file():
        raise SystemExit(f"--reference {ref}: no dataset/dataloader_video.py there (an AdaptSign checkout?)")
    have = sys.modules.get("utils")
    if have is None:
        pkg = types.ModuleType("utils")
        pkg.__path__ = [str(ref / "utils")]   # its modules, not its __init__ (ctcdecode)
        sys.modules["utils"] = pkg
    elif [str(Path(p).resolve()) for p in getattr(have, "__path__", [])] != [str(ref / "utils")]:
        raise SystemExit(f"a module named utils is already imported ({have}); run the benchmark on its own")
    if str(ref) not in sys.path:
        sys.path.insert(0, str(ref))
    with contextlib.redirect_stdout(io.StringIO()):
        mod = importlib.import_module("dataset.dataloader_video")
    if not str(Path(mod.__file__).resolve()).startswith(str(ref)):
        raise SystemExit(f"dataset.dataloader_video came from {mod.__file__}, not {ref}")
    return mod


def _seed_numpy(seed: int, worker_id: int) -> None:     # main.py's init_fn
    np.random.seed(seed + worker_id)


def reference_loader(mod, root: Path, workers: int, seed: int = 0):
    """(DataLoader, ids_of(batch)) as AdaptSign's main.py builds the train loader."""
    gloss_dict = np.load(root / "preprocess" / DATASET / "gloss_dict.npy", allow_pickle=True).item()
    with _cwd(root), contextlib.redirect_stdout(io.StringIO()):   # it reads ./preprocess/...
        feeder = mod.BaseFeeder(prefix=str(phoenix_base(root)), gloss_dict=gloss_dict, dataset=DATASET,
                                drop_ratio=1.0, num_gloss=-1, mode=SPLIT, transform_mode=True, datatype="video",
                                frame_interval=1, image_scale=1.0, kernel_size=KERNEL_SIZES, input_size=INPUT_SIZE)
    loader = torch.utils.data.DataLoader(feeder, batch_size=BATCH, shuffle=True, drop_last=True,
                                         num_workers=workers, collate_fn=feeder.collate_fn, pin_memory=False,
                                         worker_init_fn=functools.partial(_seed_numpy, seed))
    return loader, lambda batch: [info.split("|")[0] for info in batch[-1]]


def slsdk_dataset(cache: Path, seed: int = 0):
    samples = read_split(cache, SPLIT, "folder")
    return VideoDataset(samples, Vocabulary.build(samples), INPUT_SIZE, MEAN, STD, train=True, seed=seed,
                        flip=True, temporal_scale=0.2, max_frames=None)


def slsdk_loader(cache: Path, workers: int, epoch: int = 0, seed: int = 0):
    """(DataLoader, ids_of(batch)) as ``slsdk.train.loop`` builds the train loader (one process)."""
    ds = slsdk_dataset(cache, seed)
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=seed,
                                                  drop_last=False)
    sampler.set_epoch(epoch)
    ds.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, sampler=sampler, num_workers=workers,
                                         collate_fn=collate, pin_memory=False, generator=torch.Generator(),
                                         persistent_workers=False)
    return loader, lambda batch: list(batch["ids"])


# ------------------------------------------------------------------------------------------- timing
def _cpu_now() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _usage() -> tuple[float, float, int]:
    """(CPU s, system CPU s, minor page faults) of this process and its joined children so far."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime, s.ru_stime + c.ru_stime, s.ru_minflt + c.ru_minflt)


def _rss_mb(pids, field: str) -> float | None:
    """Sum over ``pids`` of ``field`` (``VmRSS``, ``VmHWM``) in MB, from /proc (None where unreadable)."""
    total, seen = 0.0, False
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) / 1024
                    seen = True
        except OSError:
            pass
    return total if seen else None


def run_epoch(loader, ids_of, frames_of: dict) -> dict:
    """One pass over ``loader``: wall and CPU seconds (workers included: they are joined when it ends),
    clips and source frames delivered, the first batch's latency and how much the workers' resident memory grew
    from their first batch to their last (peak; a forked worker starts with the main process's pages)."""
    n_batches = len(loader)
    t0, u0 = time.perf_counter(), _usage()
    it = iter(loader)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    clips = frames = 0
    first = rss0 = growth = None
    for b, batch in enumerate(it):
        if first is None:
            first = time.perf_counter() - t0
            rss0 = _rss_mb(pids, "VmRSS") if pids else None
        ids = ids_of(batch)
        clips += len(ids)
        frames += sum(frames_of[i] for i in ids)
        if b == n_batches - 1 and rss0 is not None:
            hwm = _rss_mb(pids, "VmHWM")      # before the workers exit
            growth = None if hwm is None else hwm - rss0
        del batch
    wall = time.perf_counter() - t0
    del it
    cpu, sys_cpu, faults = (b - a for a, b in zip(u0, _usage()))
    return {"wall_s": wall, "cpu_s": cpu, "sys_cpu_s": sys_cpu, "page_faults": faults, "clips": clips,
            "frames": frames, "first_batch_s": first,
            "worker_rss_growth_mb": growth}


def summarise(runs: list[dict], workers: int) -> dict:
    wall = median(r["wall_s"] for r in runs)
    cpu = median(r["cpu_s"] for r in runs)
    clips, frames = runs[0]["clips"], runs[0]["frames"]
    rss = [r["worker_rss_growth_mb"] for r in runs if r["worker_rss_growth_mb"] is not None]
    return {"workers": workers, "epochs": len(runs), "clips": clips, "frames": frames,
            "wall_s": wall, "cpu_s": cpu,
            "clips_per_s": median(r["clips"] / r["wall_s"] for r in runs),
            "frames_per_s": median(r["frames"] / r["wall_s"] for r in runs),
            "frames_per_s_per_worker": median(r["frames"] / r["wall_s"] / workers for r in runs),
            "clips_per_cpu_s": median(r["clips"] / r["cpu_s"] for r in runs),
            "frames_per_cpu_s": median(r["frames"] / r["cpu_s"] for r in runs),
            "first_batch_s": median(r["first_batch_s"] for r in runs),
            "sys_share": median(r["sys_cpu_s"] / r["cpu_s"] for r in runs),
            "page_faults_per_frame": median(r["page_faults"] / r["frames"] for r in runs),
            "worker_rss_growth_mb": max(rss) if rss else None, "runs": runs}


# ------------------------------------------------------------------------------------------- GPU side
def gpu_need(frames_per_cpu_s: dict[str, float], mfu: float = 0.4, log=print) -> dict:
    """Frames/s a ViT-B/16 AdaptSign training step consumes on each GPU of :data:`GPUS` at ``mfu`` of its peak,
    and the CPU cores each loader (``{name: frames per CPU-second}``) needs to keep it busy."""
    from slsdk.models.flops import info_rows

    row = next(r for r in info_rows("ViT-B/16", variants=("adaptsign",)) if r["variant"] == "adaptsign")
    gmacs = row["gmacs_per_frame"]
    train_flops = TRAIN_FORWARDS * 2 * gmacs * 1e9
    out = {"model": "ViT-B/16 AdaptSign frame encoder (slsdk.models.flops.info_rows)", "gmacs_per_frame": gmacs,
           "train_flops_per_frame": train_flops, "train_forwards": TRAIN_FORWARDS, "utilisation": mfu, "gpus": {}}
    for name, (peak, what) in GPUS.items():
        fps = peak * mfu / train_flops
        out["gpus"][name] = {"peak_flops": peak, "peak": what, "frames_per_s": fps,
                             "cores": {k: fps / v for k, v in frames_per_cpu_s.items() if v}}
    log(f"  GPU side: {gmacs:.2f} GMACs/frame forward, {train_flops / 1e9:.0f} GFLOP/frame per training step")
    return out


# ------------------------------------------------------------------------------------------- profile
def profile_pass(make_loader, frames_of: dict, top: int = 14) -> dict:
    """One in-process pass (``num_workers=0``) under cProfile: its rate and the functions with the most own time."""
    loader, ids_of = make_loader()
    prof = cProfile.Profile()
    prof.enable()
    r = run_epoch(loader, ids_of, frames_of)
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]
    funcs = [{"function": pstats.func_std_string(k), "calls": v[1], "tottime_s": v[2], "share": v[2] / total}
             for k, v in rows]
    return {"frames_per_s": r["frames"] / r["wall_s"], "frames_per_cpu_s": r["frames"] / r["cpu_s"],
            "tottime_s": total, "top": funcs}


def profile_slsdk_stages(cache: Path) -> dict:
    """Milliseconds per frame of each step of slsdk's train item, in process: the item (memory map indexed with
    its frames and crop window: one uint8 copy), the collate, and the normalisation the training device runs
    (timed here on the CPU, for scale); what the data set keeps in memory (``cache_in_memory``: nothing for a
    prepared cache)."""
    ds = slsdk_dataset(cache)
    t_item = t_col = t_norm = 0.0
    n = 0
    for i in range(len(ds)):
        a = time.perf_counter()
        item = ds[i]
        b = time.perf_counter()
        batch = collate([item])
        c = time.perf_counter()
        ds.normalize(batch["videos"])
        d = time.perf_counter()
        t_item, t_col, t_norm = t_item + b - a, t_col + c - b, t_norm + d - c
        n += len(ds.frames(i))
    kept = sum(a.nbytes for a in ds._mem.values())
    return {"frames": n, "item_ms_per_frame": 1e3 * t_item / n, "collate_ms_per_frame": 1e3 * t_col / n,
            "normalise_on_cpu_ms_per_frame": 1e3 * t_norm / n, "in_memory_cache_mb_after_one_pass": kept / 2**20}


def profile_reference_stages(mod, root: Path) -> dict:
    """Milliseconds per frame of the reference's item: ``read_video`` (glob + cv2.imread + cvtColor per PNG) and
    ``normalize`` (its augmentation + /127.5 - 1)."""
    loader, _ = reference_loader(mod, root, 0)
    feeder = loader.dataset
    t_read = t_aug = 0.0
    n = 0
    for i in range(len(feeder)):
        a = time.perf_counter()
        video, label, _ = feeder.read_video(i)
        b = time.perf_counter()
        feeder.normalize(video, label)
        c = time.perf_counter()
        t_read, t_aug, n = t_read + b - a, t_aug + c - b, n + len(video)
    return {"frames": n, "read_ms_per_frame": 1e3 * t_read / n, "augment_ms_per_frame": 1e3 * t_aug / n}


# ------------------------------------------------------------------------------------------- table
def table(rows: list[dict], ratios: dict, gpu: dict | None, prep: dict | None = None) -> str:
    head = ("| loader | workers | clips/s | frames/s | frames/s per worker | frames per CPU-s | x reference "
            "(per CPU-s / per worker) | system time | page faults per frame |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        ratio = ratios.get((r["side"], r["workers"]))
        rtxt = f"{ratio[0]:.1f}x / {ratio[1]:.1f}x" if ratio else "1x" if r["side"] == "reference" else "n/a"
        lines.append(f"| {r['label']} | {r['workers']} | {r['clips_per_s']:.2f} | {r['frames_per_s']:.0f} | "
                     f"{r['frames_per_s_per_worker']:.0f} | {r['frames_per_cpu_s']:.0f} | {rtxt} | "
                     f"{r['sys_share']:.0%} | {r['page_faults_per_frame']:.0f} |")
    if prep and prep.get("cpu_s"):
        lines.append("")
        lines.append(f"One-off `slsdk data prepare` of these {prep['frames']} frames (PNG decode, .npy write): "
                     f"{prep['wall_s']:.1f} s wall, {prep['frames'] / prep['cpu_s']:.0f} frames per CPU-s.")
    if gpu:
        sides = [k for k in LABELS if k in next(iter(gpu["gpus"].values()))["cores"]]
        lines.append("")
        lines.append(f"ViT-B/16 AdaptSign: {gpu['gmacs_per_frame']:.2f} GMACs/frame forward; a training step "
                     f"~{gpu['train_forwards']:.0f} forwards = {gpu['train_flops_per_frame'] / 1e9:.0f} GFLOP/frame; "
                     f"at {gpu['utilisation']:.0%} of peak (cores: the GPU's frames/s / each loader's frames per "
                     "CPU-s, median over worker counts):")
        lines.append("")
        lines.append("| GPU (peak) | frames/s it trains on | " + " | ".join(f"cores: {SHORT[k]}" for k in sides) + " |")
        lines.append("|" + "---|" * (2 + len(sides)))
        for name, g in gpu["gpus"].items():
            lines.append(f"| {name} ({g['peak_flops'] / 1e12:.0f} TFLOP/s {g['peak']}) | {g['frames_per_s']:.0f} | "
                         + " | ".join(f"{g['cores'][k]:.1f}" for k in sides) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", help="AdaptSign checkout (hulianyuyy/AdaptSign); without it only slsdk runs")
    ap.add_argument("--out", required=True, help="folder for loader.json (and the data unless --data)")
    ap.add_argument("--data", help="folder for the synthetic PHOENIX data set + cache (reused; default OUT/data)")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--min-frames", type=int, default=60)
    ap.add_argument("--max-frames", type=int, default=120)
    ap.add_argument("--size", type=int, default=256, help="frame side in pixels (the layout's 256)")
    ap.add_argument("--noise", type=float, default=1.0, help="sensor noise of the rendered frames (PNG size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3, help="epochs per loader and worker count (median)")
    ap.add_argument("--mfu", type=float, default=0.4, help="assumed GPU utilisation of its dense peak")
    ap.add_argument("--profile", action="store_true", help="also profile one in-process pass of each loader")
    ap.add_argument("--no-gpu-side", action="store_true", help="skip the FLOPs count (tests)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    log = (lambda *x: None) if a.quiet else functools.partial(print, flush=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(a.data) if a.data else out / "data"
    root = root.resolve()
    log(f"data: {root}")
    data = write_phoenix(root, clips=a.clips, min_frames=a.min_frames, max_frames=a.max_frames, size=a.size,
                         noise=a.noise, log=log)
    frames_of = data["frames"]
    total_frames = sum(frames_of.values())
    prep = prepare_cache(root, log=log)
    cache = Path(prep["cache"])
    mod = load_reference(a.reference) if a.reference else None

    sides = (["reference"] if mod else []) + ["slsdk"]
    make = {"reference": lambda w, e: reference_loader(mod, root, w, seed=e),
            "slsdk": lambda w, e: slsdk_loader(cache, w, epoch=e)}
    runs: dict[tuple[str, int], list] = {(s, w): [] for s in sides for w in a.workers}
    for rep in range(a.repeats):
        order = sides if rep % 2 == 0 else sides[::-1]
        for w in a.workers:
            for side in order:
                loader, ids_of = make[side](w, rep)
                r = run_epoch(loader, ids_of, frames_of)
                runs[(side, w)].append(r)
                log(f"  repeat {rep + 1}/{a.repeats} {side:<9} workers {w}: {r['frames'] / r['wall_s']:7.0f} "
                    f"frames/s, {r['frames'] / r['cpu_s']:7.0f} frames per CPU-s ({r['wall_s']:.2f} s)")
    rows = [{"side": s, "label": LABELS[s], **summarise(runs[(s, w)], w)} for w in a.workers for s in sides]
    by = {(r["side"], r["workers"]): r for r in rows}
    ratios = {}
    if mod:
        for w in a.workers:
            ref = by[("reference", w)]
            for side in sides[1:]:
                ours = by[(side, w)]
                ratios[(side, w)] = (ours["frames_per_cpu_s"] / ref["frames_per_cpu_s"],
                                     ours["frames_per_s_per_worker"] / ref["frames_per_s_per_worker"])
    per_core = {s: median(by[(s, w)]["frames_per_cpu_s"] for w in a.workers) for s in sides}
    gpu = None if a.no_gpu_side else gpu_need(per_core, a.mfu, log=log)

    profile = None
    if a.profile:
        log("  profiling one in-process pass of each loader ...")
        profile = {"slsdk": profile_pass(lambda: slsdk_loader(cache, 0), frames_of),
                   "slsdk_stages": profile_slsdk_stages(cache)}
        if mod:
            profile["reference"] = profile_pass(lambda: reference_loader(mod, root, 0), frames_of)
            profile["reference_stages"] = profile_reference_stages(mod, root)

    raw_bytes_per_frame = a.size * a.size * 3
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "reference": str(Path(a.reference).resolve()) if a.reference else None,
        "data": {"root": str(root), "clips": len(frames_of), "frames": total_frames, "size": a.size,
                 "noise": a.noise, "png_writer": data.get("png_writer"),
                 "png_bytes_per_frame": data["png_bytes"] / total_frames,
                 "cache_bytes_per_frame": prep["bytes"] / total_frames, "raw_bytes_per_frame": raw_bytes_per_frame},
        "prepare": prep, "batch_size": BATCH, "repeats": a.repeats,
        "rows": [{k: v for k, v in r.items()} for r in rows],
        "ratios": {f"{s} workers {w}": {"per_cpu_s": v[0], "per_worker": v[1]} for (s, w), v in ratios.items()},
        "frames_per_cpu_s": per_core, "gpu": gpu, "profile": profile,
    }
    if gpu:    # disk bandwidth each format needs at the GPU's rate (cold data: the page cache does not hold it)
        for g in gpu["gpus"].values():
            g["read_mb_per_s"] = {"png (reference)": g["frames_per_s"] * result["data"]["png_bytes_per_frame"] / 1e6,
                                  "prepared cache (slsdk)": g["frames_per_s"] * result["data"]["cache_bytes_per_frame"]
                                  / 1e6}
    text = table(rows, ratios, gpu, prep)
    result["table"] = text
    (out / "loader.json").write_text(json.dumps(result, indent=1, default=str))
    print(text)
    if profile:
        for side in ("reference", "slsdk"):
            if side in profile:
                p = profile[side]
                print(f"\n{side}: in-process pass {p['frames_per_s']:.0f} frames/s; most own time:")
                for f in p["top"][:10]:
                    print(f"  {f['share']:6.1%}  {f['tottime_s']:7.3f} s  {f['calls']:>7}  {f['function']}")
        print("\nstages:", json.dumps({k: v for k, v in profile.items() if k.endswith("stages")}, indent=1))
    print(f"\nwrote {out / 'loader.json'}")
    return result


if __name__ == "__main__":
    main()
