"""Isharah keypoint data (issue 31, data half): the 86-point layout, the kit's normalisation and augmentations,
``.pose`` files, the restricted unpickler, the ``isharah-pose`` layouts and ``slsdk data show`` on them.

The normalisation is checked against ``tests/pose86_kit_reference.npz``: reference figures computed by the Isharah
challenge kit's own code (gufranSabri/Pose86K-CSLR-Isharah, ``utils/datasetv2.py``; run outside the repository,
none of its code is here). How they were made: the kit's ``PoseDatasetV2`` was instantiated without its
``__init__`` (``augmentations=False``, ``additional_joints=True``), its ``pose_dict`` set to one array and its
``readPose`` called, once with the array as float32 (``*_kit32``) and once as float64 (``*_kit64``); the stored
inputs (``*_input``, float32 pixels [T, 86, 2]) were made with ``slsdk.landmarks.read_pose_file`` from the real
MediaPipe Holistic recordings of ../shared/data/pose/pose_repo:

* ``holistic_full``: all 97 frames of ``holistic_full_example.pose`` (both hands missing in frames 0-16 and
  60-64: leading gaps and gaps inside). In float64 the kit's backward pass replaces the found left hand of frame
  43 (its normalised coordinates sum to exactly 0.0) with frame 44's; in float32 it does not.
* ``gaps``: its frames 30-69 with lips zeroed in frames 0, 1, 5, body in 2, 3, 10, the right hand in 0-5 and
  the left hand everywhere.
* ``hand_estimation``: the 5 frames of ``hand_estimation_6fb01565.pose`` (every part found).
* ``mixed_tail``: those 5 frames then frames 0-11 of the holistic recording, hands zeroed in the last 4 frames
  and the body in frame 0.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import slsdk.landmarks as lmk
from cli_errors import one_line_error
from pose_kit_tree import HOLISTIC, hand_estimation_file, kit_tree_samples, make_pose_kit_tree
from slsdk.cli import app
from slsdk.data.landmarks import (POSE86, LandmarkError, PickleRefused, Pose86Augment, Pose86AugmentConfig,
                                  Pose86Normalizer, PoseFileError, kit_keypoints, load_landmarks, normalize_pose86,
                                  part_missing, pose86_spec, read_pose_file)
from slsdk.data.readers import LandmarkRef
from slsdk.data.safe_pickle import load_data_pickle
from slsdk.data.splits import LAYOUTS, layout_hint, looks_like, read_split, require_labels

REFERENCE = Path(__file__).with_name("pose86_kit_reference.npz")
CASES = ("holistic_full", "gaps", "hand_estimation", "mixed_tail")
KIT_PKL = "data/pose_data_isharah2000_hands_lips_body_phase2_{}.pkl"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------------------------ layout
def test_layout_is_the_kits():
    assert [(p.name, p.start, p.stop) for p in POSE86] == [("right_hand", 0, 21), ("left_hand", 21, 42),
                                                          ("lips", 42, 61), ("body", 61, 86)]
    # the kit's lipsUpperOuter + lipsLowerOuter, deduplicated and sorted
    upper = [61, 185, 40, 39, 37, 0, 267, 269, 270, 291]
    lower = [146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
    spec = pose86_spec()
    assert spec["parts"][2]["indices"] == sorted(set(upper + lower)) and spec["points"] == 86
    assert spec["parts"][3]["indices"] == list(range(25))
    assert json.loads(json.dumps(spec)) == spec


# ----------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("case", CASES)
def test_normalize_equals_the_kit(reference, case):
    x = reference[f"{case}_input"]
    assert x.dtype == np.float32 and x.shape[1:] == (86, 2)
    for dtype, kit in ((np.float32, f"{case}_kit32"), (np.float64, f"{case}_kit64")):
        ours = normalize_pose86(x.astype(dtype))
        assert ours.dtype == np.float32 and ours.shape == x.shape
        np.testing.assert_allclose(ours, reference[kit], rtol=0, atol=1e-5)


def test_reference_covers_gaps_and_the_kits_zero_sum_pass(reference):
    """The fixture holds what the normalisation must get right: leading gaps, gaps inside, a part never found,
    and the frame whose float32 result the kit's backward pass changes."""
    miss = part_missing(reference["holistic_full_input"])
    assert miss[0, 0] and miss[0, 1] and miss[60, 0] and not miss[:, 2:].any()
    gaps = part_missing(reference["gaps_input"])
    assert gaps[:6, 0].all() and gaps[:, 1].all() and gaps[[0, 1, 5], 2].all() and gaps[[2, 3, 10], 3].all()
    d = np.abs(reference["holistic_full_kit32"] - reference["holistic_full_kit64"]).max(axis=(1, 2))
    assert list(np.flatnonzero(d > 1e-3)) == [43]


