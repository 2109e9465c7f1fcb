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
import multiprocessing as mp
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from slsdk.data.prepare_landmarks import prepare_landmarks, print_landmarks_result
from slsdk.data.readers import Sample, read_folder, write_folder_annotations
from slsdk.data.splits import layout_hint, no_split_error, read_split
from slsdk.data.video import INTERPOLATION, MAX_GAP_S, VideoError, VideoReader
from slsdk.errors import ConfigError, SlsdkError
from slsdk.fileio import (WriteError, atomic_write, atomic_write_text, check_output, clean_stale, is_ours, output_lock,
                          reading, remove)
from slsdk.runtime.crop import CropConfig, preparation_mismatch  # the one train/serve check, shared with serving
from slsdk.runtime.hand_model import resolve_hand_model
from slsdk.runtime.hand_tracker import HandCropper
from slsdk.runtime.sources import DECODE_MAX_SHORTER, resampled_frames

__all__ = ["PrepareConfig", "PrepareError", "PrepareResult", "prepare_dataset", "prepare_frames", "read_index",
           "is_prepared_clip", "preparation_of", "load_prepared_clip_header",
           "load_prepared_clip", "preparation_mismatch", "prepare_command"]

FORMAT = "slsdk-prepared"
VERSION = 1
INDEX = "index.json"
ANNOTATIONS = "annotations.csv"


class PrepareError(SlsdkError, ValueError):
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
            raise ConfigError(f"crop must be 'hands' or 'full', got {self.crop!r}")
        if int(self.size) < 8:
            raise ConfigError(f"size must be >= 8 pixels, got {self.size}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be > 0 or None, got {self.fps}")

    def settings(self) -> dict:
        """What the cache records: everything that changes the frames (not where the model file lives)."""
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
    key = json.dumps(settings["crop"], sort_keys=True) + str(hand_model)
    if _WORKER.get("key") != key:
        if _WORKER.get("cropper") is not None:
            _WORKER["cropper"].close()
        _WORKER["cropper"] = HandCropper(CropConfig.from_dict(settings["crop"]), hand_model, size=settings["size"])
        _WORKER["key"] = key
    return _WORKER["cropper"]


def prepare_frames(video: str | Path, settings: dict, hand_model: str | None = None,
                   sink: Callable[[np.ndarray], None] | None = None) -> tuple[np.ndarray | None, dict]:
    """``(frames uint8 [T, H, W, 3], stats)`` of one video prepared as ``settings`` say (see the module doc).

    With ``sink``, each output frame is handed to ``sink(frame)`` as it is made and nothing is kept (memory
    independent of the clip's length); the first element of the result is then None.
    """
    size, fps, hands = int(settings["size"]), settings["fps"], settings["crop"]["policy"] == "hands"
    reader = VideoReader(video, shorter=None if hands else size, max_shorter=settings["reader"].get("max_shorter"))
    cropper = _cropper(settings, hand_model) if hands else None
    if cropper is not None:
        cropper.reset()
    kept: list[np.ndarray] = []
    put = sink if sink is not None else kept.append
    made = found = 0

    def emit(frame, count):
        nonlocal found, made
        if cropper is not None:
            r = cropper.crop(frame, int(round(made * 1000.0 / (fps or reader.info.fps or 25.0))))
            found += r.hands_found > 0
            frame = r.image
        for _ in range(count):
            put(frame)
        made += count

    for frame, count in resampled_frames(reader, fps if reader.timed else None):
        emit(frame, count)
    if not made:
        raise VideoError(f"{video}: no frames after resampling to {fps} fps")
    stats = {"source_frames": reader.stats["frames"], "frames": made, "hands_frames": found if hands else None,
             "gaps": reader.stats["gaps"], "resized_frames": reader.stats["resized_frames"],
             "source_fps": reader.info.fps, "rotation": reader.info.rotation}
    return (np.stack(kept) if sink is None else None), stats


class _NpyFrames:
    """Writes uint8 ``[T, H, W, 3]`` frames to an open ``.npy`` file as they come: a fixed-size header is
    reserved first and filled in with the final ``T`` at :meth:`close` (numpy reads any header padding)."""

    HEADER = 128     # bytes: magic, version, length, the dict padded with spaces (a multiple of 64)

    def __init__(self, f):
        self.f, self.shape, self.frames = f, None, 0

    def add(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self.shape is None:
            self.shape = frame.shape
            self.f.write(b"\0" * self.HEADER)
        elif frame.shape != self.shape:
            raise PrepareError(f"frame {self.frames} is {list(frame.shape)}, the clip's first {list(self.shape)}")
        self.f.write(frame.tobytes())
        self.frames += 1

    def close(self) -> None:
        if self.shape is None:
            return
        d = repr({"descr": "|u1", "fortran_order": False, "shape": (self.frames, *self.shape)})
        body = d.encode("latin1").ljust(self.HEADER - 10 - 1) + b"\n"
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body)
        self.f.seek(0, os.SEEK_END)


