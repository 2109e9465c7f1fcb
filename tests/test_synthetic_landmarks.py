"""The synthetic signer's true pose in the 86-point layout (slsdk.data.synthetic.landmarks) and the .pose files the
synthetic data sets carry: on the drawn figure, with the misses and jitter measured on real clips."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from slsdk.data.readers import read_folder
from slsdk.data.synthetic import generate_synthetic, make_signer, preset_settings, render_phone_sentence, render_sentence
from slsdk.data.synthetic.landmarks import MEDIAPIPE_NOISE, observe_pose86, part_scale
from slsdk.data.video import load_video
from slsdk.landmarks import PARTS, part_missing, read_pose_file

KEPT = [0, 1, 2, 5, 9, 13, 17]     # wrist, thumb CMC and MCP, finger MCPs: the same for every hand shape


def test_true_pose_lies_on_the_drawn_signer():
    """Noise-free render at 256 px: the eyes on the drawn eyes (dark), the lip centre on the drawn mouth (red), the
    shoulders on the clothing, the hands where the renderer put them."""
    signer = make_signer(1)
    frames, true = render_sentence(["HELLO", "WATER"], signer, 3, image_size=256, noise=0.0, return_landmarks=True)
    assert true.shape == (len(frames), 86, 2) and not part_missing(true).any()
    for t in range(0, len(frames), 7):
        img, k = frames[t].astype(int), true[t]
        body, lips = k[PARTS["body"].slice], k[PARTS["lips"].slice]

        def at(p):
            return img[int(p[1]), int(p[0])]

        for eye in (2, 5):
            assert at(body[eye]).sum() < 200, (t, eye, at(body[eye]))
        r, g, b = at(lips.mean(axis=0))
        assert r > g + 30 and r > b + 30, (t, r, g, b)
        for sh in (11, 12):
            assert np.abs(at(body[sh]) - np.array(signer.clothing)).max() < 40, (t, sh)
        assert body[12, 0] < body[11, 0]                       # the signer's right shoulder on the image's left
        np.testing.assert_allclose(body[16], k[0], atol=1e-4)  # Pose's right wrist = the right hand's wrist
        np.testing.assert_allclose(body[15], k[21], atol=1e-4)


def test_true_hands_are_the_renderers_hands():
    """Phone framing: the right hand is the renderer's dominant ("Right") hand, in the same frame pixels."""
    raw, hands, true = render_phone_sentence(["HELLO", "WATER", "SCHOOL"], 2, 5, return_landmarks=True)
    checked = 0
    for t, found in enumerate(hands):
        for lm, label in found:
            part = "right_hand" if label == "Right" else "left_hand"
            np.testing.assert_allclose(true[t, PARTS[part].slice][KEPT], lm[KEPT, :2], atol=1e-3)
            checked += 1
    assert checked > len(hands)


def test_observed_pose_has_the_measured_misses_and_jitter():
    rng = np.random.default_rng(0)
    raw, hands, true = render_phone_sentence(["HELLO", "WATER", "SCHOOL"], 2, 5, return_landmarks=True)
    T = 4000
    still = np.repeat(true[len(true) // 2][None], T, axis=0)
    seen = observe_pose86(still, raw.shape[2], raw.shape[1], rng)
    m = part_missing(seen)
    for j, part in enumerate(("right_hand", "left_hand", "lips", "body")):
        drop, jitter = MEDIAPIPE_NOISE[part]["drop"], MEDIAPIPE_NOISE[part]["jitter"]
        assert abs(m[:, j].mean() - drop) < 0.03, part
        d = (seen[~m[:, j], PARTS[part].slice] - still[~m[:, j], PARTS[part].slice])
        assert abs(d.std() / part_scale(still[:1], part)[0] - jitter) < 0.1 * jitter, part
    # a hand outside the frame is missing in every frame; so is everything when the frame is tiny
    out = still.copy()
    out[:, PARTS["left_hand"].slice] += 10_000
    assert part_missing(observe_pose86(out, raw.shape[2], raw.shape[1], rng))[:, 1].all()
    assert part_missing(observe_pose86(still, 1, 1, rng)).all()


def test_isharah_preset_carries_pose_files_beside_its_videos(tmp_path):
    root = generate_synthetic(tmp_path / "d", **preset_settings("isharah", quick=True))
    samples = read_folder(root, None)
    assert samples and all(s.landmarks is not None for s in samples)
    k, fps = read_pose_file(samples[0].landmarks.path)
    frames, _ = load_video(samples[0].video)
    raw, _ = load_video(root / "raw" / samples[0].split / f"{samples[0].id}.mp4")
    assert len(k) == len(frames) == len(raw) and fps == 25.0
    assert (np.abs(k).max(axis=(1, 2)) > 0).all()
    body = k[:, PARTS["body"].slice]
    assert (body[:, 0, 0] > 0).all() and (body[:, 0, 0] < raw.shape[2]).all()   # the nose in the portrait frame


def test_landmarks_leave_the_videos_as_they_were(tmp_path):
    kw = dict(seed=1, num_glosses=4, num_signers=3, num_test_si_signers=1, sentences_per_signer=2,
              num_train_sentences=3, num_test_us_sentences=1, dev_per_signer=1, test_si_per_signer=1,
              test_us_per_sentence=1, image_size=32, min_len=1, max_len=2, video_format="png")
    a = generate_synthetic(tmp_path / "a", **kw)
    b = generate_synthetic(tmp_path / "b", landmarks=True, **kw)
    sa, sb = read_folder(a, None), read_folder(b, None)
    assert [s.id for s in sa] == [s.id for s in sb]
    assert all(s.landmarks is None for s in sa) and all(s.landmarks is not None for s in sb)
    for x, y in zip(sa, sb):
        np.testing.assert_array_equal(load_video(x.video)[0], load_video(y.video)[0])


def test_cli_synth_landmarks_and_data_show(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}

    def slsdk(*args):
        r = subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    slsdk("data", "synth", "DATA", "--quick", "--landmarks")
    poses = sorted((tmp_path / "DATA/videos").rglob("*.pose"))
    assert len(poses) == len(list((tmp_path / "DATA/videos").rglob("*.mp4"))) > 0
    out = slsdk("data", "show", "DATA")
    assert "no right hand" in out and "no lips" in out
