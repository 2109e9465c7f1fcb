"""Dataset readers: each returns ``list[Sample]``; errors name the annotation file and line.

Layouts assumed (relative to ``root``):

* **folder** (users' own data and the synthetic default): ``annotations.csv`` with header
  ``id,video,signer,split,glosses``; ``glosses`` space-separated; ``video`` relative to ``root``
  (a video file or a folder of frames, or a ``.pose`` landmark file); ``signer`` may be empty. A sample's
  ``landmarks`` is the ``.pose`` file its ``video`` names, or a ``.pose`` beside the video with its name
  (``clips/a.mp4`` -> ``clips/a.pose``; a frame folder ``clips/a/`` -> ``clips/a.pose``).
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
* **Isharah**: the MSLR 2025 starter kit's annotation files (checked against the public
  ``gufranSabri/Pose86K-CSLR-Isharah`` repository): ``annotations_v2/isharah2000/{SI|US}/{train,dev,test}.csv``
  (also ``annotations/{SI|US}/{subset}.csv|.txt``), ``|``-separated with the header ``id|gloss``
  (``id|gloss|text`` also read), ids ``SS_NNNN`` (2-digit signer, 4-digit sentence; ``SSNNNN`` also read),
  UTF-8 Arabic glosses separated by spaces (``كره_قدم`` is one gloss); test files may carry ids only.
  Videos (not part of the public kit, layout assumed): ``videos/{id}.mp4``, ``videos/{signer}/{id}.mp4`` or a
  frame folder ``videos/{id}/`` (``.mov``/``.avi``/``.webm`` also accepted).
* **Isharah keypoints** (the challenge kit's tree as it is): the annotation files above plus
  ``data/pose_data_isharah2000_hands_lips_body_phase2_{SI|US}.pkl`` (dict id -> ``{'keypoints': [T, 86, 2]}``);
  samples carry ``landmarks = LandmarkRef(pickle, id)``, read by ``slsdk.data.landmarks.load_landmarks`` through
  the restricted unpickler (``slsdk.data.safe_pickle``).
"""
from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from slsdk.errors import SlsdkError
from slsdk.fileio import atomic_write_text

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")


class AnnotationError(SlsdkError, ValueError):
    """A malformed annotation file or row; the message names the file and line."""


class DatasetError(SlsdkError, ValueError):
    """A dataset that cannot be used as asked: an unknown layout or split, no samples, clips too short for CTC."""


@dataclass(frozen=True)
class LandmarkRef:
    """Where a sample's landmarks (86-point layout, ``slsdk.landmarks.POSE86``) are: a ``.pose`` file (``key``
    None) or the entry ``key`` of a challenge-kit keypoint pickle. Read with ``slsdk.data.landmarks.load_landmarks``."""
    path: Path
    key: str | None = None


@dataclass
class Sample:
    id: str
    glosses: list[str]
    video: Path  # a video file or a folder of frames (for landmark-only data: where the video would be)
    signer: str | None = None
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)
    landmarks: LandmarkRef | None = None   # the sample's landmarks, where the dataset has them

    def __post_init__(self):
        self.video = Path(self.video)
        self.glosses = list(self.glosses)


def _need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


# Bounds of every annotation file read here (folder annotations.csv, PHOENIX corpus files, CSL-Daily maps,
# Isharah csv/txt): the file is streamed line by line and never held whole, so a hostile file (one 1 GB line, a
# sparse file of NULs, millions of rows) costs at most MAX_LINE_BYTES of buffer and a bounded sample list.
MAX_LINE_BYTES = 64 << 10        # one line (bytes, newline included): 64 KiB
MAX_FIELD_CHARS = 16 << 10       # one field of a row (characters): 16 KiB
MAX_ROWS = 500_000               # rows (non-blank lines) of one annotation file (~0.5 GB of samples)
MAX_FILE_BYTES = 64 << 20        # one annotation file: 64 MiB
_SHOW = 80                       # characters of a line or field an error message quotes


