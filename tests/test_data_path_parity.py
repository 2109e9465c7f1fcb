"""The AdaptSign data path (``style="reference"``, ``Collate(padding="reference")``) against the reference's outputs.

The expected values below were produced by running AdaptSign's ``utils/video_augmentation.py`` transforms and
``BaseFeeder.collate_fn`` (``dataset/dataloader_video.py``) outside this repository on the same inputs, seeded with
``random.seed(seed); np.random.seed(seed)``; only the numbers are kept here: output shapes, the first 16 hex digits
of the SHA-256 of the output bytes, and the decisions read back from the outputs. The inputs are "code frames":
channel 0 = frame index % 256, channel 1 = column % 256, channel 2 = row % 256, so crop offsets, flip and frame
indices are visible in any output.
"""
from __future__ import annotations

import hashlib
import math
import random
import warnings

import numpy as np
import pytest
import torch

from slsdk.data import Sample, Vocabulary, write_video
from slsdk.data import augment
from slsdk.data.augment import REFERENCE_MEAN, REFERENCE_STD, ReferenceDraws
from slsdk.data.dataset import (Collate, VideoDataset, check_lengths, collate, conv_stride_and_left_pad,
                                conv_type_output_length, ctc_required_length, min_input_length,
                                reference_padded_length)
from slsdk.data.transforms import VideoTransform


def code_frames(t, h, w):
    f = np.empty((t, h, w, 3), np.uint8)
    f[..., 0] = (np.arange(t) % 256)[:, None, None]
    f[..., 1] = (np.arange(w) % 256)[None, None, :]
    f[..., 2] = (np.arange(h) % 256)[None, :, None]
    return f


def sha(x) -> str:
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else x
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


# train: RandomCrop(s) -> RandomHorizontalFlip(0.5) -> Resize(1.0) -> ToTensor -> TemporalRescale(0.2), x/127.5-1
# (seed, T, H, W, S, output shape, sha, top, left, flip, first 6 frame indices % 256, sha of str(indices % 256))
TRAIN = [
    (0, 40, 256, 256, 224, (40, 3, 224, 224), "a115ea05c3dd81ea", 26, 24, True, (0, 1, 2, 3, 4, 5), "05b3cfb5ffbda887"),
    (1, 10, 256, 256, 224, (32, 3, 224, 224), "5300541edf02ef5b", 4, 8, True, (0, 0, 0, 0, 0, 0), "3b9bf12f27cac5af"),
    (2, 37, 18, 18, 16, (36, 3, 16, 16), "fece1448dc152067", 0, 0, True, (0, 1, 2, 3, 5, 6), "c774739d76792c78"),
    (3, 300, 18, 18, 16, (232, 3, 16, 16), "097ccb4acd9b74ed", 2, 0, False, (1, 2, 3, 4, 5, 6), "27f61e45701f40f8"),
    (4, 60, 18, 23, 16, (72, 3, 16, 16), "e32111c13995430e", 1, 3, True, (2, 2, 3, 3, 5, 5), "0d56898aa68faf16"),
    (5, 36, 21, 18, 16, (32, 3, 16, 16), "552b392b447bee80", 2, 2, False, (0, 1, 2, 3, 5, 6), "ef7aa333f8767917"),
    (6, 33, 18, 18, 16, (40, 3, 16, 16), "b6e03600a2bac06c", 0, 2, True, (0, 3, 3, 6, 6, 6), "61d1023135c6d278"),
    (7, 45, 18, 18, 16, (40, 3, 16, 16), "29a317418c66c6af", 0, 1, True, (0, 1, 2, 3, 4, 5), "99ba5ceece26e6e6"),
    (8, 120, 18, 18, 16, (140, 3, 16, 16), "bfaaea762e0850d2", 1, 0, False, (0, 1, 1, 2, 2, 2), "15fc202f8a0cb865"),
    (9, 31, 18, 20, 16, (32, 3, 16, 16), "ae8f65651003be12", 2, 3, True, (0, 1, 2, 2, 3, 3), "7a888c17a78ef9b6"),
]

