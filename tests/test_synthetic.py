"""The embedded synthetic data set: determinism, Isharah-style splits, readability, learnability."""
from __future__ import annotations

import json

import numpy as np
import pytest

from slsdk.data import Vocabulary, read_folder, read_video, video_info
from slsdk.data.dataset import check_lengths
from slsdk.data.synthetic import (generate_synthetic, load_spec, make_lexicon, make_plan, make_signer, preview,
                                  render_sentence)

SMALL = dict(num_glosses=8, num_signers=4, num_test_si_signers=1, num_train_sentences=14, sentences_per_signer=10,
             dev_per_signer=2, test_si_per_signer=4, num_test_us_sentences=3, test_us_per_sentence=2,
             image_size=64, max_len=4)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("syn") / "a", seed=5, **SMALL)


def _check_splits(plan_or_samples, held_out_signers):
    by = {}
    for split, signer, seq in plan_or_samples:
        by.setdefault(split, []).append((signer, tuple(seq)))
    train_signers = {s for s, _ in by["train"]}
    train_seqs = {q for _, q in by["train"]}
    assert set(by) == {"train", "dev", "test_si", "test_us"}
    assert {s for s, _ in by["test_si"]} == set(held_out_signers) and not train_signers & set(held_out_signers)
    assert all(q in train_seqs for _, q in by["test_si"])  # test_si: seen sentences, unseen signers
    assert not {q for _, q in by["test_us"]} & train_seqs  # test_us: unseen sentences ...
    assert {s for s, _ in by["test_us"]} <= train_signers  # ... by seen signers
    assert {s for s, _ in by["dev"]} <= train_signers and all(q in train_seqs for _, q in by["dev"])
    assert not set(by["dev"]) & set(by["train"])  # dev pairs (signer, sentence) are new
    return by


def test_default_plan_sizes_and_splits():
    plan = make_plan()
    by = _check_splits([(p[0], p[1], p[3]) for p in plan], {6, 7})
    sizes = {k: len(v) for k, v in by.items()}
    assert sizes == {"train": 336, "dev": 42, "test_si": 40, "test_us": 40}
    assert {g for _, q in by["train"] for g in q} == set(range(12))
    assert all(2 <= len(p[3]) <= 6 and all(a != b for a, b in zip(p[3], p[3][1:])) for p in plan)
    assert make_plan() == plan and make_plan(seed=1) != plan


def test_lexicon_signs_are_distinct():
    lex = make_lexicon(12)
    keys = [(s.shape, s.location, s.movement, s.two_handed) for s in lex]
    assert len({s.name for s in lex}) == 12
    assert all(sum(x != y for x, y in zip(a, b)) >= 2 for i, a in enumerate(keys) for b in keys[i + 1:])
    assert make_lexicon(12, seed=0) == lex
    with pytest.raises(ValueError, match="num_glosses"):
        make_lexicon(0)


def test_generated_set_reads_back_and_is_consistent(small):
    samples = read_folder(small)
    spec = json.loads((small / "synthetic.json").read_text())
    assert spec["splits"] == {"train": 30, "dev": 6, "test_si": 4, "test_us": 6}
    assert len(samples) == 46
    _check_splits([(s.split, s.signer, s.glosses) for s in samples], {"03"})
    vocab = Vocabulary.build([s for s in samples if s.split == "train"])
    assert len(vocab) == 9  # all 8 glosses appear in train (+ blank)
    for s in samples:
        vocab.encode(s.glosses)  # every split's glosses are in the training vocabulary
        assert s.id[:2] == s.signer and len(s.id) == 6  # Isharah-style id
    lengths = [video_info(s.video).frames for s in samples]
    assert 15 <= min(lengths) and max(lengths) <= 60
    assert check_lengths(samples)[1] == []  # no clip trips the CTC length trap
    v = read_video(samples[0].video)
    assert v.shape[1:] == (64, 64, 3) and v.std() > 10
    lex, signers, settings = load_spec(small)
    assert len(lex) == 8 and len(signers) == 4 and settings["seed"] == 5


def test_generation_is_deterministic_and_reused(small, tmp_path):
    ann = (small / "annotations.csv").read_bytes()
    mtime = (small / "annotations.csv").stat().st_mtime_ns
    assert generate_synthetic(small, seed=5, **SMALL) == small  # same settings: reused, not rewritten
    assert (small / "annotations.csv").stat().st_mtime_ns == mtime
    again = generate_synthetic(tmp_path / "b", seed=5, **SMALL)
    assert (again / "annotations.csv").read_bytes() == ann
    for a, b in zip(read_folder(small)[:3], read_folder(again)[:3]):
        np.testing.assert_array_equal(read_video(a.video), read_video(b.video))
    other = generate_synthetic(tmp_path / "c", seed=6, **{**SMALL, "num_signers": 2, "sentences_per_signer": 3,
                                                          "dev_per_signer": 1, "test_si_per_signer": 1,
                                                          "num_test_us_sentences": 1, "test_us_per_sentence": 1})
    assert (other / "annotations.csv").read_bytes() != ann


