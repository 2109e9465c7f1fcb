"""What a dataset holds, read fast (annotation files + container metadata): ``slsdk data show``.

The first thing to run on a new dataset: samples, signers and frames per split, the vocabulary built from
the train split, glosses of dev/test that train never shows, unreadable videos (named), and signers shared
between splits (an SI split that shares a signer with train is a data bug). No torch, no decoding of frames
(a container without a frame count is counted by demuxing packets, not by decoding). Samples with landmarks
(``--layout isharah-pose``, ``.pose`` files) add their frames and the frames with each part missing; a sample with
only landmarks takes its frame count from them.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text

from slsdk.data.landmarks import POSE86, LandmarkError, PoseFileError, load_landmarks, part_missing
from slsdk.data.prepare import PrepareError, load_prepared_clip_header
from slsdk.data.readers import Sample
from slsdk.data.splits import get_layout, layout_hint, list_splits, no_split_error, read_split
from slsdk.data.video import IMAGE_SUFFIXES, VideoError
from slsdk.terminal import plain, visible

__all__ = ["SplitSummary", "DatasetSummary", "summarize_dataset", "print_summary"]


def _visible(text) -> str:
    """Dataset text (split, signer, gloss, path) inside a message: control characters shown escaped."""
    return visible(text)


@dataclass
class SplitSummary:
    name: str
    samples: int
    labelled: bool
    signers: list[str]
    glosses: int                                  # running gloss tokens (reference words)
    frames: tuple[int, int, int] | None           # (min, median, max) frames per video; None if none readable
    fps: list[float]                              # distinct container frame rates
    unseen_glosses: list[str] = field(default_factory=list)  # glosses not in the train split (dev/test only)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)
    # landmarks (samples that carry them: --layout isharah-pose, .pose files): frames in all, frames per part missing
    landmark_frames: int | None = None
    missing_parts: dict[str, int] | None = None


@dataclass
class DatasetSummary:
    root: Path
    layout: str
    splits: list[SplitSummary]
    vocabulary: int                               # glosses in the train split (blank not counted)
    warnings: list[str]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["root"] = str(self.root)
        return d


def _frames(s: Sample) -> tuple[int | None, float | None, str | None]:
    """(frames, fps, error) of one sample's video from its container (or its frame folder)."""
    v = Path(s.video)
    try:
        if v.is_dir():
            n = sum(1 for p in v.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            return (n, None, None) if n else (None, None, "frame folder holds no images")
        if not v.is_file():
            return None, None, "missing"
        if v.suffix == ".npy":   # a clip of a prepared cache (`slsdk data prepare`): its header holds the frames
            try:
                shape = load_prepared_clip_header(v)
            except PrepareError as e:
                return None, None, str(e)
            return shape[0], None, None
        import av  # PyAV, optional: loaded when a container is opened

        with av.open(str(v)) as c:
            if not c.streams.video:
                return None, None, "no video stream"
            st = c.streams.video[0]
            rate = st.average_rate or st.guessed_rate
            n = int(st.frames or 0)
            if n <= 0:   # no frame count in the header: count packets (demux only, no decoding)
                n = sum(1 for p in c.demux(st) if p.size)
            return (n, float(rate) if rate else None, None) if n else (None, None, "no frames")
    except (OSError, ValueError, VideoError) as e:    # av.error.* derive from OSError / ValueError
        return None, None, f"{type(e).__name__}: {e}"


def _landmarks(s: Sample) -> tuple[int | None, list[int] | None, str | None]:
    """(frames, frames with each part missing, error) of one sample's landmarks. A keypoint pickle that is refused
    (:class:`PickleRefused`) is the whole data set's error, raised: it holds every sample."""
    try:
        kp = load_landmarks(s)
    except (LandmarkError, PoseFileError, OSError) as e:
        return None, None, str(e)
    return kp.shape[0], [int(n) for n in part_missing(kp).sum(axis=0)], None


def summarize_dataset(root: str | Path, layout: str = "folder", *, frames: bool = True) -> DatasetSummary:
    """Read every split of ``root`` in ``layout`` and summarise it (see the module docstring)."""
    root = Path(root)
    get_layout(layout)
    names = list_splits(root, layout)
    if not names:
        raise no_split_error(root, layout)
    per = {n: read_split(root, n, layout, check_videos=False) for n in names}
    train = per.get("train", [])
    vocab = sorted({g for s in train for g in s.glosses})
    known = set(vocab)
    warnings: list[str] = []
    out: list[SplitSummary] = []
    for n, samples in per.items():
        counts, rates, bad = [], set(), []
        lm_frames, lm_missing = None, None
        if frames:
            for s in samples:
                if s.landmarks is not None:
                    k, miss, err = _landmarks(s)
                    if err:     # the landmarks are what this sample is read from when it has no video
                        where = f"{s.landmarks.path}" + (f" [{s.landmarks.key}]" if s.landmarks.key else "")
                        bad.append((where, err))
                        continue
                    lm_frames = (lm_frames or 0) + k
                    lm_missing = [a + b for a, b in zip(lm_missing or [0] * len(POSE86), miss)]
                    if not Path(s.video).exists() or Path(s.video) == Path(s.landmarks.path):
                        counts.append(k)
                        continue
                k, fps, err = _frames(s)
                if err:
                    bad.append((str(s.video), err))
                else:
                    counts.append(k)
                    if fps:
                        rates.add(round(fps, 3))
        unseen = sorted({g for s in samples for g in s.glosses} - known) if n != "train" and train else []
        out.append(SplitSummary(
            n, len(samples), all(s.glosses for s in samples), sorted({s.signer for s in samples if s.signer}),
            sum(len(s.glosses) for s in samples),
            (min(counts), int(statistics.median(counts)), max(counts)) if counts else None,
            sorted(rates), unseen, bad, lm_frames,
            dict(zip((p.name for p in POSE86), lm_missing)) if lm_missing is not None else None))
    by_name = {s.name: s for s in out}
    train_signers = set(by_name["train"].signers) if "train" in by_name else set()
    for s in out:
        if s.name == "train":
            continue
        shared = sorted(train_signers & set(s.signers))
        signer_independent = "si" in s.name.lower().replace("/", "_").split("_") or (
            layout in ("isharah", "isharah-pose") and s.name in ("dev", "test"))
        v = _visible
        if shared and signer_independent:
            warnings.append(f"split {v(repr(s.name))} is meant to hold unseen signers but shares {len(shared)} with "
                            f"train ({v(', '.join(shared[:5]))}): a data bug")
        if s.unseen_glosses:
            warnings.append(f"split {v(repr(s.name))}: {len(s.unseen_glosses)} glosses never occur in train "
                            f"(e.g. {v(', '.join(s.unseen_glosses[:5]))}); a model trained on train cannot emit them")
        if s.unreadable:
            warnings.append(f"split {v(repr(s.name))}: {len(s.unreadable)} unreadable videos, e.g. "
                            f"{v(s.unreadable[0][0])} ({v(s.unreadable[0][1])})")
    if "train" in by_name and by_name["train"].unreadable:
        t = by_name["train"]
        warnings.append(f"split 'train': {len(t.unreadable)} unreadable videos, e.g. {_visible(t.unreadable[0][0])} "
                        f"({_visible(t.unreadable[0][1])})")
    if not train:
        warnings.append("no train split: the vocabulary cannot be built")
    hint = layout_hint(root, layout)
    if hint and any(sp.unreadable for sp in out):
        warnings.append(f"unreadable or missing videos{hint}")
    return DatasetSummary(root, layout, out, len(vocab), warnings)


def print_summary(s: DatasetSummary, console) -> None:
    """``slsdk data show``'s table and lines on a Rich ``console``: every text that comes from the dataset (the
    root, split names, video paths, reasons, warnings) printed as plain text (``slsdk.runtime.cli_run.plain``:
    markup escaped, control characters shown escaped)."""
    # cells and title as Text: never parsed for markup or :emoji: codes
    table = Table(title=Text(visible(f"{s.root} ({s.layout}): {s.vocabulary} glosses in train")))
    for col in ("split", "samples", "signers", "glosses", "frames min/median/max", "fps", "unseen glosses",
                "unreadable"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for sp in s.splits:
        table.add_row(Text(visible(sp.name)), str(sp.samples), str(len(sp.signers)),
                      str(sp.glosses) if sp.labelled else "unlabelled",
                      "/".join(map(str, sp.frames)) if sp.frames else "-",
                      ",".join(f"{r:g}" for r in sp.fps) or "-", str(len(sp.unseen_glosses)), str(len(sp.unreadable)))
    console.print(table, emoji=False, highlight=False)
    if any(sp.landmark_frames is not None for sp in s.splits):
        parts = [p.name for p in POSE86]
        lm = Table(title=Text("landmarks: frames, and frames with a part missing (all zeros)"))
        for col in ("split", "frames", *(f"no {p.replace('_', ' ')}" for p in parts)):
            lm.add_column(col, justify="left" if col == "split" else "right")
        for sp in s.splits:
            if sp.landmark_frames is None:
                lm.add_row(Text(visible(sp.name)), "-", *("-" for _ in parts))
                continue
            lm.add_row(Text(visible(sp.name)), str(sp.landmark_frames),
                       *(f"{sp.missing_parts[p]} ({100 * sp.missing_parts[p] / max(1, sp.landmark_frames):.0f}%)"
                         for p in parts))
        console.print(lm, emoji=False, highlight=False)
    for sp in s.splits:
        for video, why in sp.unreadable[:10]:
            console.print(f"  unreadable ({plain(sp.name)}): {plain(video)}: {plain(why)}", emoji=False,
                          highlight=False)
    for w in s.warnings:
        console.print(f"[yellow]warning[/]: {plain(w)}", emoji=False, highlight=False)