def _clip_key(sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sample_id)[:60].strip("._") or "clip"
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def _source_stamp(path: Path) -> dict:
    """What identifies a source video: path, size, mtime and the SHA-256 of its bytes (an edit that keeps the
    size and mtime is still noticed; hashing costs far less than decoding)."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    stamp = {"path": str(p.resolve()), "size": sum(f.stat().st_size for f in files),
             "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0), "sha256": h.hexdigest()}
    if p.is_dir():
        stamp["files"] = len(files)
    return stamp


def load_prepared_clip_header(npy: str | Path) -> tuple[int, ...]:
    """The shape ``(T, H, W, 3)`` a prepared clip's ``.npy`` header declares, checked against the file's size
    (nothing but the header is read); :class:`PrepareError` naming the file when it is not a whole clip."""
    npy = Path(npy)
    try:
        with open(npy, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)(f)
            offset = f.tell()
    except (OSError, ValueError) as e:
        raise PrepareError(f"{npy}: not a prepared clip ({e})") from None
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        raise PrepareError(f"{npy}: not a prepared clip (uint8 [T, H, W, 3] expected, got {dtype} {list(shape)})")
    if npy.stat().st_size != offset + int(np.prod(shape)):
        raise PrepareError(f"{npy}: cut short ({npy.stat().st_size} bytes, its header says {list(shape)}); re-run "
                           "`slsdk data prepare` to prepare it again")
    return tuple(int(x) for x in shape)


def _clip_complete(npy: Path, rec: dict) -> bool:
    """Whether a cached clip's file holds all the frames its record says (a cut file is prepared again)."""
    try:
        return list(load_prepared_clip_header(npy)) == [int(x) for x in rec["shape"]]
    except (PrepareError, KeyError, TypeError, ValueError):
        return False


def _prepare_one(job: dict) -> dict:
    """Worker: prepare one sample, write ``clips/<key>.npy`` then its record; returns the record (or the error)."""
    clips = Path(job["clips"])
    key = job["key"]
    npy = clips / f"{key}.npy"
    out: dict = {}

    def write(f):
        frames = _NpyFrames(f)
        out["stats"] = prepare_frames(job["video"], job["settings"], job["hand_model"], sink=frames.add)[1]
        frames.close()
        out["shape"] = [frames.frames, *frames.shape]

    def owned(p: Path) -> bool:      # a cut clip is still the one slsdk's own record names
        side = p.with_suffix(".json")
        return is_ours(side) and f"clips/{p.name}" in side.read_text(encoding="utf-8", errors="replace")

    try:
        atomic_write(npy, write, overwrite=True, owned=owned)     # replaces only a clip slsdk wrote
    except WriteError:
        raise                                        # a full disk or a permission: stop the run, say why
    except Exception as e:  # noqa: BLE001 - every failure is named in the summary, the run goes on
        return {"id": job["id"], "video": job["video"], "error": f"{type(e).__name__}: {e}"}
    rec = {"id": job["id"], "split": job["split"], "signer": job["signer"], "glosses": job["glosses"],
           "file": f"clips/{key}.npy", "shape": out["shape"], **out["stats"], "source": job["source"],
           "settings_hash": job["settings_hash"]}
    atomic_write_text(clips / f"{key}.json", json.dumps(rec), overwrite=True)
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
    if layout_hint(data, layout):   # another layout's files, none of this one's: say which layout
        raise no_split_error(data, layout)
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
        raise FileNotFoundError(f"{data}: no samples read with --layout {layout}: " + "; ".join(missing))
    return out