def test_normalize_fills_as_described(reference):
    x = reference["gaps_input"]
    y = normalize_pose86(x)
    assert np.abs(y).max() <= 0.5 + 1e-6
    found = ~part_missing(x)
    for j, p in enumerate(POSE86):       # each found part spans exactly +-0.5
        peak = np.abs(y[found[:, j], p.start:p.stop]).max(axis=(1, 2))
        np.testing.assert_allclose(peak, 0.5, atol=1e-6)
    np.testing.assert_array_equal(y[:6, 0:21], np.repeat(y[6:7, 0:21], 6, axis=0))   # leading gap: next found
    assert not y[:, 21:42].any()                                                     # never found: zeros
    np.testing.assert_array_equal(y[5, 42:61], y[4, 42:61])                           # gap: previous frame
    np.testing.assert_array_equal(y[2, 61:86], y[1, 61:86])
    assert not y[0:2, 42:61].any()           # lips and body are not filled backwards (as in the kit)


def test_normalize_is_translation_and_scale_free():
    """Per frame and part (the streaming form: the offline backward pass tests sums for exactly 0.0, which a
    moved copy meets in other frames: here the left hand's frames 43 and 57 in float64)."""
    x = read_pose_file(HOLISTIC)[0].astype(np.float64)
    moved = x * 1.7 + np.array([40.0, -12.0])
    moved[x == 0] = 0          # a missing part stays missing
    a, b = Pose86Normalizer(np.float64), Pose86Normalizer(np.float64)
    np.testing.assert_allclose(np.stack([a.push(f) for f in moved]), np.stack([b.push(f) for f in x]), atol=1e-5)
    np.testing.assert_allclose(normalize_pose86(moved)[:, 42:], normalize_pose86(x)[:, 42:], atol=1e-5)


def test_streaming_normalizer_is_the_offline_one_once_parts_were_found():
    x = read_pose_file(HOLISTIC)[0].astype(np.float64)
    offline = normalize_pose86(x)
    norm = Pose86Normalizer(dtype=np.float64)
    stream = np.stack([norm.push(f) for f in x])
    miss = part_missing(x)
    first = miss.argmin(axis=0)     # first frame each part is found
    for j, p in enumerate(POSE86):
        sl = slice(p.start, p.stop)
        # the offline backward pass also replaces a found hand whose normalised float64 coordinates sum to 0.0
        zero = [t for t in np.flatnonzero(~miss[:, j]) if lmk._normalize_part(x[t:t + 1, sl])[0].sum() == 0]
        differ = np.flatnonzero(np.abs(stream[:, sl] - offline[:, sl]).max(axis=(1, 2)) > 1e-6)
        assert [int(t) for t in differ if t >= first[j]] == ([t for t in zero if t < len(x) - 1]
                                                             if p.name.endswith("hand") else [])
        for t in zero if p.name.endswith("hand") else []:
            np.testing.assert_array_equal(offline[t, sl], offline[t + 1, sl])
        assert not stream[:first[j], sl].any()      # no look-ahead: zeros before
    assert first[0] > 0 and first[1] > 0
    assert [t for t in range(len(x)) if not miss[t, 1] and lmk._normalize_part(x[t:t + 1, 21:42])[0].sum() == 0] == [43]


def test_normalize_refuses_wrong_shapes():
    with pytest.raises(ValueError, match=r"\[T, 86, 2\]"):
        normalize_pose86(np.zeros((4, 85, 2)))
    with pytest.raises(ValueError, match="86"):
        Pose86Normalizer().push(np.zeros((21, 2)))


