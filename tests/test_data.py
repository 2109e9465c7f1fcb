"""slsdk.data: vocabulary, video I/O, readers, transforms, dataset/collate, CTC length check."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from slsdk.data import (AnnotationError, Sample, VideoError, Vocabulary, VocabularyError, iter_video, read_csl_daily,
                        read_folder, read_isharah, read_phoenix2014, read_phoenix2014t, read_video, video_info,
                        write_folder_annotations, write_frames, write_video)
from slsdk.data.dataset import (VideoDataset, batch_to_device, check_lengths, collate, conv_output_length, ctc_required_length,
                                min_input_length)
from slsdk.data.transforms import CLIP_MEAN, CLIP_STD, VideoTransform, resize_shorter
from slsdk.errors import ConfigError
from slsdk.preprocess import resize_image
from slsdk.train import TrainConfig


def _clip(t=8, h=32, w=48, seed=0):
    """Smooth, codec-friendly frames: a moving bright square on a gradient."""
    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(20, 200, w, dtype=np.uint8)[None]
    base[..., 2] = rng.integers(40, 120)
    frames = np.repeat(base[None], t, 0)
    for i in range(t):
        frames[i, 8:16, 2 + 3 * i: 10 + 3 * i] = 250
    return frames


# ---------------------------------------------------------------------------------------------- vocab
def test_vocab_build_encode_decode_roundtrip(tmp_path):
    samples = [Sample("a", ["B", "A"], tmp_path), Sample("b", ["C", "A"], tmp_path)]
    v = Vocabulary.build(samples)
    assert v.glosses == ["<blank>", "A", "B", "C"] and v.blank_id == 0
    assert Vocabulary.build(list(reversed(samples))) == v  # order of samples does not matter
    assert v.encode(["C", "A"]) == [3, 1] and v.decode([3, 1]) == ["C", "A"]
    v2 = Vocabulary.load(v.save(tmp_path / "vocab.json"))
    assert v2 == v and Vocabulary.from_dict(v.to_dict()) == v


def test_vocab_unknown_gloss_named_or_mapped_to_unk():
    v = Vocabulary(["A", "B"])
    with pytest.raises(VocabularyError, match="'ZZZ' is not in the vocabulary"):
        v.encode(["A", "ZZZ"], where="train.csv:7")
    u = Vocabulary.build([["A", "B"]], unk=True)
    assert u.glosses[:2] == ["<blank>", "<unk>"] and u.encode(["ZZZ", "B"]) == [u.unk_id, 3]
    with pytest.raises(VocabularyError, match="out of range"):
        v.decode([5])


def test_vocab_check_compatible_and_bad_files(tmp_path):
    v = Vocabulary(["A", "B", "C"])
    v.check_compatible(4)
    with pytest.raises(VocabularyError, match="vocabulary of 4 glosses .* does not match checkpoint with 7 classes"):
        v.check_compatible(7)
    with pytest.raises(VocabularyError, match="first difference at index 2: 'B' vs 'X'"):
        v.check_compatible(Vocabulary(["A", "X", "C"]), where="model.pt")
    bad = tmp_path / "v.json"
    bad.write_text('{"glosses": ["A", "<blank>"]}')
    with pytest.raises(VocabularyError, match=str(bad)):
        Vocabulary.load(bad)
    bad.write_text("{not json")
    with pytest.raises(VocabularyError, match=f"{bad}:1"):
        Vocabulary.load(bad)
    with pytest.raises(VocabularyError, match="twice"):
        Vocabulary(["A", "A"])
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Vocabulary.load(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- video
def test_write_read_video_roundtrip(tmp_path):
    frames = _clip(10, 32, 48)
    p = write_video(tmp_path / "a.mp4", frames, fps=25)
    back = read_video(p)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 4  # lossy but close
    info = video_info(p)
    assert (info.frames, info.width, info.height, info.fps) == (10, 48, 32, 25.0)
    assert read_video(p, max_frames=3).shape[0] == 3
    assert sum(1 for _ in iter_video(p)) == 10


def test_write_video_odd_size_is_padded_and_bad_input_rejected(tmp_path):
    back = read_video(write_video(tmp_path / "odd.mp4", _clip(4, 31, 45), fps=10))
    assert back.shape == (4, 32, 46, 3)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))


def test_frame_folder_natural_order_and_errors(tmp_path):
    frames = _clip(11, 24, 24)
    folder = write_frames(tmp_path / "f", frames)
    for i in range(11):  # rename to unpadded names: natural sort must still give 0,1,...,10
        (folder / f"{i:06d}.png").rename(folder / f"{i}.png")
    back = read_video(folder)
    np.testing.assert_array_equal(back, frames)  # PNG is lossless
    assert video_info(folder).frames == 11 and video_info(folder).fps is None
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="no images"):
        read_video(empty)
    write_frames(tmp_path / "mixed", _clip(2, 24, 24))
    write_frames(tmp_path / "mixed2", _clip(1, 20, 24))
    shutil.copy(tmp_path / "mixed2" / "000000.png", tmp_path / "mixed" / "000005.png")
    with pytest.raises(VideoError, match="000005.png: frame size"):
        read_video(tmp_path / "mixed")
    (tmp_path / "mixed" / "000005.png").unlink()
    (tmp_path / "mixed" / "000009.png").write_text("not an image")
    with pytest.raises(VideoError, match="000009.png: cannot read image"):
        read_video(tmp_path / "mixed")


def test_video_error_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    zero = tmp_path / "zero.mp4"
    zero.touch()
    with pytest.raises(VideoError, match="zero.mp4.*empty"):
        read_video(zero)
    txt = tmp_path / "notes.mp4"
    txt.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(VideoError, match="notes.mp4"):
        read_video(txt)
    with pytest.raises(VideoError, match="notes.mp4"):
        video_info(txt)
    good = write_video(tmp_path / "good.mp4", _clip(20, 64, 64), fps=25)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="trunc.mp4"):
        read_video(trunc)


def test_real_webcam_clip(shared_file):
    p = shared_file("data/hands/webcam_gestures.mp4")
    info = video_info(p)
    assert info.frames == 58 and {info.width, info.height} == {540, 720} and 20 < info.fps < 61
    v = read_video(p, max_frames=5)
    assert v.shape[0] == 5 and v.shape[1:3] == (info.height, info.width) and v.dtype == np.uint8
    assert v.std() > 5  # real content, not a blank frame


# -------------------------------------------------------------------------------------------- readers
def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_folder_roundtrip_and_errors(tmp_path):
    write_video(tmp_path / "v" / "a.mp4", _clip(6), 25)
    write_frames(tmp_path / "v" / "b", _clip(5))
    samples = [Sample("a", ["HELLO", "YOU"], tmp_path / "v" / "a.mp4", "s1", "train"),
               Sample("b", ["BYE"], tmp_path / "v" / "b", None, "dev")]
    write_folder_annotations(tmp_path, samples)
    assert "v/a.mp4" in (tmp_path / "annotations.csv").read_text()
    got = read_folder(tmp_path)
    assert [(s.id, s.glosses, s.signer, s.split) for s in got] == [
        ("a", ["HELLO", "YOU"], "s1", "train"), ("b", ["BYE"], None, "dev")]
    assert read_video(got[1].video).shape[0] == 5
    assert [s.id for s in read_folder(tmp_path, "dev")] == ["b"]
    with pytest.raises(AnnotationError, match="no rows with split 'test'"):
        read_folder(tmp_path, "test")

    ann = tmp_path / "annotations.csv"
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join(lines + ["c,v/missing.mp4,s2,train,HELLO"]) + "\n")
    with pytest.raises(FileNotFoundError, match=r"annotations.csv:4: video not found: .*missing.mp4"):
        read_folder(tmp_path)
    ann.write_text("\n".join(lines + ["c,v/a.mp4,train,HELLO"]) + "\n")
    with pytest.raises(AnnotationError, match=r"annotations.csv:4: expected 5 fields"):
        read_folder(tmp_path)
    ann.write_text("\n".join(lines + ["a,v/a.mp4,s1,train,HELLO"]) + "\n")
    with pytest.raises(AnnotationError, match=r"annotations.csv:4: duplicate id 'a' \(first on line 2\)"):
        read_folder(tmp_path)
    ann.write_text("\n".join(lines + ["c,v/a.mp4,s1,train,  "]) + "\n")
    with pytest.raises(AnnotationError, match=r"annotations.csv:4: empty gloss sequence"):
        read_folder(tmp_path)
    ann.write_text("name,path,glosses\n")
    with pytest.raises(AnnotationError, match=r"annotations.csv:1: expected header"):
        read_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="annotations.csv"):
        read_folder(tmp_path / "nowhere")


def test_read_phoenix2014(tmp_path):
    root = tmp_path / "phoenix2014-release" / "phoenix-2014-multisigner"
    _write(root / "annotations/manual/dev.corpus.csv",
           "id|folder|signer|annotation\n"
           "01April_2010_Thursday_heute_default-1|01April_2010_Thursday_heute_default-1/1/*.png|Signer04|"
           "__ON__ REGEN KOMMEN __OFF__\n")
    write_frames(root / "features/fullFrame-210x260px/dev/01April_2010_Thursday_heute_default-1/1", _clip(3))
    (s,) = read_phoenix2014(tmp_path / "phoenix2014-release", "dev")  # parent folder accepted too
    assert s.glosses == ["__ON__", "REGEN", "KOMMEN", "__OFF__"] and s.signer == "Signer04" and s.split == "dev"
    assert read_video(s.video).shape[0] == 3
    _write(root / "annotations/manual/test.corpus.csv",
           "id|folder|signer|annotation\nx|x/1/*.png|Signer01|A B\n")
    with pytest.raises(FileNotFoundError, match=r"test.corpus.csv:2: video not found"):
        read_phoenix2014(root, "test")
    _write(root / "annotations/manual/train.corpus.csv", "id|folder|signer|annotation\nx|x/1/*.png|A B\n")
    with pytest.raises(AnnotationError, match=r"train.corpus.csv:2: expected 4 fields"):
        read_phoenix2014(root, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        read_phoenix2014(root, "val")


def test_read_phoenix2014t(tmp_path):
    root = tmp_path / "PHOENIX-2014-T"
    _write(root / "annotations/manual/PHOENIX-2014-T.train.corpus.csv",
           "name|video|start|end|speaker|orth|translation\n"
           "11August_2010_Wednesday_tagesschau-2|11August_2010_Wednesday_tagesschau-2/1/*.png|-1|-1|Signer08|"
           "DRUCK TIEF KOMMEN|tiefer luftdruck bestimmt\n")
    write_frames(root / "features/fullFrame-210x260px/train/11August_2010_Wednesday_tagesschau-2", _clip(4))
    (s,) = read_phoenix2014t(root, "train")
    assert s.glosses == ["DRUCK", "TIEF", "KOMMEN"] and s.signer == "Signer08"
    assert s.meta["translation"] == "tiefer luftdruck bestimmt" and read_video(s.video).shape[0] == 4


def test_read_csl_daily(tmp_path):
    root = tmp_path / "CSL-Daily"
    _write(root / "sentence_label/video_map.txt",
           "index|name|length|gloss|char|word|postag\n"
           "0|S000000_P0000_T00|120|你 好|你好|你好|n\n"
           "1|S000001_P0003_T00|90|谢谢 你|谢谢你|谢谢 你|v r\n")
    _write(root / "sentence_label/split_1.txt", "Name|split\nS000000_P0000_T00|train\nS000001_P0003_T00|dev\n")
    write_frames(root / "sentence/frames_512x512/S000000_P0000_T00", _clip(2))
    write_frames(root / "sentence/frames_512x512/S000001_P0003_T00", _clip(2))
    (s,) = read_csl_daily(root, "dev")
    assert s.glosses == ["谢谢", "你"] and s.signer == "P0003" and s.meta["length"] == 90
    assert [x.id for x in read_csl_daily(root, "train")] == ["S000000_P0000_T00"]
    _write(root / "sentence_label/split_1.txt", "S000009_P0000_T00|test\n")
    with pytest.raises(AnnotationError, match="split_1.txt: 1 test names have no row"):
        read_csl_daily(root, "test")


def test_read_isharah(tmp_path):
    root = tmp_path / "isharah500"
    _write(root / "annotations/SI/train.txt", "id|gloss|text\n010002|أنا ذهب|أنا ذهبت\n120417|شكرا|شكرا لك\n")
    write_video(root / "videos/010002.mp4", _clip(6), 25)
    write_video(root / "videos/12/120417.mp4", _clip(5), 25)  # per-signer sub-folder also accepted
    a, b = read_isharah(root, "SI", "train")
    assert (a.id, a.signer, a.meta["sentence"], a.glosses) == ("010002", "01", "0002", ["أنا", "ذهب"])
    assert b.signer == "12" and b.video.name == "120417.mp4" and b.split == "SI/train"
    _write(root / "annotations/US/dev.txt", "10002|x|y\n")
    with pytest.raises(AnnotationError, match=r"US/dev.txt:1: id '10002' is not 2-digit signer"):
        read_isharah(root, "US", "dev")
    _write(root / "annotations/US/test.txt", "990001|x|y\n")
    with pytest.raises(FileNotFoundError, match=r"US/test.txt:1: video not found for id 990001"):
        read_isharah(root, "US", "test")
    with pytest.raises(FileNotFoundError, match="annotations/SI/dev.txt"):
        read_isharah(root, "SI", "dev")


# ------------------------------------------------------------------------------------------ transforms
def test_eval_transform_shape_normalisation_and_centre_crop():
    frames = np.full((3, 40, 60, 3), 128, np.uint8)
    t = VideoTransform(16, CLIP_MEAN, CLIP_STD, train=False)
    assert t.resize_to == 18
    x = t(frames)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    expect = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(x[0, :, 5, 5], expect, atol=2e-3, rtol=0)
    # a left/right marker survives eval (no flip), centre crop keeps the middle
    frames = np.zeros((1, 64, 64, 3), np.uint8)
    frames[:, :, :32] = 255
    y = VideoTransform(56, (0, 0, 0), (1, 1, 1))(frames)
    assert y[0, 0, 28, :20].min() > 0.99 and y[0, 0, 28, -20:].max() < 0.01


def test_train_transform_seeded_flip_crop_and_temporal_scale():
    frames = np.zeros((20, 48, 64, 3), np.uint8)
    frames[:, :, :20] = 255
    frames[:, 0, 0] = np.arange(20)[:, None]
    t = VideoTransform(32, (0, 0, 0), (1, 1, 1), train=True, flip=True, temporal_scale=0.2)
    a = t(frames, np.random.default_rng(1))
    b = t(frames, np.random.default_rng(1))
    torch.testing.assert_close(a, b)
    lengths, flips = set(), 0
    for seed in range(40):
        x = t(frames, np.random.default_rng(seed))
        assert x.shape[1:] == (3, 32, 32)
        lengths.add(x.shape[0])
        flips += int(x[0, 0, 16, -3:].mean() > x[0, 0, 16, :3].mean())
    assert min(lengths) >= 16 and max(lengths) <= 24 and len(lengths) > 3
    assert 5 < flips < 35
    no_flip = VideoTransform(32, (0, 0, 0), (1, 1, 1), train=True, flip=False)
    for seed in range(20):
        x = no_flip(frames, np.random.default_rng(seed))
        assert x[0, 0, 16, :3].mean() >= x[0, 0, 16, -3:].mean()
    with pytest.raises(ValueError, match="seeded numpy Generator"):
        t(frames)
    with pytest.raises(ValueError, match=r"uint8 frames \[T, H, W, 3\]"):
        t(frames.astype(np.float32), np.random.default_rng(0))
    assert t(frames, np.random.default_rng(0), min_frames=20).shape[0] >= 20


def test_train_transform_spatial_scale_zooms_a_centred_square():
    """spatial_scale: the crop's side is s / zoom, resized back to s with the one resize; off, a seed's draws and
    crops are those of a transform without it; with it, the square's size in the output follows the zoom."""
    frames = np.zeros((4, 37, 48, 3), np.uint8)             # 37 = resize_to of 32: used as it is
    frames[:, 10:26, 16:32] = 255                           # a 16 px square near the middle
    plain = VideoTransform(32, (0, 0, 0), (1, 1, 1), train=True, flip=False, temporal_scale=0.0)
    off = VideoTransform(32, (0, 0, 0), (1, 1, 1), train=True, flip=False, temporal_scale=0.0, spatial_scale=0.0)
    for seed in range(5):
        torch.testing.assert_close(plain.crop(frames, np.random.default_rng(seed)),
                                   off.crop(frames, np.random.default_rng(seed)))
    zoom = VideoTransform(32, (0, 0, 0), (1, 1, 1), train=True, flip=False, temporal_scale=0.0, spatial_scale=0.3)
    sizes = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        out = zoom.crop(frames, rng)
        assert out.shape == (4, 32, 32, 3) and out.dtype == torch.uint8
        again = np.random.default_rng(seed)
        again.uniform(0.0, 0.0)                              # the temporal rescale's draw (off: factor 1)
        z = 1.0 + again.uniform(-0.3, 0.3)
        side = min(max(round(32 / z), 1), 37)
        y0, x0 = int(again.integers(0, 37 - side + 1)), int(again.integers(0, 48 - side + 1))
        want = np.stack([resize_image(f[y0:y0 + side, x0:x0 + side], 32, 32) for f in frames])
        np.testing.assert_array_equal(out.numpy(), want)
        sizes.add(int((out[0, :, :, 0] > 127).sum(axis=1).max()))   # the square's width in the output
    assert min(sizes) < 16 < max(sizes)                     # zoomed out (up to the frame) and in
    with pytest.raises(ValueError, match="spatial_scale"):
        VideoTransform(32, spatial_scale=1.0)
    with pytest.raises(ConfigError, match="spatial_scale"):
        TrainConfig(spatial_scale=-0.1)


