"""`slsdk data prepare --landmarks`: the runtime's 86-point landmarks of every video, a .pose beside it, picked up by
the folder layout; run as a user runs it, in a working folder with relative paths."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slsdk.data import Sample, write_folder_annotations
from slsdk.data.readers import read_folder
from slsdk.data.video import load_video, write_video
from slsdk.fileio import forget_writes
from slsdk.landmarks import PARTS, part_missing, read_pose_file
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.hand_model import POSE_MODEL
from slsdk.runtime.hand_tracker import HandCropper
from test_pose86_landmarks import _find

CLIP = "data/hands/webcam_gestures.mp4"


@pytest.fixture(scope="module")
def models(shared_file, shared_dir):
    return {"hand": shared_file("models/hand_landmarker.task"), "face": shared_file("models/face_landmarker.task"),
            "pose": _find(POSE_MODEL, shared_dir, "pose_landmarker.task")}


@pytest.fixture(scope="module")
def dataset(shared_file, tmp_path_factory):
    """Two 25 fps clips cut from the real webcam clip (hands come and go) as a folder-layout data set; a third
    sample's .pose is the user's own (a real Holistic recording)."""
    frames, _ = load_video(shared_file(CLIP), shorter=240)
    root = tmp_path_factory.mktemp("lm") / "data"
    samples = []
    for sid, (f, split) in {"a": (frames[:30], "train"), "b": (frames[20:50], "dev")}.items():
        write_video(root / "videos" / f"{sid}.mp4", f, fps=25)
        samples.append(Sample(sid, ["x"], root / "videos" / f"{sid}.mp4", "s1", split))
    write_video(root / "videos" / "c.mp4", frames[:10], fps=25)
    shutil.copy(shared_file("data/pose/pose_repo/holistic_full_example.pose"), root / "videos" / "c.pose")
    samples.append(Sample("c", ["y"], root / "videos" / "c.mp4", "s1", "train"))
    write_folder_annotations(root, samples)
    return root


def slsdk(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600, env=env)
    if ok:
        assert r.returncode == 0, f"slsdk {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def test_prepare_landmarks_writes_pose_files_the_folder_layout_reads(dataset, models, tmp_path):
    shutil.copytree(dataset, tmp_path / "data")
    user_pose = (tmp_path / "data/videos/c.pose").read_bytes()
    flags = ["--hand-model", str(models["hand"]), "--face-model", str(models["face"]), "--pose-model",
             str(models["pose"])]
    r = slsdk(tmp_path, "data", "prepare", "data", "--landmarks", *flags)
    out = r.stdout + r.stderr
    assert "3 videos: 2 .pose files written (60 frames" in out and "1 not slsdk's" in out, out
    assert (tmp_path / "data/videos/c.pose").read_bytes() == user_pose       # never replaced
    assert not (tmp_path / "prepared").exists()                               # no cache in this mode
    samples = {s.id: s for s in read_folder(tmp_path / "data", None)}
    assert {k: s.landmarks is not None for k, s in samples.items()} == {"a": True, "b": True, "c": True}
    a, fps = read_pose_file(tmp_path / "data/videos/a.pose")
    assert a.shape == (30, 86, 2) and fps == 25.0
    m = part_missing(a)
    assert not m[:, 3].all() and m[:, :2].any() and not m[:, :2].all()        # body found, hands come and go
    # the hands are the runtime crop pass's, on the same frames and timestamps, in the video's display pixels
    frames, _ = load_video(tmp_path / "data/videos/a.mp4")
    with HandCropper(CropConfig(), models["hand"]) as c:
        _, _, res = c.crop_video(frames, 25.0, return_results=True)
    for t, rr in enumerate(res):
        got = [a[t, PARTS[p].slice] for i, p in enumerate(("right_hand", "left_hand")) if not m[t, i]]
        assert len(got) == len(rr.landmarks), t
        for g in got:
            assert any(np.allclose(g, lm[:, :2], atol=1e-3) for lm in rr.landmarks), t

    # a rerun keeps slsdk's files; --overwrite rewrites them (the user's file still not)
    before = (tmp_path / "data/videos/a.pose").stat().st_mtime_ns
    r = slsdk(tmp_path, "data", "prepare", "data", "--landmarks", *flags)
    assert "0 .pose files written" in r.stdout + r.stderr and "2 kept from before" in r.stdout + r.stderr
    assert (tmp_path / "data/videos/a.pose").stat().st_mtime_ns == before
    r = slsdk(tmp_path, "data", "prepare", "data", "--landmarks", "--overwrite", *flags)
    assert "2 .pose files written" in r.stdout + r.stderr
    np.testing.assert_allclose(read_pose_file(tmp_path / "data/videos/a.pose")[0], a, atol=1e-3)
    assert (tmp_path / "data/videos/c.pose").read_bytes() == user_pose


def test_an_edited_pose_file_is_the_users(dataset, models, tmp_path):
    """A .pose slsdk wrote and the user then changed is the user's: kept, even with --overwrite."""
    shutil.copytree(dataset, tmp_path / "data")
    (tmp_path / "data/videos/c.pose").unlink()
    flags = ["--hand-model", str(models["hand"]), "--face-model", str(models["face"]), "--pose-model",
             str(models["pose"]), "--fps", "0"]
    slsdk(tmp_path, "data", "prepare", "data", "--landmarks", "--split", "dev", *flags)
    b = tmp_path / "data/videos/b.pose"
    assert read_pose_file(b)[0].shape == (30, 86, 2)
    b.write_bytes(b.read_bytes() + b"\0")
    forget_writes()
    r = slsdk(tmp_path, "data", "prepare", "data", "--landmarks", "--split", "dev", "--overwrite", *flags)
    assert "1 not slsdk's" in r.stdout + r.stderr and b.read_bytes().endswith(b"\0")


def test_a_missing_model_is_one_line(dataset, models, tmp_path):
    shutil.copytree(dataset, tmp_path / "data")
    r = slsdk(tmp_path, "data", "prepare", "data", "--landmarks", "--hand-model", str(models["hand"]), "--face-model",
              str(models["face"]), "--pose-model", "nowhere.task", ok=False)
    assert r.returncode == 1 and "nowhere.task" in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert not (tmp_path / "data/videos/a.pose").exists()
