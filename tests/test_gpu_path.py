"""The GPU path's decisions (AMP dtype, channels-last, loader options, DDP backend, fused optimizer, ORT execution
providers) tested from what they depend on (a compute capability, a device type), and the parts that run the
same on a CPU (the epoch carried to persistent workers, channels-last checkpoints, torch.compile, the
gpu_check script's code path). What only a GPU shows (bf16 speed and memory, NCCL, ORT's CUDA provider) is
``benchmarks/gpu_check.sh``'s table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tiny_data import tiny_synthetic

from slsdk.bundle import load_bundle
from slsdk.data.video import write_video
from slsdk.runtime.backends import BackendError, open_backend
from slsdk.toolchains.onnx.backend import (
    PROVIDERS_ENV,
    OnnxRuntimeBackend,
    check_providers,
    load_onnxruntime,
    parse_providers,
)
from slsdk.train.environment import (
    amp_plan,
    bf16_native,
    conv_share,
    ddp_backend,
    describe_device,
    loader_options,
    maybe_compile,
    use_channels_last,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TINY_TEACHER = dict(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2)


# ------------------------------------------------------------------------------------------------ AMP
@pytest.mark.parametrize("cap, hip, dtype, scaler", [
    ((9, 0), False, torch.bfloat16, False),    # H100
    ((8, 0), False, torch.bfloat16, False),    # A100
    ((8, 9), False, torch.bfloat16, False),    # L4 / RTX 40xx
    ((7, 5), False, torch.float16, True),      # T4: bf16 only emulated
    ((7, 0), False, torch.float16, True),      # V100
    (None, False, torch.float16, True),        # capability unknown: the safe choice
    ((9, 4), True, torch.bfloat16, False),     # ROCm (MI300)
])
def test_bf16_where_native_else_fp16_with_a_grad_scaler(cap, hip, dtype, scaler):
    plan = amp_plan(True, "bf16", "cuda", cap, hip=hip)
    assert plan.enabled and plan.dtype == dtype and plan.scaler == scaler
    assert plan.label == ("bf16" if dtype == torch.bfloat16 else "fp16")
    if scaler:   # the fallback is said, with the capability
        assert "fp16 with a GradScaler" in plan.note and (cap is None or f"{cap[0]}.{cap[1]}" in plan.note)
    else:
        assert plan.note is None
    assert bf16_native(cap, hip) == (dtype == torch.bfloat16)


def test_amp_off_elsewhere_and_fp16_when_asked():
    for dev in ("cpu", "mps"):
        plan = amp_plan(True, "bf16", dev, None)
        assert not plan.enabled and plan.dtype is None and not plan.scaler and plan.label == "fp32"
    assert not amp_plan(False, "bf16", "cuda", (9, 0)).enabled
    plan = amp_plan(True, "fp16", "cuda", (9, 0))
    assert plan.dtype == torch.float16 and plan.scaler and plan.note is None
    with pytest.raises(ValueError, match="bf16 or fp16"):
        amp_plan(True, "fp8", "cuda", (9, 0))


# ------------------------------------------------------------------------------------------------ DDP, loader
@pytest.mark.parametrize("device, cuda, nccl, want", [
    ("cuda", True, True, "nccl"), ("cuda:1", True, True, "nccl"), ("auto", True, True, "nccl"),
    (torch.device("cuda", 0), True, True, "nccl"),
    ("auto", False, True, "gloo"), ("cpu", True, True, "gloo"), ("mps", False, False, "gloo"),
    ("cuda", True, False, "gloo"),            # a CUDA build without NCCL (Windows)
])
def test_ddp_backend_nccl_on_cuda_gloo_on_cpu(device, cuda, nccl, want):
    assert ddp_backend(device, cuda_available=cuda, nccl_available=nccl) == want


def test_ddp_backend_here_and_the_device_line():
    if not torch.cuda.is_available():
        assert ddp_backend("auto") == "gloo" and ddp_backend("cpu") == "gloo"
    assert describe_device(torch.device("cpu")).startswith("cpu (")


def test_loader_options_pin_on_cuda_persist_with_workers():
    assert loader_options(4, "cuda") == {"num_workers": 4, "pin_memory": True, "persistent_workers": True}
    assert loader_options(0, "cuda") == {"num_workers": 0, "pin_memory": True, "persistent_workers": False}
    assert loader_options(2, "cpu") == {"num_workers": 2, "pin_memory": False, "persistent_workers": True}
    assert loader_options(2, "cuda", persistent=False)["persistent_workers"] is False


def test_setup_line_says_how_a_run_trains():
    from slsdk.train.loop import _setup_line

    line = _setup_line(torch.device("cuda", 0), amp_plan(True, "fp16", "cuda", (7, 5)), True, True, True,
                       loader_options(4, "cuda"))
    assert line.startswith("device: cuda:0")
    for part in ("fp16 autocast + GradScaler", "channels-last weights", "fused optimizer", "torch.compile",
                 "4 loader workers (persistent, pinned memory)"):
        assert part in line, line
    assert _setup_line(torch.device("cpu"), amp_plan(True, "bf16", "cpu"), False, False, False,
                       loader_options(0, "cpu")).startswith("device: cpu (")


class _Epochs(torch.utils.data.Dataset):
    """Returns the epoch its own copy was told (what a VideoDataset's augmentation draws from)."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.tensor([self.epoch, i])


def test_persistent_workers_see_each_epoch_through_the_sampler():
    from slsdk.train.loop import EpochDataset, EpochSampler

    ds = _Epochs()
    sampler = EpochSampler(torch.utils.data.SequentialSampler(ds))
    loader = torch.utils.data.DataLoader(EpochDataset(ds), batch_size=4, sampler=sampler, num_workers=1,
                                         persistent_workers=True)
    plain = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True)
    seen, stale = [], []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)            # reaches the main process's copy only
        seen.append(next(iter(loader))[:, 0].tolist())
        stale.append(next(iter(plain))[:, 0].tolist())
    assert seen == [[0] * 4, [1] * 4, [2] * 4]
    assert stale == [[0] * 4] * 3       # why: a persistent worker keeps the dataset copy it started with


