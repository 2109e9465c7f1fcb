"""The GPU path, checked on one GPU in a few minutes; prints one table (``benchmarks/gpu_check.sh`` runs it).

    python benchmarks/gpu_check.py [--steps 8] [--warmup 2] [--workers 4] [--compile] [--json OUT.json]
    python benchmarks/gpu_check.py --device cpu --tiny --steps 1      # the same code at a tiny size (tests)

Self-contained: it writes its own synthetic clips (moving blobs, random gloss labels) into a temporary folder,
prepares them with ``slsdk data prepare``'s :func:`~slsdk.data.prepare.prepare_dataset` (``--crop full``), and
feeds training from that cache through the trainer's DataLoader settings (pinned memory, persistent workers,
the epoch carried with each index). Random weights throughout (nothing is downloaded). Rows:

* device        name, compute capability, memory; the AMP plan the trainer picks (bf16 where native, else fp16
                with a GradScaler); the DDP backend it would use (nccl on CUDA)
* prepare       clips/s of ``prepare_dataset`` on the synthetic videos
* loader        frames/s of the prepared-cache DataLoader alone (it must outrun the training step)
* teacher       AdaptSign on ViT-B/16 at 224 px (frozen tower, as its recipe trains it): a few AdamW steps fed
                by the loader, in bf16 autocast (frames/s, peak memory), then the same steps on the same batches
                from the same weights in fp32 (frames/s, peak memory, loss agreement) and in fp16 + GradScaler
* student       the EfficientNet-Lite0 student: bf16 steps with channels-last weights and without (frames/s)
                (the ViT teacher has < 1 % of its weights in convs: channels-last is not applied to it)
* onnxruntime   the student converted to an ONNX bundle; its log-probs on a video with onnxruntime's CUDA
                provider vs its CPU provider (max |diff|, greedy agreement)
* nccl          a one-rank NCCL process group: an all_reduce on the GPU
* compile       (``--compile``) the bf16 teacher steps under ``torch.compile``: first step (compilation), then
                frames/s

A stage that fails is a row saying why (the rest still run); a stage past ``--budget-s`` is skipped. Exit
status 0 when every row that ran passed, 1 otherwise, 2 when CUDA is missing (``--device cuda``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from slsdk.data import Sample, Vocabulary, read_folder, write_folder_annotations
from slsdk.data.dataset import VideoDataset, batch_to_device, collate
from slsdk.data.prepare import PrepareConfig, prepare_dataset
from slsdk.data.transforms import Normalize
from slsdk.data.video import write_video
from slsdk.runtime.backends import BackendError, run_video
from slsdk.toolchains.onnx.backend import OnnxRuntimeBackend, load_onnxruntime

LOSS_RTOL = 0.02        # bf16 / fp16 vs fp32 loss on the first step (same weights, same batch)
LOGITS_ATOL = 5e-2      # onnxruntime CUDA vs CPU log-probs (its CUDA provider may use TF32 convs and matmuls)
ARGMAX_AGREE = 0.98     # frames whose best class is the same (the classifier sharpened so ties are rare)
_STOPPED: dict = {}     # set by SIGTERM (gpu_check.sh's time limit): the table is still printed


def _on_sigterm(signum, frame):
    _STOPPED["why"] = "stopped by SIGTERM (the time limit)"
    raise TimeoutError(_STOPPED["why"])


# ---------------------------------------------------------------------------------------------- the table
class Table:
    """Rows of (check, setting, result, ok) printed once at the end."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, setting: str, result: str, ok: bool | None = True, **values) -> None:
        self.rows.append({"check": check, "setting": setting, "result": result, "ok": ok, **values})

    def render(self) -> str:
        head = ("check", "setting", "result", "")
        mark = {True: "ok", False: "FAIL", None: "-"}
        cells = [head] + [(r["check"], r["setting"], r["result"], mark[r["ok"]]) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        line = "+".join("-" * (w + 2) for w in widths)
        out = [line]
        for k, c in enumerate(cells):
            out.append("|".join(f" {v:<{w}} " for v, w in zip(c, widths)).rstrip())
            if k == 0:
                out.append(line)
        out.append(line)
        return "\n".join(out)

    @property
    def passed(self) -> bool:
        return all(r["ok"] is not False for r in self.rows)


def _mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2 ** 20:,.0f} MiB"


