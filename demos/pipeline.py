"""`slsdk demo`: the whole pipeline offline on the embedded synthetic signing data.

synthetic data -> teacher (frozen-architecture CLIP + AdaptSign, CTC) -> streaming student (distilled) ->
every target x precision (bundles, fidelity measured by each target's runtime) -> stream a held-out video
through the runtime -> one results table, printed once, and in the output folder results.json, the training
curves (teacher/, student/), bench/bench.* and the bundles. Every stage longer than a moment shows progress.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from rich.console import Console

from slsdk import fileio
from slsdk.bench import BenchRow, bench_bundles, dir_size_mb, write_table
from slsdk.convert import convert
from slsdk.data import read_folder
from slsdk.data.synthetic import generate_synthetic, quick_settings
from slsdk.data.video import read_video
from slsdk.models.student import StudentConfig
from slsdk.runtime.api import recognize_video
from slsdk.tables import NA, fit_table, num
from slsdk.train import DistillConfig, TrainConfig, distill, teacher_config, train
from slsdk.train.checkpoint import load_model
from slsdk.train.pretrain import PretrainConfig, pretrain_backbone

# (target, precision) pairs the demo converts: every target, fp32/fp16 and int8 where the target allows
DEMO_TARGETS = (("onnx", "fp32"), ("onnx", "int8"), ("ort", "fp32"), ("ort", "int8"), ("executorch", "fp32"),
                ("executorch", "int8"), ("executorch-coreml", "fp16"), ("coreml", "fp16"), ("coreml", "int8"))


# the demo's budget (about 15 minutes on 2 CPU cores: 981 s with the 10-epoch teacher, docs/results.md)
PRETRAIN_STEPS = 1000          # teacher tower (ViT-S/16-demo, 96 px)
STUDENT_PRETRAIN_STEPS = 3000  # student encoder (48 px, patch 8): ~15x cheaper per frame, so it gets more
STUDENT_PRETRAIN_POOL = 480     # rendered sentences to sample its frames from (vs 160 for the teacher)
TEACHER_EPOCHS, TEACHER_LR = 10, 1e-3
# the full demo's data set (docs/results.md, "The demo's teacher over three seeds"): 12 signers, 8 of them
# training signers (336 training videos, as 6 x 56 before) and 4 held out, so the teacher learns from more
# people and test_si averages over more unseen ones (the draw-to-draw spread of test_si was how well one
# teacher happened to fit 2 unseen signers); test sets large enough to compare two runs: test_si 4 x 32 videos
# (about 530 glosses), test_us each of the 10 new sentences by 6 training signers (about 230): at the
# generator's defaults (about 160 glosses each) one error is 0.6 points and the binomial standard error of a
# 10 % WER is 2.3 points
DEMO_DATA = dict(num_signers=12, num_test_si_signers=4, sentences_per_signer=42, dev_per_signer=5,
                 test_si_per_signer=32, test_us_per_sentence=6)
STUDENT_EPOCHS, STUDENT_LR = 10, 1e-3
STUDENT = {}                   # StudentConfig overrides (the defaults are the phone student)


def quick_kwargs(num_glosses: int | None = None) -> dict:
    """A tiny synthetic set (tests, `--quick`): :func:`slsdk.data.synthetic.quick_settings` (``num_glosses``:
    that many glosses instead of 6, the training sentences scaled to draw them all)."""

    return quick_settings(num_glosses)


def _heldout(samples, vocab, limit: int):

    return [(read_video(s.video), vocab.encode(s.glosses)) for s in samples[:limit]]


def demo_data(out: Path, quick: bool = False, seed: int = 0) -> Path:
    """Stage 1: the demo's synthetic data set in ``out`` (made again if it was made with other settings)."""
    settings = quick_kwargs() if quick else DEMO_DATA
    try:
        return generate_synthetic(out, seed=seed, progress=True, **settings)
    except FileExistsError:   # the demo's own data set made with other settings (--quick vs full): replace it
        return generate_synthetic(out, seed=seed, progress=True, overwrite=True, **settings)


def demo_teacher_tower(data: Path, weights: Path, quick: bool = False, seed: int = 0, console=None):
    """Stage 2 (teacher half): pretrain the teacher's small CLIP tower, the stand-in for CLIP weights."""
    return pretrain_backbone(data, weights, PretrainConfig(steps=20 if quick else PRETRAIN_STEPS, seed=seed),
                             console=console)


