"""A landmark bundle served from video (issue 31): the runtime makes the 86 points per frame with MediaPipe Tasks
(hands from the crop pass's HandLandmarker, lips from FaceLandmarker, body from PoseLandmarker) and normalises
them as training did. Real models and the real webcam clip in shared/data; a real landmark bundle (a converted
LandmarkStudent, run by ONNX Runtime); the CLI from a working folder with relative paths.

The equality: ``slsdk run BUNDLE clip.mp4`` feeds the model exactly the numbers of ``slsdk run BUNDLE clip.pose``
where ``clip.pose`` is what ``slsdk data prepare --landmarks --fps <the bundle's fps>`` wrote from that clip (same
decode, resampling, trackers, timestamps and whole-recording normalisation), so the tokens are the same.

The shared face_landmarker.task (built from the mediapipe 0.10.14 wheel) returns a mesh that does not fit the face:
its lips are wrong but present, which is all these tests need (the model is random anyway).
"""
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

from test_pose86_landmarks import _find  # noqa: E402 - the tests folder is not a package

from slsdk.data import Sample, write_folder_annotations  # noqa: E402
from slsdk.data.video import VideoReader  # noqa: E402
from slsdk.landmarks import PARTS, Pose86Normalizer, normalize_pose86, part_missing, read_pose_file  # noqa: E402
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL  # noqa: E402
from slsdk.runtime.api import recognize_video  # noqa: E402
from slsdk.runtime.landmark_frontend import Pose86LookAhead  # noqa: E402
from slsdk.runtime.landmark_source import recognize_pose_file  # noqa: E402
from slsdk.runtime.recognizer import Recognizer, TrainServeSkewWarning  # noqa: E402

CLIP = "data/hands/webcam_gestures.mp4"
VOCAB = ["-", "a", "b", "c", "d", "e"]
MODELS = ["--hand-model", "models/hand_landmarker.task", "--face-model", "models/face_landmarker.task",
          "--pose-model", "models/pose_landmarker.task"]