# test: CenterCrop(s) -> Resize(1.0) -> ToTensor, x/127.5-1   (T, H, W, S, shape, sha, top, left)
EVAL = [
    (12, 256, 256, 224, (12, 3, 224, 224), "23e998ab5e89c386", 16, 16),
    (5, 256, 259, 224, (5, 3, 224, 224), "51952617b8d70ad6", 16, 18),    # (259 - 224) / 2 = 17.5 -> 18
    (5, 259, 256, 224, (5, 3, 224, 224), "41a1f91728d03f63", 18, 16),
    (4, 18, 21, 16, (4, 3, 16, 16), "286eb3ace3ec438a", 1, 2),           # 2.5 -> 2 (round half to even)
    (4, 19, 18, 16, (4, 3, 16, 16), "3223bdda11196977", 2, 1),           # 1.5 -> 2
]

# RandomCrop(s) alone on frames smaller than the crop on a side (zero padding)   (seed, T, H, W, S, shape, sha)
CROP_PAD = [
    (11, 3, 12, 30, 16, (3, 16, 16, 3), "a5910a5964e3a0c9"),
    (12, 3, 30, 12, 16, (3, 16, 16, 3), "a392795d7372849d"),
    (13, 2, 10, 10, 16, (2, 16, 16, 3), "b156f01f9fe19296"),
]

# collate_fn with kernel_sizes = conv_type: (conv_type, clip lengths, labels, padded shape, sha, lengths passed to
# the model, labels concatenated, label lengths, order of the input items in the batch)
COLLATE = [
    ("K5-P2-K5-P2", [7, 13, 9, 13, 4], [[1, 2], [3], [4, 4, 5], [6], [7, 8, 9]], (5, 28, 3, 2, 2),
     "981275c8d7a855a3", [28, 28, 24, 20, 16], [3, 6, 4, 4, 5, 1, 2, 7, 8, 9], [1, 1, 3, 2, 3], [1, 3, 2, 0, 4]),
    ("K5-P2-K5-P2", [16, 1], [[1], [2, 3]], (2, 28, 3, 2, 2), "9e14dd5de1692534", [28, 16], [1, 2, 3], [1, 2], [0, 1]),
    ("K5-P2-K5-P2", [20], [[5, 6, 7]], (1, 32, 3, 2, 2), "255b795d8329bd90", [32], [5, 6, 7], [3], [0]),
    ("K3", [5, 8], [[1], [2]], (2, 10, 3, 2, 2), "f2c95aee1518d161", [10, 7], [2, 1], [1, 1], [1, 0]),
    ("K5-P2", [5, 8, 3], [[1], [2], [3]], (3, 12, 3, 2, 2), "de198d8335e40df0", [12, 10, 8], [2, 1, 3], [1, 1, 1],
     [1, 0, 2]),
    ("K5-K5-P2", [6, 11], [[1], [2]], (2, 20, 3, 2, 2), "73b4b9dd013c1069", [20, 14], [2, 1], [1, 1], [1, 0]),
    ("P2-K5-P2-K5", [9, 14], [[1], [2]], (2, 28, 3, 2, 2), "e8e5ecb0e65ffe18", [28, 24], [2, 1], [1, 1], [1, 0]),
]
# frame codes (item * 100 + source frame) along the padded time axis of the first case, as the reference gives them
COLLATE_CODES_0 = [
    [100] * 7 + list(range(101, 113)) + [112] * 9,
    [300] * 7 + list(range(301, 313)) + [312] * 9,
    [200] * 7 + list(range(201, 209)) + [208] * 13,
    [0] * 7 + list(range(1, 7)) + [6] * 15,
    [400] * 7 + list(range(401, 404)) + [403] * 18,
]