def demo_train_teacher(data: Path, out: Path, weights: Path, quick: bool = False, seed: int = 0, **overrides):
    """Stage 3: the demo's AdaptSign teacher on the frozen tower ``weights`` (``overrides``: TrainConfig fields
    that replace the demo's, for experiments such as benchmarks/demo_teacher_seeds.py)."""
    tcfg = TrainConfig(**{**dict(epochs=1 if quick else TEACHER_EPOCHS, batch_size=4, lr=TEACHER_LR, warmup_steps=20,
                                 seed=seed, augment=not quick), **overrides})
    return train(data, out, teacher_config(hidden=64 if quick else 256, weights=str(weights)), tcfg,
                 overwrite=True)


def run_demo(out: Path, quick: bool = False, seed: int = 0, console=None) -> dict:
    """Run every stage; returns the results dict also written to OUT/results.json."""

    console = console or Console()
    out = Path(out)
    # one demo per output folder at a time; a second demo there replaces the files the first one wrote (proven by
    # fileio's ledger or their content), never a file of the user's
    with fileio.output_lock(out, overwrite=True):
        return _run_demo(out, quick, seed, console)


def _run_demo(out: Path, quick: bool, seed: int, console) -> dict:

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    stages: dict[str, float] = {}

    def stage(name):
        console.rule(f"[bold]{name}")
        stages[name] = time.perf_counter()

    def done(name):
        stages[name] = round(time.perf_counter() - stages[name], 1)

    stage("1/7 synthetic signing data")
    data = demo_data(out / "data", quick, seed)
    done("1/7 synthetic signing data")

    stage("2/7 pretrain the CLIP towers (stand-in for CLIP weights)")
    console.print("No pretrained CLIP weights can be downloaded here: the demo pretrains its small CLIP tower "
                  "(and the student's) on rendered frames of the training signers and of new random people "
                  "(never the held-out signers), then freezes it like real CLIP.", soft_wrap=False)
    student_cfg = StudentConfig(num_classes=2, **STUDENT)
    p_teacher = demo_teacher_tower(data, out / "clip" / "teacher-visual.safetensors", quick, seed, console)
    p_student = pretrain_backbone(data, out / "clip" / "student-visual.safetensors",
                                  PretrainConfig(steps=20 if quick else STUDENT_PRETRAIN_STEPS, seed=seed,
                                                 pool_videos=8 if quick else STUDENT_PRETRAIN_POOL),
                                  vision_config=student_cfg.encoder_config, console=console)
    done("2/7 pretrain the CLIP towers (stand-in for CLIP weights)")

    stage("3/7 teacher: frozen CLIP ViT + AdaptSign + CTC")
    teacher = demo_train_teacher(data, out / "teacher", p_teacher.weights, quick, seed)
    done("3/7 teacher: frozen CLIP ViT + AdaptSign + CTC")

    stage("4/7 distil the streaming student")
    dcfg = DistillConfig(epochs=1 if quick else STUDENT_EPOCHS, batch_size=4, lr=STUDENT_LR, warmup_steps=20,
                         seed=seed,
                         augment=not quick, student_weights=str(p_student.weights),
                         student={**STUDENT, **({"hidden": 64} if quick else {})})
    student = distill(teacher.best_checkpoint, data, out / "student", dcfg, overwrite=True)
    if not student.report:   # no report: say where the student stands (with one, the results table shows it)
        console.print(student.summary(), soft_wrap=False)
    done("4/7 distil the streaming student")

    stage("5/7 int8 + convert to every target")
    model, vocab, _ = load_model(student.best_checkpoint)
    test = read_folder(data, "test_si")
    heldout = _heldout(test, vocab, 4 if quick else len(test))
    calib = [v for v, _ in _heldout(read_folder(data, "train"), vocab, 4 if quick else 16)]
    bundles, rows = {}, []
    for target, precision in DEMO_TARGETS:
        name = f"{target}-{precision}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                b = convert(model, target, precision, out / "bundles" / name, vocab=vocab, heldout=heldout,
                            calib=calib if precision == "int8" else None)
            bundles[name] = b
            rows.append(name)   # timed below, with the other bundles
            console.print(fidelity_line(name, b.manifest.fidelity), soft_wrap=False)
        except Exception as e:  # keep going: the table says what failed

            rows.append(BenchRow(target, precision, "failed", note=str(e)[:120]))
            console.print(f"[red]{name} failed: {e}", soft_wrap=False)
    # every bundle timed interleaved (int8 / fp32 ratios measured in one run)
    timed = dict(zip(bundles, bench_bundles([b.root for b in bundles.values()], iters=5 if quick else 20)))
    rows = [timed[r] if isinstance(r, str) else r for r in rows]
    done("5/7 int8 + convert to every target")

    stage("6/7 stream a held-out video through the runtime")
    run_bundle = next((bundles[k] for k in ("onnx-int8", "executorch-int8", "onnx-fp32") if k in bundles), None)
    streamed = None
    if run_bundle is not None:
        rec = recognize_video(run_bundle.root, test[0].video)
        streamed = {"video": str(test[0].video), "bundle": run_bundle.root.name, "reference": test[0].glosses,
                    "recognised": rec.result.glosses, "events": rec.result.events,
                    "real_time_factor": round(rec.real_time_factor, 4)}
        console.print(f"reference : {' '.join(test[0].glosses)}\nrecognised: {rec.result.text or '(nothing)'}  "
                      f"(real-time factor {num(rec.real_time_factor)})", soft_wrap=False)
    done("6/7 stream a held-out video through the runtime")

    stage("7/7 results")
    report = student.report or {}
    results = {
        "pretrain": {"teacher": p_teacher.metrics, "student": p_student.metrics},
        "teacher": {"checkpoint": str(teacher.best_checkpoint), "dev_wer": teacher.dev_wer,
                    "size_mb": round(dir_size_mb(teacher.best_checkpoint), 2)},
        "student": {"checkpoint": str(student.best_checkpoint), "dev_wer": student.dev_wer,
                    "size_mb": round(dir_size_mb(student.best_checkpoint), 2)},
        "distill_report": report, "targets": [r.__dict__ for r in rows], "streamed": streamed,
        "stage_seconds": stages, "total_seconds": round(time.perf_counter() - t_start, 1), "quick": quick,
    }
    wer = report.get("wer", {}) if isinstance(report, dict) else {}
    torch_wer = {who: wer.get(who, {}).get("test_si") if isinstance(wer.get(who), dict) else None
                 for who in ("teacher", "student")}
    console.print(results_table(rows, torch_wer, {who: results[who]["size_mb"] for who in torch_wer}, console))
    g = report.get("gmacs_per_frame", {}) if isinstance(report, dict) else {}
    if g.get("teacher") and g.get("student"):
        scfg = model.config
        results["compute"] = {"teacher_gmacs_per_frame": g["teacher"], "student_gmacs_per_frame": g["student"],
                              "student_over_teacher": g["student"] / g["teacher"],
                              "algorithmic_latency_s": scfg.algorithmic_latency_s}
        console.print(f"GMACs per frame: teacher {num(g['teacher'])}, student {num(g['student'])} "
                      f"(1/{num(g['teacher'] / g['student'])}); student algorithmic latency "
                      f"{num(scfg.algorithmic_latency_s)} s (chunk {scfg.chunk_frames} frames at {scfg.fps:g} fps)",
                      soft_wrap=False)
    bench_files = write_table(rows, out / "bench") if rows else {}
    done("7/7 results")
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    # the demo's own results of an earlier run are replaced (fileio proves they are slsdk's); a user's file never
    fileio.atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str) + "\n", overwrite=True)
    wrote = [out / "results.json", *(out / who / "curves.png" for who in ("teacher", "student")),
             *bench_files.values()]
    console.print(final_line(results["total_seconds"], [p for p in wrote if p.is_file()], out / "bundles"),
                  soft_wrap=False)
    return results