def test_resize_shorter_keeps_aspect():
    out = resize_shorter(np.zeros((2, 720, 540, 3), np.uint8), 73)
    assert out.shape == (2, 97, 73, 3) and out.dtype == np.uint8


# ------------------------------------------------------------------------------------ dataset + lengths
def test_ctc_length_helpers():
    assert conv_output_length(16) == 1 and conv_output_length(24) == 3 and conv_output_length(11) == 0 and conv_output_length(100) == 22
    assert ctc_required_length([1, 2, 3]) == 3 and ctc_required_length([1, 1, 2, 2]) == 6
    t = min_input_length([1, 1, 2])
    assert conv_output_length(t) >= 4 and conv_output_length(t - 1) < 4


def _items():
    return [{"id": "long", "video": torch.ones(40, 3, 4, 4), "label": torch.tensor([1, 2])},
            {"id": "short", "video": torch.arange(10.).view(10, 1, 1, 1).expand(10, 3, 4, 4).clone(),
             "label": torch.tensor([1, 1, 2])}]


def test_check_lengths_policies():
    with pytest.warns(UserWarning, match=r"1 clip\(s\).*short \(10 < 28 frames\).*repeat-padded"):
        kept, short = check_lengths(_items(), conv_output_length, "pad")
    assert short == [("short", 10, 28)] and len(kept[1]["video"]) == 28
    assert kept[1]["video"][0, 0, 0, 0] == 0 and kept[1]["video"][-1, 0, 0, 0] == 9  # edge frames repeated
    with pytest.warns(UserWarning, match="dropped"):
        kept, _ = check_lengths(_items(), conv_output_length, "drop")
    assert [k["id"] for k in kept] == ["long"]
    with pytest.raises(ValueError, match="short"):
        check_lengths(_items(), conv_output_length, "error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_lengths(_items()[:1])[1] == []


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    samples = [Sample("long", ["A", "B"], write_video(root / "long.mp4", _clip(30, 40, 56), 25), "s", "train"),
               Sample("short", ["A", "A", "C"], write_video(root / "short.mp4", _clip(8, 40, 56, 1), 25), "s",
                      "train")]
    return samples, Vocabulary.build(samples)


def test_video_dataset_items_and_collate(tiny_set, tmp_path):
    samples, vocab = tiny_set
    ds = VideoDataset(samples, vocab, 32, train=True, seed=3, cache_dir=tmp_path / "cache")
    a = ds[0]
    assert a["video"].shape[1:] == (32, 32, 3) and a["video"].dtype == torch.uint8   # normalised on the device
    assert a["label"].tolist() == [1, 2] and a["id"] == "long"
    torch.testing.assert_close(ds[0]["video"], a["video"])  # same seed/epoch/index -> same augmentation
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["video"], a["video"]) or ds[0]["video"].shape != a["video"].shape
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    short = ds[1]  # 8 frames < 28 needed: padded on load (policy "pad")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    assert len(short["video"]) >= min_input_length([1, 1, 3])
    batch = collate([a, short])
    assert batch["videos"].shape == (2, max(len(a["video"]), len(short["video"])), 32, 32, 3)
    assert batch["lengths"].tolist() == [len(a["video"]), len(short["video"])]
    assert batch["labels"].tolist() == [1, 2, 1, 1, 3] and batch["label_lengths"].tolist() == [2, 3]
    assert batch["ids"] == ["long", "short"]
    assert batch["videos"][0, len(a["video"]):].abs().sum() == 0 if len(a["video"]) < len(short["video"]) else True
    videos, lengths, labels, _ = batch_to_device(batch, "cpu", ds.normalize)     # what a training step sees
    assert videos.shape == (2, batch["videos"].shape[1], 3, 32, 32) and videos.dtype == torch.float32
    for i, it in enumerate((a, short)):
        t = len(it["video"])
        assert torch.equal(videos[i, :t], ds.normalize(it["video"])) and not videos[i, t:].any()   # zero padding
    ev = VideoDataset(samples, vocab, 32, train=False, cache_dir=tmp_path / "cache")  # cache reused
    torch.testing.assert_close(ev[0]["video"], ev[0]["video"])
    assert len(ev[0]["video"]) == 30


