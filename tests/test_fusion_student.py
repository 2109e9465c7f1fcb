"""The fusion student (``slsdk.models.fusion``): hand-crop RGB frames + the 86 landmarks of the same frames into one
streaming model. Its contract (two data inputs, then the state), chunked streaming equal to the whole sequence,
checkpoints built back by the factory, the manifest declaring both inputs, and the ONNX file run by ONNX Runtime
against torch, fp32 and int8 (calibrated on both inputs)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slsdk.bundle import Manifest
from slsdk.bundle.schema import schema_problems
from slsdk.data.vocab import Vocabulary
from slsdk.decode import greedy
from slsdk.errors import ConfigError
from slsdk.landmarks import NUM_POINTS
from slsdk.models.factory import create_model, load_model
from slsdk.models.fusion import FusionStudent, FusionStudentConfig
from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig
from slsdk.models.model_io import manifest_for_model, model_io
from slsdk.models.student import StreamingStudent, StudentConfig
from slsdk.train.checkpoint import save_checkpoint

VOCAB = ["<blank>", "a", "b", "c", "d", "e"]


def _student(seed: int = 0, **kw) -> FusionStudent:
    torch.manual_seed(seed)
    m = FusionStudent(FusionStudentConfig(num_classes=len(VOCAB), chunk_frames=8, **kw)).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)     # a varied gloss sequence from random weights
    return m


def _inputs(t: int, b: int = 1, seed: int = 0, size: int = 48):
    rng = np.random.default_rng(seed)
    frames = torch.from_numpy(rng.normal(0, 1, (b, t, 3, size, size)).astype(np.float32))
    points = torch.from_numpy(rng.uniform(-0.5, 0.5, (b, t, NUM_POINTS, 2)).astype(np.float32))
    return frames, points


def test_contract_names_and_shapes():
    s = _student()
    assert s.modality == "fusion"
    assert s.input_names() == ["frames", "landmarks", "conv1_cache", "conv2_cache", "h", "c"]
    assert s.output_names() == ["log_probs", "conv1_cache_out", "conv2_cache_out", "h_out", "c_out"]
    ex = s.example_inputs()
    assert [tuple(t.shape) for t in ex[:2]] == [(1, 8, 3, 48, 48), (1, 8, NUM_POINTS, 2)]
    assert [tuple(t.shape) for t in ex[2:]] == [sh for _, sh in s.state_spec()]
    x = _inputs(37, b=2)
    out = s(x, torch.tensor([37, 21]))
    assert out["sequence_logits"].shape == (10, 2, len(VOCAB))
    assert out["feat_lengths"].tolist() == [10, 6]
    assert out["features"].shape == (2, 37, s.config.feature_dim)
    with pytest.raises(ValueError, match="multiple of 4"):
        s.step((x[0][:, :6], x[1][:, :6]), s.init_state(2))
    with pytest.raises(ValueError, match="differ"):
        s.step((x[0][:, :8], x[1][:, :4]), s.init_state(2))
    with pytest.raises(ValueError, match="frames, landmarks"):
        s.step(x[0][:, :8], s.init_state(2))


def test_both_inputs_matter():
    """Each branch reaches the logits: changing only the frames, or only the landmarks, changes them."""
    s = _student()
    frames, points = _inputs(16)
    other_frames, other_points = _inputs(16, seed=5)
    with torch.no_grad():
        base = s.log_probs((frames, points), torch.tensor([16]))
        a = s.log_probs((other_frames, points), torch.tensor([16]))
        b = s.log_probs((frames, other_points), torch.tensor([16]))
    assert float((base - a).abs().max()) > 1e-3 and float((base - b).abs().max()) > 1e-3


def test_streaming_chunks_equal_the_whole_sequence():
    s = _student(encoder="efficientnet-lite0", image_size=32, landmark_encoder="gcn")
    frames, points = _inputs(53, b=2, seed=1, size=32)
    with torch.no_grad():
        whole = s.log_probs((frames, points), torch.tensor([53, 53]))
        pf = torch.nn.functional.pad(frames, (0, 0, 0, 0, 0, 0, 0, 3))
        pp = torch.nn.functional.pad(points, (0, 0, 0, 0, 0, 3))
        state, outs = s.init_state(2), []
        for i in range(0, 56, 8):
            lp, state = s.step((pf[:, i:i + 8], pp[:, i:i + 8]), state)
            outs.append(lp)
        chunked = torch.cat(outs, 1).transpose(0, 1)
    assert whole.shape == chunked.shape == (14, 2, len(VOCAB))
    assert float((whole - chunked).abs().max()) <= 1e-5
    ex = s.export_module()
    with torch.no_grad():
        a = ex(pf[:1, :8], pp[:1, :8], *s.init_state(1))
        b = s.step((pf[:1, :8], pp[:1, :8]), s.init_state(1))
    assert torch.equal(a[0], b[0]) and all(torch.equal(u, v) for u, v in zip(a[1:], b[1]))


def test_config_round_trip_and_checks(tmp_path):
    s = _student(landmark_encoder="gcn")
    cfg = s.config
    assert cfg.image_size == 48 and cfg.rgb_feature_dim == 64 and cfg.patch_size == 8   # the entry's defaults
    assert FusionStudentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path = tmp_path / "fusion.pt"
    save_checkpoint(path, kind="student", config=cfg.to_dict(), vocab=Vocabulary(VOCAB), model=s.state_dict())
    back, vocab, kind = load_model(path)
    assert kind == "student" and type(back) is FusionStudent and back.config == cfg and vocab.glosses == VOCAB
    x = _inputs(20)
    with torch.no_grad():
        assert torch.equal(back(x, torch.tensor([20]))["sequence_logits"], s(x, torch.tensor([20]))["sequence_logits"])
    assert isinstance(create_model("student", cfg.to_dict()), FusionStudent)
    with pytest.raises(ConfigError, match="modality"):
        FusionStudentConfig(num_classes=3, modality="rgb")
    with pytest.raises(ConfigError, match="chunk_frames"):
        FusionStudentConfig(num_classes=3, chunk_frames=6)
    with pytest.raises(ConfigError, match="unknown student encoder"):
        FusionStudentConfig(num_classes=3, encoder="resnet")
    with pytest.raises(ConfigError, match="landmark encoder"):
        FusionStudentConfig(num_classes=3, landmark_encoder="transformer")
    # the RGB branch of an RGB student's config (distillation builds it so)
    rgb = StudentConfig(num_classes=4, encoder="efficientnet-lite0", image_size=64, hidden=32)
    f = FusionStudentConfig.from_student(rgb, landmark_width=32)
    assert (f.encoder, f.image_size, f.rgb_feature_dim, f.hidden, f.landmark_width) == ("efficientnet-lite0", 64, 256,
                                                                                       32, 32)


def test_rgb_and_landmark_students_keep_their_contract():
    """Generalising the contract to two inputs leaves the one-input students' names and export modules as they were."""
    rgb = StreamingStudent(StudentConfig(num_classes=len(VOCAB))).eval()
    lm = LandmarkStudent(LandmarkStudentConfig(num_classes=len(VOCAB))).eval()
    assert rgb.input_names() == ["frames", "conv1_cache", "conv2_cache", "h", "c"]
    assert lm.input_names() == ["landmarks", "conv1_cache", "conv2_cache", "h", "c"]
    import inspect

    assert list(inspect.signature(rgb.export_module().forward).parameters)[0] == "frames"
    assert list(inspect.signature(lm.export_module().forward).parameters)[0] == "landmarks"
    fusion = list(inspect.signature(_student().export_module().forward).parameters)
    assert fusion == ["frames", "landmarks", "conv1_cache", "conv2_cache", "h", "c"]


