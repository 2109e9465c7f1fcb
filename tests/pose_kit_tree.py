"""A kit-format Isharah keypoint tree made from the real MediaPipe Holistic recordings in ../shared/data/pose.

The Isharah challenge kit (gufranSabri/Pose86K-CSLR-Isharah) ships ``annotations_v2/isharah2000/{SI|US}/
{train,dev,test}.csv`` (``id|gloss`` with a header; the test files hold the header ``id`` and ids only) and
``data/pose_data_isharah2000_hands_lips_body_phase2_{SI|US}.pkl`` (``pickle.dump`` of a dict id ->
``{'keypoints': float array [T, 86, 2]}``, pixel coordinates, a part not found all zeros). :func:`make_pose_kit_tree`
writes the same files: every sample is a slice of one of the full-Holistic recordings (``holistic_full_example.pose``:
97 frames, both hands missing in about half of them; ``hand_estimation_*.pose``: 5 frames, everything found), read
with :func:`slsdk.landmarks.read_pose_file`, with glosses from a small vocabulary.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import find_shared_dir
from slsdk.landmarks import read_pose_file

_SHARED = find_shared_dir()
POSE_DIR = (_SHARED or Path("/nonexistent")) / "data" / "pose" / "pose_repo"
HOLISTIC = POSE_DIR / "holistic_full_example.pose"
VOCAB = ("سوال", "هو", "معلم", "لغه", "اشاره")   # glosses of the kit's own first rows
# (id, start frame, frames, glosses) per split; SI: train signers 00/01, dev 02, test 08 (the kit's SI signers);
# US: one signer set, unseen sentences in dev/test (the kit's US ids run 00_0001.., dev 00_0401.., test 00_0451..)
_SI = {
    "train": [("00_0001", 0, 40, "سوال هو"), ("00_0002", 10, 48, "هو معلم لغه اشاره"), ("00_0003", 30, 36, "معلم هو"),
              ("01_0001", 5, 44, "سوال هو"), ("01_0002", 50, 40, "لغه اشاره"), ("01_0003", 20, 60, "هو لغه")],
    "dev": [("02_0001", 0, 32, "سوال هو"), ("02_0002", 40, 50, "هو معلم لغه اشاره"), ("02_0003", 60, 37, "معلم")],
    "test": [("08_0001", 12, 33, None), ("08_0002", 45, 40, None)],
}
_US = {
    "train": [("00_0001", 0, 40, "سوال هو"), ("00_0002", 10, 48, "هو معلم لغه اشاره"), ("01_0001", 30, 36, "معلم هو"),
              ("01_0002", 5, 44, "لغه اشاره"), ("02_0001", 20, 60, "هو لغه")],
    "dev": [("00_0401", 0, 32, "سوال لغه"), ("01_0401", 40, 50, "معلم اشاره")],
    "test": [("00_0451", 12, 33, None), ("01_0451", 45, 40, None)],
}


def hand_estimation_file() -> Path:
    found = sorted(POSE_DIR.glob("hand_estimation_*.pose"))
    if not found or not HOLISTIC.is_file():
        pytest.skip(f"the full-Holistic .pose recordings are not in the shared test material ({POSE_DIR})")
    return found[0]


def recordings() -> dict[str, np.ndarray]:
    """The two full-Holistic recordings as [T, 86, 2] float pixel keypoints (the test is skipped without them)."""
    return {"hands": read_pose_file(hand_estimation_file())[0], "holistic": read_pose_file(HOLISTIC)[0]}


def make_pose_kit_tree(root: Path, protocol: str = "SI", *, dtype=np.float64, pickle_protocol: int = 4) -> Path:
    """Write a kit-format tree for ``protocol`` (SI or US) at ``root`` and return ``root``.

    Every sample's keypoints are frames ``start .. start + n`` of the holistic recording (wrapping round its 97
    frames), with the 5-frame hand-estimation recording spliced in at frame 3 of every second sample; the
    dev/test of both protocols reuse those slices under their own ids. ``dtype`` / ``pickle_protocol`` as the
    kit's file (a float array, ``pickle.dump``'s default protocol 4).
    """
    rec = recordings()
    table = _SI if protocol == "SI" else _US
    root = Path(root)
    ann = root / "annotations_v2" / "isharah2000" / protocol
    ann.mkdir(parents=True, exist_ok=True)
    data: dict[str, dict] = {}
    for split, rows in table.items():
        lines = ["id|gloss" if split != "test" else "id"]
        for i, (sid, start, n, gloss) in enumerate(rows):
            idx = (start + np.arange(n)) % len(rec["holistic"])
            kp = rec["holistic"][idx].astype(np.float64)
            if i % 2:
                kp[3:3 + len(rec["hands"])] = rec["hands"][: max(0, min(len(rec["hands"]), n - 3))]
            data[sid] = {"keypoints": kp.astype(dtype)}
            lines.append(sid if gloss is None else f"{sid}|{gloss}")
        (ann / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "data").mkdir(parents=True, exist_ok=True)
    with open(root / "data" / f"pose_data_isharah2000_hands_lips_body_phase2_{protocol}.pkl", "wb") as f:
        pickle.dump(data, f, protocol=pickle_protocol)
    return root


def kit_tree_samples(protocol: str = "SI") -> dict[str, list[tuple[str, int, str | None]]]:
    """What :func:`make_pose_kit_tree` writes, per split: ``(id, frames, glosses or None)``."""
    table = _SI if protocol == "SI" else _US
    return {split: [(sid, n, g) for sid, _, n, g in rows] for split, rows in table.items()}
