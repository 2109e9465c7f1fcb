"""``slsdk data prepare``: decode each video once, crop as the runtime does, write a compact cache.

    slsdk data prepare DATA -o CACHE [--layout folder] [--crop hands|full] [--size 256] [--fps 25] [--workers N]
    slsdk train CACHE ...        # the cache is a folder-layout data set: train / distill read it as any other

Per video: :class:`slsdk.data.video.VideoReader` (upright, timestamps; for hands the shorter side capped at
``slsdk.runtime.sources.DECODE_MAX_SHORTER`` in the decoder, as the runtime's file source does) -> resampled to ``fps`` by presentation
time with the runtime's :class:`~slsdk.runtime.sources.FrameResampler` (nearest frame) -> cropped by the runtime's
:class:`~slsdk.runtime.crop.HandCropper` with the same :class:`~slsdk.runtime.crop.CropConfig` and the same
timestamps the recognizer gives it (model frame ``k`` at ``k / fps`` s), to ``size`` x ``size`` (``--crop
full``: the shorter side scaled to ``size`` in the decoder, no cropping). Only output-size frames are kept, so
memory per clip grows with its length, never with the source resolution.

Cache layout (``CACHE/``):

* ``clips/<key>.npy``   uint8 ``[T, H, W, 3]`` per video (memory-mappable with ``np.load(mmap_mode="r")``)
* ``clips/<key>.json``  that clip's record (written after the .npy: a clip with both is done; resumable)
* ``index.json``        the one index: ``settings`` (format, crop config, size, fps, reader policy), every
  clip's record (id, split, signer, glosses, file, frames, hands found, source path/size/mtime) and failures
* ``annotations.csv``   the folder layout (``id,video,signer,split,glosses``) pointing at the ``.npy`` files,
  so ``slsdk train CACHE`` / ``slsdk distill CACHE`` read the cache instead of the videos

Re-running resumes: clips whose record matches the source file (size, mtime) and the settings are kept; a cache
made with other settings is refused (``overwrite=True`` / ``--overwrite`` starts over). ``workers > 1`` runs
videos in that many processes (each with its own MediaPipe landmarker); results do not depend on it (each clip
starts a fresh tracker). :data:`settings` travel on: ``VideoDataset.preparation`` exposes them, the trainer
stores them in the checkpoint's ``extra["preparation"]``, and :func:`preparation_mismatch` says where a bundle's
serving crop differs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slsdk.runtime.crop import preparation_mismatch  # the one train/serve check, shared with serving

__all__ = ["PrepareConfig", "PrepareError", "PrepareResult", "prepare_dataset", "prepare_frames", "read_index", "is_prepared_clip", "preparation_of",
           "load_prepared_clip", "preparation_mismatch", "prepare_command"]

FORMAT = "slsdk-prepared"
VERSION = 1
INDEX = "index.json"
ANNOTATIONS = "annotations.csv"


class PrepareError(ValueError):
    """The cache cannot be written or read as asked (settings clash, corrupt cache file)."""


@dataclass
class PrepareConfig:
    """How videos are prepared; recorded in the cache (``settings``) and in checkpoints trained on it."""

    crop: str = "hands"  # "hands" | "full"
    size: int = 256  # hands: crops are size x size; full: the shorter side is scaled to size
    fps: float | None = 25.0  # resample to this rate by timestamps (None: every decoded frame)
    crop_config: dict = field(default_factory=dict)  # CropConfig fields over the defaults (hands)
    hand_model: str | None = None

    def __post_init__(self):
        if self.crop not in ("hands", "full"):
            raise ValueError(f"crop must be 'hands' or 'full', got {self.crop!r}")
        if int(self.size) < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {self.fps}")

    def settings(self) -> dict:
        """What the cache records: everything that changes the frames (not where the model file lives)."""
        from slsdk.data.video import INTERPOLATION, MAX_GAP_S
        from slsdk.runtime.crop import CropConfig
        from slsdk.runtime.sources import DECODE_MAX_SHORTER

        crop = CropConfig.from_dict({**self.crop_config, "policy": self.crop}).to_dict()
        # hands: frames decoded as the runtime's file source decodes them (shorter side capped in the decoder)
        reader = {"max_gap_s": MAX_GAP_S, "interpolation": INTERPOLATION, "orientation": "display",
                  "max_shorter": DECODE_MAX_SHORTER if self.crop == "hands" else None}
        return {"format": FORMAT, "version": VERSION, "crop": crop, "size": int(self.size),
                "fps": None if self.fps is None else float(self.fps), "resample": "nearest", "reader": reader}


# --------------------------------------------------------------------------------------------------
# one clip
# --------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _cropper(settings: dict, hand_model: str | None):
    from slsdk.runtime.crop import CropConfig, HandCropper

    key = json.dumps(settings["crop"], sort_keys=True) + str(hand_model)
    if _WORKER.get("key") != key:
        if _WORKER.get("cropper") is not None:
            _WORKER["cropper"].close()
        _WORKER["cropper"] = HandCropper(CropConfig.from_dict(settings["crop"]), hand_model, size=settings["size"])
        _WORKER["key"] = key
    return _WORKER["cropper"]


def prepare_frames(video: str | Path, settings: dict, hand_model: str | None = None) -> tuple[np.ndarray, dict]:
    """``(frames uint8 [T, H, W, 3], stats)`` of one video prepared as ``settings`` say (see the module doc)."""
    from slsdk.data.video import VideoReader
    from slsdk.runtime.sources import FrameResampler

    size, fps, hands = int(settings["size"]), settings["fps"], settings["crop"]["policy"] == "hands"
    reader = VideoReader(video, shorter=None if hands else size, max_shorter=settings["reader"].get("max_shorter"))
    cropper = _cropper(settings, hand_model) if hands else None
    if cropper is not None:
        cropper.reset()
    out: list[np.ndarray] = []
    found = 0

    def emit(frame, count):
        nonlocal found
        if cropper is not None:
            r = cropper.crop(frame, int(round(len(out) * 1000.0 / (fps or reader.info.fps or 25.0))))
            found += r.hands_found > 0
            frame = r.image
        out.extend([frame] * count)

    resampler = FrameResampler(fps) if fps is not None and reader.timed else None
    held = None
    for frame, t in reader:
        if resampler is None:
            emit(frame, 1)
            continue
        c = resampler.push(t)
        if c:
            emit(held, c)
        held = frame
    if resampler is not None and held is not None:
        c = resampler.finish()
        if c:
            emit(held, c)
    if not out:
        from slsdk.data.video import VideoError

        raise VideoError(f"{video}: no frames after resampling to {fps} fps")
    stats = {"source_frames": reader.stats["frames"], "frames": len(out), "hands_frames": found if hands else None,
             "gaps": reader.stats["gaps"], "resized_frames": reader.stats["resized_frames"],
             "source_fps": reader.info.fps, "rotation": reader.info.rotation}
    return np.stack(out), stats


def _clip_key(sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sample_id)[:60].strip("._") or "clip"
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def _source_stamp(path: Path) -> dict:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.iterdir())
        return {"path": str(p.resolve()), "size": sum(f.stat().st_size for f in files if f.is_file()),
                "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0), "files": len(files)}
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _prepare_one(job: dict) -> dict:
    """Worker: prepare one sample, write ``clips/<key>.npy`` then its record; returns the record (or the error)."""
    clips = Path(job["clips"])
    key = job["key"]
    try:
        frames, stats = prepare_frames(job["video"], job["settings"], job["hand_model"])
    except Exception as e:  # noqa: BLE001 - every failure is named in the summary, the run goes on
        return {"id": job["id"], "video": job["video"], "error": f"{type(e).__name__}: {e}"}
    npy = clips / f"{key}.npy"
    _write_atomic(npy, lambda p: np.save(open(p, "wb"), frames))
    rec = {"id": job["id"], "split": job["split"], "signer": job["signer"], "glosses": job["glosses"],
           "file": f"clips/{key}.npy", "shape": list(frames.shape), **stats, "source": job["source"],
           "settings_hash": job["settings_hash"]}
    _write_atomic(clips / f"{key}.json", lambda p: Path(p).write_text(json.dumps(rec)))
    return rec


# --------------------------------------------------------------------------------------------------
# a data set
# --------------------------------------------------------------------------------------------------
@dataclass
class PrepareResult:
    out_dir: Path
    videos: int
    prepared: int  # done in this run
    reused: int  # kept from an earlier (interrupted) run
    frames: int
    hands_frames: int | None
    failures: list[dict]
    settings: dict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def _settings_hash(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _all_samples(data: Path, layout: str, splits: Sequence[str] | None):
    from slsdk.data.readers import read_folder
    from slsdk.data.splits import read_split

    if layout == "folder" and not splits:
        return read_folder(data, None)
    if not splits:
        splits = ("train", "dev", "test")
    out, missing = [], []
    for sp in splits:
        try:
            out.extend(read_split(data, sp, layout))
        except (FileNotFoundError, ValueError) as e:
            missing.append(f"{sp} ({e})")
    if not out:
        raise FileNotFoundError(f"{data}: no samples read with layout {layout!r}: " + "; ".join(missing))
    return out


def prepare_dataset(data: str | Path, out_dir: str | Path, config: PrepareConfig | None = None, *,
                    layout: str = "folder", splits: Sequence[str] | None = None, workers: int = 1,
                    overwrite: bool = False, progress: bool = True, console=None) -> PrepareResult:
    """Prepare every video of ``data`` (a data set root in ``layout``) into the cache ``out_dir``."""
    from slsdk.data.readers import Sample, write_folder_annotations

    config = config or PrepareConfig()
    data, out = Path(data), Path(out_dir)
    settings = config.settings()
    shash = _settings_hash(settings)
    hand_model = None
    if config.crop == "hands":
        from slsdk.runtime.hand_model import resolve_hand_model

        hand_model = str(resolve_hand_model(config.hand_model))
    samples = _all_samples(data, layout, splits)
    index_path = out / INDEX
    if index_path.exists() and not overwrite:
        old = read_index(out)["settings"]
        if _settings_hash(old) != shash:
            diff = [k for k in settings if old.get(k) != settings[k]]
            raise PrepareError(f"{out} holds a cache prepared with other settings (differs in {diff}); choose "
                               "another folder or pass --overwrite to start over")
    clips = out / "clips"
    if overwrite and clips.exists():
        for f in clips.iterdir():
            f.unlink()
    clips.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "prepare.json", lambda p: Path(p).write_text(json.dumps(settings, indent=1)))

    records: dict[str, dict] = {}
    jobs = []
    for s in samples:
        key = _clip_key(s.id)
        stamp = _source_stamp(s.video)
        side = clips / f"{key}.json"
        if side.is_file() and (clips / f"{key}.npy").is_file():
            try:
                rec = json.loads(side.read_text())
            except (OSError, ValueError):
                rec = None
            if rec and rec.get("source") == stamp and rec.get("settings_hash") == shash and rec.get("id") == s.id:
                rec.update(split=s.split, signer=s.signer, glosses=list(s.glosses))
                records[s.id] = rec
                continue
        jobs.append({"id": s.id, "video": str(s.video), "split": s.split, "signer": s.signer,
                     "glosses": list(s.glosses), "key": key, "clips": str(clips), "settings": settings,
                     "settings_hash": shash, "hand_model": hand_model, "source": stamp})
    reused = len(records)
    failures: list[dict] = []

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or Console(stderr=True)
    bar = Progress(TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, disable=not progress, transient=False)

    def take(rec):
        if "error" in rec:
            failures.append(rec)
        else:
            records[rec["id"]] = rec

    with bar:
        task = bar.add_task("videos", total=len(samples), completed=reused)
        if workers <= 1 or len(jobs) <= 1:
            for j in jobs:
                take(_prepare_one(j))
                bar.advance(task)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=int(workers), mp_context=mp.get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(_prepare_one, j) for j in jobs]):
                    take(fut.result())
                    bar.advance(task)
    ordered = [records[s.id] for s in samples if s.id in records]
    index = {"settings": settings, "source": str(data.resolve()), "layout": layout, "clips": ordered,
             "failures": failures}
    _write_atomic(index_path, lambda p: Path(p).write_text(json.dumps(index, indent=1)))
    write_folder_annotations(out, [Sample(r["id"], r["glosses"], out / r["file"], r["signer"], r["split"])
                                   for r in ordered])
    hands = sum(r["hands_frames"] or 0 for r in ordered) if config.crop == "hands" else None
    return PrepareResult(out, len(samples), len(ordered) - reused, reused, sum(r["frames"] for r in ordered),
                         hands, failures, settings)


# --------------------------------------------------------------------------------------------------
# reading the cache
# --------------------------------------------------------------------------------------------------
def read_index(cache: str | Path) -> dict:
    """The cache's ``index.json`` (settings, clips, failures); a clear error when it is not a cache."""
    p = Path(cache) / INDEX
    try:
        index = json.loads(p.read_text())
    except FileNotFoundError:
        raise PrepareError(f"{cache}: not a prepared cache (no {INDEX}); make one with `slsdk data prepare`") from None
    except ValueError as e:
        raise PrepareError(f"{p}: corrupt index ({e})") from None
    if index.get("settings", {}).get("format") != FORMAT:
        raise PrepareError(f"{p}: not an slsdk prepared-cache index (format {index.get('settings', {}).get('format')!r})")
    return index