def _collate_items(lengths, labels):
    items = []
    for i, (t, lab) in enumerate(zip(lengths, labels)):
        v = (100.0 * i + torch.arange(t, dtype=torch.float32)).view(t, 1, 1, 1)
        v = v + torch.arange(12.).view(1, 3, 2, 2) / 16
        items.append({"video": v, "label": torch.tensor(lab), "id": f"clip{i}"})
    return items


# ------------------------------------------------------------------------------------------------ transforms
@pytest.mark.parametrize("case", TRAIN, ids=[f"seed{c[0]}-T{c[1]}-{c[2]}x{c[3]}" for c in TRAIN])
def test_reference_train_transform_equals_reference(case):
    seed, t, h, w, s, shape, digest, top, left, flip, head, idx_digest = case
    frames = code_frames(t, h, w)
    p = augment.plan(frames.shape[:3], s, ReferenceDraws.from_seed(seed))
    idx = [i % 256 for i in p.indices]
    assert (p.top, p.left, p.flip, tuple(idx[:6]), len(idx)) == (top, left, flip, head, shape[0])
    assert hashlib.sha256(str(idx).encode()).hexdigest()[:16] == idx_digest
    tr = VideoTransform(s, REFERENCE_MEAN, REFERENCE_STD, train=True, style="reference")
    out = tr(frames, ReferenceDraws.from_seed(seed))
    assert tuple(out.shape) == shape and out.dtype == torch.float32
    assert sha(out) == digest


@pytest.mark.parametrize("case", EVAL, ids=[f"T{c[0]}-{c[1]}x{c[2]}-S{c[3]}" for c in EVAL])
def test_reference_eval_transform_equals_reference(case):
    t, h, w, s, shape, digest, top, left = case
    assert (augment.center_offset(h, s), augment.center_offset(w, s)) == (top, left)
    out = VideoTransform(s, REFERENCE_MEAN, REFERENCE_STD, train=False, style="reference")(code_frames(t, h, w))
    assert tuple(out.shape) == shape and sha(out) == digest


@pytest.mark.parametrize("case", CROP_PAD, ids=[f"seed{c[0]}-{c[2]}x{c[3]}" for c in CROP_PAD])
def test_reference_crop_pads_small_frames_like_reference(case):
    seed, t, h, w, s, shape, digest = case
    frames = code_frames(t, h, w)
    p = augment.plan(frames.shape[:3], s, ReferenceDraws.from_seed(seed), temporal_scale=None)
    out = augment.pad_to_crop(frames, s)[:, p.top:p.top + s, p.left:p.left + s]
    assert p.indices is None and out.shape == shape and sha(out) == digest


def test_reference_normalisation_is_x_over_127_5_minus_1_bit_for_bit():
    frames = np.arange(256, dtype=np.uint8).repeat(16 * 16).reshape(256, 16, 16, 1).repeat(3, -1)
    out = VideoTransform(16, REFERENCE_MEAN, REFERENCE_STD, style="reference")(frames)
    want = torch.arange(256, dtype=torch.float32) / 127.5 - 1
    assert torch.equal(out[:, 0, 3, 3], want) and out.min() == -1 and out.max() == 1


def test_reference_draws_are_the_global_streams_and_rescale_rules():
    random.seed(5)
    np.random.seed(5)
    a = [random.randint(0, 32), random.random(), float(np.random.random())]
    d = ReferenceDraws.from_seed(5)
    assert a == [d.py.randint(0, 32), d.py.random(), float(d.np.random_sample())]
    # length: clamped to [32, 230] then rounded up to a multiple of 4
    assert augment.rescaled_length(10, 0.0) == 32 and augment.rescaled_length(1000, 0.99) == 232
    assert augment.rescaled_length(100, 0.5) == 100 and augment.rescaled_length(101, 0.5) == 104
    assert augment.rescaled_length(100, 0.0) == 80 and augment.rescaled_length(100, 0.999) == 120
    # flip=False (handedness) still draws the flip, so crops and frames stay those of the reference
    f = code_frames(40, 18, 18)
    on = VideoTransform(16, REFERENCE_MEAN, REFERENCE_STD, train=True, style="reference")
    off = VideoTransform(16, REFERENCE_MEAN, REFERENCE_STD, train=True, style="reference", flip=False)
    x, y = on(f, ReferenceDraws.from_seed(0)), off(f, ReferenceDraws.from_seed(0))
    assert augment.plan(f.shape[:3], 16, ReferenceDraws.from_seed(0)).flip
    assert torch.equal(x, y.flip(-1))
    # a numpy Generator (slsdk's per-item seeding) is accepted and reproducible
    g1, g2 = on(f, np.random.default_rng([1, 2, 3])), on(f, np.random.default_rng([1, 2, 3]))
    assert torch.equal(g1, g2) and g1.shape[0] % 4 == 0 and g1.shape[0] >= 32
    with pytest.raises(ValueError, match="style must be one of"):
        VideoTransform(16, style="vac")


