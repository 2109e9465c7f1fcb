"""Conversion per target: a real StreamingStudent is exported, the written bundle is opened by the serving
backend (``open_backend``) and run chunk by chunk with state, against the torch model run whole (``forward``)
and chunked."""
from __future__ import annotations

import json
import platform
import sys

import numpy as np
import pytest
import torch

from slsdk.bundle import BundleError, load_bundle
from slsdk.convert import convert
from slsdk.models.clip import CLIP_MEAN, CLIP_STD
from slsdk.preprocess import Preprocess, prepare_video
from slsdk.runtime.backends import BackendError, open_backend, run_video
from slsdk.toolchains.torch.backend import TorchBackend
from slsdk.models.student import StreamingStudent, StudentConfig

VOCAB = ["<blank>"] + [f"G{i}" for i in range(11)]
FP32_TOL = 1e-4  # measured ~5e-7 for onnx / ort / executorch


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    cfg = StudentConfig(num_classes=len(VOCAB), image_size=32, patch_size=16, width=32, layers=1, heads=2,
                        feature_dim=32, hidden=32, chunk_frames=8)
    return StreamingStudent(cfg).eval()


@pytest.fixture(scope="module")
def heldout():
    g = torch.Generator().manual_seed(1)
    return [((torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8), [1, 2, 3]) for n in (21, 16)]


def _whole_video_log_probs(model, frames_u8):
    cfg = model.config
    v = prepare_video(frames_u8, Preprocess(cfg.image_size, cfg.mean, cfg.std))
    with torch.no_grad():
        out = model(torch.from_numpy(v).unsqueeze(0), torch.tensor([v.shape[0]]))
    return torch.log_softmax(out["sequence_logits"][:, 0], -1).numpy(), v