def is_prepared_clip(path: str | Path) -> bool:
    """Whether a sample's ``video`` is a clip of a prepared cache (``CACHE/clips/<key>.npy``)."""
    p = Path(path)
    return p.suffix == ".npy" and (p.parent.parent / INDEX).is_file()


def preparation_of(path: str | Path) -> dict | None:
    """The settings of the cache a prepared clip belongs to (None for an ordinary video)."""
    if not is_prepared_clip(path):
        return None
    return read_index(Path(path).parent.parent)["settings"]


def load_prepared_clip(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` frames of a prepared clip (memory-mapped, sliced to ``max_frames``)."""
    p = Path(path)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"prepared clip not found: {p} (re-run `slsdk data prepare` to complete the cache)") from None
    except (ValueError, OSError) as e:
        raise PrepareError(f"{p}: corrupt prepared clip ({e}); delete it and re-run `slsdk data prepare`") from None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise PrepareError(f"{p}: not a prepared clip (expected uint8 [T, H, W, 3], got {arr.dtype} {list(arr.shape)})")
    return np.array(arr[:max_frames] if max_frames is not None else arr)


# --------------------------------------------------------------------------------------------------
# the CLI command (registered in slsdk.cli's data_app)
# --------------------------------------------------------------------------------------------------
def prepare_command(data: Path, out: Path, crop: str = "hands", size: int = 256, fps: float = 25.0,
                    workers: int = 1, layout: str = "folder", split: list[str] | None = None,
                    hand_model: Path | None = None, overwrite: bool = False) -> PrepareResult:
    """Prepare DATA into the cache OUT (see ``slsdk data prepare --help``); prints the summary."""
    from rich.console import Console

    console = Console()
    res = prepare_dataset(data, out, PrepareConfig(crop=crop, size=size, fps=fps if fps > 0 else None,
                                                   hand_model=str(hand_model) if hand_model else None),
                          layout=layout, splits=split or None, workers=workers, overwrite=overwrite)
    hands = f", hands found in {res.hands_frames} frames" if res.hands_frames is not None else ""
    console.print(f"{res.videos} videos: {res.prepared} prepared, {res.reused} kept from before, "
                  f"{len(res.failures)} failed; {res.frames} frames{hands} -> {res.out_dir}")
    for f in res.failures:
        console.print(f"[red]failed[/]: {f['id']} ({f['video']}): {f['error']}", soft_wrap=True, markup=True,
                      highlight=False)
    if res.failures:
        raise PrepareError(f"{len(res.failures)} of {res.videos} videos could not be prepared (listed above); the "
                           f"cache holds the others; fix or remove them and re-run to resume")
    return res
