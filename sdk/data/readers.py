"""Dataset readers: each returns ``list[Sample]``; errors name the annotation file and line.

Layouts assumed (relative to ``root``):

* **folder** (users' own data and the synthetic default): ``annotations.csv`` with header
  ``id,video,signer,split,glosses``; ``glosses`` space-separated; ``video`` relative to ``root``
  (a video file or a folder of frames); ``signer`` may be empty.
* **PHOENIX-2014** (``phoenix-2014-multisigner``): ``annotations/manual/{split}.corpus.csv`` with
  header ``id|folder|signer|annotation``; frames in
  ``features/fullFrame-210x260px/{split}/{folder without the trailing /*.png}``.
* **PHOENIX-2014-T** (``PHOENIX-2014-T``): ``annotations/manual/PHOENIX-2014-T.{split}.corpus.csv``,
  header ``name|video|start|end|speaker|orth|translation``; frames in
  ``features/fullFrame-210x260px/{split}/{name}``.
* **CSL-Daily**: ``sentence_label/video_map.txt`` (``index|name|length|gloss|char|word|postag``,
  glosses space-separated) and ``sentence_label/split_1.txt`` (``name|split`` lines, optional header
  ``Name|split``); frames in ``sentence/frames_512x512/{name}/`` (also tried:
  ``sentence_frames-512x512/frames_512x512/{name}``, ``frames_512x512/{name}``,
  ``sentence-crop/{name}.mp4``). Signer = the ``P....`` part of the name (``S000000_P0000_T00``).
  Assumed from the public release description and open-source loaders; not checked on the real data.
* **Isharah** (assumed, not checked on the real data): ``annotations/{SI|US}/{subset}.txt`` (or
  ``.csv``) with rows ``id|gloss|text`` (header optional); ``id`` = 2-digit signer + 4-digit
  sentence; one video per id found as ``videos/{id}.mp4``, ``videos/{signer}/{id}.mp4`` or a frame
  folder ``videos/{id}/`` (``.mov``/``.avi``/``.webm`` also accepted).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")


class AnnotationError(ValueError):
    """A malformed annotation file or row; the message names the file and line."""


@dataclass
class Sample:
    id: str
    glosses: list[str]
    video: Path  # a video file or a folder of frames
    signer: str | None = None
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.video = Path(self.video)
        self.glosses = list(self.glosses)


def _need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _read_rows(path: Path, delimiter: str, header: list[str] | None, *, header_optional: bool = False):
    """Yield ``(line_number, dict)``; checks the header (or its absence) and the column count."""
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    start = 0
    cols = header
    if header is not None:
        first = lines[0].strip() if lines else ""
        names = [c.strip().lower() for c in first.split(delimiter)]
        if names == [h.lower() for h in header]:
            start = 1
        elif not header_optional:
            raise AnnotationError(f"{path}:1: expected header {delimiter.join(header)!r}, got {first!r}")
    for ln in range(start, len(lines)):
        line = lines[ln]
        if not line.strip():
            continue
        parts = next(csv.reader(io.StringIO(line), delimiter=delimiter,
                                quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE))
        if cols is not None and len(parts) != len(cols):
            raise AnnotationError(
                f"{path}:{ln + 1}: expected {len(cols)} fields ({delimiter.join(cols)}), got {len(parts)}: {line!r}")
        yield ln + 1, (dict(zip(cols, (p.strip() for p in parts))) if cols else parts)


def _glosses(text: str, path: Path, ln: int) -> list[str]:
    g = text.split()
    if not g:
        raise AnnotationError(f"{path}:{ln}: empty gloss sequence")
    return g


def _need_video(video: Path, ann: Path, ln: int) -> Path:
    if not video.exists():
        raise FileNotFoundError(f"{ann}:{ln}: video not found: {video}")
    return video


def _check_split(split: str, allowed: tuple[str, ...], reader: str) -> None:
    if split not in allowed:
        raise ValueError(f"{reader}: split must be one of {allowed}, got {split!r}")


# ------------------------------------------------------------------------------------------------
def read_folder(root: str | Path, split: str | None = None, *, annotations: str = "annotations.csv",
                check_videos: bool = True) -> list[Sample]:
    """The plain format: ``root/annotations.csv`` (``id,video,signer,split,glosses``).

    ``split=None`` returns every row; otherwise only rows of that split (error if there are none).
    """
    root = Path(root)
    ann = _need_file(root / annotations, "annotation file")
    header = ["id", "video", "signer", "split", "glosses"]
    out: list[Sample] = []
    seen: dict[str, int] = {}
    splits: set[str] = set()
    for ln, row in _read_rows(ann, ",", header):
        if not row["id"]:
            raise AnnotationError(f"{ann}:{ln}: empty id")
        if row["id"] in seen:
            raise AnnotationError(f"{ann}:{ln}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = ln
        if not row["split"]:
            raise AnnotationError(f"{ann}:{ln}: empty split")
        if not row["video"]:
            raise AnnotationError(f"{ann}:{ln}: empty video path")
        splits.add(row["split"])
        if split is not None and row["split"] != split:
            continue
        video = root / row["video"]
        if check_videos:
            _need_video(video, ann, ln)
        out.append(Sample(row["id"], _glosses(row["glosses"], ann, ln), video, row["signer"] or None,
                          row["split"], {"line": ln}))
    if split is not None and not out:
        raise AnnotationError(f"{ann}: no rows with split {split!r} (splits present: {sorted(splits)})")
    return out


def write_folder_annotations(root: str | Path, samples: list[Sample], *, annotations: str = "annotations.csv") -> Path:
    """Write ``samples`` as ``root/annotations.csv`` (video paths made relative to ``root``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "video", "signer", "split", "glosses"])
    for s in samples:
        v = Path(s.video)
        rel = v.relative_to(root) if v.is_absolute() and v.is_relative_to(root) else v
        w.writerow([s.id, rel.as_posix(), s.signer or "", s.split, " ".join(s.glosses)])
    path = root / annotations
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
def _phoenix_root(root: Path, sub: str) -> Path:
    if not (root / "annotations").is_dir() and (root / sub / "annotations").is_dir():
        return root / sub
    return root