def _short(text: str, n: int = _SHOW) -> str:
    """``repr(text)`` cut to about ``n`` characters (control characters shown escaped, never a huge value)."""
    return repr(text[:n]) + (f"... ({len(text)} characters)" if len(text) > n else "")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of each line of a UTF-8 annotation file, streamed (a BOM on line 1 is dropped).

    Lines end as :meth:`str.splitlines` ends them. Raises :class:`AnnotationError` naming the file and line for
    a line over :data:`MAX_LINE_BYTES`, a file over :data:`MAX_FILE_BYTES` or bytes that are not UTF-8; only one
    line is ever held in memory.
    """
    path = Path(path)
    ln = 0
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise AnnotationError(f"{path}:{ln + 1}: line longer than {MAX_LINE_BYTES} bytes (the limit of an "
                                      "annotation line); is this an annotation file? Fix or split the line")
            if offset + len(raw) > MAX_FILE_BYTES:
                raise AnnotationError(f"{path}:{ln + 1}: file larger than {MAX_FILE_BYTES} bytes (the limit of an "
                                      "annotation file); is this an annotation file? Split it")
            try:
                text = raw.decode("utf-8-sig" if offset == 0 else "utf-8")
            except UnicodeDecodeError as e:
                at = e.start + (3 if offset == 0 and raw.startswith(b"\xef\xbb\xbf") else 0)
                raise AnnotationError(f"{path}:{ln + 1}: not UTF-8 text (byte {raw[at]:#04x} at offset "
                                      f"{offset + at}); save the file as UTF-8") from None
            offset += len(raw)
            for line in text.splitlines() or [""]:
                ln += 1
                yield ln, line


def _read_rows(path: Path, delimiter: str, header: list[str] | None, *, header_optional: bool = False):
    """Yield ``(line_number, dict)``; checks the header (or its absence), the column count and the bounds
    (:data:`MAX_LINE_BYTES`, :data:`MAX_FIELD_CHARS`, :data:`MAX_ROWS`, :data:`MAX_FILE_BYTES`)."""
    cols = header
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    rows = 0
    first = True
    for ln, line in iter_lines(path):
        if first:
            first = False
            if header is not None:
                names = [c.strip().lower() for c in line.strip().split(delimiter)]
                if names == [h.lower() for h in header]:
                    continue
                if not header_optional:
                    raise AnnotationError(f"{path}:1: expected header {delimiter.join(header)!r}, "
                                          f"got {_short(line.strip())}")
        if not line.strip():
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise AnnotationError(f"{path}:{ln}: more than {MAX_ROWS} rows (the limit of an annotation file); "
                                  "split the file")
        try:
            parts = next(csv.reader([line], delimiter=delimiter, quoting=quoting))
        except csv.Error as e:
            raise AnnotationError(f"{path}:{ln}: not a valid row ({e}): {_short(line)}") from None
        if cols is not None and len(parts) != len(cols):
            raise AnnotationError(
                f"{path}:{ln}: expected {len(cols)} fields ({delimiter.join(cols)}), got {len(parts)}: {_short(line)}")
        for i, p in enumerate(parts):
            if len(p) > MAX_FIELD_CHARS:
                name = f" ({cols[i]})" if cols is not None else ""
                raise AnnotationError(f"{path}:{ln}: field {i + 1}{name} has {len(p)} characters; a field holds at "
                                      f"most {MAX_FIELD_CHARS}")
        yield ln, (dict(zip(cols, (p.strip() for p in parts))) if cols else parts)
    if first and header is not None and not header_optional:
        raise AnnotationError(f"{path}:1: expected header {delimiter.join(header)!r}, got an empty file")


def _glosses(text: str, path: Path, ln: int) -> list[str]:
    g = [sys.intern(t) for t in text.split()]   # one object per distinct gloss, not one per occurrence
    if not g:
        raise AnnotationError(f"{path}:{ln}: empty gloss sequence")
    return g


def _need_video(video: Path, ann: Path, ln: int) -> Path:
    if not video.exists():
        raise FileNotFoundError(f"{ann}:{ln}: video not found: {video}")
    return video


def _check_split(split: str, allowed: tuple[str, ...], reader: str) -> None:
    if split not in allowed:
        raise DatasetError(f"{reader}: split must be one of {allowed}, got {split!r}")


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
            raise AnnotationError(f"{ann}:{ln}: duplicate id {_short(row['id'])} (first on line {seen[row['id']]})")
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
                          row["split"], {"line": ln}, _pose_beside(video)))
    if split is not None and not out:
        present = sorted(splits)
        raise AnnotationError(f"{ann}: no rows with split {split!r} (splits present: "
                              f"{', '.join(_short(x, 40) for x in present[:10])}"
                              + (f" and {len(present) - 10} more)" if len(present) > 10 else ")"))
    return out


def _pose_beside(video: Path) -> LandmarkRef | None:
    """The folder format's landmarks: the ``video`` column naming a ``.pose`` file, or a ``.pose`` file beside the
    video with its name (``videos/a.mp4`` -> ``videos/a.pose``; a frame folder ``videos/a/`` -> ``videos/a.pose``)."""
    if video.suffix.lower() == ".pose":
        return LandmarkRef(video)
    beside = video.with_name(video.stem + ".pose") if video.suffix.lower() in VIDEO_SUFFIXES else \
        video.with_name(video.name + ".pose")
    return LandmarkRef(beside) if beside.is_file() else None


def write_folder_annotations(root: str | Path, samples: list[Sample], *, annotations: str = "annotations.csv",
                             overwrite: bool = False, owned=None) -> Path:
    """Write ``samples`` as ``root/annotations.csv`` (video paths made relative to ``root``), through
    :func:`slsdk.fileio.atomic_write_text` (``overwrite`` / ``owned`` as there: an existing file is replaced only
    when slsdk proves it wrote it)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "video", "signer", "split", "glosses"])
    for s in samples:
        rel = _relative_to_root(Path(s.video), root)
        w.writerow([s.id, rel.as_posix(), s.signer or "", s.split, " ".join(s.glosses)])
    return atomic_write_text(root / annotations, buf.getvalue(), overwrite=overwrite, owned=owned)