def test_video_dataset_drop_error_and_unknown_gloss(tiny_set):
    samples, vocab = tiny_set
    with pytest.warns(UserWarning, match="short"):
        ds = VideoDataset(samples, vocab, 32, length_policy="drop")
    assert [s.id for s in ds.samples] == ["long"] and ds.short[0][0] == "short"
    with pytest.raises(ValueError, match=r"short \(8 < 28 frames\)"):
        VideoDataset(samples, vocab, 32, length_policy="error")
    with pytest.raises(VocabularyError, match=r"sample 'long'.*'B' is not in the vocabulary"):
        VideoDataset(samples, Vocabulary(["A", "C"]), 32)
    crop = VideoDataset(samples[:1], vocab, 16, crop_fn=lambda f: f[:, :20, :20])
    assert crop[0]["video"].shape == (30, 16, 16, 3)


def test_video_dataset_reports_short_clips_before_training_with_pad(tiny_set):
    samples, vocab = tiny_set
    with pytest.warns(UserWarning, match=r"^1 clip\(s\) of 2 are shorter .*: short \(8 < 28 frames\); policy 'pad'"):
        ds = VideoDataset(samples, vocab, 32, train=True, seed=1)
    assert ds.short == [("short", 8, 28)] and [s.id for s in ds.samples] == ["long", "short"]
    assert ds.length_report.startswith("1 clip(s) of 2")
    assert conv_output_length(len(ds[1]["video"])) >= ctc_required_length([1, 1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # nothing to report, no warning; no check at all without output_length_fn
        assert VideoDataset(samples[:1], vocab, 32).short == []
        assert VideoDataset(samples, vocab, 32, output_length_fn=None).length_report is None
