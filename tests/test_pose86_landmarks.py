"""The runtime's 86-point landmarks (slsdk.runtime.pose86_landmarks): real MediaPipe Tasks models on the real photo
and clip in shared/data, checked against the hand landmarker, the pose and MediaPipe Holistic's own recordings."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import built_pose_model, find_mediapipe_wheel
from slsdk.data.video import VideoReader, read_image
from slsdk.landmarks import PARTS, part_missing, read_pose_file
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.hand_model import (FACE_MODEL, POSE_MODEL, InvalidTaskModel, TaskModelNotFound,
                                      resolve_task_model)
from slsdk.runtime.hand_tracker import HandCropper
from slsdk.runtime.landmarker import HandDetector
from slsdk.runtime.pose86_landmarks import (Pose86Landmarker, TaskLandmarker, assemble_pose86, assign_hands,
                                            pose86_file_bytes)

CLIP = "data/hands/webcam_gestures.mp4"
SIGNER = "data/hands/generated_signer.png"
RIGHT_WRIST, LEFT_WRIST, NOSE, RIGHT_EYE, LEFT_EYE, LEFT_SHOULDER, RIGHT_SHOULDER = 16, 15, 0, 5, 2, 11, 12
# shared/models/face_landmarker.task (face_landmark.tflite of the mediapipe 0.10.14 wheel under Tasks) loads and
# returns 478 points, but they do not lie on the face: a scattered mesh (on generated_signer.png FaceMesh's chin,
# point 152, comes out above its forehead, point 10, and its nose tip 440 px from PoseLandmarker's nose). Lips from it
# are wrong: the lips test needs a FaceLandmarker whose mesh fits the face (Google's face_landmarker.task).
SCRAMBLED_FACE_MODELS = {"7d40101a3b44e1402edb86041b8e454fcccfe1c913dd5f1654a8af3f458d1da7"}


def _find(spec, shared_dir, name):
    """``spec``'s model: $SLSDK_..._MODEL, the cache, shared/models, and for the pose model one built from the
    mediapipe wheel as `slsdk import pose` builds it (no download here); the test is skipped without one."""
    try:
        return resolve_task_model(spec, download=False)     # $SLSDK_..._MODEL, then the cache
    except TaskModelNotFound:
        p = shared_dir / "models" / name
        if p.is_file():
            return p
        built = built_pose_model() if spec is POSE_MODEL else None
        if built is None:
            pytest.skip(f"no {name} (${spec.env}, the cache, shared/models" +
                        (", a mediapipe 0.10.14 wheel to build it from)" if spec is POSE_MODEL else ")"))
        return built


@pytest.fixture(scope="module")
def hand_model(shared_file):
    return shared_file("models/hand_landmarker.task")


@pytest.fixture(scope="module")
def face_model(shared_dir):
    return _find(FACE_MODEL, shared_dir, "face_landmarker.task")


@pytest.fixture(scope="module")
def pose_model(shared_dir):
    """PoseLandmarker: built from the mediapipe 0.10.14 wheel with image-normalisation metadata written into its two
    models (docs/guide.md, "Landmarks from video"), or Google's pose_landmarker_full.task."""
    return _find(POSE_MODEL, shared_dir, "pose_landmarker.task")


@pytest.fixture(scope="module")
def signer(shared_file):
    return read_image(shared_file(SIGNER))


@pytest.fixture(scope="module")
def photo(signer, hand_model, pose_model):
    with HandDetector(hand_model) as d, TaskLandmarker("pose", pose_model, "IMAGE") as pose:
        return d.detect(signer), pose.detect(signer)


@pytest.fixture(scope="module")
def clip(shared_file):
    r = VideoReader(shared_file(CLIP))
    return np.stack([f for f, _ in r]), r.info.fps