# ---------------------------------------------------------------------------------------------------- collate
@pytest.mark.parametrize("case", COLLATE, ids=[f"{c[0]}-{len(c[1])}" for c in COLLATE])
def test_reference_collate_equals_reference(case):
    conv_type, lengths, labels, shape, digest, vlen, lab, lablen, order = case
    batch = Collate("reference", conv_type)(_collate_items(lengths, labels))
    assert tuple(batch["videos"].shape) == shape and sha(batch["videos"]) == digest
    assert batch["lengths"].tolist() == vlen and batch["lengths"].dtype == torch.long
    assert batch["labels"].tolist() == lab and batch["label_lengths"].tolist() == lablen
    assert batch["ids"] == [f"clip{i}" for i in order]
    if case is COLLATE[0]:
        assert batch["videos"][:, :, 0, 0, 0].round().long().tolist() == COLLATE_CODES_0


def test_reference_padding_rule():
    assert conv_stride_and_left_pad("K5-P2-K5-P2") == (4, 6)
    assert conv_stride_and_left_pad("K3") == (1, 1) and conv_stride_and_left_pad("K5-P2") == (2, 2)
    c = Collate("reference")
    for t in range(1, 60):
        assert c.padded_length(t) == reference_padded_length(t) == math.ceil(t / 4) * 4 + 12
        # the model's conv (unpadded K5, floor P2) over the padded length leaves ceil(T / 4) frames
        assert c.output_length(t) == conv_type_output_length(c.padded_length(t)) == math.ceil(t / 4)
    assert Collate().output_length(40) == conv_type_output_length(40) == 7 and Collate().padded_length(9) == 9
    with pytest.raises(ValueError, match="padding must be one of"):
        Collate("edge")
    with pytest.raises(ValueError, match="conv_type tokens"):
        Collate("reference", "K5-X2")
    with pytest.raises(ValueError, match="frame shape"):
        c([{"video": torch.zeros(3, 3, 2, 2), "label": [1], "id": "a"},
           {"video": torch.zeros(3, 3, 4, 4), "label": [1], "id": "b"}])
    items = _collate_items([5, 9], [[1], [2]])
    z = Collate("zeros")(items)
    ref = collate(items)
    assert all(torch.equal(z[k], ref[k]) for k in ("videos", "lengths", "labels", "label_lengths"))


# ------------------------------------------------------------------------------------- too-short clips: policy
@pytest.fixture(scope="module")
def short_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    frames = np.zeros((30, 36, 36, 3), np.uint8)
    frames[:, 10:20, 10:20] = 200
    # "long": 30 frames for 2 glosses; "short": 6 frames for 4 glosses (ceil(6/4) = 2 output frames < 4)
    samples = [Sample("long", ["A", "B"], write_video(root / "long.mp4", frames, 25), "s", "train"),
               Sample("short", ["A", "B", "C", "D"], write_video(root / "short.mp4", frames[:6], 25), "s", "train")]
    return samples, Vocabulary.build(samples)