# ---------------------------------------------------------------------------------------------- settings
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (cpu: the code path only, for tests)")
    ap.add_argument("--tiny", action="store_true", help="tiny models and clips (ViT-T/16-test at 32 px, a tiny "
                    "vit-tiny student): a CPU-sized run of the same code")
    ap.add_argument("--steps", type=int, default=8, help="measured training steps per setting")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured steps first (default 2; 0 with --tiny)")
    ap.add_argument("--batch", type=int, default=2, help="clips per step")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default 32; 20 with --tiny)")
    ap.add_argument("--clips", type=int, default=None, help="synthetic clips (default 12; 4 with --tiny)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 4; 0 with --tiny)")
    ap.add_argument("--backbone", default=None, help="teacher tower (default ViT-B/16; ViT-T/16-test with --tiny)")
    ap.add_argument("--student", default=None, help="student encoder (default efficientnet-lite0; vit-tiny with "
                    "--tiny)")
    ap.add_argument("--compile", action="store_true", help="also time the bf16 teacher steps under torch.compile")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip stages that would start after this")
    ap.add_argument("--work", type=Path, default=None, help="folder for the synthetic data (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    tiny = a.tiny
    a.warmup = (0 if tiny else 2) if a.warmup is None else a.warmup
    a.frames = (20 if tiny else 32) if a.frames is None else a.frames
    a.clips = (4 if tiny else 12) if a.clips is None else a.clips
    a.workers = (0 if tiny else 4) if a.workers is None else a.workers
    a.backbone = a.backbone or ("ViT-T/16-test" if tiny else "ViT-B/16")
    a.student = a.student or ("vit-tiny" if tiny else "efficientnet-lite0")
    if a.steps < 1 or a.batch < 1 or a.frames < 8 or a.clips < a.batch:
        ap.error("need --steps >= 1, --batch >= 1, --frames >= 8 and --clips >= --batch")
    return a


GLOSSES = [f"G{i}" for i in range(10)]


# ---------------------------------------------------------------------------------------------- stages
def make_data(root: Path, clips: int, frames: int, height: int, seed: int = 0):
    """``clips`` synthetic videos (a bright blob moving over noise) as a folder-layout data set."""
    rng = np.random.default_rng(seed)
    width = height * 4 // 3
    samples = []
    for k in range(clips):
        f = rng.integers(0, 70, (frames, height, width, 3), dtype=np.uint8)
        s = max(4, height // 5)
        x0, y0, dx = rng.integers(0, width // 3), rng.integers(0, height - s), int(rng.integers(1, 4))
        for t in range(frames):
            x = min(width - s, x0 + dx * t)
            f[t, y0:y0 + s, x:x + s] = (230, 200, 170)
        path = write_video(root / "videos" / f"c{k:03d}.mp4", f, fps=25)
        glosses = [GLOSSES[i] for i in rng.choice(len(GLOSSES), size=2, replace=False)]
        samples.append(Sample(f"c{k:03d}", glosses, path, "s1", "train"))
    write_folder_annotations(root, samples)
    return root


def prepared_loader(cache: Path, size: int, mean, std, batch: int, workers: int, device_type: str):
    """The trainer's DataLoader over the prepared cache (its options from ``loader_options``)."""
    import torch

    from slsdk.train.environment import loader_options
    from slsdk.train.loop import EpochDataset, EpochSampler

    samples = read_folder(cache, "train")
    vocab = Vocabulary.build(samples)
    ds = VideoDataset(samples, vocab, size, mean, std, train=True, seed=0)
    kw = loader_options(workers, device_type)
    sampler = EpochSampler(torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(0)))
    loader = torch.utils.data.DataLoader(EpochDataset(ds), batch_size=batch, sampler=sampler, collate_fn=collate,
                                         drop_last=True, **kw)
    return loader, sampler, vocab, ds, kw


def batches(loader, sampler):
    """Batches forever (epoch after epoch)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(objective, batch_iter, device, amp, steps: int, warmup: int, lr: float = 1e-4,
                record: list | None = None, replay: list | None = None, channels_last: bool = False,
                model=None, compile_: bool = False, normalize=None) -> dict:
    """AdamW steps (the trainer's optimizer, fused on CUDA) under the AMP plan ``amp``; returns frames/s over
    the measured steps, peak memory, the per-step losses and the first step's time. ``record``: keep the CPU
    batches; ``replay``: use these batches instead of ``batch_iter``."""
    import torch

    from slsdk.train.config import TrainConfig
    from slsdk.train.environment import maybe_compile
    from slsdk.train.optim import build_optimizer

    if channels_last and model is not None:
        model.to(memory_format=torch.channels_last)
    objective.to(device).train()
    named = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    opt = build_optimizer(named, TrainConfig(lr=lr), device_type=device.type)
    scaler = torch.amp.GradScaler("cuda") if amp.scaler else None
    maybe_compile(objective, compile_)
    params = [p for _, p in named]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses, frames, t_measure, first_s = [], 0, None, None
    for i in range(warmup + steps):
        b = replay[i] if replay is not None else next(batch_iter)
        if record is not None:
            record.append(b)
        if i == warmup:
            _sync(device)
            t_measure = time.perf_counter()
        t_step = time.perf_counter()
        # uint8 crops to the device, normalised there (as the trainer: slsdk.data.dataset.batch_to_device)
        videos, lengths, labels, label_lengths = batch_to_device(b, device, normalize)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            out = objective(videos, lengths, labels, label_lengths)
        total = out["total"]
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(total).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        losses.append(float(total.detach()))
        if i == 0:
            _sync(device)
            first_s = time.perf_counter() - t_step
        if i >= warmup:
            frames += int(b["lengths"].sum())
    _sync(device)
    dt = time.perf_counter() - t_measure
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"fps": frames / dt, "peak": peak, "losses": losses, "first_s": first_s, "seconds": dt}


def student_objective(student):
    """CTC on the student's sequence log-probs (what the timing needs; distillation adds the teacher)."""
    import torch
    import torch.nn.functional as F

    class StudentCTC(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, videos, lengths, labels, label_lengths):
            out = self.model(videos, lengths)
            lp = F.log_softmax(out["sequence_logits"].float(), dim=-1)
            loss = F.ctc_loss(lp, labels.long(), out["feat_lengths"].long(), label_lengths.long(), zero_infinity=True)
            return {"total": loss}

    return StudentCTC(student)


def _resize_batch(b: dict, size: int, normalize=None) -> dict:
    import torch.nn.functional as F

    v = batch_to_device(b, "cpu", normalize)[0]
    n, t = v.shape[:2]
    small = F.interpolate(v.reshape(n * t, *v.shape[2:]), size=(size, size), mode="bilinear", align_corners=False)
    return {**b, "videos": small.reshape(n, t, 3, size, size).contiguous()}


def nccl_check(device) -> str:
    """A one-rank NCCL process group on ``device``: all_reduce a tensor."""
    import torch
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            device_id=device)
    try:
        x = torch.ones(4, device=device)
        dist.all_reduce(x)
        _sync(device)
        if not bool((x == 1).all()):
            raise RuntimeError(f"all_reduce gave {x.tolist()}")
        v = torch.cuda.nccl.version()
        return f"nccl {'.'.join(map(str, v)) if isinstance(v, tuple) else v}: all_reduce ok"
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- main
def run(a, table: Table | None = None) -> Table:
    import torch

    from slsdk.train.environment import (amp_plan, amp_plan_for, conv_share, ddp_backend, describe_device,
                                         device_capability, resolve_device, use_channels_last)

    t_start = time.perf_counter()
    table = Table() if table is None else table
    device = resolve_device(a.device)
    torch.manual_seed(0)

    def over_budget(stage: str) -> bool:
        if _STOPPED:
            table.add(stage, "", f"skipped: {_STOPPED['why']}", False)
            return True
        if time.perf_counter() - t_start > a.budget_s:
            table.add(stage, "", f"skipped: past the {a.budget_s:.0f} s budget", None)
            return True
        return False

    def stage(name: str, setting: str, fn):
        """Run ``fn``; a failure is a FAIL row with the error's first line (the rest still run)."""
        if over_budget(name):
            return None
        t0, n = time.perf_counter(), len(table.rows)
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a check reports every failure as a row
            traceback.print_exc(file=sys.stderr)
            msg = (str(e).strip().splitlines() or [""])[0][:200]
            table.add(name, setting, f"error: {type(e).__name__}: {msg}", False)
            return None
        finally:
            for r in table.rows[n:]:
                r["stage_s"] = round(time.perf_counter() - t0, 2)

    amp = amp_plan_for(True, "bf16", device)
    cap = device_capability(device)
    table.add("device", describe_device(device), f"torch {torch.__version__}, AMP {amp.label}"
              + (" + GradScaler" if amp.scaler else "") + f", DDP backend {ddp_backend(device)}", True,
              device=str(device), amp=amp.label, capability=cap)
    if amp.note:
        table.add("device", "amp", amp.note, None)

    tiny = a.tiny
    work = a.work or Path(tempfile.mkdtemp(prefix="slsdk-gpu-check-"))
    a.temp_work = None if a.work else work
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.train.evaluate import input_spec
    from slsdk.train.trainer import TeacherObjective, teacher_config

    def build_teacher(num_classes: int):
        torch.manual_seed(0)
        m = CSLRRecognizer(teacher_config(a.backbone, variant="adaptsign", num_classes=num_classes))
        m.set_trainable(backbone=False)
        return m

    probe = build_teacher(len(GLOSSES) + 1)
    size, mean, std = input_spec(probe)
    norm = Normalize(mean, std)     # the batches are uint8: normalised on the device
    resize = round(size * 256 / 224)   # the dataset's resize size: the cache needs no second resize
    del probe

    # -- data: synthetic clips -> prepared cache ------------------------------------------------------------
    state: dict = {}

    def prepare():
        data = make_data(work / "data", a.clips, a.frames, max(resize, 48))
        t0 = time.perf_counter()
        res = prepare_dataset(data, work / "prepared", PrepareConfig(crop="full", size=resize), workers=1,
                              progress=False)
        dt = time.perf_counter() - t0
        state["cache"] = work / "prepared"
        table.add("prepare", f"{a.clips} clips x {a.frames} frames, crop full, {resize} px",
                  f"{a.clips / dt:.1f} clips/s ({dt:.1f} s)", True, clips_per_s=a.clips / dt)
        return res

    stage("prepare", "slsdk data prepare", prepare)
    if "cache" not in state:
        return table

    def loader_stage():
        loader, sampler, vocab, ds, kw = prepared_loader(state["cache"], size, mean, std, a.batch, a.workers,
                                                         device.type)
        state.update(loader=loader, sampler=sampler, vocab=vocab)
        t0 = time.perf_counter()
        n = 0
        for _ in range(2):     # two epochs: the second is what persistent workers (and their clip cache) speed up
            sampler.set_epoch(_)
            for b in loader:
                n += int(b["lengths"].sum())
        dt = time.perf_counter() - t0
        opts = (f"{kw['num_workers']} workers" + (", persistent" if kw["persistent_workers"] else "")
                + (", pinned" if kw["pin_memory"] else ""))
        pinned = kw["pin_memory"] and b["videos"].is_pinned()
        ok = pinned if kw["pin_memory"] else True
        table.add("loader", f"prepared cache, {opts}", f"{n / dt:,.0f} frames/s (2 epochs)"
                  + ("" if ok else "; batches NOT pinned"), ok, frames_per_s=n / dt)

    stage("loader", "prepared cache", loader_stage)
    if "loader" not in state:
        return table
    it = batches(state["loader"], state["sampler"])
    vocab = state["vocab"]
    teacher_setting = f"AdaptSign {a.backbone} {size} px, batch {a.batch} x {a.frames} frames"

    # -- teacher: bf16 (fed by the loader), fp32 and fp16 + GradScaler (same weights, same batches) ----------
    init = build_teacher(len(vocab)).state_dict()
    kept: list = []
    runs: dict = {}

    def teacher_run(label: str, plan, replay=None, compile_=False, warmup=None):
        warmup = a.warmup if warmup is None else warmup
        model = build_teacher(len(vocab))
        model.load_state_dict(init)
        assert not use_channels_last(model, device.type), "a ViT must not get channels-last"
        obj = TeacherObjective(model)
        if replay is not None:
            replay = (replay * ((warmup + a.steps) // len(replay) + 1))[: warmup + a.steps]
        r = train_steps(obj, it, device, plan, a.steps, warmup, replay=replay, normalize=norm,
                        record=kept if replay is None else None, compile_=compile_)
        runs[label] = r
        del obj, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return r

    cl_note = f"channels-last off (conv share {conv_share(build_teacher(len(vocab))):.1%})"

    def bf16_stage():
        plan = amp if amp.enabled else amp_plan(False, "bf16", device.type)
        r = teacher_run(plan.label, plan)
        table.add("teacher", f"{teacher_setting}, {plan.label}, loader-fed",
                  f"{r['fps']:,.0f} frames/s, peak {_mib(r['peak'])}; {cl_note}",
                  all(np.isfinite(r["losses"])), frames_per_s=r["fps"], peak_bytes=r["peak"], losses=r["losses"])

    stage("teacher", f"{teacher_setting}, bf16", bf16_stage)
    first = next(iter(runs), None)

    def compare_stage(label: str, plan):
        def go():
            r = teacher_run(label, plan, replay=kept)
            base = runs[first]["losses"]
            rel = abs(base[0] - r["losses"][0]) / max(abs(r["losses"][0]), 1e-8)
            mean_rel = float(np.mean([abs(x - y) / max(abs(y), 1e-8) for x, y in zip(base, r["losses"])]))
            ok = bool(np.isfinite(r["losses"]).all()) and (first == label or rel <= LOSS_RTOL)
            vs = "" if first == label else (f"; loss vs {first}: step 1 {rel:.2%} (<= {LOSS_RTOL:.0%}), "
                                            f"mean over {len(base)} steps {mean_rel:.2%}")
            table.add("teacher", f"{teacher_setting}, {label}, same batches",
                      f"{r['fps']:,.0f} frames/s, peak {_mib(r['peak'])}{vs}", ok,
                      frames_per_s=r["fps"], peak_bytes=r["peak"], losses=r["losses"], step1_rel=rel)
        return go

    if first is not None and kept:
        stage("teacher", "fp32", compare_stage("fp32", amp_plan(False, "bf16", device.type)))
        if device.type == "cuda":
            stage("teacher", "fp16", compare_stage("fp16 + GradScaler", amp_plan(True, "fp16", "cuda", cap)))

    # -- student: channels-last on / off --------------------------------------------------------------------
    from slsdk.models.student import StreamingStudent, StudentConfig, student_config

    def build_student():
        torch.manual_seed(0)
        if tiny:
            cfg = StudentConfig(num_classes=len(vocab), image_size=32, patch_size=16, width=32, layers=1, heads=2,
                                feature_dim=32, hidden=32, chunk_frames=8)
        else:
            cfg = student_config(a.student, len(vocab))
        return StreamingStudent(cfg)

    def student_stage():
        s_size = build_student().config.image_size
        sb = [_resize_batch(b, s_size, norm) for b in kept] or None
        if sb is None:
            raise RuntimeError("no batches kept from the teacher run")
        sb = (sb * ((a.warmup + a.steps) // len(sb) + 1))[: a.warmup + a.steps]
        plan = amp if amp.enabled else amp_plan(False, "bf16", device.type)
        res = {}
        for cl in (False, True):
            m = build_student()
            wants = use_channels_last(m, device.type)
            if cl and not wants:
                continue
            r = train_steps(student_objective(m), None, device, plan, a.steps, a.warmup, replay=sb,
                            channels_last=cl, model=m)
            res[cl] = r
        share = conv_share(build_student())
        if True in res:
            gain = res[True]["fps"] / res[False]["fps"]
            result = (f"{res[False]['fps']:,.0f} -> {res[True]['fps']:,.0f} frames/s with channels-last "
                      f"(x{gain:.2f}), peak {_mib(res[True]['peak'])}")
        else:
            result = (f"{res[False]['fps']:,.0f} frames/s; channels-last not applied on {device.type} "
                      f"(conv share {share:.0%})")
        table.add("student", f"{a.student} {s_size} px, {plan.label}", result,
                  all(np.isfinite(r["losses"]).all() for r in res.values()),
                  frames_per_s={str(k): v["fps"] for k, v in res.items()})
        state["student"] = build_student().eval()

    if kept:
        stage("student", a.student, student_stage)

    # -- onnxruntime: CUDA provider vs CPU --------------------------------------------------------------------
    def ort_stage():
        from slsdk.convert import convert

        student = state["student"]
        with torch.no_grad():    # random weights give near-uniform log-probs: sharpen so the argmax means something
            student.head.classifier.weight.mul_(8.0)
        bundle = convert(student, "onnx", "fp32", work / "student-onnx", vocab=[vocab[i] for i in range(len(vocab))])
        m = bundle.manifest
        ins = [io.name for io in m.streaming.inputs]
        outs = [io.name for io in m.streaming.outputs]
        s = student.config.image_size
        rng = np.random.default_rng(1)
        video = rng.standard_normal((4 * student.config.chunk_frames, 3, s, s)).astype(np.float32)
        want = ["cuda", "cpu"] if device.type == "cuda" else ["cpu"]
        ort = load_onnxruntime()
        try:
            gpu = OnnxRuntimeBackend(bundle.model_path, ins, outs, providers=want)
        except BackendError as e:
            table.add("onnxruntime", f"student fp32, --providers {','.join(want)}", f"{e}", False,
                      available=ort.get_available_providers())
            return
        cpu = OnnxRuntimeBackend(bundle.model_path, ins, outs, providers="cpu")
        t0 = time.perf_counter()
        lg = run_video(gpu, m.streaming, video)
        t_gpu = time.perf_counter() - t0
        lc = run_video(cpu, m.streaming, video)
        diff = float(np.abs(lg - lc).max())
        agree = float((lg.argmax(-1) == lc.argmax(-1)).mean())
        ok = diff <= LOGITS_ATOL and agree >= ARGMAX_AGREE
        table.add("onnxruntime", f"student fp32 {s} px, {gpu.providers[0]} vs CPUExecutionProvider",
                  f"log-probs max |diff| {diff:.1e} (<= {LOGITS_ATOL:g}), argmax agree {agree:.0%} "
                  f"(>= {ARGMAX_AGREE:.0%}), "
                  f"{len(video) / t_gpu:,.0f} frames/s (first run)", ok, max_abs=diff, agreement=agree,
                  providers=gpu.providers)

    if "student" in state:
        stage("onnxruntime", "student", ort_stage)

    # -- NCCL, compile ------------------------------------------------------------------------------------------
    if device.type == "cuda":
        stage("nccl", "1 rank", lambda: table.add("nccl", f"1 rank on {device}", nccl_check(device), True))
    else:
        table.add("nccl", "", f"not checked on {device.type} (DDP backend there: {ddp_backend(device)})", None)

    if a.compile and kept:
        def compile_stage():
            plan = amp if amp.enabled else amp_plan(False, "bf16", device.type)
            r = teacher_run("compiled", plan, replay=kept, compile_=True, warmup=max(1, a.warmup))
            table.add("compile", f"{teacher_setting}, {plan.label}, torch.compile",
                      f"first step {r['first_s']:.1f} s (compiling), then {r['fps']:,.0f} frames/s",
                      all(np.isfinite(r["losses"])), frames_per_s=r["fps"], first_step_s=r["first_s"])
        stage("compile", "torch.compile", compile_stage)

    table.add("total", "", f"{time.perf_counter() - t_start:.0f} s", None)
    return table


def main(argv=None) -> int:
    a = parse_args(argv)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "slsdk-gpu-check-inductor"))
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, built for CUDA {torch.version.cuda}); this "
              "check needs one NVIDIA GPU (--device cpu --tiny runs the same code on the CPU, for tests)",
              file=sys.stderr)
        return 2
    if a.device == "cpu":
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    signal.signal(signal.SIGTERM, _on_sigterm)
    table = Table()
    try:
        run(a, table)
    except TimeoutError as e:      # outside a stage (a stage turns it into its own row)
        table.add("stopped", "", str(e), False)
    finally:
        if getattr(a, "temp_work", None) is not None:
            shutil.rmtree(a.temp_work, ignore_errors=True)
    sys.stderr.flush()
    print(table.render(), flush=True)
    if a.json:
        a.json.write_text(json.dumps(table.rows, indent=1, default=str) + "\n")
    return 0 if table.passed else 1


if __name__ == "__main__":
    sys.exit(main())