@pytest.fixture(scope="module")
def clip_points(clip, hand_model, face_model, pose_model):
    """The clip through the runtime's crop pass, its hands handed to Pose86Landmarker (no second hand pass)."""
    frames, fps = clip
    with HandCropper(CropConfig(), hand_model) as cropper, \
            Pose86Landmarker(face_model=face_model, pose_model=pose_model, hand_model=hand_model) as lm:
        _, _, results = cropper.crop_video(frames, fps, return_results=True)
        kp = np.stack([lm.frame(f, int(round(i * 1000 / fps)), results[i]) for i, f in enumerate(frames)])
    return kp, results


def _hand_size(pts):
    return float(np.linalg.norm(pts[9, :2] - pts[0, :2]))


def test_pose_finds_the_signers_body_where_it_is(photo):
    """PoseLandmarker on the photo: each Pose wrist lies on a hand HandLandmarker found, the right shoulder is on the
    image's left (an unmirrored signer facing the camera), the nose between the eyes and above the shoulders."""
    hands, body = photo
    assert body is not None and body.shape == (33, 3) and len(hands) == 2
    for w in (RIGHT_WRIST, LEFT_WRIST):
        d = min(np.linalg.norm(h.landmarks[0, :2] - body[w, :2]) for h in hands)
        assert d < 0.5 * _hand_size(hands[0].landmarks), (w, d)
    assert body[RIGHT_SHOULDER, 0] < body[LEFT_SHOULDER, 0]
    assert body[RIGHT_EYE, 0] < body[NOSE, 0] < body[LEFT_EYE, 0]
    assert body[NOSE, 1] < body[RIGHT_SHOULDER, 1] and body[NOSE, 1] < body[LEFT_SHOULDER, 1]


def test_holistic_right_hand_is_the_signers_right(shared_file):
    """The kit's layout comes from Holistic: its RIGHT_HAND is the hand at Pose's RIGHT_WRIST (a real recording)."""
    k, _ = read_pose_file(shared_file("data/pose/pose_repo/holistic_full_example.pose"))
    m = part_missing(k)
    body = k[:, PARTS["body"].slice]
    for j, part, own, other in ((0, "right_hand", RIGHT_WRIST, LEFT_WRIST), (1, "left_hand", LEFT_WRIST, RIGHT_WRIST)):
        ok = ~m[:, j] & ~m[:, 3]
        wrist = k[ok, PARTS[part].start]
        assert ok.sum() > 20
        assert np.median(np.linalg.norm(wrist - body[ok, own], axis=1)) * 5 < \
            np.median(np.linalg.norm(wrist - body[ok, other], axis=1)), part


def test_tasks_handedness_agrees_with_the_pose_wrists(photo):
    """On the unmirrored photo, HandLandmarker's label names the side of the nearer Pose wrist, so the label rule
    (no body) and the wrist rule (body found) put the same hand in the right-hand slot."""
    hands, body = photo
    pairs = [(h.landmarks, h.handedness) for h in hands]
    right, left = assign_hands(pairs, body)
    r2, l2 = assign_hands(pairs, None)
    np.testing.assert_array_equal(right, r2)
    np.testing.assert_array_equal(left, l2)
    near = [h for h in hands if np.array_equal(h.landmarks[:, :2], right)][0]
    assert near.handedness == "Right"
    assert np.linalg.norm(right[0] - body[RIGHT_WRIST, :2]) < np.linalg.norm(right[0] - body[LEFT_WRIST, :2])


def test_assign_hands_rules():
    a = np.zeros((21, 3), np.float32) + [10, 50, 0]
    b = np.zeros((21, 3), np.float32) + [90, 50, 0]
    body = np.zeros((33, 3), np.float32)
    body[RIGHT_WRIST, :2], body[LEFT_WRIST, :2] = (88, 52), (12, 48)       # the body says b is the right hand
    r, lft = assign_hands([(a, "Right"), (b, "Left")], body)
    assert r[0, 0] == 90 and lft[0, 0] == 10
    r, lft = assign_hands([(a, "Right"), (b, "Left")], None)               # labels alone
    assert r[0, 0] == 10 and lft[0, 0] == 90
    r, lft = assign_hands([(b, "Left"), (a, "Left")], None)                # one label twice: the image-left one
    assert r[0, 0] == 10 and lft[0, 0] == 90
    r, lft = assign_hands([(a, "Left")], None)
    assert r is None and lft[0, 0] == 10
    assert assign_hands([], body) == (None, None)
    k = assemble_pose86(None, lft, None, None)
    assert part_missing(k[None]).tolist() == [[True, False, True, True]]


