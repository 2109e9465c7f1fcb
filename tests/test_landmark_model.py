"""Landmark models (``slsdk.models.landmark``): shapes, the streaming contract (chunked == whole sequence), checkpoints
built back by the model factory, the manifest's landmark input and its checks, size against the Lite0 RGB student,
conversion with int8 parity through the serving backend, and the runtime's landmark stream (streaming CTC decoding
equal to offline decoding)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from slsdk.bundle import BundleError, Manifest
from slsdk.bundle.schema import schema_problems
from slsdk.data.vocab import Vocabulary
from slsdk.decode import greedy
from slsdk.errors import ConfigError
from slsdk.landmarks import NUM_POINTS, POSE86, normalize_pose86
from slsdk.models.factory import create_model, load_model
from slsdk.models.landmark import LandmarkConfig, LandmarkRecognizer, LandmarkStudent, LandmarkStudentConfig
from slsdk.models.model_io import manifest_for_model, model_io
from slsdk.models.student import StreamingStudent, student_config
from slsdk.train.checkpoint import save_checkpoint

VOCAB = ["<blank>", "a", "b", "c", "d", "e"]


def _student(encoder: str = "mlp", seed: int = 0) -> LandmarkStudent:
    torch.manual_seed(seed)
    m = LandmarkStudent(LandmarkStudentConfig(num_classes=len(VOCAB), encoder=encoder, chunk_frames=8)).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)     # a varied gloss sequence from random weights
    return m


def _points(t: int, b: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.5, 0.5, (b, t, NUM_POINTS, 2)).astype(np.float32))


@pytest.mark.parametrize("encoder", ["mlp", "gcn"])
def test_shapes(encoder):
    s = _student(encoder)
    x = _points(37, b=2)
    out = s(x, torch.tensor([37, 21]))
    assert out["sequence_logits"].shape == (10, 2, len(VOCAB))        # ceil(37 / 4) steps, time-major
    assert out["feat_lengths"].tolist() == [10, 6]
    assert out["features"].shape == (2, 37, s.config.feature_dim)
    t = LandmarkRecognizer(LandmarkConfig(num_classes=len(VOCAB), encoder=encoder, hidden=64)).eval()
    o = t(x, torch.tensor([37, 30]))
    assert o["sequence_logits"].shape == o["conv_logits"].shape == (6, 2, len(VOCAB))   # ((37-4)//2-4)//2
    assert o["feat_lengths"].tolist() == [6, 4]
    lp, state = s.step(x[:, :8], s.init_state(2))
    assert lp.shape == (2, 2, len(VOCAB)) and [tuple(v.shape) for v in state] == [(2, *sh[1:]) for _, sh in s.state_spec()]
    with pytest.raises(ValueError, match="multiple of 4"):
        s.step(x[:, :6], s.init_state(2))


@pytest.mark.parametrize("encoder", ["mlp", "gcn"])
def test_streaming_chunks_equal_the_whole_sequence(encoder):
    s = _student(encoder)
    x = _points(53, b=2, seed=1)
    with torch.no_grad():
        whole = s.log_probs(x, torch.tensor([53, 53]))                 # [T', B, V]
        pad = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, 3))            # zero-padded to 56, as the runtime pads
        state, outs = s.init_state(2), []
        for i in range(0, 56, 8):
            lp, state = s.step(pad[:, i:i + 8], state)
            outs.append(lp)
        chunked = torch.cat(outs, 1).transpose(0, 1)
    assert whole.shape == chunked.shape == (14, 2, len(VOCAB))
    assert float((whole - chunked).abs().max()) <= 1e-5
    # the export module (what every target is made from) is the same step
    ex = s.export_module()
    with torch.no_grad():
        a = ex(pad[:1, :8], *s.init_state(1))
        b = s.step(pad[:1, :8], s.init_state(1))
    assert torch.equal(a[0], b[0])


def test_configs_are_checked():
    with pytest.raises(ConfigError, match="chunk_frames"):
        LandmarkStudentConfig(num_classes=3, chunk_frames=6)
    with pytest.raises(ConfigError, match="encoder"):
        LandmarkConfig(num_classes=3, encoder="transformer")
    with pytest.raises(ConfigError, match="modality"):
        LandmarkStudentConfig(num_classes=3, modality="rgb")


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_checkpoint_round_trip(tmp_path, kind):
    model = _student("gcn") if kind == "student" else LandmarkRecognizer(LandmarkConfig(num_classes=len(VOCAB),
                                                                                        hidden=64)).eval()
    path = tmp_path / f"{kind}.pt"
    save_checkpoint(path, kind=kind, config=model.config.to_dict(), vocab=Vocabulary(VOCAB), model=model.state_dict())
    back, vocab, got_kind = load_model(path)
    assert got_kind == kind and type(back) is type(model) and vocab.glosses == VOCAB
    assert back.config == model.config
    x = _points(40)
    with torch.no_grad():
        assert torch.equal(back(x, torch.tensor([40]))["sequence_logits"], model(x, torch.tensor([40]))["sequence_logits"])
    # the factory builds the right class from the config alone
    assert isinstance(create_model(kind, model.config.to_dict()), type(model))


def test_small_against_the_lite0_student():
    """The issue's goal: the landmark student at most a tenth of the Lite0 RGB student (Isharah-2000's vocabulary)."""
    lite0 = StreamingStudent(student_config("efficientnet-lite0", 1133))
    mine = LandmarkStudent(LandmarkStudentConfig(num_classes=1133))
    n_lite0 = sum(p.numel() for p in lite0.parameters())
    n_mine = sum(p.numel() for p in mine.parameters())
    assert n_mine * 10 <= n_lite0, (n_mine, n_lite0)


def test_manifest_declares_the_landmark_input():
    s = _student()
    io = model_io(s)
    assert io.input_names[0] == "landmarks" and io.example_inputs[0].shape == (1, 8, NUM_POINTS, 2)
    m = manifest_for_model(s, VOCAB)
    d = m.to_dict()
    lm = d["input"]["landmarks"]
    assert d["input"]["modality"] == "landmarks"
    assert lm["layout"] == "pose86" and lm["normalisation"] == "isharah-pose86" and lm["points"] == NUM_POINTS
    assert [p["name"] for p in lm["parts"]] == [p.name for p in POSE86]
    assert [p["count"] for p in lm["parts"]] == [p.size for p in POSE86]
    assert d["streaming"]["inputs"][0] == {"name": "landmarks", "shape": [1, 8, NUM_POINTS, 2], "dtype": "float32"}
    assert schema_problems(d) == []
    back = Manifest.from_dict(json.loads(m.to_json()))
    assert back.input.landmarks.parts[2].name == "lips" and back.to_dict() == d
    # an RGB manifest says nothing new (the phone and web samples read it as before)
    from slsdk.models.student import StudentConfig

    rgb = manifest_for_model(StreamingStudent(StudentConfig(num_classes=len(VOCAB))), VOCAB).to_dict()
    assert "modality" not in rgb["input"] and "landmarks" not in rgb["input"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d["input"]["landmarks"].update(points=85), "parts count 86 points, but points is 85"),
    (lambda d: d["input"]["landmarks"].update(tensor="frames"), "not among the streaming inputs"),
    (lambda d: d["input"].pop("landmarks"), "needs an input.landmarks section"),
    (lambda d: d["input"].update(modality="frames"), "input.modality is 'frames'"),
    (lambda d: d["input"]["landmarks"]["parts"][0].update(indices=[1, 2]), r"parts\[0\].indices"),
    (lambda d: d["streaming"]["inputs"][0].update(shape=[1, 8, 86, 3]), "does not end with"),
])
def test_bad_landmark_sections_are_refused(change, message):
    d = manifest_for_model(_student(), VOCAB).to_dict()
    bad = copy.deepcopy(d)
    change(bad)
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(bad, source="x/manifest.json")


def test_int8_onnx_bundle_parity_and_streaming_decoding(tmp_path):
    """int8 (static, calibrated on landmark sequences) ONNX through the serving backend: parity figures in the
    manifest; the runtime's landmark stream decodes exactly the tokens of offline greedy decoding."""
    pytest.importorskip("onnxruntime")
    from slsdk.convert import convert
    from slsdk.runtime.backends import open_backend, run_video
    from slsdk.runtime.landmark_source import recognize_landmarks
    from slsdk.runtime.recognizer import Recognizer

    s = _student()
    rng = np.random.default_rng(3)
    calib = [rng.uniform(-0.5, 0.5, (40, NUM_POINTS, 2)).astype(np.float32) for _ in range(3)]
    held = [(rng.uniform(-0.5, 0.5, (n, NUM_POINTS, 2)).astype(np.float32), [1, 2]) for n in (29, 44)]
    b = convert(s, "onnx", "int8", tmp_path / "b", vocab=VOCAB, calib=calib, heldout=held)
    f = b.manifest.fidelity
    assert f["status"] == "run" and f["videos"] == 2 and f["frames"] == 8 + 11
    assert f["cosine"] > 0.99 and f["max_abs_err"] < 0.5
    assert b.manifest.precision == "int8" and b.manifest.quantization
    rec = Recognizer(b.root)
    assert rec.frames_input == "landmarks"
    # pixel keypoints with parts missing: the runtime normalises them as training does
    kp = rng.uniform(100, 400, (61, NUM_POINTS, 2)).astype(np.float32)
    kp[:7, 0:21] = 0
    kp[30:40, 21:42] = 0
    ups = list(recognize_landmarks(rec, kp, source_fps=rec.fps))
    assert ups[-1].final
    streamed = [VOCAB.index(g) for g in ups[-1].result.glosses]
    offline = run_video(open_backend(b), b.manifest.streaming, normalize_pose86(kp))
    assert offline.shape == (16, len(VOCAB))
    assert streamed == [int(i) for i in greedy(offline)]
    assert len(streamed) > 0


