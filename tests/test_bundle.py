"""Bundle manifest, checksums, path safety, zip round trip, and the targets table.

The model file is a real (tiny) ONNX graph built with onnx.helper and run in onnxruntime, so the
bundle tests need no torch export and stay fast.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slsdk.bundle import (
    FORMAT_VERSION,
    BundleError,
    Manifest,
    default_input_spec,
    inspect_bundle,
    load_bundle,
    write_bundle,
    zip_bundle,
)
from slsdk.targets import TARGETS, check_precision, get_target, targets_markdown

VOCAB = ["<blank>", "HELLO", "WORLD"]


def _onnx_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.arange(12, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["log_probs"]), helper.make_node("Identity", ["h"], ["h_out"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1, 3]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 2])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _manifest(**kw) -> Manifest:
    d = dict(
        target="onnx", precision="fp32", model_kind="student", model_file="model.onnx", vocab=list(VOCAB),
        input=default_input_spec(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), fps=25.0,
        streaming={"mode": "streaming", "chunk_frames": 8, "shift_frames": 8, "lookahead_frames": 0,
                   "output_stride": 4, "frame_shift_s": 0.16, "algorithmic_latency_s": 0.32,
                   "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"},
                              {"name": "h", "shape": [1, 2], "dtype": "float32"}],
                   "outputs": [{"name": "log_probs", "shape": [1, 3], "dtype": "float32"},
                               {"name": "h_out", "shape": [1, 2], "dtype": "float32"}],
                   "state": [{"name": "h", "input": "h", "output": "h_out", "shape": [1, 2]}]},
        model_config={"width": 4}, fidelity={"max_abs_err": 1e-6})
    d.update(kw)
    return Manifest(**d)


@pytest.fixture
def bundle_dir(tmp_path):
    src = _onnx_model(tmp_path / "src.onnx")
    return write_bundle(tmp_path / "b", _manifest(), {"model.onnx": src}).root


def test_round_trip_and_model_runs(bundle_dir):
    import onnxruntime as ort

    b = load_bundle(bundle_dir)
    m = b.manifest
    assert m.format == "slsdk-bundle" and m.format_version == FORMAT_VERSION
    assert m.vocab == VOCAB and m.blank_id == 0 and m.crop.section_json() == {"policy": "full"}
    assert set(m.files) == {"model.onnx"} and len(m.files["model.onnx"]["sha256"]) == 64
    assert Manifest.from_dict(json.loads((bundle_dir / "manifest.json").read_text())).to_dict() == m.to_dict()
    sess = ort.InferenceSession(str(b.model_path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": np.ones((1, 4), np.float32), "h": np.zeros((1, 2), np.float32)})[0]
    np.testing.assert_allclose(y, np.arange(12, dtype=np.float32).reshape(4, 3).sum(0, keepdims=True))
    text = inspect_bundle(bundle_dir)
    assert "onnx / fp32" in text and "HELLO" in text and "model.onnx" in text


def test_tampered_file_names_it(bundle_dir):
    p = bundle_dir / "model.onnx"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx.*sha256 checksum mismatch"):
        load_bundle(bundle_dir)


def test_truncated_file_names_it(bundle_dir):
    p = bundle_dir / "model.onnx"
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(BundleError, match=r"model\.onnx.*truncated"):
        load_bundle(bundle_dir)


def test_missing_file(bundle_dir):
    (bundle_dir / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model\.onnx.*missing"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("bad", ["../outside.onnx", "/etc/passwd", "sub/../../x.onnx"])
def test_manifest_path_escaping_bundle_refused(bundle_dir, bad):
    mp = bundle_dir / "manifest.json"
    d = json.loads(mp.read_text())
    d["files"][bad] = d["files"]["model.onnx"]
    mp.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="escapes|absolute"):
        load_bundle(bundle_dir)


def test_symlink_out_of_bundle_refused(bundle_dir, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle_dir / "model.onnx").read_bytes())
    (bundle_dir / "model.onnx").unlink()
    os.symlink(outside, bundle_dir / "model.onnx")
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(bundle_dir)


def test_zip_round_trip(bundle_dir, tmp_path):
    z = zip_bundle(bundle_dir, tmp_path / "b.zip")
    b = load_bundle(z)
    assert b.model_path.is_file() and b.manifest.to_dict() == load_bundle(bundle_dir).manifest.to_dict()
    # write_bundle(zip=True) too
    src = _onnx_model(tmp_path / "again.onnx")
    write_bundle(tmp_path / "c", _manifest(), {"model.onnx": src}, zip=True)
    assert load_bundle(tmp_path / "c.zip").manifest.target == "onnx"


def test_zip_with_escaping_member_refused(bundle_dir, tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(bundle_dir / "manifest.json", "manifest.json")
        zf.write(bundle_dir / "model.onnx", "../../evil.onnx")
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(z)
    assert not (tmp_path / "evil.onnx").exists()


def test_zip_with_symlink_member_refused(bundle_dir, tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(bundle_dir / "manifest.json", "manifest.json")
        info = zipfile.ZipInfo("model.onnx")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(z)


def test_newer_format_version_refused(bundle_dir):
    mp = bundle_dir / "manifest.json"
    d = json.loads(mp.read_text())
    d["format_version"] = FORMAT_VERSION + 1
    mp.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="newer than this slsdk"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("key,value,msg", [
    ("target", "onnxx", "did you mean 'onnx'"),
    ("precision", "fp16", "not available for target 'onnx'"),
    ("blank_id", 3, "blank_id must be 0"),
    ("vocab", [], "vocab must be a non-empty"),
    ("model_kind", "robot", "model_kind"),
])
def test_manifest_schema_errors(key, value, msg):
    with pytest.raises(BundleError, match=msg):
        Manifest.from_dict({**_manifest().to_dict(), key: value})


def test_manifest_missing_key_and_bad_json(bundle_dir):
    d = _manifest().to_dict()
    del d["streaming"]
    with pytest.raises(BundleError, match="missing required keys"):
        Manifest.from_dict(d)
    (bundle_dir / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: invalid JSON"):
        load_bundle(bundle_dir)


def test_write_is_atomic_on_failure(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        write_bundle(tmp_path / "b", _manifest(), {"model.onnx": tmp_path / "nope.onnx"})
    assert sorted(os.listdir(tmp_path)) == []  # neither the bundle nor a temp dir is left behind


def test_overwrite_replaces_whole_bundle(tmp_path):
    from slsdk.fileio import OutputExistsError

    src = _onnx_model(tmp_path / "src.onnx")
    write_bundle(tmp_path / "b", _manifest(), {"model.onnx": src, "extra.txt": src})
    with pytest.raises(OutputExistsError, match="already holds an slsdk bundle.*--overwrite"):
        write_bundle(tmp_path / "b", _manifest(), {"model.onnx": src})
    b = write_bundle(tmp_path / "b", _manifest(), {"model.onnx": src}, overwrite=True)
    assert b.replaced and b.root == tmp_path / "b"
    assert sorted(os.listdir(tmp_path / "b")) == ["manifest.json", "model.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["b", "src.onnx"]   # no temp or .old folder left


# --- the targets table ---------------------------------------------------------------------------
def test_targets_table():
    assert list(TARGETS) == ["onnx", "ort", "executorch", "executorch-coreml", "coreml"]
    assert {t.suffix for t in TARGETS.values()} == {".onnx", ".ort", ".pte", ".mlpackage"}
    for t in TARGETS.values():
        assert t.default_precision in t.precisions
    md = targets_markdown()
    assert all(f"`{n}`" in md for n in TARGETS) and md.count("\n") == len(TARGETS) + 1


def test_unknown_target_did_you_mean():
    with pytest.raises(ValueError, match=r"unknown target 'executorc'; did you mean 'executorch'\?.*valid targets: "
                                         r"onnx, ort, executorch, executorch-coreml, coreml"):
        get_target("executorc")
    assert get_target("CoreML").name == "coreml"


def test_precision_not_allowed():
    with pytest.raises(ValueError, match=r"precision 'fp16' is not available for target 'executorch' "
                                         r"\(allowed: fp32, int8\)"):
        check_precision("executorch", "fp16")
    with pytest.raises(ValueError, match="did you mean 'int8'"):
        check_precision("onnx", "int9")
    assert check_precision("coreml", "INT8") == "int8"


# --------------------------------------------------------------------------------------------------
# format version 2: the resize before the centre crop and the real tensor dtypes are in the manifest
# --------------------------------------------------------------------------------------------------
def test_manifest_records_the_resize_before_the_crop(bundle_dir):
    from slsdk.data.transforms import eval_transform

    m = load_bundle(bundle_dir).manifest
    assert FORMAT_VERSION == 2 and m.format_version == 2
    assert m.input.resize_shorter == eval_transform(32).resize_to == 37 and m.input.crop == "center"
    text = inspect_bundle(bundle_dir)
    assert "resize shorter side to 37 px, center crop 32x32" in text and "v2" in text


def test_version_1_bundle_still_loads_with_the_256_224_rule(bundle_dir):
    mp = bundle_dir / "manifest.json"
    d = json.loads(mp.read_text())
    d["format_version"] = 1
    for k in ("resize_shorter", "crop"):
        del d["input"][k]
    mp.write_text(json.dumps(d))
    m = load_bundle(bundle_dir).manifest
    assert m.format_version == 1 and m.input.resize_shorter == 37 and m.input.crop == "center"
    assert "(format v1 default)" in inspect_bundle(bundle_dir)


def test_version_2_manifest_needs_the_resize(bundle_dir):
    d = json.loads((bundle_dir / "manifest.json").read_text())
    del d["input"]["resize_shorter"]
    with pytest.raises(BundleError, match="input.resize_shorter is missing"):
        Manifest.from_dict(d)


@pytest.mark.parametrize("field,value,msg", [
    ("resize_shorter", 31, r"input.resize_shorter must be an integer >= max\(height, width\) = 32"),
    ("resize_shorter", 36.5, "input.resize_shorter must be an integer"),
    ("resize_shorter", True, "input.resize_shorter must be an integer"),
    ("crop", "random", r"input.crop must be one of \['center'\]"),
])
def test_input_resize_and_crop_validated(field, value, msg):
    d = _manifest().to_dict()
    d["input"][field] = value
    with pytest.raises(BundleError, match=msg):
        Manifest.from_dict(d)


def test_tensor_dtypes_validated_and_shown(bundle_dir):
    d = _manifest().to_dict()
    d["streaming"]["outputs"][0]["dtype"] = "half"
    with pytest.raises(BundleError, match=r"streaming.outputs 'log_probs': dtype must be one of"):
        Manifest.from_dict(d)
    d["streaming"]["outputs"][0]["dtype"] = "float16"
    assert Manifest.from_dict(d).streaming.outputs[0].dtype == "float16"
    assert "output log_probs" in inspect_bundle(bundle_dir) and "float32 [1, 3]" in inspect_bundle(bundle_dir)


def test_format_version_zero_refused():
    with pytest.raises(BundleError, match="invalid format_version 0"):
        Manifest.from_dict({**_manifest().to_dict(), "format_version": 0})