def test_short_clip_reported_before_training_and_padded_never_inf(short_set):
    from slsdk.models.sequence import SequenceModel, cslr_losses

    samples, vocab = short_set
    col = Collate("reference")
    with pytest.warns(UserWarning, match=r"^1 clip\(s\) of 2 are shorter than CTC needs.*short \(6 < 13 frames\).*"
                                         r"policy 'pad'"):
        ds = VideoDataset(samples, vocab, 32, REFERENCE_MEAN, REFERENCE_STD, train=True, seed=0, style="reference",
                          output_length_fn=col.output_length)
    assert ds.short == [("short", 6, 13)] and "short (6 < 13 frames)" in ds.length_report
    assert min_input_length([1, 2, 3, 4], col.output_length) == 13   # ceil(13 / 4) = 4 output frames
    items = [ds[0], ds[1]]
    assert len(items[1]["video"]) >= 32    # the reference's rescale stretches it to >= 32 frames anyway
    batch = col(items)
    torch.manual_seed(0)
    model = SequenceModel(8, hidden=8, num_classes=len(vocab), conv_type=col.conv_type)
    feats = torch.randn(len(items), batch["videos"].shape[1], 8)
    losses = cslr_losses(model(feats, batch["lengths"]), batch["labels"], batch["label_lengths"])
    assert all(torch.isfinite(v).all() for v in losses.values())
    # eval: no rescale; the 6-frame clip is repeat-padded to the 13 frames its 4 glosses need
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = VideoDataset(samples, vocab, 32, REFERENCE_MEAN, REFERENCE_STD, style="reference",
                          output_length_fn=col.output_length)
    assert len(ev[1]["video"]) == 13 and col.output_length(13) >= ctc_required_length([1, 2, 3, 4])
    batch = col([ev[0], ev[1]])
    losses = cslr_losses(model(torch.randn(2, batch["videos"].shape[1], 8), batch["lengths"]), batch["labels"],
                         batch["label_lengths"])
    assert all(torch.isfinite(v).all() for v in losses.values())


def test_short_clip_policies_drop_and_error(short_set):
    samples, vocab = short_set
    col = Collate("reference")
    with pytest.warns(UserWarning, match=r"short \(6 < 13 frames\); policy 'drop': dropped"):
        ds = VideoDataset(samples, vocab, 32, style="reference", output_length_fn=col.output_length,
                          length_policy="drop")
    assert [s.id for s in ds.samples] == ["long"]
    with pytest.raises(ValueError, match=r"1 clip\(s\) of 2.*short \(6 < 13 frames\); policy 'error'"):
        VideoDataset(samples, vocab, 32, output_length_fn=col.output_length, length_policy="error")
    with pytest.raises(ValueError, match="every clip is too short"), pytest.warns(UserWarning, match="dropped"):
        VideoDataset(samples[1:], vocab, 32, output_length_fn=col.output_length, length_policy="drop")


def test_short_report_names_count_and_first_ids():
    items = [{"id": f"c{i}", "video": torch.zeros(3, 3, 2, 2), "label": torch.tensor([1, 2])} for i in range(8)]
    with pytest.warns(UserWarning) as rec:
        kept, short = check_lengths(items, Collate("reference").output_length, "drop")
    msg = str(rec[0].message)
    assert kept == [] and len(short) == 8 and "\n" not in msg
    assert msg.startswith("8 clip(s) of 8") and "c0 (3 < 5 frames)" in msg and "c4 (3 < 5 frames) and 3 more" in msg
    assert "c5 (" not in msg


def test_without_a_policy_the_loss_would_be_inf():
    """What the policy prevents: CTC over fewer output frames than the label needs is infinite."""
    lp = torch.randn(2, 1, 5).log_softmax(-1)   # 2 output frames (a 6-frame clip), 4 glosses
    loss = torch.nn.functional.ctc_loss(lp, torch.tensor([1, 2, 3, 4]), torch.tensor([2]), torch.tensor([4]),
                                        zero_infinity=False)
    assert torch.isinf(loss)