def test_manifest_declares_both_inputs():
    s = _student()
    io = model_io(s)
    assert io.modality == "fusion" and io.input_names[:2] == ["frames", "landmarks"]
    d = manifest_for_model(s, VOCAB).to_dict()
    assert d["input"]["modality"] == "fusion"
    assert d["input"]["width"] == d["input"]["height"] == 48 and d["input"]["resize_shorter"] == 55
    lm = d["input"]["landmarks"]
    assert lm["tensor"] == "landmarks" and lm["points"] == NUM_POINTS and lm["normalisation"] == "isharah-pose86"
    ins = d["streaming"]["inputs"]
    assert ins[0] == {"name": "frames", "shape": [1, 8, 3, 48, 48], "dtype": "float32"}
    assert ins[1] == {"name": "landmarks", "shape": [1, 8, NUM_POINTS, 2], "dtype": "float32"}
    assert [st["name"] for st in d["streaming"]["state"]] == ["conv1_cache", "conv2_cache", "h", "c"]
    assert schema_problems(d) == []
    assert Manifest.from_dict(json.loads(json.dumps(d))).to_dict() == d


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_bundle_parity(tmp_path, precision):
    """The bundle's ONNX file through ONNX Runtime (the serving backend) against torch: parity figures written into
    the manifest; the int8 file calibrated on chunks of both inputs; greedy tokens of the streamed file equal to
    torch's whole-sequence decoding (fp32)."""
    pytest.importorskip("onnxruntime")
    from slsdk.convert import convert
    from slsdk.runtime.backends import open_backend, run_video

    s = _student()
    rng = np.random.default_rng(3)

    def video(t):
        return {"frames": rng.normal(0, 1, (t, 3, 48, 48)).astype(np.float32),
                "landmarks": rng.uniform(-0.5, 0.5, (t, NUM_POINTS, 2)).astype(np.float32)}

    calib = [video(24) for _ in range(2)]
    held = [(video(n), [1, 2]) for n in (29, 44)]
    b = convert(s, "onnx", precision, tmp_path / "b", vocab=VOCAB, calib=calib if precision == "int8" else None,
                heldout=held)
    m = b.manifest
    assert m.input.modality == "fusion" and m.input.landmarks.tensor == "landmarks"
    assert [i.name for i in m.streaming.inputs[:2]] == ["frames", "landmarks"]
    f = m.fidelity
    assert f["status"] == "run" and f["videos"] == 2 and f["frames"] == 8 + 11
    assert "wer" in f and "wer_torch" in f
    if precision == "fp32":
        assert f["max_abs_err"] < 1e-3 and f["argmax_agreement"] == 1.0
        x = held[1][0]
        with torch.no_grad():
            whole = s.log_probs((torch.from_numpy(x["frames"])[None], torch.from_numpy(x["landmarks"])[None]),
                                torch.tensor([44]))[:, 0].numpy()
        got = run_video(open_backend(b), m.streaming, x)
        assert got.shape == whole.shape == (11, len(VOCAB))
        assert float(np.abs(got - whole).max()) < 1e-3
        assert [int(i) for i in greedy(got)] == [int(i) for i in greedy(whole)]
    else:
        assert m.precision == "int8" and m.quantization["calibration_chunks"] >= 1
        assert f["cosine"] > 0.98


