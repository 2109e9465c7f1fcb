"""The fusion student end to end, as a user runs it (issue 31): in a fresh folder with relative paths, a synthetic
data set with a ``.pose`` beside every video (``slsdk data synth --landmarks``), a CLIP teacher trained for one
epoch, distilled into the fusion student (``slsdk distill --modality fusion``, tiny settings), converted to ONNX
(parity on held-out videos with their landmarks; the manifest declares modality fusion with both inputs) and served
from a video file by ``slsdk run BUNDLE VIDEO --json`` (frames and landmarks made per frame by the runtime, ONNX
Runtime runs the model); the Python API's streamed tokens equal offline greedy decoding of the same inputs. The
errors a user can fix are one line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_cli_chain import TINY_STUDENT_RECIPE as STUDENT_RECIPE  # noqa: E402 - the tests folder is not a package
from test_pose86_landmarks import _find  # noqa: E402

from slsdk.data.video import VideoReader  # noqa: E402
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL  # noqa: E402

MODELS = ["--hand-model", "models/hand_landmarker.task", "--face-model", "models/face_landmarker.task",
          "--pose-model", "models/pose_landmarker.task"]


def slsdk(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=1200)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    if ok:
        assert r.returncode == 0, f"slsdk {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def records(r: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


@pytest.mark.slow
def test_synth_distill_convert_run_a_fusion_student(tmp_path, monkeypatch, shared_file, shared_dir):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pose_format")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name, src in {"hand_landmarker.task": shared_file("models/hand_landmarker.task"),
                      "face_landmarker.task": _find(FACE_MODEL, shared_dir, "face_landmarker.task"),
                      "pose_landmarker.task": _find(POSE_MODEL, shared_dir, "pose_landmarker.task")}.items():
        shutil.copyfile(src, tmp_path / "models" / name)
    (tmp_path / "student.yaml").write_text(STUDENT_RECIPE)

    slsdk(tmp_path, "data", "synth", "DATA", "--quick", "--landmarks")
    slsdk(tmp_path, "train", "DATA", "--backbone", "ViT-T/16-test", "--epochs", "1", "--hidden", "32",
          "--batch-size", "4", "--device", "cpu", "-o", "runs/teacher")
    # a fusion teacher does not exist: the error says what to run instead
    r = slsdk(tmp_path, "train", "DATA", "--modality", "fusion", "--epochs", "1", "-o", "runs/x", ok=False)
    assert r.returncode != 0 and "slsdk distill" in r.stderr + r.stdout and not Path("runs/x").exists()

    slsdk(tmp_path, "distill", "DATA", "--teacher", "runs/teacher/best.pt", "--modality", "fusion", "--config",
          "student.yaml", "--epochs", "1", "--device", "cpu", "-o", "runs/fusion")
    from slsdk.train.checkpoint import load_checkpoint

    ck = load_checkpoint(Path("runs/fusion/best.pt"), kind="student")
    assert ck["config"]["modality"] == "fusion" and ck["extra"]["modality"] == "fusion"
    assert ck["config"]["image_size"] == 32 and ck["config"]["hidden"] == 64

    out = slsdk(tmp_path, "convert", "runs/fusion/best.pt", "-t", "onnx", "--heldout", "DATA", "--split", "test_si",
                "-o", "bundles/onnx").stdout
    assert "wrote bundles/onnx" in out
    man = json.loads(Path("bundles/onnx/manifest.json").read_text())
    assert man["input"]["modality"] == "fusion" and man["input"]["width"] == 32
    assert man["input"]["landmarks"]["tensor"] == "landmarks" and man["input"]["landmarks"]["points"] == 86
    assert [i["name"] for i in man["streaming"]["inputs"][:2]] == ["frames", "landmarks"]
    fid = man["fidelity"]
    assert fid["status"] == "run" and fid["runtime"] == "onnxruntime" and fid["max_abs_err"] < 1e-3
    assert "wer" in fid and "wer_torch" in fid and "videos with their landmarks" in fid["data"]
    assert slsdk(tmp_path, "bundle", "schema", "bundles/onnx").stdout.strip() == "bundles/onnx: valid"
    # `slsdk bench` times the fusion bundle with both data inputs fed
    slsdk(tmp_path, "bench", "--bundles", "bundles", "--out", "bench")
    row = next(r for r in json.loads(Path("bench/bench.json").read_text())["rows"] if "onnx" in r["format"])
    assert row["status"] == "ok" and row["frames_per_s"] > 0, row

    video = next(Path("DATA/videos/test_si").glob("*.mp4")).as_posix()
    ran = records(slsdk(tmp_path, "run", "bundles/onnx", video, "--json", *MODELS))
    summary = ran[-1]
    assert summary["type"] == "summary" and summary["input"] == "frames and landmarks from video"   # crop "full"
    assert summary["backend"] == "onnxruntime" and summary["frames"] > 0 and summary["timing_s"]["chunks"] >= 1
    assert summary["landmarks"]["extracted_frames"] > 0
    assert [x["gloss"] for x in ran if x["type"] == "gloss"] == summary["glosses"]
    # the hand crop (the policy of a data set prepared with --crop hands): one hand pass gives crop and hand points
    hands = records(slsdk(tmp_path, "run", "bundles/onnx", video, "--json", "--crop", "hands", *MODELS))[-1]
    assert hands["input"] == "hand crops and landmarks from video" and hands["frames"] == summary["frames"]
    assert hands["crop"]["frames"] == hands["frames"]
    assert set(summary["glosses"]) <= set(man["vocab"][1:])

    # the Python API: streamed tokens == offline greedy decoding of the inputs the front end made
    from slsdk.decode import greedy
    from slsdk.runtime.api import recognize_video
    from slsdk.runtime.backends import run_video
    from slsdk.runtime.recognizer import Recognizer, TrainServeSkewWarning

    def recognizer(**kw):
        m = Path("models")
        return Recognizer("bundles/onnx", hand_model=m / "hand_landmarker.task", face_model=m / "face_landmarker.task",
                          pose_model=m / "pose_landmarker.task", **kw)

    rec = recognizer()
    s = rec.create_stream(look_ahead=True)
    frames = list(VideoReader(video, max_shorter=720))
    parts = [s.frontend.push(np.stack([f for f, _ in frames[i:i + 5]]), [t for _, t in frames[i:i + 5]])
             for i in range(0, len(frames), 5)] + [s.frontend.flush()]
    s.close()
    parts = [p for p in parts if p is not None]
    inputs = {k: np.concatenate([p[k] for p in parts]) for k in ("frames", "landmarks")}
    assert inputs["frames"].shape[1:] == (3, 32, 32) and inputs["landmarks"].shape[1:] == (86, 2)
    assert len(inputs["frames"]) == len(inputs["landmarks"]) == summary["frames"] == len(frames)   # 25 fps both
    # crop "full": the frames input is the preprocessed frame, as for an RGB bundle
    np.testing.assert_array_equal(inputs["frames"], rec.preprocess(np.stack([f for f, _ in frames])))
    offline = run_video(rec.backend, rec.manifest.streaming, inputs)
    want = [man["vocab"][int(i)] for i in greedy(offline)]
    got = recognize_video(None, video, recognizer=recognizer())
    assert got.frames == summary["frames"] and got.result.glosses == want

    # the hands crop policy: the crop pass's tracker gives the crop and the hand points (no second hand pass)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainServeSkewWarning)
        rec_h = recognizer(crop="hands")
    s = rec_h.create_stream(look_ahead=True)
    out = [s.frontend.push(np.stack([f for f, _ in frames]), [t for _, t in frames]), s.frontend.flush()]
    lm, cropper = s.frontend.landmarker, s.frontend.cropper
    assert lm._cropper is None and lm.seconds["hands"] == 0.0 and cropper in rec_h.croppers._all
    assert sum(len(o["frames"]) for o in out if o is not None) == len(frames) == s.crop_stats.frames
    s.close()

    # one-line errors: a .pose recording for a fusion bundle; a data set whose sample lacks its .pose
    pose = sorted(Path("DATA/videos").rglob("*.pose"))[0]
    r = slsdk(tmp_path, "run", "bundles/onnx", pose.as_posix(), "--json", ok=False)
    assert r.returncode != 0 and "fusion" in r.stderr + r.stdout
    pose.rename(pose.with_suffix(".kept"))
    r = slsdk(tmp_path, "distill", "DATA", "--teacher", "runs/teacher/best.pt", "--modality", "fusion", "--config",
              "student.yaml", "--epochs", "1", "--device", "cpu", "-o", "runs/fusion2", ok=False)
    assert r.returncode != 0 and pose.stem in r.stderr + r.stdout and "--landmarks" in r.stderr + r.stdout
