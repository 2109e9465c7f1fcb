"""The host runtime: streaming through a real bundle equals offline decoding; bad input is named."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slsdk.data.video import VideoError, write_video
from slsdk.decode import greedy

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]


@pytest.fixture(scope="module")
def student(tiny_student):
    return tiny_student(len(VOCAB))


@pytest.fixture(scope="module")
def onnx_bundle(student, tmp_path_factory):
    from slsdk.convert import convert

    out = tmp_path_factory.mktemp("bundles") / "student-onnx"
    return convert(student, "onnx", "fp32", out, vocab=VOCAB)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    rng = np.random.default_rng(0)
    frames = np.zeros((45, 48, 64, 3), np.uint8)
    for t in range(45):  # a moving bright blob over a noisy background: the model's output changes over time
        frames[t] = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        x = 5 + t
        frames[t, 10:30, x:x + 12] = (230, 200, 170)
    path = tmp_path_factory.mktemp("videos") / "clip.mp4"
    write_video(path, frames, fps=25)
    return path


def _offline_tokens(student, rec, path):
    """Decode the whole video at once with the torch model (the reference)."""
    from slsdk.data.video import read_video

    x = rec.preprocess(read_video(path))
    with torch.no_grad():
        lp = student.log_probs(torch.from_numpy(x)[None], torch.tensor([len(x)]))[:, 0].numpy()
    return [VOCAB[i] for i in greedy(lp)], lp


@pytest.mark.parametrize("batch_frames", [1, 3, 8, 13, 100])
def test_streaming_runtime_equals_offline(student, onnx_bundle, video, batch_frames):
    from slsdk.runtime import Recognizer, recognize_video

    rec = Recognizer(onnx_bundle.root)
    expected, lp = _offline_tokens(student, rec, video)
    assert len(expected) >= 2, "the reference decode should emit tokens for this test to mean anything"
    got = recognize_video(onnx_bundle.root, video, recognizer=rec, batch_frames=batch_frames)
    assert got.result.glosses == expected
    assert got.frames == 45
    # times: one step = output_stride / fps seconds; events are ordered and inside the video
    ends = [e["end"] for e in got.result.events]
    assert ends == sorted(ends) and ends[-1] <= (len(lp) * 4) / 25 + 1e-6


def test_torch_backend_from_checkpoint_equals_bundle(student, onnx_bundle, video, tmp_path):
    from slsdk.runtime.api import recognize_video
    from slsdk.train.checkpoint import save_checkpoint

    ckpt = tmp_path / "student.pt"
    save_checkpoint(ckpt, kind="student", config=student.config.to_dict(), vocab=VOCAB, model=student.state_dict())
    a = recognize_video(ckpt, video, backend="torch")
    b = recognize_video(onnx_bundle.root, video)
    assert a.result.glosses == b.result.glosses


def test_backend_mismatch_is_a_clear_error(onnx_bundle):
    from slsdk.runtime.recognizer import Recognizer
    from slsdk.runtime.backends import BackendError

    with pytest.raises(BackendError, match="cannot run on the 'executorch' backend"):
        Recognizer(onnx_bundle.root, backend="executorch")


def test_stream_api_endpoint_and_reset(onnx_bundle, video):
    from slsdk.data.video import read_video
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    s = rec.create_stream()
    frames = read_video(video)
    s.accept_frames(frames[:16])
    partial = rec.result(s)
    s.accept_frames(frames[16:])
    s.input_finished()
    final = rec.result(s)
    assert final.glosses[:len(partial.committed)] == partial.committed
    assert final.is_final
    with pytest.raises(RuntimeError, match="finished"):
        s.accept_frames(frames[:1])
    rec.reset(s)
    assert rec.result(s).glosses == []


@pytest.mark.parametrize("kind", ["empty", "corrupt", "text", "missing"])
def test_bad_videos_name_the_file(onnx_bundle, tmp_path, kind):
    from slsdk.runtime.api import recognize_video

    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    elif kind == "text":
        path.write_text("this is not a video")
    err = FileNotFoundError if kind == "missing" else VideoError
    with pytest.raises(err, match=path.name):
        recognize_video(onnx_bundle.root, path)


def test_cli_run_json_lines(onnx_bundle, video, capsys):
    from rich.console import Console

    from slsdk.runtime.cli_run import run_command

    summary = run_command(onnx_bundle.root, video=video, as_json=True, console=Console())
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert lines[-1]["type"] == "summary"
    assert [x["gloss"] for x in lines if x["type"] == "gloss"] == summary["glosses"]
    assert summary["frames"] == 45 and summary["dropped_frames"] == 0


def test_hand_crop_runtime_on_frames_without_hands(onnx_bundle, shared_dir):
    """crop=hands on frames with no hands: centred fallback crops, no crash, zero hands counted."""
    from slsdk.runtime.recognizer import Recognizer

    model = Path(shared_dir) / "models" / "hand_landmarker.task"
    rec = Recognizer(onnx_bundle.root, crop="hands", hand_model=model)
    s = rec.create_stream()
    s.accept_frames(np.full((12, 120, 160, 3), 40, np.uint8))
    s.input_finished()
    assert s.crop_stats.frames == 12 and s.crop_stats.frames_with_hands == 0
    assert isinstance(rec.result(s).glosses, list)


# --------------------------------------------------------------------------------------------------
# frame rate: sources at another rate are resampled to the manifest's fps by timestamp
# --------------------------------------------------------------------------------------------------
def _resample_counts(times, fps=25.0, **kw):
    from slsdk.runtime.sources import FrameResampler

    r = FrameResampler(fps, **kw)
    counts = [c for c in (r.push(t) for t in times) if c is not None] + [r.finish()]
    assert len(counts) == len(times) and sum(counts) == r.frames
    return counts, r.stats()


def test_frame_resampler_nearest_frame_by_time():
    # 1 s of a 30 fps source -> 25 frames, each the source frame nearest to k / 25 s
    counts, st = _resample_counts([i / 30 for i in range(30)])
    chosen = [i for i, c in enumerate(counts) for _ in range(c)]
    assert chosen == [round(k * 30 / 25) for k in range(25)]
    assert st["frames"] == 25 and st["dropped"] == 5 and st["repeated"] == 0 and st["source_fps"] == 30.0
    assert st["policy"] == "nearest"
    # a source at the model's rate passes unchanged, timing jitter included
    jitter = np.random.default_rng(0).uniform(-0.004, 0.004, 250)
    counts, st = _resample_counts([i / 25 + j for i, j in enumerate(jitter)])
    assert set(counts) == {1} and st["dropped"] == st["repeated"] == 0
    # a slower source repeats frames: 20 -> 25 fps shows one frame in four twice
    counts, st = _resample_counts([i / 20 for i in range(20)])
    assert sum(counts) == 25 and st["repeated"] == 5 and st["dropped"] == 0
    # a file's gap is filled (its clock is the truth); a live source skips it instead of adding work
    times = [0.0, 0.04, 0.08, 2.08, 2.12]
    assert sum(_resample_counts(times)[0]) == 54
    counts, st = _resample_counts(times, max_gap=0.25)
    assert counts == [1] * 5 and st["gaps"] == 1 and st["gap_s"] == pytest.approx(1.96)
    # a timestamp going backwards is a discontinuity, not a stall
    counts, st = _resample_counts([0.0, 0.04, 0.08, 0.02, 0.06], max_gap=0.25)
    assert counts == [1] * 5 and st["gaps"] == 1


def _blocks_video(path, fps, seconds=2.0):
    """The same content at any frame rate: a coloured block that jumps every 0.2 s (no noise, so encodes of
    the same picture decode alike). Nearest-frame resampling of the 30 fps file gives the 25 fps frames."""
    colours = [(230, 200, 170), (40, 220, 90), (250, 60, 60), (60, 80, 240), (240, 240, 60)]
    n = int(round(seconds * fps))
    frames = np.full((n, 48, 64, 3), 20, np.uint8)
    for i in range(n):
        seg = i * 5 // int(fps)  # 0.2 s segments, computed exactly
        x, y = 4 + (seg * 11) % 40, 4 + (seg * 7) % 24
        frames[i, y:y + 20, x:x + 16] = colours[seg % len(colours)]
    return write_video(path, frames, fps=fps)


@pytest.fixture(scope="module")
def videos_25_30(tmp_path_factory):
    d = tmp_path_factory.mktemp("rates")
    return _blocks_video(d / "blocks25.mp4", 25), _blocks_video(d / "blocks30.mp4", 30)


def _recognize_capturing_inputs(bundle_root, video, **kw):
    from slsdk.runtime import Recognizer, recognize_video

    rec = Recognizer(bundle_root)
    seen, run = [], rec.backend.run
    rec.backend.run = lambda feeds: (seen.append(feeds[rec.frames_input][0].copy()), run(feeds))[1]
    return recognize_video(bundle_root, video, recognizer=rec, **kw), np.concatenate(seen)


@pytest.mark.parametrize("batch_frames", [1, 7, 32])
def test_30fps_video_is_resampled_to_the_manifest_fps(onnx_bundle, videos_25_30, batch_frames):
    v25, v30 = videos_25_30
    a, x25 = _recognize_capturing_inputs(onnx_bundle.root, v25)
    b, x30 = _recognize_capturing_inputs(onnx_bundle.root, v30, batch_frames=batch_frames)
    assert a.fps == b.fps == 25.0
    assert a.frames == 50 and a.resample["dropped"] == a.resample["repeated"] == 0
    # 60 frames at 30 fps: 50 model frames at 25 fps, one in six dropped, and the result says so
    assert b.source_frames == 60 and b.frames == 50
    assert b.resample == {"policy": "nearest", "fps": 25.0, "source_fps": pytest.approx(30.0, abs=0.01),
                          "source_frames": 60, "frames": 50, "dropped": 10, "repeated": 0, "gaps": 0, "gap_s": 0.0}
    assert b.to_dict()["resample"]["dropped"] == 10
    # the model sees the motion at its own speed: the same frames as the 25 fps encode of the content
    # (per-frame mean |difference| ~0.01, codec noise at the block edges; a frame of another segment is ~0.4)
    assert x25.shape == x30.shape
    assert np.abs(x30 - x25).reshape(len(x25), -1).mean(1).max() < 0.05
    assert a.result.glosses and b.result.glosses == a.result.glosses
    # ... and event times are on the video's clock (2 s), not 60 / 25 = 2.4 s
    assert [(e["start"], e["end"]) for e in b.result.events] == [(e["start"], e["end"]) for e in a.result.events]
    assert b.result.events[-1]["end"] <= 13 * 4 / 25 + 1e-6  # ceil(50 / stride 4) output steps of 0.16 s
    busy = sum(b.timing[k] for k in ("crop", "preprocess", "model", "decode"))
    assert b.real_time_factor == pytest.approx(busy / 2.0)  # per second of video: 50 frames / 25 fps


def test_resample_false_feeds_every_frame(onnx_bundle, videos_25_30):
    from slsdk.runtime.api import recognize_video

    got = recognize_video(onnx_bundle.root, videos_25_30[1], resample=False)
    assert got.frames == got.source_frames == 60 and got.resample is None


def test_cli_run_reports_the_resampling(onnx_bundle, videos_25_30, capsys):
    from rich.console import Console

    from slsdk.runtime.cli_run import run_command
    from slsdk.runtime.api import recognize_video

    summary = run_command(onnx_bundle.root, video=videos_25_30[1], as_json=True, console=Console())
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert lines[-1] == json.loads(json.dumps(summary))
    assert summary["frames"] == 50 and summary["source_frames"] == 60 and summary["seconds"] == 2.0
    r = summary["resample"]
    assert (r["source_fps"], r["dropped"], r["repeated"]) == (pytest.approx(30.0, abs=0.01), 10, 0)
    assert summary["glosses"] == recognize_video(onnx_bundle.root, videos_25_30[1]).result.glosses


def test_timed_and_untimed_frames_do_not_mix(onnx_bundle):
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    s = rec.create_stream()
    frames = np.full((3, 48, 64, 3), 50, np.uint8)
    s.accept_frames(frames, timestamps=[0.0, 1 / 30, 2 / 30])
    assert s.frame_index == 2 and s.source_frames == 3  # the last frame waits for the next one's time
    with pytest.raises(ValueError, match="not both"):
        s.accept_frames(frames)
    with pytest.raises(ValueError, match="3 frames but 2 timestamps"):
        s.accept_frames(frames, timestamps=[0.2, 0.3])
    s.input_finished()
    assert s.frame_index == 3 and s.resample_stats["source_frames"] == 3


def test_runtime_preprocesses_with_the_manifest_resize(onnx_bundle, tmp_path):
    """input.resize_shorter drives the runtime's resize (not a ratio built into the runtime)."""
    import shutil

    from slsdk.data.transforms import VideoTransform
    from slsdk.preprocess import Preprocess
    from slsdk.runtime.recognizer import Recognizer

    m = onnx_bundle.manifest
    assert m.input.resize_shorter == 37 and m.input.crop == "center"  # round(32 * 256 / 224)
    other = tmp_path / "b"
    shutil.copytree(onnx_bundle.root, other)
    d = json.loads((other / "manifest.json").read_text())
    d["input"]["resize_shorter"] = 48
    (other / "manifest.json").write_text(json.dumps(d))
    frames = np.random.default_rng(0).integers(0, 255, (2, 60, 80, 3), dtype=np.uint8)
    got = Recognizer(other).preprocess(frames)
    np.testing.assert_array_equal(got, Preprocess(32, m.input.mean, m.input.std, resize_shorter=48)(frames))
    # the torch training transform with the same resize agrees to one uint8 level (1/255 before normalising)
    want = VideoTransform(32, m.input.mean, m.input.std, resize_ratio=48 / 32)(frames).numpy()
    assert np.abs((got - want) * np.asarray(m.input.std).reshape(1, 3, 1, 1)).max() <= 1 / 255 + 1e-6
    default = Recognizer(onnx_bundle.root).preprocess(frames)
    assert not np.allclose(got, default)
    # a format-version-1 bundle (no resize in its manifest) runs with the 256/224 rule it was made with
    d["format_version"] = 1
    del d["input"]["resize_shorter"], d["input"]["crop"]
    (other / "manifest.json").write_text(json.dumps(d))
    v1 = Recognizer(other)
    assert v1.manifest.format_version == 1 and v1.resize_shorter == 37
    np.testing.assert_array_equal(v1.preprocess(frames), default)