@pytest.mark.slow
@pytest.mark.parametrize("target, precision", [("ort", "int8"), ("executorch", "fp32"), ("executorch", "int8"),
                                               ("coreml", "int8"), ("executorch-coreml", "fp32")])
def test_every_target_takes_the_fusion_student(tmp_path, target, precision):
    """The fusion student converts to every target with both inputs (int8 calibrated on both); parity runs through
    the serving backend where the target runs here, the file is validated where it does not (Core ML on Linux)."""
    from slsdk.convert import convert
    from slsdk.targets import get_target, missing_modules

    tgt = get_target(target)
    if missing_modules(tgt):
        pytest.skip(f"{target} needs {missing_modules(tgt)}")
    rng = np.random.default_rng(5)
    calib = [{"frames": rng.normal(0, 1, (24, 3, 48, 48)).astype(np.float32),
              "landmarks": rng.uniform(-0.5, 0.5, (24, NUM_POINTS, 2)).astype(np.float32)} for _ in range(2)]
    b = convert(_student(), target, precision, tmp_path / target, vocab=VOCAB,
                calib=calib if precision == "int8" else None)
    m = b.manifest
    assert m.input.modality == "fusion" and [i.name for i in m.streaming.inputs[:2]] == ["frames", "landmarks"]
    f = m.fidelity
    if tgt.can_run_here:
        assert f["status"] == "run" and f["cosine"] > 0.99 and f["argmax_agreement"] > 0.9
        if precision == "fp32":
            assert f["max_abs_err"] < 1e-3
    else:
        assert f["status"] == "validated, not run" and f["reason"] == tgt.not_here