def prepare_dataset(data: str | Path, out_dir: str | Path, config: PrepareConfig | None = None, *,
                    layout: str = "folder", splits: Sequence[str] | None = None, workers: int = 1,
                    overwrite: bool = False, progress: bool = True, console=None) -> PrepareResult:
    """Prepare every video of ``data`` (a data set root in ``layout``) into the cache ``out_dir``.

    ``out_dir`` is new, empty, or a cache slsdk made (resumed; ``overwrite`` starts it over when its settings
    differ); never the data set itself. One run per cache at a time (:func:`slsdk.fileio.output_lock`).
    """
    config = config or PrepareConfig()
    data, out = Path(data), Path(out_dir)
    settings = config.settings()
    shash = _settings_hash(settings)
    hand_model = None
    if config.crop == "hands":
        hand_model = str(resolve_hand_model(config.hand_model))
    with reading(data), output_lock(out):
        return _prepare_locked(data, out, config, samples=_all_samples(data, layout, splits), layout=layout,
                               settings=settings, shash=shash, hand_model=hand_model, workers=workers,
                               overwrite=overwrite, progress=progress, console=console)


def _cache_files(out: Path) -> set[str]:
    """The files of the cache at ``out`` that its index lists (an overwrite may remove only slsdk's own)."""
    try:
        index = read_index(out)
    except PrepareError:
        return set()
    return {Path(r["file"]).name for r in index["clips"] if isinstance(r, dict) and isinstance(r.get("file"), str)}


def _started_settings(path: Path) -> dict:
    """The settings of a cache whose first run was stopped before it wrote the index (``prepare.json``)."""
    try:
        settings = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 1 << 20 else None
    except (OSError, ValueError, UnicodeDecodeError):
        settings = None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT or not is_ours(path):
        raise PrepareError(f"{path}: not the settings file of a cache slsdk made; choose another --out folder")
    return settings


def _start_over(out: Path, clips: Path) -> None:
    """``--overwrite``: remove the old cache's clips, after checking every file there is slsdk's."""
    listed = _cache_files(out)
    entries = sorted(clips.iterdir()) if clips.is_dir() else []

    def owned(p: Path) -> bool:
        return p.name in listed or (p.suffix == ".json" and p.with_suffix(".npy").name in listed)

    foreign = [f.name for f in entries if not f.name.startswith(".") and not is_ours(f, owned)]
    if foreign:
        raise PrepareError(f"{clips}: holds files slsdk did not write ({', '.join(foreign[:5])}); --overwrite "
                           "replaces only a cache slsdk made: move them away or choose another folder")
    for f in entries:
        if not f.name.startswith("."):
            remove(f, owned=owned)


def _prepare_locked(data: Path, out: Path, config: PrepareConfig, *, samples, layout: str, settings: dict,
                    shash: str, hand_model, workers: int, overwrite: bool, progress: bool, console) -> PrepareResult:
    check_output(out)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out}: is a file, not a folder; choose a folder for the cache")
    index_path = out / INDEX
    is_cache = index_path.exists() or (out / "prepare.json").exists()
    if is_cache:
        old = read_index(out)["settings"] if index_path.exists() else _started_settings(out / "prepare.json")
        if _settings_hash(old) != shash and not overwrite:
            diff = [k for k in settings if old.get(k) != settings[k]]
            raise PrepareError(f"{out} holds a cache prepared with other settings (differs in {diff}); choose "
                               "another folder or pass --overwrite to start over")
    elif out.is_dir() and any(not f.name.startswith(".") for f in out.iterdir()):
        raise PrepareError(f"{out}: is a folder that is not a prepared cache; slsdk writes a cache only into a new "
                           "or empty folder (or one of its caches): choose another --out")
    clips = out / "clips"
    if overwrite and is_cache:
        _start_over(out, clips)
    clips.mkdir(parents=True, exist_ok=True)
    with output_lock(out, overwrite=True):   # a cache slsdk made (or a new one): its files may be rewritten
        return _fill(data, out, config, samples=samples, layout=layout, settings=settings, shash=shash,
                     hand_model=hand_model, workers=workers, progress=progress, console=console)