# ------------------------------------------------------------------------------------------- .pose files
def test_read_pose_file_maps_holistic_components_by_name():
    from pose_format import Pose

    kp, fps = read_pose_file(HOLISTIC)
    assert kp.shape == (97, 86, 2) and kp.dtype == np.float32 and fps == 25.0
    pose = Pose.read(HOLISTIC.read_bytes())
    lips = [str(i) for i in POSE86[2].points]
    names = ["NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
             "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER",
             "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY",
             "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP"]
    sub = pose.get_components(["RIGHT_HAND_LANDMARKS", "LEFT_HAND_LANDMARKS", "FACE_LANDMARKS", "POSE_LANDMARKS"],
                              {"FACE_LANDMARKS": lips, "POSE_LANDMARKS": names})
    data = np.ma.getdata(sub.body.data)[:, 0, :, :2]
    conf = np.ma.getdata(sub.body.confidence)[:, 0]
    for p in POSE86:
        found = conf[:, p.start:p.stop].max(axis=1) > 0
        np.testing.assert_array_equal(kp[found, p.start:p.stop], data[found, p.start:p.stop])
        assert not kp[~found, p.start:p.stop].any()
    assert part_missing(kp)[:, 0].sum() == 53 and part_missing(kp)[:, 1].sum() == 52


@pytest.mark.parametrize("name, needle", [("../spoken_to_signed_sgg/essen.pose", "POSE_LANDMARKS lacks 17 points"),
                                          ("openpose.pose", "no RIGHT_HAND_LANDMARKS component")])
def test_read_pose_file_refuses_other_layouts_naming_the_file(name, needle):
    path = HOLISTIC.parent / name
    if not path.is_file():
        pytest.skip(f"{path} not in the shared material")
    with pytest.raises(PoseFileError, match=needle) as e:
        read_pose_file(path)
    assert str(path) in str(e.value)


def test_read_pose_file_refuses_bad_files(tmp_path, monkeypatch):
    bad = tmp_path / "garbage.pose"
    bad.write_bytes(b"\x00\x01 this is no pose file" * 10)
    with pytest.raises(PoseFileError, match="garbage.pose"):
        read_pose_file(bad)
    cut = tmp_path / "cut.pose"
    cut.write_bytes(HOLISTIC.read_bytes()[:3000])      # the header and a sliver of the body
    with pytest.raises(PoseFileError, match="cut.pose"):
        read_pose_file(cut)
    with pytest.raises(PoseFileError, match="not found"):
        read_pose_file(tmp_path / "absent.pose")
    monkeypatch.setattr(lmk, "MAX_POSE_FILE_BYTES", 100_000)
    with pytest.raises(PoseFileError, match=r"holistic_full_example.pose: 908767 bytes, more than"):
        read_pose_file(HOLISTIC)