def fidelity_line(name: str, fidelity: dict) -> str:
    """One bundle's fidelity to torch, to meaningful digits: ``onnx-int8: max abs logit err 2.4e-07, WER 85.7 %
    (torch 85.7 %)``; a figure the bundle does not carry prints ``n/a``."""
    return (f"{name}: max abs logit err {num(fidelity.get('max_abs_err'), 2)}, "
            f"WER {num(fidelity.get('wer'), unit='%')} (torch {num(fidelity.get('wer_torch'), unit='%')})")


def results_table(rows, torch_wer: dict, torch_size_mb: dict, console):
    """The demo's results: the torch models, then one row per target (``BenchRow`` s), fitted to ``console``."""
    cells = [(f"torch {who}", "fp32", "ok", num(torch_wer.get(who)), num(torch_size_mb.get(who)), NA, NA)
             for who in ("teacher", "student")]
    cells += [(r.format, r.precision, r.status, num(r.wer), num(r.size_mb), num(r.chunk_ms_p50), num(r.frames_per_s))
              for r in rows]
    return fit_table(console, "slsdk demo: synthetic signing, test_si split",
                     ("model / target", "precision", "status", "WER %", "size MB", "ms per chunk p50",
                      "frames per s"), cells, right=(False, False, False, True, True, True, True))


def final_line(total_s: float, files, bundles: Path) -> str:
    """The demo's last line: its time and every file it wrote (and the bundles' folder)."""
    return f"total {num(total_s)} s; wrote {', '.join(str(p) for p in files)}; bundles in {bundles}"
