"""Where and how a training process runs: the device, the DDP process group (torchrun), the seeding, and the
GPU-path decisions (AMP dtype, channels-last, DataLoader options, the DDP backend).

The decisions are plain functions of what they depend on (a device type, a compute capability, whether NCCL
exists) so that they are tested without the hardware:

* :func:`amp_plan`: AMP on CUDA only; bf16 where the GPU does it natively (compute capability >= 8.0: Ampere,
  Hopper, ...; every ROCm GPU torch supports), else fp16 with a ``GradScaler`` (bf16 *emulated* on a V100 / T4
  is slower than fp32, so ``torch.cuda.is_bf16_supported()``'s default, which counts emulation, is not used).
* :func:`use_channels_last`: weights in channels-last on CUDA for conv-based models (most parameters in
  ``Conv2d``: the EfficientNet-Lite0 student, whose cuDNN NHWC kernels are the fast ones). A ViT (the CLIP
  teachers, the ``vit-tiny`` student) has one conv, the patch embedding (under 1 % of its weights), and runs
  on matmuls: channels-last does nothing for it, and it is left as is.
* :func:`loader_options`: pinned memory on CUDA; persistent workers whenever there are workers (the trainer
  passes the epoch inside each index, so a worker's dataset copy need not be told, see
  :class:`slsdk.train.loop.EpochSampler`).
* :func:`ddp_backend`: NCCL on CUDA (where torch has it), gloo on CPU / MPS.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from slsdk.errors import DeviceError


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda (the local rank's GPU) > mps > cpu."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    seed = int(seed) % (2 ** 31)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def determinism(deterministic: bool):
    """Within: with ``deterministic``, torch's deterministic algorithms (an op without one warns instead of
    failing), cuDNN's deterministic kernels without autotuning and cuBLAS's fixed workspace; without, torch's
    defaults (fastest). The process's previous settings come back on exit."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def determinism_record(seed: int, device: torch.device) -> dict:
    """What decides whether a run can be repeated bit for bit, stored in every checkpoint and metrics row: the
    seed, the determinism switches, the threads and the kernels' instruction set (``AVX2`` / ``AVX512``: CPUs
    of the two widths sum in different orders, so their runs differ in the last bits and then diverge), and
    the library versions."""
    rec = {"seed": int(seed), "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
           "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
           "cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "threads": torch.get_num_threads(),
           "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "torch_version": str(torch.__version__),
           "numpy_version": str(np.__version__)}
    if device.type == "cuda" and torch.cuda.is_available():
        rec["cuda"] = str(torch.version.cuda)
        rec["cudnn"] = int(torch.backends.cudnn.version() or 0)
        rec["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return rec


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch of one DDP rank (a resumed run draws the same numbers)."""
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101 + 17) % (2 ** 31)


@dataclass
class DistEnv:
    """This process's place in a DDP run (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created: bool = False       # we called init_process_group (and destroy it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise single process."""
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    if not dist.is_available():
        raise DeviceError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise DeviceError(f"WORLD_SIZE={world} but ${var} is not set; launch with torchrun")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    backend = ddp_backend(device)
    if _wants_cuda(device, torch.cuda.is_available()):
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    return DistEnv(rank, world, local, True)


# ------------------------------------------------------------------------------------------ GPU-path decisions
def _wants_cuda(device: str | torch.device, cuda_available: bool) -> bool:
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    return cuda_available and kind in ("auto", "cuda")


def ddp_backend(device: str | torch.device = "auto", cuda_available: bool | None = None,
                nccl_available: bool | None = None) -> str:
    """The process-group backend for a run on ``device``: ``nccl`` on CUDA (``auto`` where CUDA exists) when
    torch was built with NCCL, ``gloo`` otherwise (CPU, MPS, or a CUDA build without NCCL, e.g. Windows)."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if nccl_available is None:
        nccl_available = dist.is_available() and dist.is_nccl_available()
    return "nccl" if _wants_cuda(device, cuda_available) and nccl_available else "gloo"


def bf16_native(capability: tuple[int, int] | None, hip: bool = False) -> bool:
    """Whether a GPU computes bf16 natively: CUDA compute capability >= 8.0 (A100, RTX 30xx, L4, H100, ...)
    or any ROCm GPU torch supports. A V100 (7.0) or T4 (7.5) only emulates it."""
    return bool(hip) or (capability is not None and int(capability[0]) >= 8)


@dataclass(frozen=True)
class AmpPlan:
    """How the training step runs: autocast on or off, in which dtype, with a GradScaler or not."""

    enabled: bool
    dtype: torch.dtype | None = None     # torch.bfloat16 | torch.float16 (None: off)
    scaler: bool = False                 # fp16 needs loss scaling; bf16 has fp32's exponent range
    note: str | None = None              # why the plan differs from what was asked (printed once)

    @property
    def label(self) -> str:
        """``bf16`` | ``fp16`` | ``fp32`` (what checkpoints and the console record)."""
        if not self.enabled:
            return "fp32"
        return "bf16" if self.dtype == torch.bfloat16 else "fp16"


def amp_plan(amp: bool, amp_dtype: str, device_type: str, capability: tuple[int, int] | None = None,
             hip: bool = False) -> AmpPlan:
    """AMP for a device: off unless ``amp`` and CUDA; ``bf16`` where the GPU has it natively
    (:func:`bf16_native`), else ``fp16`` with a GradScaler (and a note saying so); ``fp16`` when asked."""
    if amp_dtype not in ("bf16", "fp16"):
        raise ValueError(f"amp_dtype must be bf16 or fp16, got {amp_dtype!r}")
    if not amp or device_type != "cuda":
        return AmpPlan(False)
    if amp_dtype == "bf16":
        if bf16_native(capability, hip):
            return AmpPlan(True, torch.bfloat16, False)
        cap = "unknown" if capability is None else f"{capability[0]}.{capability[1]}"
        return AmpPlan(True, torch.float16, True,
                       f"this GPU (compute capability {cap}) has no native bf16; AMP runs in fp16 with a GradScaler")
    return AmpPlan(True, torch.float16, True)


def device_capability(device: torch.device) -> tuple[int, int] | None:
    """The CUDA compute capability of ``device`` (None for other devices)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))