# ------------------------------------------------------------------------------------------------ channels-last
def test_channels_last_for_conv_students_on_cuda_only():
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.models.student import StreamingStudent, student_config
    from slsdk.train.trainer import teacher_config

    lite0 = StreamingStudent(student_config("efficientnet-lite0", 10, image_size=32))
    vit = StreamingStudent(student_config("vit-tiny", 10))
    with torch.device("meta"):      # shapes only: the ViT-B/16 AdaptSign teacher without its 86M weights
        teacher = CSLRRecognizer(teacher_config("ViT-B/16", variant="adaptsign", num_classes=1000))
    assert conv_share(lite0) > 0.5 and conv_share(vit) < 0.05 and conv_share(teacher) < 0.01
    assert use_channels_last(lite0, "cuda")
    assert not use_channels_last(lite0, "cuda", enabled=False)
    assert not use_channels_last(lite0, "cpu")          # the student makes its inputs NHWC itself on CPU
    assert not use_channels_last(vit, "cuda") and not use_channels_last(teacher, "cuda")   # ViTs: matmuls


def test_channels_last_weights_checkpoint_like_any_other(tmp_path):
    """A GPU run saves channels-last conv weights: they load into a plain model and give the same logits."""
    from slsdk.models.student import StreamingStudent, student_config

    torch.manual_seed(0)
    cfg = student_config("efficientnet-lite0", 6, image_size=32)
    a = StreamingStudent(cfg).eval()
    a.to(memory_format=torch.channels_last)
    assert a.encoder.trunk._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    b = StreamingStudent(cfg).eval()
    b.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    assert b.encoder.trunk._conv_stem.weight.is_contiguous()
    x = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x, torch.tensor([8]))["sequence_logits"],
                                   b(x, torch.tensor([8]))["sequence_logits"], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ optimizer