# ---------------------------------------------------------------------------------- restricted unpickler
class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64])
def test_plain_data_round_trips(tmp_path, protocol, dtype):
    rng = np.random.default_rng(0)
    data = {"00_0001": {"keypoints": (rng.random((7, 86, 2)) * 300).astype(dtype)},
            "list": [1, 2.5, "x", (3, None, True)], "scalar": np.float32(1.5),
            "fortran": np.asfortranarray(rng.random((3, 4))), "empty": np.zeros((0, 86, 2), dtype),
            "big": np.arange(70000, dtype=np.float64).astype(">f8")}
    f = tmp_path / "d.pkl"
    f.write_bytes(pickle.dumps(data, protocol=protocol))
    got = load_data_pickle(f)
    assert set(got) == set(data) and got["list"] == data["list"] and got["scalar"] == np.float32(1.5)
    for k in ("fortran", "empty", "big"):
        np.testing.assert_array_equal(got[k], data[k])
        assert got[k].dtype == data[k].dtype
    np.testing.assert_array_equal(got["00_0001"]["keypoints"], data["00_0001"]["keypoints"])
    assert type(got["00_0001"]["keypoints"]) is np.ndarray


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "evil.pkl"
    f.write_bytes(pickle.dumps({"00_0001": {"keypoints": _RunsCode(marker)}}, protocol=4))
    with pytest.raises(PickleRefused, match=r"evil.pkl: refused: the pickle calls (posix|os)\.system") as e:
        load_data_pickle(f)
    assert "nothing was executed" in str(e.value)
    assert not marker.exists()
    f.write_bytes(pickle.dumps([_Eval()], protocol=2))
    with pytest.raises(PickleRefused, match=r"(__builtin__|builtins)\.eval"):
        load_data_pickle(f)
    # the plain pickle module would have run it: the test's pickle is live
    pickle.loads(pickle.dumps(_RunsCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize("value, needle", [
    (np.array([1, "a"], dtype=object), "dtype object"),
    (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "dtype"),
    (np.array(["ab", "c"]), "dtype <U2"),
    (np.str_("text"), "dtype"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "dtype"),
    ({1, 2}, "holds a set"),
])
def test_non_numeric_contents_are_refused(tmp_path, value, needle):
    f = tmp_path / "x.pkl"
    f.write_bytes(pickle.dumps({"a": value}, protocol=4))
    with pytest.raises(PickleRefused, match="x.pkl") as e:
        load_data_pickle(f)
    assert needle in str(e.value)


class _Lying:
    """An array state whose shape says 10**9 items while its data holds one."""
    def __reduce__(self):
        _reconstruct = np.zeros(1).__reduce__()[0]     # numpy's own (numpy.core or numpy._core)
        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (10 ** 9,), np.dtype("f8"), False, b"\0" * 8)


def test_lying_shapes_size_bound_and_garbage_are_refused(tmp_path):
    f = tmp_path / "lie.pkl"
    f.write_bytes(pickle.dumps(_Lying(), protocol=4))
    with pytest.raises(PickleRefused, match=r"lie.pkl: refused: an array of shape \(1000000000,\)"):
        load_data_pickle(f)
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": np.zeros(1000)}, protocol=4))
    with pytest.raises(PickleRefused, match=r"ok.pkl: refused: \d+ bytes, more than the 1000"):
        load_data_pickle(ok, max_bytes=1000)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"id|gloss\n00_0001|x\n")
    with pytest.raises(PickleRefused, match="junk.pkl: not a pickle"):
        load_data_pickle(junk)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(ok.read_bytes()[:200])
    with pytest.raises(PickleRefused, match="cut.pkl: cannot read the pickle"):
        load_data_pickle(cut)


# --------------------------------------------------------------------------------------------- layouts
def _plain_pickle(path: Path) -> dict:
    with open(path, "rb") as f:      # the test's own file: trusted
        return pickle.load(f)


@pytest.mark.parametrize("protocol, layout", [("SI", "isharah-pose"), ("US", "isharah-pose-us")])
def test_kit_tree_reads_with_its_layout(tmp_path, protocol, layout):
    root = make_pose_kit_tree(tmp_path / "kit", protocol)
    assert looks_like(root) == [layout] and layout in LAYOUTS
    video_layout = "isharah" if protocol == "SI" else "isharah-us"
    assert layout_hint(root, video_layout) == f"; this folder looks like --layout {layout}"
    table = _plain_pickle(root / KIT_PKL.format(protocol))
    expected = kit_tree_samples(protocol)
    for split in ("train", "dev", "test"):
        samples = read_split(root, split, layout)
        assert [(s.id, len(load_landmarks(s)), " ".join(s.glosses) or None) for s in samples] == expected[split]
        for s in samples:
            assert s.landmarks == LandmarkRef(root / KIT_PKL.format(protocol), s.id)
            kp = load_landmarks(s)
            assert kp.dtype == np.float32
            np.testing.assert_array_equal(kp, table[s.id]["keypoints"].astype(np.float32))
    test = read_split(root, "test", layout)
    assert all(not s.glosses and s.meta["labelled"] is False for s in test)
    with pytest.raises(Exception, match="have no glosses"):
        require_labels(test, "training")


def test_kit_tree_txt_annotations_and_cache(tmp_path):
    root = make_pose_kit_tree(tmp_path / "kit", "SI")
    ann = root / "annotations_v2" / "isharah2000" / "SI"
    for f in ann.glob("*.csv"):
        f.rename(f.with_suffix(".txt"))
    samples = read_split(root, "dev", "isharah-pose")
    assert [s.id for s in samples] == [sid for sid, _, _ in kit_tree_samples("SI")["dev"]]
    pkl = root / KIT_PKL.format("SI")
    assert kit_keypoints(pkl) is kit_keypoints(pkl)          # read once
    first = kit_keypoints(pkl)
    table = _plain_pickle(pkl)
    table["02_0001"]["keypoints"] = table["02_0001"]["keypoints"][:5]
    pkl.write_bytes(pickle.dumps(table, protocol=4) + b"")
    os.utime(pkl, ns=(1, 1))                                 # a changed file is read again
    assert kit_keypoints(pkl) is not first and len(load_landmarks(samples[0])) == 5