def read_phoenix2014(root: str | Path, split: str, *, check_videos: bool = True) -> list[Sample]:
    _check_split(split, ("train", "dev", "test"), "read_phoenix2014")
    root = _phoenix_root(Path(root), "phoenix-2014-multisigner")
    ann = _need_file(root / "annotations" / "manual" / f"{split}.corpus.csv", "PHOENIX-2014 annotation file")
    frames = root / "features" / "fullFrame-210x260px" / split
    out = []
    for ln, row in _read_rows(ann, "|", ["id", "folder", "signer", "annotation"]):
        folder = row["folder"]
        if folder.endswith("*.png"):
            folder = folder[: -len("*.png")]
        video = frames / folder.rstrip("/")
        if check_videos:
            _need_video(video, ann, ln)
        out.append(Sample(row["id"], _glosses(row["annotation"], ann, ln), video, row["signer"] or None, split,
                          {"line": ln}))
    return out


def read_phoenix2014t(root: str | Path, split: str, *, check_videos: bool = True) -> list[Sample]:
    _check_split(split, ("train", "dev", "test"), "read_phoenix2014t")
    root = _phoenix_root(Path(root), "PHOENIX-2014-T")
    ann = _need_file(root / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv",
                     "PHOENIX-2014-T annotation file")
    frames = root / "features" / "fullFrame-210x260px" / split
    out = []
    cols = ["name", "video", "start", "end", "speaker", "orth", "translation"]
    for ln, row in _read_rows(ann, "|", cols):
        video = frames / row["name"]
        if check_videos:
            _need_video(video, ann, ln)
        out.append(Sample(row["name"], _glosses(row["orth"], ann, ln), video, row["speaker"] or None, split,
                          {"line": ln, "translation": row["translation"]}))
    return out


_CSL_FRAME_DIRS = ("sentence/frames_512x512", "sentence_frames-512x512/frames_512x512", "frames_512x512")