def test_landmark_resampling_is_nearest_by_time():
    from slsdk.runtime.landmark_source import resample_indices

    assert resample_indices(5, 30.0, 30.0).tolist() == [0, 1, 2, 3, 4]
    assert resample_indices(5, None, 30.0).tolist() == [0, 1, 2, 3, 4]
    # 6 frames at 25 fps span 0.2 s: 11 model frames at 50 fps, each the nearest source frame (ties to even)
    assert resample_indices(6, 25.0, 50.0).tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5]
    assert resample_indices(9, 30.0, 15.0).tolist() == [0, 2, 4, 6, 8]


@pytest.mark.slow
@pytest.mark.parametrize("target, precision", [("ort", "int8"), ("executorch", "int8"), ("coreml", "int8"),
                                               ("executorch-coreml", "fp32")])
def test_every_target_takes_the_landmark_student(tmp_path, target, precision):
    """The landmark student converts to every target; parity runs through the serving backend where the target
    runs here, and the file is validated where it does not (Core ML on Linux)."""
    from slsdk.convert import convert
    from slsdk.targets import get_target, missing_modules

    tgt = get_target(target)
    if missing_modules(tgt):
        pytest.skip(f"{target} needs {missing_modules(tgt)}")
    rng = np.random.default_rng(5)
    calib = [rng.uniform(-0.5, 0.5, (32, NUM_POINTS, 2)).astype(np.float32) for _ in range(2)]
    b = convert(_student(), target, precision, tmp_path / target, vocab=VOCAB, calib=calib)
    f = b.manifest.fidelity
    assert b.manifest.input.landmarks.tensor == "landmarks"
    if tgt.can_run_here:
        assert f["status"] == "run" and f["cosine"] > 0.99 and f["argmax_agreement"] > 0.9
    else:
        assert f["status"] == "validated, not run" and f["reason"] == tgt.not_here