def test_real_webcam_clip_is_resampled(onnx_bundle, shared_file):
    """The shared webcam clip is ~29.9 fps: 58 frames (1.94 s) become 49 model frames at 25 fps, not 58."""
    from slsdk.runtime.api import recognize_video

    got = recognize_video(onnx_bundle.root, shared_file("data/hands/webcam_gestures.mp4"))
    r = got.resample
    assert r["source_fps"] == pytest.approx(29.92, abs=0.01) and r["source_frames"] == 58
    assert got.frames == r["frames"] == 49 and r["dropped"] == 9 and r["repeated"] == 0
    assert all(e["end"] <= 13 * 4 / 25 + 1e-6 for e in got.result.events)  # 58 frames at 25 fps would be 2.32 s


def test_camera_stream_skips_a_stall_a_file_keeps_its_clock(onnx_bundle):
    from slsdk.runtime.recognizer import Recognizer
    from slsdk.runtime.sources import LIVE_MAX_GAP_S, CameraSource, VideoFileSource

    assert CameraSource.live and not VideoFileSource.live  # what slsdk run / webcam.py pass as max_gap
    rec = Recognizer(onnx_bundle.root)
    frames = np.full((10, 48, 64, 3), 50, np.uint8)
    ts = [i / 25 for i in range(5)] + [3.0 + i / 25 for i in range(5)]  # a 2.84 s stall in the middle
    live = rec.create_stream(max_gap=LIVE_MAX_GAP_S)
    live.accept_frames(frames, timestamps=ts)
    live.input_finished()
    assert live.frame_index == 10 and live.resample_stats["gaps"] == 1  # no 70 repeated frames of work
    file = rec.create_stream()
    file.accept_frames(frames, timestamps=ts)
    file.input_finished()
    assert file.frame_index == 80 and file.resample_stats["repeated"] == 70  # 3.2 s on the file's clock