def test_clip_hands_are_the_crop_passes_hands(clip_points):
    """Every hand in the 86 points is a hand of the crop pass's result for that frame (no second hand pass); frames
    where the crop pass found no hand have both hands all zeros; the body is found in every frame."""
    kp, results = clip_points
    m = part_missing(kp)
    assert kp.shape == (len(results), 86, 2)
    for t, res in enumerate(results):
        mine = [kp[t, PARTS[p].slice] for i, p in enumerate(("right_hand", "left_hand")) if not m[t, i]]
        assert len(mine) == len(res.landmarks), t
        for pts in mine:
            assert any(np.array_equal(pts, lm[:, :2]) for lm in res.landmarks), t
    without = [t for t, r in enumerate(results) if not r.landmarks]
    assert 10 < len(without) < len(results)            # the clip has frames without hands: zeros there
    assert (kp[without][:, :42] == 0).all()
    assert not m[:, 3].any()


def test_clip_body_is_steady_and_in_the_frame(clip, clip_points):
    frames, _ = clip
    kp, _ = clip_points
    h, w = frames.shape[1:3]
    body = kp[:, PARTS["body"].slice]
    shoulders = np.linalg.norm(body[:, LEFT_SHOULDER] - body[:, RIGHT_SHOULDER], axis=1)
    assert (shoulders > 0.2 * w).all() and (body[:, RIGHT_SHOULDER, 0] < body[:, LEFT_SHOULDER, 0]).all()
    head = body[:, :11]
    assert (head[..., 0] > 0).all() and (head[..., 0] < w).all() and (head[..., 1] > 0).all() and (head[..., 1] < h).all()
    jitter = np.abs(head[1:-1] - (head[:-2] + head[2:]) / 2)
    assert np.median(jitter) < 0.02 * np.median(shoulders)


def test_lips_lie_on_the_mouth(signer, clip_points, face_model, pose_model, hand_model):
    """The 19 lip points around Pose's mouth corners, every frame of the clip and on the photo."""
    if hashlib.sha256(face_model.read_bytes()).hexdigest() in SCRAMBLED_FACE_MODELS:
        pytest.skip(f"{face_model}: its face mesh does not fit the face (see SCRAMBLED_FACE_MODELS); set "
                    "SLSDK_FACE_MODEL to Google's face_landmarker.task")
    kp, _ = clip_points
    with Pose86Landmarker(face_model=face_model, pose_model=pose_model, hand_model=hand_model) as lm:
        one = lm.frame(signer, 0)
    for k in (*kp, one):
        body, lips = k[PARTS["body"].slice], k[PARTS["lips"].slice]
        mouth = (body[9] + body[10]) / 2
        eyes = np.linalg.norm(body[LEFT_EYE] - body[RIGHT_EYE])
        assert np.linalg.norm(lips.mean(axis=0) - mouth) < 0.5 * eyes
        assert lips[:, 0].max() - lips[:, 0].min() < 1.5 * eyes


def test_parts_left_out_are_zeros_and_need_no_model(signer, hand_model, tmp_path):
    """parts=("hands",): lips and body zeros (declared missing), their models never looked for."""
    with Pose86Landmarker(parts=("hands",), face_model=tmp_path / "none.task", pose_model=tmp_path / "none.task",
                          hand_model=hand_model) as lm:
        k = lm.video([signer, signer], fps=25)
    m = part_missing(k)
    assert m[:, 2:].all() and not m[:, :2].any()
    with pytest.raises(ValueError, match="unknown landmark parts"):
        Pose86Landmarker(parts=("hands", "feet"))