def _check_runs_like_torch(bundle, model, heldout):
    """Run the bundle's file in its serving backend, chunk by chunk, against the whole-video torch forward."""
    s = bundle.manifest.streaming
    backend = open_backend(bundle)
    for frames, _ in heldout:
        ref, v = _whole_video_log_probs(model, frames)
        got = run_video(backend, s, v)
        assert got.shape == ref.shape == (-(-len(frames) // 4), len(VOCAB))
        np.testing.assert_allclose(got, ref, atol=FP32_TOL)


def _check_manifest(b, target, precision, out_dtype="float32"):
    m = b.manifest
    assert m.input.resize_shorter == 37 and m.input.crop == "center"  # round(32 * 256 / 224), as trained
    assert (m.target, m.precision, m.model_kind) == (target, precision, "student")
    assert m.vocab == VOCAB and m.model_config["chunk_frames"] == 8
    s = m.streaming
    assert s.chunk_frames == 8 and s.output_stride == 4 and s.lookahead_frames == 0
    assert [st.name for st in s.state] == ["conv1_cache", "conv2_cache", "h", "c"]
    assert [io.name for io in s.inputs] == ["frames", "conv1_cache", "conv2_cache", "h", "c"]
    assert s.outputs[0].section_json() == {"name": "log_probs", "shape": [1, 2, len(VOCAB)], "dtype": out_dtype}
    assert {io.dtype for io in s.inputs} == {"float32"}
    assert load_bundle(b.root).manifest.to_dict() == m.to_dict()


def test_onnx_fp32(student, heldout, tmp_path):
    import onnx

    b = convert(student, "onnx", "fp32", tmp_path / "onnx", vocab=VOCAB, heldout=heldout)
    _check_manifest(b, "onnx", "fp32")
    f = b.manifest.fidelity
    assert f["status"] == "run" and f["runtime"] == "onnxruntime"
    assert f["max_abs_err"] < FP32_TOL and f["cosine"] > 0.99999 and f["wer_delta"] == 0
    _check_runs_like_torch(b, student, heldout)
    props = {p.key: p.value for p in onnx.load(str(b.model_path)).metadata_props}
    assert props["model_type"] == "slsdk-student" and props["vocab"].split("\n") == VOCAB
    assert props["chunk_frames"] == "8" and props["state_names"] == "conv1_cache,conv2_cache,h,c"
    assert json.loads(props["slsdk_manifest"])["streaming"]["output_stride"] == 4
    assert json.loads(props["slsdk_fidelity"])["max_abs_err"] == f["max_abs_err"]


def test_ort_fp32(student, heldout, tmp_path):
    b = convert(student, "ort", None, tmp_path / "ort", vocab=VOCAB, heldout=heldout)
    _check_manifest(b, "ort", "fp32")
    assert set(b.manifest.files) == {"model.ort", "required_operators.config"}
    cfg = b.path("required_operators.config").read_text()
    assert "ai.onnx" in cfg and "Conv" in cfg  # the operator list for a reduced ORT Mobile build
    assert b.model_path.read_bytes()[4:8] == b"ORTM"  # ORT format flatbuffer identifier
    assert b.manifest.fidelity["max_abs_err"] < FP32_TOL
    _check_runs_like_torch(b, student, heldout)


def test_executorch_fp32(student, heldout, tmp_path):
    b = convert(student, "executorch", "fp32", tmp_path / "et", vocab=VOCAB, heldout=heldout, zip=True)
    _check_manifest(b, "executorch", "fp32")
    f = b.manifest.fidelity
    assert f["runtime"] == "executorch" and f["max_abs_err"] < FP32_TOL
    assert "XnnpackBackend" in f["validation"]["delegates"]
    _check_runs_like_torch(b, student, heldout)
    zb = load_bundle(tmp_path / "et.zip")
    _check_runs_like_torch(zb, student, heldout)


def test_truncated_model_files_fail_clearly(student, tmp_path):
    from slsdk.toolchains.onnx.export import export_onnx
    from slsdk.toolchains.executorch.backend import ExecuTorchBackend
    from slsdk.toolchains.onnx.backend import OnnxRuntimeBackend

    m = student.export_module()
    names = (student.input_names(), student.output_names())
    p = export_onnx(m, student.example_inputs(), tmp_path / "m.onnx", input_names=names[0],
                    output_names=names[1], exporter="legacy")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(BackendError, match=r"m\.onnx: onnxruntime cannot load this model"):
        OnnxRuntimeBackend(p, *names)
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendError, match=r"m\.pte: the ExecuTorch runtime cannot load this program"):
        ExecuTorchBackend(pte, *names)


def test_unknown_target_and_precision_refused_before_work(student, tmp_path):
    with pytest.raises(ValueError, match="did you mean 'coreml'"):
        convert(student, "corml", out_dir=tmp_path / "x", vocab=VOCAB)
    with pytest.raises(ValueError, match=r"precision 'fp16' is not available for target 'onnx'"):
        convert(student, "onnx", "fp16", tmp_path / "x", vocab=VOCAB)
    with pytest.raises(ValueError, match="vocabulary has 3 entries but the model has 12 classes"):
        convert(student, "onnx", "fp32", tmp_path / "x", vocab=VOCAB[:3])
    with pytest.raises(ValueError, match="recipe='onnx-int8-dynamic' is only used with precision='int8'"):
        convert(student, "onnx", "fp32", tmp_path / "x", vocab=VOCAB, recipe="onnx-int8-dynamic")
    assert not (tmp_path / "x").exists()


def test_coreml_validated(student, tmp_path):
    b = convert(student, "coreml", "fp16", tmp_path / "cm", vocab=VOCAB)
    # an fp16 package takes float32 inputs and returns float16 outputs (state outputs too): the manifest says so
    _check_manifest(b, "coreml", "fp16", out_dtype="float16")
    assert b.model_path.is_dir() and b.model_path.name == "model.mlpackage"
    assert any(n.startswith("model.mlpackage/") and n.endswith("weight.bin") for n in b.manifest.files)
    from slsdk.toolchains.coreml.export import validate_coreml

    v = validate_coreml(b.model_path, inputs={"frames": [1, 8, 3, 32, 32], "conv1_cache": [1, 32, 4],
                                              "conv2_cache": [1, 32, 4], "h": [1, 32], "c": [1, 32]})
    assert v["spec_version"] >= 8 and v["outputs"]["log_probs"] == [1, 2, len(VOCAB)]
    s = b.manifest.streaming
    assert {io.name: io.dtype for io in s.inputs} == v["input_dtypes"]
    assert {io.name: io.dtype for io in s.outputs} == v["output_dtypes"]
    assert set(v["output_dtypes"].values()) == {"float16"} and set(v["input_dtypes"].values()) == {"float32"}
    assert {"conv", "lstm", "linear", "layer_norm"} & set(v["compute_ops"])
    with pytest.raises(ValueError, match=r"model\.mlpackage: input 'frames' has shape"):
        validate_coreml(b.model_path, inputs={"frames": [1, 4, 3, 32, 32], "conv1_cache": None,
                                              "conv2_cache": None, "h": None, "c": None})
    if platform.system() != "Darwin":
        assert b.manifest.fidelity["status"] == "validated, not run"
        assert "macOS" in b.manifest.fidelity["reason"]


@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction needs macOS (coremltools: 'Model "
                    "prediction is only supported on macOS'); on Linux the package is validated only")
def test_coreml_prediction_parity(student, heldout, tmp_path):
    b = convert(student, "coreml", "fp32", tmp_path / "cm32", vocab=VOCAB, heldout=heldout)
    assert b.manifest.fidelity["status"] == "run" and b.manifest.fidelity["max_abs_err"] < 1e-3


def test_executorch_coreml_validated(student, tmp_path):
    b = convert(student, "executorch-coreml", "fp16", tmp_path / "etc", vocab=VOCAB)
    _check_manifest(b, "executorch-coreml", "fp16")
    v = b.manifest.fidelity["validation"]
    assert v["delegates"] == ["CoreMLBackend"] and v["delegate_blob_bytes"] > 1000
    assert v["num_inputs"] == 5 and v["num_outputs"] == 5
    if platform.system() != "Darwin":
        from slsdk.toolchains.executorch.backend import ExecuTorchBackend

        assert "CoreMLBackend" in b.manifest.fidelity["reason"]
        with pytest.raises(BackendError, match="no CoreMLBackend"):
            open_backend(b)  # the targets table says why, before loading anything
        ins = [io.name for io in b.manifest.streaming.inputs]
        outs = [io.name for io in b.manifest.streaming.outputs]
        with pytest.raises(BackendError, match="cannot load this program"):
            ExecuTorchBackend(b.model_path, ins, outs)  # the Linux ExecuTorch runtime really lacks CoreMLBackend


def test_parity_detects_a_different_model(student, heldout):
    """The parity figures are able to fail: a perturbed copy of the model is far from the original."""
    import copy

    from slsdk.convert.parity import measure_fidelity

    other = copy.deepcopy(student)
    with torch.no_grad():
        other.head.classifier.weight.add_(0.5 * torch.randn_like(other.head.classifier.weight))
    from slsdk.models.model_io import model_io

    cfg = student.config
    vids = [prepare_video(f, Preprocess(cfg.image_size, cfg.mean, cfg.std)) for f, _ in heldout]
    names = (student.input_names(), student.output_names())
    streaming = model_io(student).streaming_section()
    f = measure_fidelity(TorchBackend(student.export_module(), *names), TorchBackend(other.export_module(), *names),
                         streaming, vids, refs=[r for _, r in heldout], precision="int8")
    assert f["max_abs_err"] > 0.1 and f["cosine"] < 0.999
    assert set(f) >= {"wer", "wer_torch", "wer_delta", "meets_int8_budget"}
    assert f["meets_int8_budget"] == (f["wer_delta"] <= 0.5)


def test_import_is_light():
    import subprocess

    code = ("import sys, slsdk.convert, slsdk.quantize, slsdk.bundle; "
            "print([m for m in ('executorch', 'coremltools', 'onnxruntime', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fidelity_and_calibration_frames_are_the_runtime_frames():
    """prepare_video (fidelity WER, int8 calibration) feeds exactly what the runtime and training eval feed:
    shorter side to round(S*256/224), centre crop, normalise -- not a plain resize of the whole frame."""
    import torch.nn.functional as F

    from slsdk.data.transforms import eval_transform

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    spec = Preprocess(48, CLIP_MEAN, CLIP_STD)
    got = prepare_video(frames, spec)
    want = eval_transform(48, CLIP_MEAN, CLIP_STD)(frames).numpy()
    # the numpy and torch resizes agree to one uint8 level (rounding), i.e. 1/255 before normalisation
    assert np.abs((got - want) * np.asarray(CLIP_STD).reshape(1, 3, 1, 1)).max() <= 1 / 255 + 1e-6
    np.testing.assert_array_equal(prepare_video(frames.transpose(0, 3, 1, 2), spec), got)
    naive = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, size=(48, 48), mode="bilinear")
    naive = ((naive - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)).numpy()
    assert np.abs(got - naive).max() > 0.1
    with pytest.raises(ValueError, match="must be 48x48"):
        prepare_video(np.zeros((2, 3, 40, 40), np.float32), spec)