def test_fused_adam_on_cuda_and_a_resume_keeps_this_devices_kernels():
    from slsdk.train.config import TrainConfig
    from slsdk.train.loop import _load_state
    from slsdk.train.optim import build_optimizer, fused_optimizer

    assert fused_optimizer("adamw", "cuda") and fused_optimizer("adam", "cuda")
    assert not fused_optimizer("sgd", "cuda") and not fused_optimizer("adamw", "cpu")
    assert not fused_optimizer("adamw", None)
    lin = torch.nn.Linear(3, 2)
    named = list(lin.named_parameters())
    opt = build_optimizer(named, TrainConfig(), device_type="cpu")
    assert not any(g.get("fused") for g in opt.param_groups)
    # a checkpoint from a fused (CUDA) run resumed here: its state loads, this device's kernels stay
    saved_sd = opt.state_dict()
    for g in saved_sd["param_groups"]:
        g["fused"] = True
    job = SimpleNamespace(model=lin, aux=None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    _load_state(job, {"model": lin.state_dict(), "optimizer": saved_sd}, opt, sched, None, Path("last.pt"))
    assert not any(g.get("fused") for g in opt.param_groups)


# ------------------------------------------------------------------------------------------------ compile
def test_compile_in_place_keeps_state_dict_keys():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    keys = list(m.state_dict())
    assert maybe_compile(m, False) is False
    assert maybe_compile(m, True, backend="eager") is True
    x = torch.randn(3, 4)
    y = m(x)
    assert y.shape == (3, 2) and list(m.state_dict()) == keys     # no _orig_mod. prefix in checkpoints


# ------------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("gpu") / "data", test_si_per_signer=1)


def _cfg(**kw):
    from slsdk.train import TrainConfig

    base = dict(epochs=2, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1)
    base.update(kw)
    return TrainConfig(**base)


def test_workers_persist_and_train_as_without_them(data, tmp_path):
    """Persistent workers (the epoch carried with each index) augment every epoch as the main process does:
    the same losses as num_workers=0; the device and precision are in metrics.jsonl and the checkpoint."""
    from slsdk.train import load_checkpoint, teacher_config, train

    a = train(data, tmp_path / "w0", teacher_config(**TINY_TEACHER), _cfg(num_workers=0), progress=False)
    b = train(data, tmp_path / "w1", teacher_config(**TINY_TEACHER), _cfg(num_workers=1), progress=False)
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "time_s"} for h in b.history]
    rows = [json.loads(line) for line in (tmp_path / "w1" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["device"], r["amp"]) for r in rows] == [("cpu", "fp32")] * 2
    extra = load_checkpoint(b.last_checkpoint)["extra"]
    assert extra["device"] == "cpu" and extra["device_name"] == "cpu" and extra["amp"] == "fp32"
    tc = load_checkpoint(b.last_checkpoint)["train_config"]
    assert tc["compile"] is False and tc["channels_last"] is True and tc["persistent_workers"] is True


@pytest.mark.slow
def test_compile_trains_a_tiny_teacher(data, tmp_path):
    """compile=True through the trainer (inductor on the CPU: a C++ compiler and minutes on 2 cores)."""
    from slsdk.train import load_checkpoint, teacher_config, train

    res = train(data, tmp_path / "c", teacher_config(**TINY_TEACHER), _cfg(epochs=1, compile=True), progress=False)
    assert np.isfinite(res.history[0]["train_loss"])
    assert not [k for k in load_checkpoint(res.last_checkpoint)["model"] if "_orig_mod" in k]