def test_pose_file_round_trip(clip_points, tmp_path):
    """pose86_file_bytes -> read_pose_file gives the same points, missing parts included; Holistic's names."""
    kp, _ = clip_points
    p = tmp_path / "x.pose"
    p.write_bytes(pose86_file_bytes(kp, 29.97, 540, 720))
    back, fps = read_pose_file(p)
    np.testing.assert_array_equal(back, kp)
    assert abs(fps - 29.97) < 1e-3
    from pose_format import Pose

    header = Pose.read(p.read_bytes()).header
    assert [c.name for c in header.components] == ["POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS",
                                                   "RIGHT_HAND_LANDMARKS"]
    assert (header.dimensions.width, header.dimensions.height) == (540, 720)


def test_face_and_pose_models_found_as_the_hand_model_is(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for spec in (FACE_MODEL, POSE_MODEL):
        monkeypatch.delenv(spec.env, raising=False)
        with pytest.raises(TaskModelNotFound, match=spec.flag):
            resolve_task_model(spec, download=False)
        monkeypatch.setenv(spec.env, str(tmp_path / "gone.task"))
        with pytest.raises(TaskModelNotFound, match=spec.env):
            resolve_task_model(spec)
        bad = tmp_path / f"{spec.filename}"
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr(spec.members[0], b"x")
        with pytest.raises(InvalidTaskModel, match=spec.members[1]):
            resolve_task_model(spec, bad)
        monkeypatch.setenv(spec.env, str(bad))
        with pytest.raises(InvalidTaskModel, match=str(bad)):
            resolve_task_model(spec)
        monkeypatch.delenv(spec.env)


def test_slsdk_import_pose_builds_the_model_the_runtime_finds(tmp_path, signer, hand_model):
    """`slsdk import pose WHEEL` (a relative path, in the user's folder) writes pose_landmarker.task into the cache
    from the mediapipe 0.10.14 wheel (image-normalisation metadata written by slsdk), where the runtime's search
    finds it; its PoseLandmarker finds the body on the real photo as `test_pose_finds_the_signers_body_where_it_is`
    requires; a second run refuses to replace it without --overwrite, and a file that is not a wheel is named."""
    wheel = find_mediapipe_wheel()
    if wheel is None:
        pytest.skip("no mediapipe 0.10.14 wheel ($SLSDK_MEDIAPIPE_WHEEL, ~/.cache/slsdk/wheels, PyPI)")
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "mediapipe.whl").symlink_to(wheel)
    (cwd / "notes.whl").write_text("not a wheel")
    env = {k: v for k, v in os.environ.items() if k != POSE_MODEL.env}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def slsdk(*args):
        return subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)

    r = slsdk("import", "pose", "mediapipe.whl")
    assert r.returncode == 0, r.stderr[-2000:]
    task = tmp_path / "cache" / "slsdk" / "pose_landmarker.task"
    assert "wrote" in r.stdout and "pose_landmarker.task" in r.stdout and task.is_file()
    with zipfile.ZipFile(task) as z:
        assert sorted(z.namelist()) == sorted(POSE_MODEL.members)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        mp.delenv(POSE_MODEL.env, raising=False)
        assert resolve_task_model(POSE_MODEL, download=False) == task
    with HandDetector(hand_model) as d, TaskLandmarker("pose", task, "IMAGE") as pose:
        hands, body = d.detect(signer), pose.detect(signer)
    assert body is not None and body.shape == (33, 3)
    assert body[RIGHT_SHOULDER, 0] < body[LEFT_SHOULDER, 0]
    assert body[RIGHT_EYE, 0] < body[NOSE, 0] < body[LEFT_EYE, 0]
    for w in (RIGHT_WRIST, LEFT_WRIST):
        assert min(np.linalg.norm(h.landmarks[0, :2] - body[w, :2]) for h in hands) < 0.5 * _hand_size(
            hands[0].landmarks)

    again = slsdk("import", "pose", "mediapipe.whl")
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    bad = slsdk("import", "pose", "notes.whl", "-o", "pose.task")
    assert bad.returncode == 1 and "notes.whl is not a wheel" in bad.stderr and "Traceback" not in bad.stderr
    assert not (cwd / "pose.task").exists()