def test_long_stream_memory_is_bounded(onnx_bundle, video):
    """A long live stream (the clip looped 60 times, ~2 minutes of video), reset at each endpoint as the
    API advises: the Python heap does not grow with the stream's length (frames, log-probs and decoder
    state are not accumulated), and the global frame clock keeps counting."""
    import gc
    import tracemalloc

    from slsdk.data.video import read_video
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    s = rec.create_stream()
    clip = read_video(video)
    endpoints = 0

    def feed(loops: int) -> None:
        nonlocal endpoints
        for _ in range(loops):
            for i in range(0, len(clip), 9):
                s.accept_frames(clip[i:i + 9])
                if rec.is_endpoint(s):
                    endpoints += 1
                    rec.reset(s)
            s.accept_frames(np.zeros((40, *clip.shape[1:]), np.uint8))   # a pause between sentences
            if rec.is_endpoint(s):
                endpoints += 1
                rec.reset(s)

    feed(5)                                     # warm up: caches, first allocations
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    feed(55)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 2_000_000, f"Python heap grew by {grown / 1e6:.1f} MB over 55 loops of the clip"
    # endpoints fired (with random weights mostly the 20 s max-utterance rule) and each reset the stream
    assert endpoints >= 5


def test_read_ahead_gives_the_same_recognition_and_passes_errors_on(onnx_bundle, shared_dir):
    """Decoding on a reader thread (``read_ahead``) changes the timing only: same glosses, crops and frames on the
    real webcam clip with hand cropping; a source that fails mid-stream fails the loop with its own error."""
    from slsdk.data.video import VideoError
    from slsdk.runtime import Recognizer, recognize_video

    shared = Path(shared_dir)
    clip = shared / "data" / "hands" / "webcam_gestures.mp4"
    rec = Recognizer(onnx_bundle.root, crop="hands", hand_model=shared / "models" / "hand_landmarker.task")
    a = recognize_video(None, clip, recognizer=rec)
    for kw in ({"read_ahead": 4}, {"pipeline": True}, {"read_ahead": 4, "pipeline": True}):
        b = recognize_video(None, clip, recognizer=rec, **kw)
        assert a.result.to_dict() == b.result.to_dict() and a.result.glosses, kw
        assert a.crop_stats == b.crop_stats and a.frames == b.frames and a.source_frames == b.source_frames, kw
        assert b.timing["wall"] > 0 and b.timing["chunks"] == a.timing["chunks"]

    def failing():
        for i in range(20):
            if i == 11:
                raise VideoError("bad.mp4: corrupt frame 11")
            yield np.full((64, 64, 3), 40, np.uint8), i / 25

    for kw in ({"read_ahead": 4}, {"pipeline": True}, {"read_ahead": 4, "pipeline": True}):
        with pytest.raises(VideoError, match="bad.mp4: corrupt frame 11"):
            for _ in rec.recognize(failing(), **kw):
                pass
    # a consumer that stops early stops the threads too (no hang, the stream keeps what it ran)
    s = rec.create_stream()
    for u in rec.recognize(failing(), stream=s, pipeline=True, read_ahead=4, batch_frames=2):
        break
    assert s.source_frames >= 2
