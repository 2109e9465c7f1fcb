"""Synthetic pretraining of the demo's CLIP towers: pose targets, held-out signers, the weights file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slsdk.data.synthetic import generate_synthetic, make_signer, render_sentence
from slsdk.data.synthetic import POSE_SHAPES
from slsdk.models import load_clip_visual
from slsdk.models.clip import CLIPVisionConfig, VisionTransformer
from slsdk.models.student import StreamingStudent, StudentConfig
from slsdk.train.pretrain import PretrainConfig, _Batcher, pretrain_backbone

SMALL = dict(num_glosses=6, num_signers=3, num_test_si_signers=1, num_train_sentences=6, sentences_per_signer=4,
             dev_per_signer=1, test_si_per_signer=2, num_test_us_sentences=2, test_us_per_sentence=1, max_len=3)
TINY = CLIPVisionConfig(image_size=48, patch_size=8, width=32, layers=1, heads=2, output_dim=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("pre") / "d", seed=3, **SMALL)


def test_pose_targets_point_at_the_hands():
    """The image positions returned with the frames land on skin-coloured pixels (the hands)."""
    signer = make_signer(2)
    frames, poses = render_sentence(["HELLO", "HOME", "WATER"], signer, 0, noise=0.0, return_poses=True)
    assert poses.shape == (len(frames), 12)
    skin = np.asarray(signer.skin, np.float32)
    size = frames.shape[1]
    for t in range(0, len(frames), 3):
        x, y = (poses[t, 8:10] * size).astype(int)
        if 0 <= x < size and 0 <= y < size:
            patch = frames[t, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3).astype(np.float32)
            assert np.abs(patch - skin).sum(1).min() < 60, f"frame {t}: no skin at the dominant hand ({x}, {y})"
    assert set(np.unique(poses[:, 4:6])) <= set(range(len(POSE_SHAPES)))
    np.testing.assert_allclose(poses[:, 6] ** 2 + poses[:, 7] ** 2, 1.0, atol=1e-5)


def test_phone_pool_targets_point_at_the_hands_in_the_crops():
    """A phone-framed data set's pretraining pool is its videos' signing-space crops (the runtime's crop rule);
    each crop's dominant-hand target lands on the hand. The signers get green skin (nothing else in a frame is
    green), as each clip's gain and colour cast change the drawn colours; no noise, light drift, shake or blur."""
    import dataclasses

    from slsdk.data.synthetic import PRESETS, make_lexicon
    from slsdk.train.pretrain import _render_pool

    phone = {**PRESETS["isharah"]["phone"], "noise": 0.0, "lighting": 0.0, "light_switch_p": 0.0, "blur": False,
             "shake": 0.0}
    settings = {**PRESETS["isharah"], "phone": phone, "image_size": 64, "noise": 0.0}
    signers = [dataclasses.replace(make_signer(k), skin=(30, 220, 30)) for k in (2, 5)]
    frames, poses = _render_pool(make_lexicon(40), signers, settings, 2, 0, 11)
    assert frames.shape[1:] == (64, 64, 3) and len(poses) == len(frames)
    on_hand = []
    for t in range(0, len(frames), 2):
        x, y = (poses[t, 8:10] * 64).astype(int)
        if 2 <= x < 62 and 2 <= y < 62:
            p = frames[t, y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(np.float32)
            on_hand.append(bool(((p[:, 1] - np.maximum(p[:, 0], p[:, 2])) > 80).any()))
    assert len(on_hand) >= 10 and all(on_hand), on_hand   # portrait-frame fractions instead: 46 % on the hand
    square, _ = _render_pool(make_lexicon(40), signers, settings, 1, 0, 11, data_framing=False)
    assert square.shape[1:] == (64, 64, 3)


def test_flip_moves_targets_with_the_pixels():
    signer = make_signer(1)
    frames, poses = render_sentence(["THANKS", "EAT"], signer, 1, noise=0.0, return_poses=True)
    b = _Batcher(frames, poses, 48, 8, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), flip=True)
    idx = np.arange(len(frames))
    x0, y0, c0 = b(idx, np.random.default_rng(0), train=False)
    rng = np.random.default_rng(4)
    x1, y1, c1 = b(idx, rng, train=True)
    flipped = (y1[:, 0] - (1 - y0[:, 0])).abs() < 1e-6
    assert 0 < int(flipped.sum()) < len(idx)      # some flipped, some not
    torch.testing.assert_close(y1[flipped, 6], -y0[flipped, 6])
    torch.testing.assert_close(y1[~flipped, :8], y0[~flipped, :8])
    assert ((c1 >= -1) & (c1 < 36)).all()


def test_pretrain_writes_loadable_weights_from_train_signers_only(data, tmp_path):
    out = tmp_path / "tower.safetensors"
    res = pretrain_backbone(data, out, PretrainConfig(steps=3, batch_frames=8, pool_videos=3, heldout_videos=1),
                            vision_config=TINY, progress=False)
    assert res.weights == out and out.is_file() and not list(tmp_path.glob(".*tmp"))
    held_out = json.loads((data / "synthetic.json").read_text())["test_si_signers"]
    assert held_out and not set(held_out) & set(res.metrics["train_signers"])
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["history"] and 0.0 <= side["shape_acc"] <= 1.0
    tower = load_clip_visual(out, config=TINY)
    assert isinstance(tower, VisionTransformer)
    x = torch.randn(2, 3, 48, 48)
    student = StreamingStudent(StudentConfig(num_classes=4, image_size=48, patch_size=8, width=32, layers=1,
                                             heads=2, feature_dim=16, hidden=16))
    student.load_encoder(out)
    torch.testing.assert_close(student.encoder(x), tower(x))


def test_student_refuses_a_tower_of_another_shape(data, tmp_path):
    out = tmp_path / "tower.safetensors"
    pretrain_backbone(data, out, PretrainConfig(steps=1, batch_frames=4, pool_videos=2, heldout_videos=1),
                      vision_config=TINY, progress=False)
    student = StreamingStudent(StudentConfig(num_classes=4, image_size=48, patch_size=8, width=64, layers=1,
                                             heads=2, feature_dim=16, hidden=16))
    with pytest.raises(ValueError, match="does not fit the student encoder"):
        student.load_encoder(out)


def test_pretrain_needs_a_synthetic_data_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthetic.json"):
        pretrain_backbone(tmp_path, tmp_path / "x.safetensors", PretrainConfig(steps=1), vision_config=TINY,
                          progress=False)
