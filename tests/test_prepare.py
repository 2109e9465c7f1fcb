"""`slsdk data prepare`: one decode per video, the runtime's crop, a cache that training reads instead of videos."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from slsdk.data import Sample, Vocabulary, write_folder_annotations
from slsdk.data.video import load_video, write_video

torch.set_num_threads(1)

CLIP = "data/hands/webcam_gestures.mp4"
SIZE = 37  # the tiny teacher's resize size (round(32 * 256 / 224)): the cache needs no second resize


@pytest.fixture(scope="module")
def hand_model(shared_file):
    return shared_file("models/hand_landmarker.task")


@pytest.fixture(scope="module")
def hands_data(shared_file, tmp_path_factory):
    """Three 25 fps clips cut from the real webcam clip (hands come and go), as a folder-layout data set."""
    frames, _ = load_video(shared_file(CLIP), shorter=240)
    root = tmp_path_factory.mktemp("hands") / "data"
    parts = {"a": (frames[:24], "train", "x y"), "b": (frames[16:40], "train", "y"),
             "c": (frames[30:58][:, :, ::-1].copy(), "dev", "x")}
    samples = []
    for sid, (f, split, gl) in parts.items():
        write_video(root / "videos" / f"{sid}.mp4", f, fps=25)
        samples.append(Sample(sid, gl.split(), root / "videos" / f"{sid}.mp4", "s1", split))
    write_folder_annotations(root, samples)
    return root


def _cli(*args):
    from typer.testing import CliRunner

    from slsdk.cli import app

    return CliRunner().invoke(app, list(args))


def test_prepare_cli_writes_a_resumable_cache(hands_data, hand_model, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(hands_data, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    r = _cli("data", "prepare", "data", "--size", str(SIZE), "--hand-model", str(hand_model))
    assert r.exit_code == 0, r.output
    assert "3 videos: 3 prepared, 0 kept from before, 0 failed" in r.output
    index = json.loads((tmp_path / "prepared/index.json").read_text())
    assert index["settings"]["crop"]["policy"] == "hands" and index["settings"]["size"] == SIZE
    assert index["settings"]["fps"] == 25.0 and [c["id"] for c in index["clips"]] == ["a", "b", "c"]
    for c in index["clips"]:
        arr = np.load(tmp_path / "prepared" / c["file"], mmap_mode="r")
        assert arr.dtype == np.uint8 and arr.shape == (c["frames"], SIZE, SIZE, 3) and c["frames"] == 24 + 4 * (c["id"] == "c")
    assert sum(c["hands_frames"] for c in index["clips"]) > 0
    # the cache is a folder-layout data set pointing at the clips
    from slsdk.data import read_folder

    assert [s.video.suffix for s in read_folder("prepared", "train")] == [".npy", ".npy"]
    # resumable: a rerun keeps everything; a clip lost in a kill (no record) is redone alone
    first = np.load(tmp_path / "prepared" / index["clips"][1]["file"])
    (tmp_path / "prepared" / index["clips"][1]["file"]).with_suffix(".json").unlink()
    r = _cli("data", "prepare", "data", "--size", str(SIZE), "--hand-model", str(hand_model))
    assert r.exit_code == 0 and "1 prepared, 2 kept from before" in r.output, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "prepared" / index["clips"][1]["file"]), first)
    # other settings into the same cache: refused with the reason
    r = _cli("data", "prepare", "data", "--size", "40", "--hand-model", str(hand_model))
    assert r.exit_code == 1 and "other settings" in r.output and "size" in r.output, r.output


def test_prepare_names_failures_and_keeps_the_rest(hands_data, hand_model, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(hands_data, tmp_path / "data")
    (tmp_path / "data/videos/broken.mp4").write_bytes(b"not a video at all")
    b = (tmp_path / "data/videos/a.mp4").read_bytes()
    (tmp_path / "data/videos/trunc.mp4").write_bytes(b[: len(b) // 2])
    ann = (tmp_path / "data/annotations.csv")
    ann.write_text(ann.read_text() + "broken,videos/broken.mp4,s1,train,x\ntrunc,videos/trunc.mp4,s1,train,y\n")
    monkeypatch.chdir(tmp_path)
    r = _cli("data", "prepare", "data", "-o", "cache", "--crop", "full", "--size", str(SIZE))
    assert r.exit_code == 1, r.output
    assert "5 videos: 3 prepared" in r.output and "2 failed" in r.output
    assert "broken (data/videos/broken.mp4): VideoError: data/videos/broken.mp4: not a readable video" in r.output
    assert "trunc (data/videos/trunc.mp4): VideoError: data/videos/trunc.mp4: truncated or unfinished mp4" in r.output
    index = json.loads((tmp_path / "cache/index.json").read_text())
    assert [c["id"] for c in index["clips"]] == ["a", "b", "c"]
    assert {f["id"] for f in index["failures"]} == {"broken", "trunc"}
    assert all(c["hands_frames"] is None and min(c["shape"][1:3]) == SIZE for c in index["clips"])


def test_workers_give_the_same_cache(hands_data, hand_model, tmp_path):
    from slsdk.data.prepare import PrepareConfig, prepare_dataset

    cfg = PrepareConfig(crop="hands", size=SIZE, hand_model=str(hand_model))
    one = prepare_dataset(hands_data, tmp_path / "one", cfg, workers=1, progress=False)
    two = prepare_dataset(hands_data, tmp_path / "two", cfg, workers=2, progress=False)
    assert one.frames == two.frames and one.hands_frames == two.hands_frames and not one.failures
    for f in sorted((tmp_path / "one/clips").glob("*.npy")):
        np.testing.assert_array_equal(np.load(f), np.load(tmp_path / "two/clips" / f.name))


def test_cached_hand_crops_equal_the_crop_fn_on_the_videos(hands_data, hand_model, tmp_path):
    """The same function and parameters as the runtime: the cache holds exactly what CropFn makes of the video."""
    from slsdk.data import read_folder
    from slsdk.data.dataset import VideoDataset
    from slsdk.data.prepare import PrepareConfig, prepare_dataset
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.hand_tracker import make_crop_fn

    res = prepare_dataset(hands_data, tmp_path / "c", PrepareConfig(crop="hands", size=SIZE, hand_model=str(hand_model)),
                          progress=False)
    vocab = Vocabulary.build(read_folder(hands_data, None))
    crop_fn = make_crop_fn(CropConfig(), size=SIZE, fps=25.0, model_path=hand_model)
    from_videos = VideoDataset(read_folder(hands_data, None), vocab, 32, crop_fn=crop_fn)
    from_cache = VideoDataset(read_folder(tmp_path / "c", None), vocab, 32)
    assert from_cache.preparation == res.settings and from_videos.preparation is None
    for i in range(3):
        np.testing.assert_array_equal(from_cache.frames(i), from_videos.frames(i))
    with pytest.raises(ValueError, match="already cropped"):
        VideoDataset(read_folder(tmp_path / "c", None), vocab, 32, crop_fn=crop_fn)


def _first_epoch_losses(ds, vocab):
    """One epoch of real training steps (tiny teacher, AdamW, fixed order): the loss of every step."""
    from slsdk.data.dataset import batch_to_device, collate
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.train import TrainConfig, teacher_config
    from slsdk.train.trainer import TeacherObjective, build_optimizer, seed_everything

    seed_everything(0)
    cfg = teacher_config(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2, num_classes=len(vocab))
    obj = TeacherObjective(CSLRRecognizer(cfg)).train()
    opt = build_optimizer([(n, p) for n, p in obj.named_parameters() if p.requires_grad],
                          TrainConfig(lr=3e-3, device="cpu"))
    ds.set_epoch(0)
    losses = []
    for start in range(0, len(ds), 2):
        batch = collate([ds[i] for i in range(start, min(start + 2, len(ds)))])
        out = obj(*batch_to_device(batch, "cpu", ds.normalize))
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        losses.append(float(out["total"].detach()))
    return losses


def test_first_epoch_loss_from_the_hands_cache_equals_training_from_the_videos(hands_data, hand_model, tmp_path):
    from slsdk.data import read_folder
    from slsdk.data.dataset import VideoDataset
    from slsdk.data.prepare import PrepareConfig, prepare_dataset
    from slsdk.runtime.crop import CropConfig
    from slsdk.runtime.hand_tracker import make_crop_fn

    prepare_dataset(hands_data, tmp_path / "c", PrepareConfig(crop="hands", size=SIZE, hand_model=str(hand_model)),
                    progress=False)
    samples = read_folder(hands_data, None)
    vocab = Vocabulary.build(samples)
    videos = VideoDataset(samples, vocab, 32, train=True, seed=0,
                          crop_fn=make_crop_fn(CropConfig(), size=SIZE, fps=25.0, model_path=hand_model))
    cache = VideoDataset(read_folder(tmp_path / "c", None), vocab, 32, train=True, seed=0)
    a, b = _first_epoch_losses(videos, vocab), _first_epoch_losses(cache, vocab)
    assert all(math.isfinite(x) for x in a) and len(a) == 2
    assert a == b


def test_train_from_a_full_frame_cache_matches_training_from_the_videos(tmp_path):
    """The real trainer, both ways: the same first-epoch loss; the checkpoint records the preparation."""
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.data.prepare import PrepareConfig, prepare_dataset
    from slsdk.train import TrainConfig, load_checkpoint, teacher_config, train

    data = generate_synthetic(tmp_path / "data", seed=0, num_glosses=4, num_signers=3, num_test_si_signers=1,
                              sentences_per_signer=4, num_train_sentences=6, num_test_us_sentences=1,
                              dev_per_signer=1, test_si_per_signer=2, test_us_per_sentence=1, image_size=48,
                              min_len=1, max_len=2, video_format="mp4")
    prep = prepare_dataset(data, tmp_path / "cache", PrepareConfig(crop="full", size=SIZE), progress=False)
    assert not prep.failures
    cfg = TrainConfig(epochs=1, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1)
    tiny = dict(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2)
    a = train(data, tmp_path / "run_videos", teacher_config(**tiny), cfg, progress=False)
    b = train(tmp_path / "cache", tmp_path / "run_cache", teacher_config(**tiny), cfg, progress=False)
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], rel=1e-6, abs=1e-7)
    ck = load_checkpoint(b.last_checkpoint)
    assert ck["extra"]["preparation"] == prep.settings


def test_preparation_mismatch_names_the_differences():
    from slsdk.data.prepare import PrepareConfig, preparation_mismatch

    s = PrepareConfig(crop="hands", size=256).settings()
    assert preparation_mismatch(s, dict(s["crop"]), 256) == []
    assert preparation_mismatch(s, {**s["crop"], "detect_every": 1}, 256) == []  # a runtime speed setting
    assert preparation_mismatch(s, {**s["crop"], "detect_policy": "hold"}, 256) == []
    assert preparation_mismatch(s, dict(s["crop"]), 224) == []  # prepared larger: scaled down as at serving
    got = preparation_mismatch(s, {**s["crop"], "margin": 2.0}, 320)
    assert got == ["crop.margin: prepared 1.5, served 2.0",
                   "size: prepared 256 px, the model resizes to 320 (trained on upscaled frames)"]
    assert preparation_mismatch(s, {"policy": "full"}) == ["crop.policy: prepared 'hands', served 'full'"]
    assert preparation_mismatch(None, {"policy": "full"}) == []


def test_the_bundle_carries_the_preparation_and_serving_warns_on_skew(tiny_student, hand_model, tmp_path, monkeypatch):
    """convert records the training data's preparation; its crop becomes the bundle's; serving otherwise warns."""
    import warnings

    from slsdk.convert import convert
    from slsdk.data.prepare import PrepareConfig
    from slsdk.runtime.recognizer import Recognizer, TrainServeSkewWarning
    from slsdk.runtime.crop import CropConfig

    monkeypatch.setenv("SLSDK_HAND_MODEL", str(hand_model))
    prep = PrepareConfig(crop="hands", size=SIZE, crop_config={"margin": 1.8}).settings()
    bundle = convert(tiny_student(4), "onnx", out_dir=tmp_path / "b", vocab=["<blank>", "a", "b", "c"],
                     preparation=prep)
    m = bundle.manifest
    assert m.extra["preparation"] == json.loads(json.dumps(prep))
    assert m.crop.section_json() == CropConfig(margin=1.8).to_dict()  # the whole box rule, not just the policy
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainServeSkewWarning)
        rec = Recognizer(bundle.root)  # served as prepared: no warning
    assert rec.crop_policy == "hands" and rec.cropper.config.margin == 1.8 and rec.skew == []
    with pytest.warns(TrainServeSkewWarning, match="crop.policy: prepared 'hands', served 'full'"):
        assert Recognizer(bundle.root, crop="full").skew == ["crop.policy: prepared 'hands', served 'full'"]
    # the CLI says it as one line (a JSON record with --json), no traceback
    monkeypatch.chdir(tmp_path)
    frames, _ = load_video(hand_model.parents[1] / CLIP, shorter=240)
    write_video(tmp_path / "clip.mp4", frames[:20], fps=25)
    r = _cli("run", "b", "clip.mp4", "--crop", "full", "--json")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
    assert recs[0] == {"type": "warning", "kind": "train_serve_skew",
                       "message": "crop.policy: prepared 'hands', served 'full'"}
    assert recs[-1]["type"] == "summary"
    r = _cli("bundle", "inspect", "b")
    assert r.exit_code == 0 and f"crop hands, size {SIZE}, fps 25.0" in r.output, r.output


# peak RSS of this process only: VmHWM (getrusage's ru_maxrss also counts the parent's RSS at fork, kept over exec)
_PEAK = """
import sys
from slsdk.data.prepare import PrepareConfig, prepare_dataset
prepare_dataset(sys.argv[1], sys.argv[2], PrepareConfig(crop="full", size=int(sys.argv[3]), fps=25.0), progress=False)
print(next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")))
"""


def test_prepare_memory_does_not_grow_with_the_clip(tmp_path):
    """Frames are streamed to the .npy as they are made: a clip 8x longer costs no more memory (it held every
    frame twice: a 240 s clip at 128 px peaked at 869 MB)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    peaks = {}
    for seconds in (4, 32):
        root = tmp_path / f"d{seconds}"
        frames = np.repeat(rng.integers(0, 255, (seconds, 96, 96, 3), dtype=np.uint8), 25, axis=0)
        write_video(root / "v.mp4", frames, fps=25)
        write_folder_annotations(root, [Sample("v", ["A"], root / "v.mp4", "s1", "train")])
        r = subprocess.run([sys.executable, "-c", _PEAK, str(root), str(tmp_path / f"c{seconds}"), "128"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        peaks[seconds] = int(r.stdout.split()[-1]) / 1024          # MB (VmHWM is in kB)
        arr = np.load(tmp_path / f"c{seconds}" / "clips" / next(
            p.name for p in (tmp_path / f"c{seconds}" / "clips").glob("*.npy")), mmap_mode="r")
        assert arr.shape == (seconds * 25, 128, 128, 3)
    # 28 s more at 128 px is 700 frames x 48 KiB = 34 MB per copy: held twice before, streamed now
    print("peak RSS MB", peaks)
    assert peaks[32] - peaks[4] < 20, peaks
