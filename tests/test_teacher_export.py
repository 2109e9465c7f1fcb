"""Offline (teacher) export: a whole-video ``CSLRRecognizer`` -> bundle -> the runtime's backend, against torch eager.

The teacher is exported in "offline mode" (``convert(..., teacher=True)``): one call takes a whole clip
``frames [1, T, 3, S, S]`` and returns ``log_probs [T', V]``; there is no streaming state. ONNX keeps the frame
axis dynamic; an ExecuTorch .pte takes one fixed frame count (lowering unrolls the BiLSTM over time).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slsdk.bundle import load_bundle
from slsdk.convert import convert

VOCAB = ["<blank>", "G1", "G2", "G3", "G4"]
FP32_TOL = 1e-4  # measured ~1e-7 (onnxruntime and executorch)
FRAMES_RANGE = (16, 64)  # the K5-P2-K5-P2 temporal conv needs >= 16 frames


@pytest.fixture(scope="module")
def teacher():
    from slsdk.models import list_models
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.train import teacher_config

    assert "ViT-T/16-test" in list_models()
    torch.manual_seed(0)
    return CSLRRecognizer(teacher_config(backbone="ViT-T/16-test", hidden=16, num_classes=len(VOCAB))).eval()


@pytest.fixture(scope="module")
def onnx_bundle(teacher, tmp_path_factory):
    return convert(teacher, "onnx", "fp32", tmp_path_factory.mktemp("teacher") / "onnx", vocab=VOCAB,
                   teacher=True, frames_range=FRAMES_RANGE)


def _clip(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, 3, 32, 32, generator=g)


def _eager_log_probs(teacher, x: torch.Tensor) -> np.ndarray:
    """The teacher's own forward (packed BiLSTM), as training and evaluation run it: [T', V]."""
    with torch.no_grad():
        return teacher.log_probs(x, torch.tensor([x.shape[1]]))[:, 0].numpy()


def _runtime_log_probs(bundle, x: torch.Tensor) -> np.ndarray:
    """The bundle's model in the runtime's backend, fed and read by the manifest's tensor names."""
    from slsdk.runtime.backends import open_backend

    s = bundle.manifest.streaming
    backend = open_backend(bundle)
    out = backend.run({s.inputs[0].name: x.numpy()})
    return out[s.outputs[0].name]


def _check_offline_manifest(bundle, target, frames_range):
    m = bundle.manifest
    assert (m.target, m.precision, m.model_kind) == (target, "fp32", "teacher")
    s = m.streaming
    assert s.mode == "offline"
    assert s.chunk_frames is None and s.state == [] and s.algorithmic_latency_s is None
    assert s.frames_range == list(frames_range) and s.output_stride == 4
    assert [t.section_json() for t in s.inputs] == [{"name": "frames", "shape": [1, "T", 3, 32, 32], "dtype": "float32"}]
    assert [t.section_json() for t in s.outputs] == [{"name": "log_probs", "shape": ["T_out", len(VOCAB)],
                                                     "dtype": "float32"}]
    assert m.vocab == VOCAB and m.model_config["backbone"] == "ViT-T/16-test"
    f = m.fidelity
    assert f["status"] == "run" and f["mode"] == "offline" and f["max_abs_err"] < FP32_TOL
    assert load_bundle(bundle.root).manifest.to_dict() == m.to_dict()


def test_onnx_teacher_dynamic_frames_match_eager(teacher, onnx_bundle):
    _check_offline_manifest(onnx_bundle, "onnx", FRAMES_RANGE)
    loaded = load_bundle(onnx_bundle.root)
    shapes = set()
    for n, seed in ((20, 1), (45, 2)):  # two clip lengths through the one file: the frame axis is dynamic
        x = _clip(n, seed)
        ref = _eager_log_probs(teacher, x)
        got = _runtime_log_probs(loaded, x)
        assert got.shape == ref.shape == (teacher.output_lengths(torch.tensor(n)).item(), len(VOCAB))
        assert np.abs(got - ref).max() < FP32_TOL
        assert np.ptp(ref, axis=0).max() > 1e-3  # the outputs change over time: the comparison means something
        shapes.add(got.shape)
    assert len(shapes) == 2


def test_onnx_teacher_metadata_says_offline(onnx_bundle):
    from slsdk.toolchains.onnx.export import read_metadata

    meta = read_metadata(onnx_bundle.model_path)
    assert meta["model_type"] == "slsdk-teacher" and meta["mode"] == "offline"
    assert "chunk_frames" not in meta and "state_names" not in meta
    assert meta["vocab"].split("\n") == VOCAB
    embedded = json.loads(meta["slsdk_manifest"])
    assert embedded["model_kind"] == "teacher" and embedded["streaming"]["mode"] == "offline"


def test_streaming_recognizer_refuses_an_offline_bundle(onnx_bundle):
    from slsdk.runtime.recognizer import Recognizer
    from slsdk.runtime.backends import BackendError

    with pytest.raises(BackendError, match=r"offline \(teacher\) bundle has no streaming step"):
        Recognizer(onnx_bundle.root)


def test_executorch_teacher_fixed_frames_match_eager(teacher, tmp_path):
    n = 16  # the shortest clip the temporal conv takes: the unrolled BiLSTM stays small and lowers fast
    b = convert(teacher, "executorch", "fp32", tmp_path / "et", vocab=VOCAB, teacher=True, frames_range=(n, n))
    _check_offline_manifest(b, "executorch", (n, n))
    assert "XnnpackBackend" in b.manifest.fidelity["validation"]["delegates"]
    loaded = load_bundle(b.root)
    for seed in (3, 4):  # two different clips of the fixed length
        x = _clip(n, seed)
        ref = _eager_log_probs(teacher, x)
        got = _runtime_log_probs(loaded, x)
        assert got.shape == ref.shape and np.abs(got - ref).max() < FP32_TOL
    with pytest.raises(RuntimeError):  # another length is refused by the ExecuTorch runtime, not mis-run
        _runtime_log_probs(loaded, _clip(n + 4, 5))


def test_executorch_teacher_with_a_frame_range_is_refused_before_work(teacher, tmp_path):
    with pytest.raises(ValueError, match=r"one fixed frame count; pass --frames T:T"):
        convert(teacher, "executorch", "fp32", tmp_path / "et", vocab=VOCAB, teacher=True,
                frames_range=FRAMES_RANGE)
    with pytest.raises(ValueError, match="teacher \\(offline\\) export supports the onnx, ort and executorch"):
        convert(teacher, "coreml", "fp16", tmp_path / "cm", vocab=VOCAB, teacher=True)
    assert not (tmp_path / "et").exists() and not (tmp_path / "cm").exists()


def test_heldout_clips_outside_the_frames_range_are_named(teacher, tmp_path):
    """Held-out clips the offline model cannot take give a clear error, not a runtime resize failure."""
    frames = (np.random.default_rng(0).random((20, 32, 32, 3)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"held-out clips must have 16\.\.16 frames .*\(0, 20\)"):
        convert(teacher, "onnx", "fp32", tmp_path / "onnx", vocab=VOCAB, teacher=True, frames_range=(16, 16),
                heldout=[(frames, [1, 2])])
    assert not (tmp_path / "onnx").exists()
