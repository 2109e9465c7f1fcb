"""The landmark path end to end, as a user runs it (issue 31's acceptance): in a fresh folder, with relative paths,
a kit-format Isharah keypoint tree made from the real MediaPipe Holistic recordings (``tests/pose_kit_tree.py``)
is summarised by ``slsdk data show --layout isharah-pose``, a landmark teacher is trained for one epoch, distilled
into the streaming landmark student, converted to int8 ONNX (calibrated on the tree's landmarks; parity on its dev
split) with a manifest that declares the landmark input, and a real ``.pose`` recording is served by
``slsdk run BUNDLE FILE.pose --json`` (ONNX Runtime runs the model)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pose_kit_tree import make_pose_kit_tree  # noqa: E402 - the tests folder is not a package


def _slsdk() -> list[str]:
    exe = shutil.which("slsdk")
    return [exe] if exe else [sys.executable, "-m", "slsdk.cli"]


def _run(argv: list[str], cwd: Path) -> str:
    res = subprocess.run(_slsdk() + argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"slsdk {' '.join(argv)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res.stdout


@pytest.mark.slow
def test_kit_tree_to_a_served_pose_file(tmp_path, monkeypatch, shared_file):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pose_format")
    recording = shared_file("data/pose/pose_repo/holistic_full_example.pose")
    monkeypatch.chdir(tmp_path)
    make_pose_kit_tree(Path("kit"), "SI")
    shutil.copyfile(recording, "clip.pose")

    shown = _run(["data", "show", "kit", "--layout", "isharah-pose"], tmp_path)
    assert "train" in shown and "dev" in shown and "no right hand" in shown

    _run(["train", "kit", "--layout", "isharah-pose", "--epochs", "1", "--batch-size", "2", "--hidden", "64",
          "--device", "cpu", "-o", "runs/teacher"], tmp_path)
    _run(["distill", "kit", "--layout", "isharah-pose", "--teacher", "runs/teacher/best.pt", "--epochs", "1",
          "--device", "cpu", "-o", "runs/student"], tmp_path)
    from slsdk.train.checkpoint import load_checkpoint

    teacher = load_checkpoint(Path("runs/teacher/best.pt"), kind="teacher")
    student = load_checkpoint(Path("runs/student/best.pt"), kind="student")
    assert teacher["config"]["modality"] == student["config"]["modality"] == "landmarks"
    assert teacher["extra"]["modality"] == "landmarks" and teacher["config"]["hidden"] == 64

    out = _run(["convert", "runs/student/best.pt", "--target", "onnx", "--precision", "int8", "--calib", "kit",
                "--heldout", "kit", "--split", "dev", "--layout", "isharah-pose", "-o", "bundles/onnx"], tmp_path)
    assert "wrote bundles/onnx" in out
    man = json.loads(Path("bundles/onnx/manifest.json").read_text())
    assert man["input"]["modality"] == "landmarks"
    lm = man["input"]["landmarks"]
    assert (lm["layout"], lm["points"], lm["normalisation"]) == ("pose86", 86, "isharah-pose86")
    assert [p["name"] for p in lm["parts"]] == ["right_hand", "left_hand", "lips", "body"]
    assert man["streaming"]["inputs"][0]["name"] == lm["tensor"] == "landmarks"
    fid = man["fidelity"]
    assert fid["status"] == "run" and fid["runtime"] == "onnxruntime" and fid["videos"] == 3
    assert fid["cosine"] > 0.99
    assert _run(["bundle", "schema", "bundles/onnx"], tmp_path).strip() == "bundles/onnx: valid"

    ran = _run(["run", "bundles/onnx", "clip.pose", "--json"], tmp_path)
    records = [json.loads(x) for x in ran.splitlines() if x.startswith("{")]
    summary = records[-1]
    assert summary["type"] == "summary" and summary["input"] == "landmarks" and summary["backend"] == "onnxruntime"
    assert summary["source_frames"] == 97 and summary["frames"] >= 97 and summary["timing_s"]["chunks"] >= 1
    glosses = [r["gloss"] for r in records if r["type"] == "gloss"]
    assert glosses == summary["glosses"]
    vocab = set(man["vocab"][1:])
    assert set(glosses) <= vocab


def test_an_empty_video_for_a_landmark_bundle_and_a_pose_file_for_an_rgb_bundle(tmp_path, monkeypatch, shared_file,
                                                                         tiny_student):
    """One line each, naming the file and what is wrong (no traceback)."""
    pytest.importorskip("onnxruntime")
    import torch

    from slsdk.convert import convert
    from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig

    recording = shared_file("data/pose/pose_repo/holistic_full_example.pose")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    convert(LandmarkStudent(LandmarkStudentConfig(num_classes=3)).eval(), "onnx", "fp32", "lm", vocab=["-", "a", "b"])
    convert(tiny_student(3), "onnx", "fp32", "rgb", vocab=["-", "a", "b"])
    shutil.copyfile(recording, "clip.pose")
    Path("clip.mp4").write_bytes(b"")
    for argv, words in ((["run", "lm", "clip.mp4"], "file is empty"),    # a video is served (tests/test_landmark_video.py)
                        (["run", "rgb", "clip.pose"], "takes video frames, not landmarks")):
        res = subprocess.run(_slsdk() + argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode != 0 and "Traceback" not in res.stderr
        err = res.stdout + res.stderr
        assert words in err and argv[2] in err, err


def test_serving_a_pose_file_needs_no_torch(tmp_path, shared_file):
    """`slsdk run LANDMARK_BUNDLE FILE.pose --json` in a process where `import torch` fails gives the normal
    process's output (the runtime reads, normalises and streams the landmarks with bottom-layer code)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pose_format")
    import torch

    from slsdk.convert import convert
    from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig

    recording = shared_file("data/pose/pose_repo/holistic_full_example.pose")
    torch.manual_seed(1)
    m = LandmarkStudent(LandmarkStudentConfig(num_classes=6)).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)
    convert(m, "onnx", "fp32", tmp_path / "lm", vocab=["-", "a", "b", "c", "d", "e"])
    code = ("import sys\n"
            "if sys.argv[3] == 'block': sys.modules['torch'] = None\n"
            "from slsdk.cli import main\n"
            "sys.argv = ['slsdk', 'run', sys.argv[1], sys.argv[2], '--json']\n"
            "main()\n")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / "lm"), str(recording), how],
                           capture_output=True, text=True, timeout=300) for how in ("block", "normal")]
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    (free, normal) = ([json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")] for r in runs)
    assert [x for x in free if x["type"] == "gloss"] == [x for x in normal if x["type"] == "gloss"]
    assert free[-1]["glosses"] == normal[-1]["glosses"] and free[-1]["frames"] == normal[-1]["frames"]
    assert free[-1]["glosses"] and free[-1]["source_frames"] == 97