def slsdk(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    if ok:
        assert r.returncode == 0, f"slsdk {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def records(r: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_file, shared_dir):
    """A working folder: ``lm/`` (a LandmarkStudent converted to fp32 ONNX, classifier sharpened so that it emits a
    varied gloss sequence), ``models/`` (hand, face, pose .task files), ``data/`` (the real webcam clip as a
    folder-layout data set) with ``data/videos/clip.pose`` written by ``slsdk data prepare --landmarks``."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pose_format")
    import torch

    from slsdk.convert import convert
    from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig

    models = {"hand_landmarker.task": shared_file("models/hand_landmarker.task"),
              "face_landmarker.task": _find(FACE_MODEL, shared_dir, "face_landmarker.task"),
              "pose_landmarker.task": _find(POSE_MODEL, shared_dir, "pose_landmarker.task")}
    root = tmp_path_factory.mktemp("lmvideo")
    (root / "models").mkdir()
    for name, src in models.items():
        shutil.copyfile(src, root / "models" / name)
    torch.manual_seed(1)
    m = LandmarkStudent(LandmarkStudentConfig(num_classes=len(VOCAB))).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)
    convert(m, "onnx", "fp32", root / "lm", vocab=VOCAB)
    data = root / "data"
    (data / "videos").mkdir(parents=True)
    shutil.copyfile(shared_file(CLIP), data / "videos" / "clip.mp4")
    write_folder_annotations(data, [Sample("clip", ["a"], data / "videos" / "clip.mp4", "s1", "test")])
    fps = json.loads((root / "lm" / "manifest.json").read_text())["fps"]
    slsdk(root, "data", "prepare", "data", "--landmarks", "--fps", f"{fps:g}", *MODELS)
    assert (data / "videos" / "clip.pose").is_file()
    return root


def _recognizer(work: Path, **kw):
    m = work / "models"
    return Recognizer(work / "lm", hand_model=m / "hand_landmarker.task", face_model=m / "face_landmarker.task",
                      pose_model=m / "pose_landmarker.task", **kw)


def _front_end_points(stream, path: Path, batch: int = 7) -> np.ndarray:
    """What the stream's front end makes of the file's frames (fed in odd batches with their timestamps)."""
    reader = VideoReader(path, max_shorter=720)
    frames = list(reader)
    out = []
    for i in range(0, len(frames), batch):
        part = frames[i:i + batch]
        x = stream.frontend.push(np.stack([f for f, _ in part]), [t for _, t in part])
        if x is not None:
            out.append(x)
    x = stream.frontend.flush()
    if x is not None:
        out.append(x)
    return np.concatenate(out)


def test_run_a_video_gives_the_tokens_of_run_its_pose_file(work):
    """`slsdk run BUNDLE clip.mp4 --json` (landmarks made from the frames) against `slsdk run BUNDLE clip.pose
    --json` (the landmarks data prepare wrote from the same clip): the same frames and glosses; the summary says
    the input and the cost per frame of the landmarks against the model's."""
    video = records(slsdk(work, "run", "lm", "data/videos/clip.mp4", "--json", *MODELS))
    pose = records(slsdk(work, "run", "lm", "data/videos/clip.pose", "--json"))
    sv, sp = video[-1], pose[-1]
    assert sv["type"] == sp["type"] == "summary"
    assert sv["input"] == "landmarks from video" and sp["input"] == "landmarks"
    assert sv["backend"] == "onnxruntime"
    k, _ = read_pose_file(work / "data/videos/clip.pose")
    assert sv["frames"] == sp["frames"] == len(k) and sv["source_frames"] == 58
    assert sv["glosses"] and sv["glosses"] == sp["glosses"]
    assert [r["gloss"] for r in video if r["type"] == "gloss"] == sv["glosses"]
    lm = sv["landmarks"]
    assert lm["normalisation"] == "as the whole file" and lm["extracted_frames"] == len(k)
    found = (~part_missing(k)).sum(axis=0)
    assert lm["found"] == {p: int(n) for p, n in zip(PARTS, found)}
    assert lm["found"]["body"] == len(k) and 0 < lm["found"]["right_hand"] < len(k)
    per = lm["per_frame_ms"]
    assert set(per) >= {"hands", "lips", "body", "landmarks", "normalise", "model", "decode", "total"}
    assert per["landmarks"] == pytest.approx(per["hands"] + per["lips"] + per["body"], abs=1e-3)
    assert per["total"] == pytest.approx(per["landmarks"] + per["normalise"] + per["model"] + per["decode"],
                                         abs=1e-3)
    assert sv["timing_s"]["frames"] == len(k) and sv["timing_s"]["chunks"] >= 1


def test_the_front_end_feeds_the_model_the_pose_files_numbers(work):
    """Exactly: the stream's landmark front end (file mode, frames fed in odd batches) gives the numbers
    normalize_pose86 gives the prepared .pose; recognize_video's tokens equal the .pose file's (no endpoint
    resets: the same log-probs in the same chunks)."""
    k, fps = read_pose_file(work / "data/videos/clip.pose")
    rec = _recognizer(work)
    s = rec.create_stream(look_ahead=True)
    try:
        points = _front_end_points(s, work / "data/videos/clip.mp4")
    finally:
        s.close()
    assert fps == rec.fps
    np.testing.assert_array_equal(points, normalize_pose86(k))
    got = recognize_video(None, work / "data/videos/clip.mp4", recognizer=rec)
    want = list(recognize_pose_file(_recognizer(work), work / "data/videos/clip.pose"))[-1].result
    assert got.result.glosses and got.result.glosses == want.glosses
    assert got.frames == len(k) and set(got.timing["landmarks"]) == {"hands", "lips", "body", "normalise"}


def test_hands_come_from_the_crop_pass_when_the_runtime_crops(work):
    """With the hands crop policy the landmarks take the hands of the stream's crop tracker (the recognizer's
    crop pool, the same default settings as data prepare): no second hand pass, and the same numbers."""
    k, _ = read_pose_file(work / "data/videos/clip.pose")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainServeSkewWarning)
        rec = _recognizer(work, crop="hands")
    s = rec.create_stream(look_ahead=True)
    points = _front_end_points(s, work / "data/videos/clip.mp4", batch=11)
    lm, cropper = s.frontend.landmarker, s.frontend.cropper
    assert lm._cropper is None and lm.seconds["hands"] == 0.0          # the landmarker ran no hand tracker
    assert cropper is not None and cropper in rec.croppers._all          # the crop pass's tracker
    assert s.crop_stats.frames == len(k) and s.crop_stats.frames_with_hands > 0
    s.close()
    np.testing.assert_array_equal(points, normalize_pose86(k))