def _relative_to_root(video: Path, root: Path) -> Path:
    """``video`` as the annotation file must store it: relative to ``root`` (the reader joins the two).

    Both are resolved first, so a relative ``root`` (``slsdk data synth mydata``) and videos given relative
    to the working directory (``mydata/videos/x.mp4``) give ``videos/x.mp4``, not ``mydata/videos/x.mp4``.
    A video outside ``root`` is stored as an absolute path.
    """
    v, r = video.resolve(), root.resolve()
    return v.relative_to(r) if v.is_relative_to(r) else v


# ------------------------------------------------------------------------------------------------
def _phoenix_root(root: Path, sub: str) -> Path:
    if not (root / "annotations").is_dir() and (root / sub / "annotations").is_dir():
        return root / sub
    return root


def phoenix2014_annotation_file(root: str | Path, split: str) -> Path:
    """Where the PHOENIX-2014 corpus file of ``split`` lies (``root`` or its ``phoenix-2014-multisigner``)."""
    root = _phoenix_root(Path(root), "phoenix-2014-multisigner")
    return root / "annotations" / "manual" / f"{split}.corpus.csv"


def phoenix2014t_annotation_file(root: str | Path, split: str) -> Path:
    """Where the PHOENIX-2014-T corpus file of ``split`` lies (``root`` or its ``PHOENIX-2014-T``)."""
    root = _phoenix_root(Path(root), "PHOENIX-2014-T")
    return root / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def read_phoenix2014(root: str | Path, split: str, *, check_videos: bool = True) -> list[Sample]:
    _check_split(split, ("train", "dev", "test"), "read_phoenix2014")
    ann = _need_file(phoenix2014_annotation_file(root, split), "PHOENIX-2014 annotation file")
    root = ann.parents[2]
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
    ann = _need_file(phoenix2014t_annotation_file(root, split), "PHOENIX-2014-T annotation file")
    root = ann.parents[2]
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


CSL_DAILY_VIDEO_MAP = "sentence_label/video_map.txt"