def test_kit_tree_bad_entries_name_the_file_and_id(tmp_path):
    root = make_pose_kit_tree(tmp_path / "kit", "SI")
    pkl = root / KIT_PKL.format("SI")
    table = _plain_pickle(pkl)
    del table["00_0002"]
    table["00_0003"] = {"keypoints": np.zeros((4, 75, 2))}
    table["01_0001"] = {"keypoints": np.full((4, 86, 2), np.nan)}
    pkl.write_bytes(pickle.dumps(table, protocol=4))
    s = {x.id: x for x in read_split(root, "train", "isharah-pose")}
    with pytest.raises(LandmarkError, match=r"phase2_SI.pkl: no keypoints for id '00_0002'"):
        load_landmarks(s["00_0002"])
    with pytest.raises(LandmarkError, match=r"phase2_SI.pkl: id '00_0003': keypoints of shape \(4, 75, 2\)"):
        load_landmarks(s["00_0003"])
    with pytest.raises(LandmarkError, match=r"id '01_0001': keypoints hold NaN"):
        load_landmarks(s["01_0001"])
    (root / KIT_PKL.format("SI")).unlink()
    with pytest.raises(FileNotFoundError, match="Isharah keypoint file not found: .*phase2_SI.pkl"):
        read_split(root, "train", "isharah-pose")


def test_folder_layout_takes_pose_files(tmp_path):
    root = tmp_path / "d"
    (root / "clips").mkdir(parents=True)
    shutil.copy(HOLISTIC, root / "clips" / "a.pose")
    (root / "clips" / "b.mp4").write_bytes(b"")                 # a video with its landmarks beside it
    shutil.copy(hand_estimation_file(), root / "clips" / "b.pose")
    (root / "clips" / "c.mp4").write_bytes(b"")                 # a video without
    (root / "annotations.csv").write_text("id,video,signer,split,glosses\na,clips/a.pose,,train,X Y\n"
                                          "b,clips/b.mp4,,train,Y\nc,clips/c.mp4,,train,X\n")
    a, b, c = read_split(root, "train", "folder")
    assert a.landmarks == LandmarkRef(root / "clips" / "a.pose") and b.landmarks == LandmarkRef(root / "clips/b.pose")
    assert c.landmarks is None
    np.testing.assert_array_equal(load_landmarks(a), read_pose_file(HOLISTIC)[0])
    assert load_landmarks(b).shape == (5, 86, 2)
    with pytest.raises(LandmarkError, match="c.mp4: sample 'c' has no landmarks"):
        load_landmarks(c)


# ---------------------------------------------------------------------------------------- augmentation
def test_augment_shape_determinism_and_bounds():
    x = read_pose_file(HOLISTIC)[0]
    cfg = Pose86AugmentConfig(p=1.0)
    a = Pose86Augment(cfg, seed=3)(x)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, Pose86Augment(cfg, seed=3)(x))
    assert not np.array_equal(a, Pose86Augment(cfg, seed=4)(x)) and not np.array_equal(a, x)
    y = Pose86Augment(cfg, seed=5).normalized(x)
    assert np.abs(y).max() <= 0.5 + 1e-6 and np.isfinite(y).all()
    np.testing.assert_array_equal(Pose86Augment(Pose86AugmentConfig(p=0.0), seed=1)(x), x)
    with pytest.raises(ValueError, match="frame_drop"):
        Pose86AugmentConfig(frame_drop=1.5)
    with pytest.raises(ValueError, match="parts"):
        Pose86AugmentConfig(parts=("tail",))


def _only(**kw) -> Pose86AugmentConfig:
    off = dict(p=1.0, time_warp_shift=0, frame_drop=0.0, p_rotate=0.0, p_jitter=0.0, p_scale=0.0, p_joint_drop=0.0)
    return Pose86AugmentConfig(**{**off, **kw})