def _fill(data: Path, out: Path, config: PrepareConfig, *, samples, layout: str, settings: dict, shash: str,
          hand_model, workers: int, progress: bool, console) -> PrepareResult:
    clips, index_path = out / "clips", out / INDEX
    clean_stale(clips)        # temp files of a killed run (slsdk's own names of dead processes only)
    atomic_write_text(out / "prepare.json", json.dumps(settings, indent=1))

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
            if (isinstance(rec, dict) and rec.get("source") == stamp and rec.get("settings_hash") == shash
                    and rec.get("id") == s.id and _clip_complete(clips / f"{key}.npy", rec)):
                rec.update(split=s.split, signer=s.signer, glosses=list(s.glosses))
                records[s.id] = rec
                continue
        jobs.append({"id": s.id, "video": str(s.video), "split": s.split, "signer": s.signer,
                     "glosses": list(s.glosses), "key": key, "clips": str(clips), "settings": settings,
                     "settings_hash": shash, "hand_model": hand_model, "source": stamp})
    reused = len(records)
    failures: list[dict] = []

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
            with ProcessPoolExecutor(max_workers=int(workers), mp_context=mp.get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(_prepare_one, j) for j in jobs]):
                    take(fut.result())
                    bar.advance(task)
    ordered = [records[s.id] for s in samples if s.id in records]
    index = {"settings": settings, "source": str(data.resolve()), "layout": layout, "clips": ordered,
             "failures": failures}
    atomic_write_text(index_path, json.dumps(index, indent=1))
    write_folder_annotations(out, [Sample(r["id"], r["glosses"], out / r["file"], r["signer"], r["split"])
                                   for r in ordered])
    hands = sum(r["hands_frames"] or 0 for r in ordered) if config.crop == "hands" else None
    return PrepareResult(out, len(samples), len(ordered) - reused, reused, sum(r["frames"] for r in ordered),
                         hands, failures, settings)


# --------------------------------------------------------------------------------------------------
# reading the cache
# --------------------------------------------------------------------------------------------------
MAX_INDEX_BYTES = 256 << 20     # an index of ~1M clips; a larger index.json is refused before it is read


def read_index(cache: str | Path) -> dict:
    """The cache's ``index.json`` (settings, clips, failures); a clear error when it is not a cache."""
    p = Path(cache) / INDEX
    try:
        if p.stat().st_size > MAX_INDEX_BYTES:
            raise PrepareError(f"{p}: {p.stat().st_size} bytes, more than an index holds ({MAX_INDEX_BYTES}); not "
                               "a prepared cache")
        index = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrepareError(f"{cache}: not a prepared cache (no {INDEX}); make one with `slsdk data prepare`") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PrepareError(f"{p}: corrupt index ({e})") from None
    settings = index.get("settings") if isinstance(index, dict) else None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        what = f"format {settings.get('format')!r}" if isinstance(settings, dict) else f"a JSON {type(index).__name__}"
        raise PrepareError(f"{p}: not an slsdk prepared-cache index ({what}); re-run `slsdk data prepare`")
    if not isinstance(index.get("clips", []), list) or not all(isinstance(r, dict) for r in index.get("clips", [])):
        raise PrepareError(f"{p}: corrupt index (its clips are not a list of records); re-run `slsdk data prepare`")
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


def load_prepared_clip(path: str | Path, max_frames: int | None = None, *, mmap: bool = False) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` frames of a prepared clip, sliced to ``max_frames``: a copy in memory, or with
    ``mmap=True`` the read-only memory map itself (nothing read until indexed: a training item indexes it with
    its frames and crop window and reads only those)."""
    p = Path(path)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"prepared clip not found: {p} (re-run `slsdk data prepare` to complete the cache)") from None
    except (ValueError, OSError) as e:
        raise PrepareError(f"{p}: corrupt prepared clip ({e}); delete it and re-run `slsdk data prepare`") from None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise PrepareError(f"{p}: not a prepared clip (expected uint8 [T, H, W, 3], got {arr.dtype} {list(arr.shape)})")
    arr = arr[:max_frames] if max_frames is not None else arr
    return arr if mmap else np.array(arr)


# --------------------------------------------------------------------------------------------------
# the CLI command (registered in slsdk.cli's data_app)
# --------------------------------------------------------------------------------------------------
def prepare_command(data: Path, out: Path, crop: str = "hands", size: int = 256, fps: float = 25.0,
                    workers: int = 1, layout: str = "folder", split: list[str] | None = None,
                    hand_model: Path | None = None, overwrite: bool = False, landmarks: bool = False,
                    face_model: Path | None = None, pose_model: Path | None = None):
    """Prepare DATA into the cache OUT (see ``slsdk data prepare --help``); prints the summary. ``landmarks``: write
    the 86-point landmarks of each video as a ``.pose`` beside it instead (:mod:`slsdk.data.prepare_landmarks`)."""
    console = Console()
    if landmarks:
        samples = _all_samples(Path(data), layout, split or None)
        res = prepare_landmarks(samples, fps=fps if fps > 0 else None, hand_model=hand_model, face_model=face_model,
                                pose_model=pose_model, overwrite=overwrite, lock=Path(data))
        print_landmarks_result(res, console)
        return res
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