def amp_plan_for(amp: bool, amp_dtype: str, device: torch.device) -> AmpPlan:
    """:func:`amp_plan` for a real device (its capability read from torch)."""
    return amp_plan(amp, amp_dtype, device.type, device_capability(device), hip=bool(torch.version.hip))


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3, compute capability 9.0, 79.2 GiB)`` / ``cpu (8 threads)`` / ``mps``."""
    if device.type == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(device)
        return f"{device} ({p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 2 ** 30:.1f} GiB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def device_name(device: torch.device) -> str:
    """The accelerator's product name (``NVIDIA H100 80GB HBM3``), or the device type."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return device.type


def conv_share(model: nn.Module) -> float:
    """The fraction of ``model``'s parameters held by 2-D convolutions (EfficientNet ~0.9, ViT-B/16 ~0.007)."""
    total = sum(p.numel() for p in model.parameters())
    if not total:
        return 0.0
    conv = sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    return conv / total


CONV_SHARE_FOR_CHANNELS_LAST = 0.5


def use_channels_last(model: nn.Module, device_type: str, enabled: bool = True) -> bool:
    """Whether to put ``model``'s weights in channels-last: asked for, on CUDA, and conv-based (at least half
    its parameters in ``Conv2d``). ViTs do not benefit (one patch-embedding conv; the rest is matmuls).
    On CPU the EfficientNet student already feeds its convs NHWC inputs in eager mode."""
    return bool(enabled) and device_type == "cuda" and conv_share(model) >= CONV_SHARE_FOR_CHANNELS_LAST


def loader_options(num_workers: int, device_type: str, persistent: bool = True) -> dict:
    """DataLoader keyword arguments: ``pin_memory`` on CUDA (page-locked batches copy asynchronously with
    ``non_blocking=True``), ``persistent_workers`` when there are workers (no process start-up, and their
    in-memory clip cache kept, every epoch)."""
    n = max(0, int(num_workers))
    return {"num_workers": n, "pin_memory": device_type == "cuda", "persistent_workers": bool(persistent) and n > 0}


def maybe_compile(module: nn.Module, enabled: bool, backend: str | None = None) -> bool:
    """``torch.compile`` ``module`` in place (``nn.Module.compile``: its state_dict keys stay as they are, no
    ``_orig_mod.`` prefix) when ``enabled``; returns whether it did. Compilation happens at the first call."""
    if not enabled:
        return False
    if not hasattr(torch, "compile"):
        raise DeviceError(f"compile is on but torch {torch.__version__} has no torch.compile (torch >= 2.0)")
    kw = {} if backend is None else {"backend": backend}
    module.compile(**kw)
    return True


__all__ = ["AmpPlan", "DistEnv", "amp_plan", "amp_plan_for", "bf16_native", "conv_share", "ddp_backend",
           "describe_device", "determinism_record", "device_capability", "device_name", "epoch_seed", "init_distributed", "loader_options",
           "maybe_compile", "resolve_device", "seed_everything", "determinism", "use_channels_last"]