def test_each_augmentation_does_what_the_kit_does():
    x = read_pose_file(HOLISTIC)[0].astype(np.float64)
    found = ~part_missing(x)
    hands = slice(0, 42)

    def dists(k):
        return np.linalg.norm(k[:, :, None] - k[:, None, :], axis=-1)

    r = Pose86Augment(_only(p_rotate=1.0), seed=0)(x)          # rotation: rigid, hands only
    np.testing.assert_array_equal(r[:, 42:], x[:, 42:].astype(np.float32))
    f = found[:, 0]
    np.testing.assert_allclose(dists(r[f, 0:21]), dists(x[f, 0:21]), atol=1e-3)
    assert np.abs(r[f, 0:21] - x[f, 0:21]).max() > 1
    s = Pose86Augment(_only(p_scale=1.0), seed=0)(x)           # scale: a factor in the range per frame and hand
    ratio = s[f, 0, 0] / x[f, 0, 0]
    assert ((ratio >= 0.8 - 1e-5) & (ratio <= 1.2 + 1e-5)).all() and ratio.std() > 0
    per_frame = [np.stack([n.push(f) for f in k]) for n, k in ((Pose86Normalizer(np.float64), s),
                                                                (Pose86Normalizer(np.float64), x))]
    np.testing.assert_allclose(*per_frame, atol=1e-5)      # the normalisation undoes it (as in the kit)
    j = Pose86Augment(_only(p_jitter=1.0, jitter_std=0.5), seed=0)(x)
    assert 0.2 < np.std(j[f, 0:21] - x[f, 0:21]) < 0.8 and np.array_equal(j[~f, 0:21], x[~f, 0:21])
    d = Pose86Augment(_only(p_joint_drop=1.0, joint_drop=0.5), seed=0)(x)
    dropped = (d[:, hands] == 0).all(axis=2) & ~(x[:, hands] == 0).all(axis=2)
    assert 0.3 < dropped[found[:, 0]].mean() < 0.7
    fd = Pose86Augment(_only(frame_drop=0.5), seed=0)(x)
    zero = ~fd.any(axis=(1, 2))
    assert 0.3 < zero.mean() < 0.7 and np.array_equal(fd[~zero], x[~zero].astype(np.float32))
    tw = Pose86Augment(_only(time_warp_shift=2), seed=0)(x)
    for t in range(len(x)):       # every frame is one within 2 of it
        assert any(np.array_equal(tw[t], x[u].astype(np.float32)) for u in range(max(0, t - 2), min(len(x), t + 3)))


# ------------------------------------------------------------------------------------------- data show
def test_data_show_reports_frames_and_missing_parts(tmp_path, monkeypatch):
    make_pose_kit_tree(tmp_path / "kit", "SI")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["data", "show", "kit", "--layout", "isharah-pose", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    table = _plain_pickle(Path("kit") / KIT_PKL.format("SI"))
    for sp in d["splits"]:
        ids = [sid for sid, _, _ in kit_tree_samples("SI")[sp["name"]]]
        arrays = [table[i]["keypoints"] for i in ids]
        assert sp["samples"] == len(ids) and sp["landmark_frames"] == sum(len(a) for a in arrays)
        for p in POSE86:
            assert sp["missing_parts"][p.name] == sum(int((a[:, p.start:p.stop] == 0).all(axis=(1, 2)).sum())
                                                      for a in arrays)
        lengths = [len(a) for a in arrays]
        assert sp["frames"] == [min(lengths), int(statistics.median(lengths)), max(lengths)]
    assert d["splits"][0]["missing_parts"]["right_hand"] > 0 and d["splits"][2]["labelled"] is False
    r = CliRunner().invoke(app, ["data", "show", "kit", "--layout", "isharah-pose"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "no right hand" in r.output and "no body" in r.output
    r = CliRunner().invoke(app, ["data", "show", "kit", "--layout", "isharah", "--json"])
    assert r.exit_code == 0 and any("looks like --layout isharah-pose" in w for w in json.loads(r.output)["warnings"])


def test_data_show_refuses_a_hostile_pickle_in_one_line(tmp_path):
    root = make_pose_kit_tree(tmp_path / "kit", "SI")
    marker = tmp_path / "ran"
    (root / KIT_PKL.format("SI")).write_bytes(pickle.dumps({"00_0001": {"keypoints": _RunsCode(marker)}}))
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", "data", "show", "kit", "--layout", "isharah-pose"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    one_line_error(r, "kit/data/pose_data_isharah2000_hands_lips_body_phase2_SI.pkl: refused: the pickle calls",
                   "system")
    assert not marker.exists()