def read_csl_daily(root: str | Path, split: str, *, check_videos: bool = True,
                   split_file: str = "sentence_label/split_1.txt") -> list[Sample]:
    _check_split(split, ("train", "dev", "test"), "read_csl_daily")
    root = Path(root)
    table = _need_file(root / CSL_DAILY_VIDEO_MAP, "CSL-Daily video map")
    spf = _need_file(root / split_file, "CSL-Daily split file")
    wanted: set[str] = set()
    for ln, parts in _read_rows(spf, "|", None):
        if len(parts) != 2:
            raise AnnotationError(f"{spf}:{ln}: expected 'name|split', got {_short('|'.join(parts))}")
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
            raise AnnotationError(f"{table}:{ln}: length {_short(row['length'])} is not an integer") from None
        out.append(Sample(name, _glosses(row["gloss"], table, ln), video, signer, split,
                          {"line": ln, "length": length, "char": row["char"], "word": row["word"],
                           "postag": row["postag"]}))
    missing = sorted(wanted - found)
    if missing:
        raise AnnotationError(f"{spf}: {len(missing)} {split} names have no row in {table}, e.g. {_short(missing[0])}")
    return out


def _isharah_video(root: Path, vid: str, signer: str | None) -> Path | None:
    base = root / "videos"
    for d in (base, base / signer) if signer else (base,):
        for suf in VIDEO_SUFFIXES:
            p = d / f"{vid}{suf}"
            if p.is_file():
                return p
        if (d / vid).is_dir():
            return d / vid
    return None


ISHARAH_PROTOCOLS = ("SI", "US")
ISHARAH_SUBSETS = ("train", "dev", "test")
_ISHARAH_ID = re.compile(r"^(\d{2})_?(\d{4})$")   # 00_0001 (MSLR 2025 starter kit) or 000001


def isharah_annotation_file(root: str | Path, protocol: str, subset: str) -> Path:
    """The annotation file of one Isharah protocol/subset under ``root`` (first match wins).

    Looked for, with suffix ``.csv`` or ``.txt``: ``annotations/{P}/{subset}``, ``{P}/{subset}``,
    ``annotations_v2/*/{P}/{subset}`` (the starter kit's ``annotations_v2/isharah2000/SI/train.csv``) and
    ``annotations_v2/{P}/{P}_{subset}``.
    """
    root = Path(root)
    names = [f"{subset}{suf}" for suf in (".csv", ".txt")]
    dirs = [root / "annotations" / protocol, root / protocol]
    v2 = root / "annotations_v2"
    if v2.is_dir():
        dirs += sorted(d / protocol for d in v2.iterdir() if (d / protocol).is_dir())
        dirs.append(v2 / protocol)
        names += [f"{protocol}_{subset}{suf}" for suf in (".csv", ".txt")]
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    raise FileNotFoundError(f"Isharah annotation file not found: {root / 'annotations' / protocol / (subset + '.txt')} "
                            f"(also looked for {subset}.csv there, in {root / protocol} and in "
                            f"{root / 'annotations_v2' / '*' / protocol})")