# ------------------------------------------------------------------------------------------------ ORT providers
def test_parse_providers_short_and_full_names():
    assert parse_providers("TensorRT, cuda ,cpu,cuda") == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                           "CPUExecutionProvider"]
    assert parse_providers(["CUDAExecutionProvider", "cpu"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert parse_providers("trt,cpu")[0] == "TensorrtExecutionProvider"
    with pytest.raises(BackendError, match="unknown onnxruntime execution provider 'gpu'.*cuda"):
        parse_providers("gpu,cpu")
    with pytest.raises(BackendError, match="no execution provider"):
        parse_providers(" , ")


def test_a_missing_provider_is_one_line_naming_the_available_and_the_package():
    check_providers(["CPUExecutionProvider"], ["CPUExecutionProvider"])
    with pytest.raises(BackendError) as e:
        check_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], ["AzureExecutionProvider",
                                                                            "CPUExecutionProvider"], "1.2.3")
    msg = str(e.value)
    assert "\n" not in msg and "cuda (CUDAExecutionProvider)" in msg and "onnxruntime 1.2.3" in msg
    assert "offers azure, cpu" in msg and "onnxruntime-gpu" in msg
    with pytest.raises(BackendError, match="TensorRT"):
        check_providers(["TensorrtExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.fixture(scope="module")
def identity_onnx(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["frames"], ["log_probs"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "id.onnx"
    onnx.save(model, path)
    return path


def test_onnxruntime_backend_takes_an_ordered_provider_list(identity_onnx, monkeypatch):
    pytest.importorskip("onnxruntime")
    b = OnnxRuntimeBackend(identity_onnx, ["frames"], ["log_probs"], providers="cpu")
    assert b.providers == ["CPUExecutionProvider"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(b.run({"frames": x})["log_probs"], x)
    available = load_onnxruntime().get_available_providers()
    if "CUDAExecutionProvider" not in available:    # this machine: the error a user without onnxruntime-gpu sees
        with pytest.raises(BackendError) as e:
            OnnxRuntimeBackend(identity_onnx, ["frames"], ["log_probs"], providers="cuda,cpu")
        assert "\n" not in str(e.value) and "onnxruntime-gpu" in str(e.value) and "cpu" in str(e.value)
        monkeypatch.setenv(PROVIDERS_ENV, "cuda,cpu")       # the same list from the environment
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            OnnxRuntimeBackend(identity_onnx, ["frames"], ["log_probs"])
        monkeypatch.delenv(PROVIDERS_ENV)
    assert "CPUExecutionProvider" in OnnxRuntimeBackend(identity_onnx, ["frames"], ["log_probs"]).providers


def test_open_backend_passes_providers_to_onnxruntime(tiny_student, tmp_path):
    pytest.importorskip("onnxruntime")
    from slsdk.convert import convert

    student = tiny_student(5)
    bundle = load_bundle(convert(student, "onnx", "fp32", tmp_path / "b", vocab=["<blank>", "a", "b", "c", "d"]).root)
    assert open_backend(bundle, providers="cpu").providers == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in load_onnxruntime().get_available_providers():
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            open_backend(bundle, providers="cuda,cpu")
    # the CLI, as a user types it: cpu runs; a provider this onnxruntime lacks is one line, no traceback
    write_video(tmp_path / "clip.mp4", np.zeros((12, 48, 64, 3), np.uint8), fps=25)
    run = [sys.executable, "-m", "slsdk.cli", "run", "b", "clip.mp4", "--json"]
    ok = subprocess.run(run + ["--providers", "cpu"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    if "CUDAExecutionProvider" not in load_onnxruntime().get_available_providers():
        bad = subprocess.run(run + ["--providers", "cuda"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert bad.returncode == 1 and "onnxruntime-gpu" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


# ------------------------------------------------------------------------------------------------ gpu_check
def test_gpu_check_shell_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a machine without CUDA sees")
def test_gpu_check_refuses_without_cuda():
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr and "--device cpu" in r.stderr, r.stderr


def test_gpu_check_runs_its_code_path_on_the_cpu(tmp_path):
    """``gpu_check.py --device cpu --tiny --steps 1``: every stage runs (tiny models, one step) and the one table
    comes out; the numbers mean nothing here."""
    out = tmp_path / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                        "--steps", "1", "--json", str(out), "--work", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = json.loads(out.read_text())
    checks = [row["check"] for row in rows]
    for name in ("device", "prepare", "loader", "teacher", "student", "onnxruntime", "nccl", "total"):
        assert name in checks, checks
    assert all(row["ok"] is not False for row in rows), rows
    assert checks.count("teacher") == 2      # the AMP setting (fp32 on a CPU) and the fp32 replay of its batches
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("-") and lines[-1].startswith("-") and " check " in lines[1]


def test_determinism_is_recorded_and_switched_only_during_the_run(data, tmp_path):
    """The seed, the determinism switches and the kernels' instruction set (AVX2 / AVX512) are in the checkpoint;
    ``deterministic=True`` turns torch's deterministic algorithms on for the run and back off after it; two runs
    with the same seed on this machine give the same weights bit for bit."""
    import torch

    from slsdk.train import load_checkpoint, teacher_config, train

    runs = [train(data, tmp_path / f"d{k}", teacher_config(**TINY_TEACHER), _cfg(epochs=1, seed=5, deterministic=True),
                  progress=False) for k in range(2)]
    assert not torch.are_deterministic_algorithms_enabled()
    a, b = (load_checkpoint(r.last_checkpoint) for r in runs)
    rec = a["extra"]["determinism"]
    assert rec["seed"] == 5 and rec["deterministic_algorithms"] is True
    assert rec["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and rec["threads"] >= 1
    assert a["train_config"]["deterministic"] is True
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