def _csl_video(root: Path, name: str) -> Path:
    for d in _CSL_FRAME_DIRS:
        p = root / d / name
        if p.is_dir():
            return p
    for suf in VIDEO_SUFFIXES:
        p = root / "sentence-crop" / f"{name}{suf}"
        if p.is_file():
            return p
    return root / _CSL_FRAME_DIRS[0] / name


def read_csl_daily(root: str | Path, split: str, *, check_videos: bool = True,
                   split_file: str = "sentence_label/split_1.txt") -> list[Sample]:
    _check_split(split, ("train", "dev", "test"), "read_csl_daily")
    root = Path(root)
    table = _need_file(root / "sentence_label" / "video_map.txt", "CSL-Daily video map")
    spf = _need_file(root / split_file, "CSL-Daily split file")
    wanted: set[str] = set()
    for ln, parts in _read_rows(spf, "|", None):
        if len(parts) != 2:
            raise AnnotationError(f"{spf}:{ln}: expected 'name|split', got {'|'.join(parts)!r}")
        name, s = parts[0].strip(), parts[1].strip()
        if ln == 1 and name.lower() == "name":
            continue
        if s == split:
            wanted.add(name)
    out = []
    cols = ["index", "name", "length", "gloss", "char", "word", "postag"]
    found: set[str] = set()
    for ln, row in _read_rows(table, "|", cols):
        name = row["name"]
        if name not in wanted:
            continue
        found.add(name)
        video = _csl_video(root, name)
        if check_videos:
            _need_video(video, table, ln)
        signer = next((p for p in name.split("_") if p.startswith("P")), None)
        try:
            length = int(row["length"])
        except ValueError:
            raise AnnotationError(f"{table}:{ln}: length {row['length']!r} is not an integer") from None
        out.append(Sample(name, _glosses(row["gloss"], table, ln), video, signer, split,
                          {"line": ln, "length": length, "char": row["char"], "word": row["word"],
                           "postag": row["postag"]}))
    missing = sorted(wanted - found)
    if missing:
        raise AnnotationError(f"{spf}: {len(missing)} {split} names have no row in {table}, e.g. {missing[0]!r}")
    return out


def _isharah_video(root: Path, vid: str, signer: str) -> Path | None:
    base = root / "videos"
    for d in (base, base / signer):
        for suf in VIDEO_SUFFIXES:
            p = d / f"{vid}{suf}"
            if p.is_file():
                return p
        if (d / vid).is_dir():
            return d / vid
    return None


def read_isharah(root: str | Path, split: str = "SI", subset: str = "train", *,
                 check_videos: bool = True) -> list[Sample]:
    """Isharah CSLR: ``split`` is the protocol (``SI`` signer-independent, ``US`` unseen sentences)."""
    _check_split(split, ("SI", "US"), "read_isharah")
    _check_split(subset, ("train", "dev", "test"), "read_isharah")
    root = Path(root)
    ann = None
    for suf in (".txt", ".csv"):
        p = root / "annotations" / split / f"{subset}{suf}"
        if p.is_file():
            ann = p
            break
    if ann is None:
        raise FileNotFoundError(f"Isharah annotation file not found: {root / 'annotations' / split / (subset + '.txt')}")
    out = []
    for ln, row in _read_rows(ann, "|", ["id", "gloss", "text"], header_optional=True):
        vid = row["id"]
        if len(vid) != 6 or not vid.isdigit():
            raise AnnotationError(f"{ann}:{ln}: id {vid!r} is not 2-digit signer + 4-digit sentence")
        signer, sentence = vid[:2], vid[2:]
        video = _isharah_video(root, vid, signer)
        if video is None:
            if check_videos:
                raise FileNotFoundError(f"{ann}:{ln}: video not found for id {vid} under {root / 'videos'}")
            video = root / "videos" / f"{vid}.mp4"
        out.append(Sample(vid, _glosses(row["gloss"], ann, ln), video, signer, f"{split}/{subset}",
                          {"line": ln, "sentence": sentence, "text": row["text"]}))
    return out


READERS = {
    "folder": read_folder,
    "phoenix2014": read_phoenix2014,
    "phoenix2014t": read_phoenix2014t,
    "csl-daily": read_csl_daily,
    "isharah": read_isharah,
}