def read_isharah(root: str | Path, split: str = "SI", subset: str = "train", *,
                 check_videos: bool = True) -> list[Sample]:
    """Isharah CSLR (Saudi Sign Language): ``split`` is the protocol (``SI`` signer-independent, ``US`` unseen
    sentences), ``subset`` one of train/dev/test.

    The annotation files are the MSLR 2025 starter kit's (``id|gloss`` with a header, UTF-8 Arabic glosses,
    space separated; ``id|gloss|text`` also read); ids are ``SS_NNNN`` or ``SSNNNN`` (2-digit signer, 4-digit
    sentence). A test file without glosses (header ``id``, or empty gloss fields) gives samples with empty
    ``glosses`` and ``meta["labelled"] = False``: readable for inference and hypothesis CTMs; training and
    scoring refuse it (:func:`require_labels`).
    """
    _check_split(split, ISHARAH_PROTOCOLS, "read_isharah")
    _check_split(subset, ISHARAH_SUBSETS, "read_isharah")
    root = Path(root)
    ann = isharah_annotation_file(root, split, subset)
    lines = iter_lines(ann)
    try:
        first = next(lines, None)   # the header decides the columns (one bounded line read)
    finally:
        lines.close()
    header = [c.strip().lower() for c in first[1].split("|")] if first else []
    if header and header[0] == "id" and set(header) <= {"id", "gloss", "text"}:
        cols, header_optional = header, False
    else:
        two = bool(first) and first[1].count("|") == 1
        cols, header_optional = ["id", "gloss"] if two else ["id", "gloss", "text"], True
    out, labelled_rows = [], 0
    for ln, row in _read_rows(ann, "|", cols, header_optional=header_optional):
        vid = row["id"]
        m = _ISHARAH_ID.match(vid)
        gloss = row.get("gloss", "")
        if m is None and (gloss or not vid.isdigit()):
            raise AnnotationError(f"{ann}:{ln}: id {_short(vid)} is not 2-digit signer + 4-digit sentence "
                                  "(00_0001 or 000001)")
        signer, sentence = (m.group(1), m.group(2)) if m else (None, None)
        glosses = [sys.intern(t) for t in gloss.split()]
        labelled_rows += bool(glosses)
        video = _isharah_video(root, vid, signer)
        if video is None:
            if check_videos:
                raise FileNotFoundError(f"{ann}:{ln}: video not found for id {vid} under {root / 'videos'} "
                                        f"(videos/{vid}.mp4 or videos/{signer or 'SS'}/{vid}.mp4)")
            video = root / "videos" / f"{vid}.mp4"
        out.append(Sample(vid, glosses, video, signer, f"{split}/{subset}",
                          {"line": ln, "sentence": sentence, "text": row.get("text", ""),
                           "labelled": bool(glosses), "annotations": str(ann)}))
    if 0 < labelled_rows < len(out):
        bad = next(s for s in out if not s.glosses)
        raise AnnotationError(f"{ann}:{bad.meta['line']}: empty gloss sequence (other rows have glosses)")
    return out


def isharah_keypoint_file(root: str | Path, protocol: str) -> Path:
    """The challenge kit's keypoint pickle of ``protocol``: ``ROOT/data/pose_data_isharah2000_hands_lips_body_phase2_
    {SI|US}.pkl`` (where its ``main.py`` reads it)."""
    return Path(root) / "data" / f"pose_data_isharah2000_hands_lips_body_phase2_{protocol}.pkl"


def read_isharah_pose(root: str | Path, split: str = "SI", subset: str = "train", *,
                      check_videos: bool = True) -> list[Sample]:
    """The Isharah challenge kit's keypoint tree: the annotation files of :func:`read_isharah` plus the protocol's
    keypoint pickle (:func:`isharah_keypoint_file`). Each sample's ``landmarks`` is ``LandmarkRef(pickle, id)``
    (read with ``slsdk.data.landmarks.load_landmarks``); ``video`` is the video when the tree also has one
    (RGB + landmark fusion), else where it would be. The pickle must exist (its ids are checked when read: the
    pickle is large); ``check_videos`` is accepted for the readers' common signature."""
    _check_split(split, ISHARAH_PROTOCOLS, "read_isharah_pose")
    kit = isharah_keypoint_file(root, split)
    if not kit.is_file():
        raise FileNotFoundError(f"Isharah keypoint file not found: {kit} (the challenge kit's "
                                f"data/{kit.name}, {split} protocol)")
    samples = read_isharah(root, split, subset, check_videos=False)
    for s in samples:
        s.landmarks = LandmarkRef(kit, s.id)
        s.meta["keypoints"] = str(kit)
    return samples


def require_labels(samples: list[Sample], purpose: str) -> list[Sample]:
    """Refuse samples without gloss labels (a test split as the challenge ships it) for ``purpose``."""
    unlabelled = [s for s in samples if not s.glosses]
    if unlabelled:
        s = unlabelled[0]
        where = s.meta.get("annotations", s.video)
        raise AnnotationError(f"{where}: {len(unlabelled)} of {len(samples)} samples have no glosses "
                              f"(e.g. {_short(s.id)}, line {s.meta.get('line', '?')}); {purpose} needs labelled data. "
                              "Unlabelled splits can be decoded: slsdk eval model ... -o DIR writes hypothesis CTMs")
    return samples


READERS = {
    "folder": read_folder,
    "phoenix2014": read_phoenix2014,
    "phoenix2014t": read_phoenix2014t,
    "csl-daily": read_csl_daily,
    "isharah": read_isharah,
    "isharah-pose": read_isharah_pose,
}