def test_a_live_stream_normalises_causally(work):
    """A camera's stream (no look-ahead): every frame comes out as it goes in, from Pose86Normalizer; a hand not
    seen yet is zeros, and from the frame where both hands have been seen on the numbers are the whole file's."""
    k, _ = read_pose_file(work / "data/videos/clip.pose")
    rec = _recognizer(work)
    s = rec.create_stream()
    points = _front_end_points(s, work / "data/videos/clip.mp4", batch=1)
    s.close()
    norm = Pose86Normalizer()
    np.testing.assert_array_equal(points, np.stack([norm.push(f) for f in k]))
    miss = part_missing(k)
    for j, p in enumerate(("right_hand", "left_hand")):
        first = int(np.argmax(~miss[:, j])) if (~miss[:, j]).any() else len(k)
        assert not points[:first, PARTS[p].slice].any()                  # leading gap: zeros, not the future
    both = max(int(np.argmax(~miss[:, j])) for j in (0, 1)) if (~miss[:, :2]).any(axis=0).all() else len(k)
    np.testing.assert_array_equal(points[both:], normalize_pose86(k)[both:])


def test_the_look_ahead_normaliser_is_the_offline_one(shared_file):
    """Pose86LookAhead over a real Holistic recording with parts knocked out (leading gaps, gaps, a hand that
    never shows): frame for frame the numbers of normalize_pose86 over the whole recording, each frame given out
    once both hands have been seen at or after it."""
    k, _ = read_pose_file(shared_file("data/pose/pose_repo/holistic_full_example.pose"))
    rng = np.random.default_rng(0)
    for trial in range(12):
        x = k.copy()
        for p in PARTS.values():
            gone = rng.random(len(x)) < rng.random()
            gone[: rng.integers(0, len(x))] |= trial % 2 == 0
            x[gone, p.slice] = 0
        if trial == 5:
            x[:, PARTS["left_hand"].slice] = 0
        la = Pose86LookAhead()
        outs = [la.push(f) for f in x]
        got = np.concatenate(outs + [la.finish()])
        np.testing.assert_array_equal(got, normalize_pose86(x))
        if trial == 5:
            assert sum(len(o) for o in outs) == 0                       # never settled: all at the end


def test_missing_or_wrong_models_and_an_overlay_are_one_line_errors(work):
    """A missing --pose-model, a --face-model that is not a .task and --overlay with a landmark bundle: one line
    naming the file and the option, before any frame (no traceback)."""
    hand, face = MODELS[:2], MODELS[2:4]
    cases = [(["--pose-model", "missing.task", *hand, *face], ["missing.task", "--pose-model"]),
             (["--face-model", "data/videos/clip.mp4", *hand, "--pose-model", "models/pose_landmarker.task"],
              ["data/videos/clip.mp4", "FaceLandmarker"]),
             ([*MODELS, "--overlay", "sheet.png"], ["--overlay", "takes landmarks"])]
    for extra, words in cases:
        r = slsdk(work, "run", "lm", "data/videos/clip.mp4", *extra, ok=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and all(w in out for w in words), out
    assert not (work / "sheet.png").exists()


def test_serving_a_video_needs_no_torch(work):
    """`slsdk run LANDMARK_BUNDLE clip.mp4 --json` in a process where `import torch` fails: the same glosses and
    landmark counts as the normal process (MediaPipe, numpy and ONNX Runtime only)."""
    code = ("import sys\n"
            "sys.modules['torch'] = None\n"
            "from slsdk.cli import main\n"
            "sys.argv = ['slsdk', 'run', 'lm', 'data/videos/clip.mp4', '--json', *sys.argv[1:]]\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code, *MODELS], cwd=work, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    free = records(r)[-1]
    normal = records(slsdk(work, "run", "lm", "data/videos/clip.mp4", "--json", "--no-pipeline", *MODELS))[-1]
    assert free["input"] == normal["input"] == "landmarks from video"
    assert free["glosses"] and free["glosses"] == normal["glosses"]
    assert free["landmarks"]["found"] == normal["landmarks"]["found"] and free["frames"] == normal["frames"]
