"""Dataset splits by layout: which reader, which split names, which splits a root holds.

``LAYOUTS`` is the one table of dataset layouts (the CLI's ``--layout`` choices come from it). A split is
named as a user types it: ``train``, ``dev``, ``test`` (PHOENIX, CSL-Daily), ``test_si``/``test_us`` (the
synthetic default); for Isharah the layout names the protocol (``isharah`` = SI, ``isharah-us`` = US) and
``SI/train``-style names pick another. ``isharah-pose`` / ``isharah-pose-us`` read the challenge kit's keypoint
tree (samples with ``landmarks``; :attr:`Layout.landmarks`). Standard library + the readers only (no torch).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slsdk.data.readers import (CSL_DAILY_VIDEO_MAP, ISHARAH_SUBSETS, AnnotationError, DatasetError, Sample,
                                isharah_annotation_file, isharah_keypoint_file, phoenix2014_annotation_file,
                                phoenix2014t_annotation_file, read_csl_daily, read_folder, read_isharah,
                                read_isharah_pose, read_phoenix2014, read_phoenix2014t, require_labels)

__all__ = ["Layout", "LAYOUTS", "get_layout", "read_split", "has_split", "list_splits", "resolve_datasets",
           "require_labels", "looks_like", "layout_hint", "no_split_error"]


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    splits: tuple[str, ...] | None      # None: whatever the annotation file holds (folder format)
    protocol: str | None = None          # Isharah: SI or US
    landmarks: bool = False              # samples carry landmarks (Sample.landmarks), not only videos

    def read(self, root, split: str, *, check_videos: bool = True) -> list[Sample]:
        if self.name == "folder":
            return read_folder(root, split, check_videos=check_videos)
        if self.protocol is not None:
            protocol, _, subset = split.rpartition("/")
            reader = read_isharah_pose if self.landmarks else read_isharah
            return reader(root, protocol or self.protocol, subset, check_videos=check_videos)
        return _READER[self.name](root, split, check_videos=check_videos)

    def holds(self, root) -> bool:
        """Whether ``root`` holds an annotation file of this layout (any split), where its reader looks."""
        root = Path(root)
        if self.name == "folder":
            return (root / "annotations.csv").is_file()
        if self.name == "csl-daily":
            return (root / CSL_DAILY_VIDEO_MAP).is_file()
        if self.protocol is not None:
            kit = isharah_keypoint_file(root, self.protocol).is_file()
            # the challenge kit's tree (keypoints, no videos) is the landmark layout's, not the video layout's
            if (not kit) if self.landmarks else (kit and not (root / "videos").is_dir()):
                return False
            return any(_isharah_file(root, self.protocol, s) for s in ISHARAH_SUBSETS)
        where = phoenix2014_annotation_file if self.name == "phoenix2014" else phoenix2014t_annotation_file
        return any(where(root, s).is_file() for s in self.splits)


def _isharah_file(root: Path, protocol: str, subset: str) -> bool:
    try:
        isharah_annotation_file(root, protocol, subset)
    except FileNotFoundError:
        return False
    return True


_READER = {"phoenix2014": read_phoenix2014, "phoenix2014t": read_phoenix2014t, "csl-daily": read_csl_daily}

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (
    Layout("folder", "annotations.csv (id,video,signer,split,glosses): your own data and the synthetic default",
           None),
    Layout("phoenix2014", "RWTH-PHOENIX-Weather 2014 (annotations/manual/*.corpus.csv, frame folders)",
           ("train", "dev", "test")),
    Layout("phoenix2014t", "RWTH-PHOENIX-Weather 2014 T (PHOENIX-2014-T.*.corpus.csv, frame folders)",
           ("train", "dev", "test")),
    Layout("csl-daily", "CSL-Daily (sentence_label/video_map.txt + split_1.txt)", ("train", "dev", "test")),
    Layout("isharah", "Isharah, signer-independent protocol (annotations_v2/*/SI/{train,dev,test}.csv)",
           ("train", "dev", "test"), protocol="SI"),
    Layout("isharah-us", "Isharah, unseen-sentences protocol (annotations_v2/*/US/{train,dev,test}.csv)",
           ("train", "dev", "test"), protocol="US"),
    Layout("isharah-pose", "Isharah challenge kit keypoints, SI (annotations_v2/isharah2000/SI/*.csv + "
           "data/pose_data_isharah2000_hands_lips_body_phase2_SI.pkl)", ("train", "dev", "test"), protocol="SI",
           landmarks=True),
    Layout("isharah-pose-us", "Isharah challenge kit keypoints, US (annotations_v2/isharah2000/US/*.csv + "
           "data/pose_data_isharah2000_hands_lips_body_phase2_US.pkl)", ("train", "dev", "test"), protocol="US",
           landmarks=True),
)}


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (a clear error listing the known ones otherwise)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def looks_like(root: str | Path) -> list[str]:
    """The layouts whose annotation files ``root`` holds (in :data:`LAYOUTS` order; none for a folder of none)."""
    return [name for name, lay in LAYOUTS.items() if lay.holds(root)]


def layout_hint(root: str | Path, layout: str) -> str:
    """``"; this folder looks like --layout X"`` when ``root`` holds another layout's files, not ``layout``'s;
    else ``""``. Appended to the error of a dataset read with the wrong ``--layout``."""
    found = looks_like(root)
    if not found or layout in found:
        return ""
    return "; this folder looks like " + " or ".join(f"--layout {name}" for name in found)


def no_split_error(root: str | Path, layout: str) -> FileNotFoundError:
    """The error of a root that holds no split of ``layout`` (naming the layout the folder looks like)."""
    return FileNotFoundError(f"{root}: no split of --layout {layout} found{layout_hint(root, layout)}")


def read_split(root: str | Path, split: str, layout: str = "folder", *, check_videos: bool = True) -> list[Sample]:
    """Samples of one split of a dataset root in ``layout`` (a key of :data:`LAYOUTS`).

    A root without ``layout``'s annotation files is a FileNotFoundError that names the layout it looks like.
    """
    lay = get_layout(layout)
    try:
        return lay.read(root, split, check_videos=check_videos)
    except FileNotFoundError as e:
        hint = layout_hint(root, layout)
        if not hint:
            raise
        raise FileNotFoundError(f"{e}{hint}") from None


def list_splits(root: str | Path, layout: str = "folder") -> list[str]:
    """The splits a dataset root holds (in the layout's order; the folder format's in file order)."""
    lay = get_layout(layout)
    if lay.splits is None:
        seen: dict[str, None] = {}
        for s in read_folder(root, None, check_videos=False):
            seen.setdefault(s.split, None)
        return list(seen)
    return [s for s in lay.splits if has_split(root, s, layout)]


def has_split(root: str | Path, split: str, layout: str) -> bool:
    """Whether ``split`` exists in the dataset (a missing split is not an error, a broken file is)."""
    try:
        return bool(read_split(root, split, layout, check_videos=False))
    except AnnotationError as e:
        if "no rows with split" in str(e):
            return False
        raise
    except FileNotFoundError as e:
        if "annotation" in str(e).lower() and "not found" in str(e).lower() and ":" not in str(e).split(" ")[0]:
            return False
        raise
    except ValueError as e:  # the reader does not know this split name
        if "split must be one of" in str(e):
            return False
        raise


def resolve_datasets(data, layout: str = "folder", splits: Sequence[str] = ("train", "dev"), *,
                     purpose: str = "training") -> dict[str, list[Sample]]:
    """``data`` = dataset root or ``{split: samples}`` -> ``{split: samples}`` (a missing dev is absent).

    Every split returned carries gloss labels (:func:`require_labels` refuses an unlabelled one for
    ``purpose``).
    """
    if isinstance(data, (str, Path)):
        out = {"train": read_split(data, "train", layout)}
        for s in splits:
            if s != "train" and has_split(data, s, layout):
                out[s] = read_split(data, s, layout)
    elif isinstance(data, Mapping):
        if "train" not in data:
            raise KeyError(f"datasets need a 'train' split, got {sorted(data)}")
        out = {k: list(getattr(v, "samples", v)) for k, v in data.items()}
    else:
        raise TypeError(f"data must be a dataset root or a {{split: samples}} mapping, got {type(data).__name__}")
    for samples in out.values():
        require_labels(samples, purpose)
    return out