def test_render_sentence_segments_and_determinism():
    v, segs = render_sentence(["HELLO", "THANKS", 2], 0, 7, return_segments=True)
    assert v.dtype == np.uint8 and v.shape[1:] == (96, 96, 3)
    assert [g for g, _, _ in segs] == ["HELLO", "THANKS", "HOME"]
    assert all(0 < a < b <= len(v) for _, a, b in segs) and segs[0][2] <= segs[1][1]
    np.testing.assert_array_equal(v, render_sentence(["HELLO", "THANKS", 2], 0, 7))
    assert not np.array_equal(v[:10], render_sentence(["HELLO", "THANKS", 2], 1, 7)[:10])  # other signer
    with pytest.raises(ValueError, match="'NOPE' is not in the synthetic lexicon"):
        render_sentence(["NOPE"], 0, 0)


def test_duration_scales_the_timeline_only():
    """``duration`` (the signing rate): 1 is the default timeline exactly; 1.5 makes every sign about 1.5x longer
    with the same signs in the same order; generate_synthetic records it only when it is not 1."""
    from slsdk.data.synthetic import generate_synthetic

    v, segs = render_sentence(["HELLO", "THANKS", 2], 0, 7, return_segments=True)
    np.testing.assert_array_equal(v, render_sentence(["HELLO", "THANKS", 2], 0, 7, duration=1.0))
    w, wsegs = render_sentence(["HELLO", "THANKS", 2], 0, 7, return_segments=True, duration=1.5)
    assert [g for g, _, _ in wsegs] == [g for g, _, _ in segs]
    ratio = sum(b - a for _, a, b in wsegs) / sum(b - a for _, a, b in segs)
    assert 1.3 < ratio < 1.7 and 1.3 < len(w) / len(v) < 1.7
    with pytest.raises(ValueError, match="duration must be > 0"):
        generate_synthetic("unused", duration=0)


def test_signs_are_learnable_across_signers():
    """Nearest centroid on hand/motion images (frame minus rest pose, 16x16, two halves of the sign):
    centroids from 5 signers classify 2 unseen signers' signs far above chance (1/12)."""
    lex = make_lexicon(12)

    def feat(signer, g, rep):
        v, segs = render_sentence([g], signer, np.random.default_rng([signer, g, rep]), lexicon=lex,
                                  image_size=64, return_segments=True)
        _, a, b = segs[0]
        x = v.astype(np.float32).mean(-1)
        d = np.abs(x[a:b] - x[0]).reshape(b - a, 16, 4, 16, 4).mean((2, 4))
        k = len(d) // 2
        return np.concatenate([d[:k].mean(0).ravel(), d[k:].mean(0).ravel()])

    centroids = np.array([np.mean([feat(s, g, 0) for s in range(5)], 0) for g in range(12)])
    hits = [np.argmin(((centroids - feat(s, g, 1)) ** 2).sum(1)) == g for s in (6, 7) for g in range(12)]
    assert np.mean(hits) >= 0.4, f"nearest-centroid accuracy {np.mean(hits):.2f} on unseen signers"
    # and signers really differ (colours, scale, offset, speed)
    a, b = make_signer(0), make_signer(1)
    assert a.skin != b.skin and a.bg_top != b.bg_top and a.scale != b.scale


def test_preview_png(small, tmp_path):
    p = preview(small, tmp_path / "sheet.png", glosses=3, frames_per_sign=3)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


# ---------------------------------------------------------------------------- the isharah preset
def test_default_lexicon_is_unchanged_by_the_extension():
    lex = make_lexicon(12)
    assert lex == make_lexicon(12, extended=False)
    assert (lex[0].name, lex[0].shape, lex[0].location, lex[0].movement) == ("HELLO", "flat", "chin", "circle")
    assert all(s.location in ("forehead", "chin", "chest", "belly", "side", "front", "shoulder") for s in lex)


def test_extended_lexicon_reaches_isharah_size():
    from slsdk.data.synthetic import EXT_LOCATIONS, EXT_MOVEMENTS, EXT_SHAPES

    lex = make_lexicon(388)
    assert len(lex) == 388 and len({s.name for s in lex}) == 388
    keys = np.array([(EXT_SHAPES.index(s.shape), list(EXT_LOCATIONS).index(s.location),
                      EXT_MOVEMENTS.index(s.movement), s.two_handed, s.angle) for s in lex])
    diff = (keys[:, None] != keys[None]).sum(-1) + np.eye(len(keys), dtype=int) * 99
    assert diff.min() >= 2                             # every two signs differ in >= 2 parameters
    assert {s.shape for s in lex} == set(EXT_SHAPES) and {s.movement for s in lex} == set(EXT_MOVEMENTS)
    assert make_lexicon(100) == lex[:100] and make_lexicon(100, seed=1) != lex[:100]
    with pytest.raises(ValueError, match="num_glosses"):
        make_lexicon(5000)


