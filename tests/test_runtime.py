"""The host runtime: streaming through a real bundle equals offline decoding; bad input is named."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slsdk.data.video import VideoError, write_video
from slsdk.decode import greedy
from slsdk.models.student import StreamingStudent, StudentConfig

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    m = StreamingStudent(StudentConfig(num_classes=len(VOCAB), image_size=32, width=64, layers=1, heads=2,
                                       feature_dim=64, hidden=64, chunk_frames=8)).eval()
    # sharpen the classifier so random weights still emit a varied token sequence
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)
    return m


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
    from slsdk.runtime.api import Recognizer, recognize_video

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
    from slsdk.runtime.api import Recognizer
    from slsdk.runtime.backends import BackendError

    with pytest.raises(BackendError, match="cannot run on the 'executorch' backend"):
        Recognizer(onnx_bundle.root, backend="executorch")


def test_stream_api_endpoint_and_reset(onnx_bundle, video):
    from slsdk.data.video import read_video
    from slsdk.runtime.api import Recognizer

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
    from slsdk.runtime.api import Recognizer

    model = Path(shared_dir) / "models" / "hand_landmarker.task"
    rec = Recognizer(onnx_bundle.root, crop="hands", hand_model=model)
    s = rec.create_stream()
    s.accept_frames(np.full((12, 120, 160, 3), 40, np.uint8))
    s.input_finished()
    assert s.crop_stats.frames == 12 and s.crop_stats.frames_with_hands == 0
    assert isinstance(rec.result(s).glosses, list)