def test_isharah_plan_splits_and_sizes():
    import inspect

    from slsdk.data.synthetic import preset_settings

    kw = preset_settings("isharah")
    plan = make_plan(**{k: v for k, v in kw.items() if k in inspect.signature(make_plan).parameters})
    by = _check_splits([(p[0], p[1], p[3]) for p in plan], set(range(10, 15)))   # 15 signers, 5 held out (SI)
    words = {k: sum(len(q) for _, q in v) for k, v in by.items()}
    assert words["test_si"] >= 2000 and words["test_us"] >= 2000
    assert all(3 <= len(p[3]) <= 8 for p in plan)
    assert {g for _, q in by["train"] for g in q} == set(range(100))
    assert preset_settings("isharah", num_glosses=388)["num_glosses"] == 388
    assert preset_settings("isharah", phone={"width": 90})["phone"]["height"] == 256   # merged
    assert preset_settings("demo") == {}
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        preset_settings("nope")


def test_phone_render_and_the_runtimes_crop_rule():
    """Portrait frames; the renderer's hands are in the frame; the crop is HandCropper's box rule."""
    from slsdk.data.synthetic import PhoneFraming, renderer_crop, render_phone_sentence
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.geometry import hands_box_params
    from slsdk.runtime.landmarker import Hand

    lex = make_lexicon(100)
    framing = PhoneFraming(width=72, height=128, jolt_p=0.5)
    v, hands, segs = render_phone_sentence([0, 50, 99], 3, 11, lexicon=lex, framing=framing, return_segments=True)
    assert v.shape[1:] == (128, 72, 3) and [g for g, _, _ in segs] == [lex[0].name, lex[50].name, lex[99].name]
    assert len(hands) == len(v) and all(1 <= len(h) <= 2 for h in hands)
    assert all(lm.shape == (21, 3) and 0 <= lm[:, 0].mean() < 72 for h in hands for lm, _ in h)
    v2, hands2 = render_phone_sentence([0, 50, 99], 3, 11, lexicon=lex, framing=framing)
    np.testing.assert_array_equal(v, v2)                                 # deterministic
    w, _ = render_phone_sentence([0, 50, 99], 3, 12, lexicon=lex, framing=framing)
    assert not np.array_equal(v[:5], w[:5])                              # framing varies per video
    cfg = CropConfig(include_face=True, smoothing=1.0)
    crops, boxes = renderer_crop(v, hands, 48, config=cfg)
    assert crops.shape == (len(v), 48, 48, 3) and boxes.shape == (len(v), 4)
    for t in (0, len(v) // 2, len(v) - 1):   # smoothing 1.0: each box is this frame's hands box
        cx, cy, side = hands_box_params([Hand(lm, lab, 1.0) for lm, lab in hands[t]], 72, 128, cfg)
        x0, y0, x1, y1 = boxes[t]
        assert abs((x0 + x1) / 2 - cx) <= 1 and abs((y0 + y1) / 2 - cy) <= 1 and abs((x1 - x0) - side) <= 1
        for lm, _ in hands[t]:                                           # the hands are inside their crop
            c = lm[:, :2].mean(0)
            assert x0 <= c[0] <= x1 and y0 <= c[1] <= y1
    with pytest.raises(ValueError, match="'hands' crop policy"):
        renderer_crop(v, hands, 48, config=CropConfig(policy="full"))


def test_isharah_preset_generates_crops_and_raw_clips(tmp_path, monkeypatch):
    """`slsdk data synth --preset isharah --quick` (relative path, default folders): crops as the videos,
    portrait raw clips with their boxes and landmarks beside them."""
    from typer.testing import CliRunner

    from slsdk.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["data", "synth", "isharah", "--preset", "isharah", "--quick"])
    assert res.exit_code == 0, res.output
    spec = json.loads((tmp_path / "isharah" / "synthetic.json").read_text())
    assert spec["settings"]["phone"]["height"] == 256 and spec["settings"]["crop"]["include_face"]
    assert len(spec["lexicon"]) == 6 and spec["reference_words"]["test_si"] > 0
    samples = read_folder(tmp_path / "isharah")
    s = samples[0]
    v = read_video(s.video)
    assert v.shape[1:] == (160, 160, 3)
    raw = tmp_path / "isharah" / "raw" / s.split / f"{s.id}.mp4"
    r = read_video(raw)
    assert r.shape == (len(v), 256, 144, 3)
    z = np.load(raw.with_suffix(".npz"))
    assert z["boxes"].shape == (len(v), 4) and z["landmarks"].shape == (len(v), 2, 21, 3)
    mtime = (tmp_path / "isharah" / "annotations.csv").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["data", "synth", "isharah", "--preset", "isharah", "--quick"])
    assert res.exit_code == 0, res.output                                # same settings: reused as it is
    assert (tmp_path / "isharah" / "annotations.csv").stat().st_mtime_ns == mtime
    res = CliRunner().invoke(app, ["data", "synth", "x", "--preset", "nope"])
    assert res.exit_code != 0 and "unknown synthetic preset" in res.output


def test_preset_strip_png(tmp_path):
    from slsdk.data.synthetic import preset_strip

    p = preset_strip(tmp_path / "strip.png", frames=3)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
