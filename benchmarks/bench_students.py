"""Teacher vs students on the Isharah-scale synthetic preset, measured in one run (never asserted).

    python benchmarks/bench_students.py [--out runs/isharah] [--glosses 100] [--teacher-epochs 8]
        [--student-epochs 6] [--lite0-size 128] [--lite0-freeze 0] [--lite0-epochs N] [--int8-videos 0]
        [--fp32-videos 16] [--targets ...] [--quick] [--render]

The run in docs/results.md: --teacher-epochs 8 --student-epochs 4 --lite0-size 96 --lite0-freeze 11 --lite0-epochs 3
--fp32-videos 8 --int8-videos 120 --targets onnx ort executorch (--no-raw).

Stages (a finished stage is skipped, an unfinished training stage resumes from its last.pt, so an interrupted
run continues; OUT/students.partial.json holds the models measured so far):

  1 data      ``slsdk data synth --preset isharah`` (15 signers, 5 held out for SI; US = unseen sentences)
  2 pretrain  the demo's stand-in for CLIP weights: ViT-S/16-demo tower and the vit-tiny student tower
  3 teacher   frozen ViT-S/16-demo + AdaptSign + BiLSTM, CTC (the demo's recipe)
  4 students  ``slsdk distill --student vit-tiny`` and ``--student efficientnet-lite0`` (ImageNet weights)
  5 measure   WER (dev / test_si / test_us, eager torch, greedy); GMACs/frame; frames/s in eager torch and in
              each target's runtime (onnxruntime for onnx/ort, ExecuTorch for the XNNPACK .pte), fp32 and int8;
              int8 WER on test_si in that runtime (the manifest's fidelity); the ViT-B/16 AdaptSign teacher's
              frames/s (random weights, 224 px: ``slsdk bench --arch``'s model) for the speed ratio

Writes OUT/students.json and OUT/students.md (the docs/results.md table).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

TARGETS = (("onnx", "fp32"), ("onnx", "int8"), ("ort", "fp32"), ("ort", "int8"), ("executorch", "fp32"),
           ("executorch", "int8"), ("executorch-coreml", "fp16"), ("coreml", "fp16"), ("coreml", "int8"))
SPLITS = ("dev", "test_si", "test_us")
# --budget: what fits ~1 hour on 2 shared CPU cores (the preset's signers, framing and splits; fewer glosses
# and sentences, so test splits have ~550 reference words instead of >= 2,000)
BUDGET_DATA = dict(num_glosses=40, num_train_sentences=120, sentences_per_signer=24, dev_per_signer=4,
                   test_si_per_signer=20, num_test_us_sentences=25, test_us_per_sentence=4)
BUDGET_ARGS = dict(pretrain_steps=300, teacher_epochs=4, student_epochs=3, lite0_size=96, lite0_freeze=8)
FULL_ARGS = dict(pretrain_steps=1000, teacher_epochs=8, student_epochs=6, lite0_size=128, lite0_freeze=0)


def _stage(console, name):
    console.rule(f"[bold]{name}")
    return time.perf_counter()


def _trained(run: Path, epochs: int) -> bool | None:
    """True: ``run`` holds a finished run of ``epochs``; False: an unfinished one (resume it); None: none."""
    from slsdk.train.run_folder import checkpoint_epoch as _checkpoint_epoch

    last = run / "last.pt"
    if not last.is_file() or not (run / "best.pt").is_file():
        return None
    done = _checkpoint_epoch(last)
    return None if done is None else done >= epochs


def build(args, console, students: tuple[str, ...] = ("vit-tiny", "efficientnet-lite0")) -> dict:
    """Stages 1-4; returns the paths of the data set and the checkpoints (the teacher and ``students``; the
    vit-tiny student's tower is pretrained only when that student is built)."""
    from slsdk.data.synthetic import generate_synthetic, preset_settings
    from slsdk.demos.pipeline import STUDENT_PRETRAIN_POOL, quick_kwargs
    from slsdk.models.student import StudentConfig
    from slsdk.train import DistillConfig, TrainConfig, distill, teacher_config, train
    from slsdk.train.pretrain import PretrainConfig, pretrain_backbone

    out = Path(args.out)
    quick = args.quick
    t0 = _stage(console, "1/5 data: the isharah preset")
    kw = preset_settings("isharah", **({**BUDGET_DATA} if args.budget else {}),
                         **({"num_glosses": args.glosses} if args.glosses else {}),
                         **({"duration": args.duration} if args.duration else {}))
    if quick:
        kw.update(quick_kwargs(), min_len=3, max_len=5)
    if args.no_raw or quick:
        kw["keep_raw"] = False
    data = generate_synthetic(out / "data", progress=True, **kw)
    spec = json.loads((data / "synthetic.json").read_text())
    console.print(f"{spec['splits']} videos, reference words {spec.get('reference_words')} "
                  f"({time.perf_counter() - t0:.0f} s)")

    t0 = _stage(console, "2/5 pretrain the CLIP towers (stand-in for CLIP weights)")
    p_teacher = out / "clip" / "teacher-visual.safetensors"
    if not p_teacher.is_file():
        pretrain_backbone(data, p_teacher, PretrainConfig(steps=20 if quick else args.pretrain_steps, seed=args.seed,
                                                          data_framing=args.tower_pool == "crops"),
                          console=console)
    p_student = out / "clip" / "student-visual.safetensors"
    if "vit-tiny" in students and not p_student.is_file():
        pretrain_backbone(data, p_student, PretrainConfig(steps=20 if quick else 3 * args.pretrain_steps,
                                                          seed=args.seed,
                                                          pool_videos=8 if quick else STUDENT_PRETRAIN_POOL,
                                                          data_framing=args.tower_pool == "crops"),
                          vision_config=StudentConfig(num_classes=2).encoder_config, console=console)
    console.print(f"({time.perf_counter() - t0:.0f} s)")
    if args.stop_after == "pretrain":
        return {"data": data, "teacher": None, "students": {}}

    t0 = _stage(console, "3/5 teacher")
    teacher = out / "teacher" / "best.pt"
    state = _trained(out / "teacher", 1 if quick else args.teacher_epochs)
    if not state:
        tcfg = TrainConfig(epochs=1 if quick else args.teacher_epochs, batch_size=4, lr=args.teacher_lr, warmup_steps=20,
                           seed=args.seed, augment=not quick, flip=not args.no_flip)
        train(data, out / "teacher", teacher_config(hidden=64 if quick else 256, weights=str(p_teacher)), tcfg,
              resume=state is False, overwrite=state is None, progress=True)
    console.print(f"({time.perf_counter() - t0:.0f} s)")
    if args.stop_after == "teacher":
        return {"data": data, "teacher": teacher, "students": {}}

    built = {}
    for name, weights, extra in (("vit-tiny", str(p_student), {}),
                                 ("efficientnet-lite0", None, {"image_size": args.lite0_size,
                                                               "freeze_blocks": args.lite0_freeze})):
        if name not in students:
            continue
        t0 = _stage(console, f"4/5 distil the {name} student")
        ckpt = out / f"student-{name}" / "best.pt"
        epochs = 1 if quick else args.student_epochs if name == "vit-tiny" else (args.lite0_epochs or args.student_epochs)
        state = _trained(ckpt.parent, epochs)
        if not state:
            dcfg = DistillConfig(epochs=epochs, batch_size=4,
                                 lr=args.lite0_lr if name != "vit-tiny" else 1e-3, warmup_steps=20,
                                 seed=args.seed, augment=not quick, flip=not args.no_flip, student_weights=weights, report=False,
                                 student_encoder=name, student={**extra, **({"hidden": 64} if quick else {})})
            distill(teacher, data, ckpt.parent, dcfg, resume=state is False, overwrite=state is None, progress=True)
        built[name] = ckpt
        console.print(f"({time.perf_counter() - t0:.0f} s)")
    return {"data": data, "teacher": teacher, "students": built}


def _subset(samples: list, n: int) -> list:
    """``n`` samples spread evenly over the list (every signer and sentence group); all when ``n`` is 0."""
    if not n or n >= len(samples):
        return list(samples)
    return [samples[int(i)] for i in (np.arange(n) * len(samples) / n).astype(int)]


def _videos(samples, vocab, limit):
    from slsdk.data.video import read_video

    samples = _subset(samples, limit)
    return [(read_video(s.video), vocab.encode(s.glosses)) for s in samples]


def measure(paths: dict, args, console, partial: Path | None = None) -> dict:
    """Stage 5: one row per model; per student a row per target x precision."""
    import tempfile

    import torch

    from slsdk.bench import bench_bundles, bench_torch_model, dir_size_mb, matmul_peak_gflops
    from slsdk.convert import convert
    from slsdk.data import read_folder
    from slsdk.models.factory import load_model
    from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
    from slsdk.train.evaluate import evaluate

    _stage(console, "5/5 measure")
    data = paths["data"]
    splits = {s: _subset(read_folder(data, s), args.eval_videos) for s in SPLITS}
    peak = matmul_peak_gflops()
    res = {"threads": torch.get_num_threads(), "matmul_peak_gflops": round(peak, 1), "models": {}, "targets": {}}
    console.print("ViT-B/16 AdaptSign teacher (random weights, 224 px, 16-frame clip), eager torch ...")
    torch.manual_seed(0)
    big = CSLRRecognizer(RecognizerConfig(backbone="ViT-B/16", num_classes=389, hidden=1024))
    row = bench_torch_model(big, 16, 224, "ViT-B/16 AdaptSign", iters=1 if args.quick else 2)
    res["vit_b16_teacher"] = {"frames_per_s": row.frames_per_s, "gmacs_per_frame": row.gmacs_per_frame}
    del big
    console.print(f"  {row.frames_per_s} frames/s, {row.gmacs_per_frame} GMACs/frame")
    models = {"teacher": paths["teacher"], **{f"student {k}": v for k, v in paths["students"].items()}}
    for label, ckpt in models.items():
        model, vocab, kind = load_model(ckpt)
        model.eval()
        wers = {}
        for split, samples in splits.items():
            t0 = time.perf_counter()
            r = evaluate(model, samples, split=split, vocab=vocab, device="cpu")
            wers[split] = {"wer": r.wer, "ref_words": r.n_ref}
            console.print(f"{label}: {split} WER {r.wer:.2f}% ({r.n_ref} words, {time.perf_counter() - t0:.0f} s)")
        size = model.config.input_size if kind == "teacher" else model.config.image_size
        frames = 16 if kind == "teacher" else model.config.chunk_frames
        row = bench_torch_model(model, frames, size, label, iters=20)
        res["models"][label] = {"wer": wers, "gmacs_per_frame": row.gmacs_per_frame,
                                "eager_frames_per_s": row.frames_per_s, "input_px": size,
                                "checkpoint_mb": round(dir_size_mb(ckpt), 2)}
        console.print(f"{label}: {row.gmacs_per_frame} GMACs/frame, eager {row.frames_per_s} frames/s")
        if kind == "teacher":
            if partial is not None:
                partial.write_text(json.dumps(res, indent=1, default=str) + "\n")
            continue
        test = splits["test_si"]
        held_fp32 = _videos(test, vocab, args.fp32_videos)
        held_int8 = _videos(test, vocab, args.int8_videos) if args.int8_videos != args.fp32_videos else held_fp32
        calib = [v for v, _ in _videos(read_folder(data, "train"), vocab, 16)]
        rows, converted = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for target, precision in [t for t in TARGETS if not args.targets or t[0] in args.targets]:
                name = f"{target}-{precision}"
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        b = convert(model, target, precision, Path(tmp) / name, vocab=vocab,
                                    heldout=held_int8 if precision == "int8" else held_fp32,
                                    calib=calib if precision == "int8" else None)
                    f = b.manifest.fidelity
                    rows[name] = {"wer": f.get("wer"), "wer_torch": f.get("wer_torch"), "wer_delta": f.get("wer_delta"),
                                  "max_abs_err": f.get("max_abs_err"), "cosine": f.get("cosine"),
                                  "videos": len(held_int8 if precision == "int8" else held_fp32)}
                    converted[name] = b.root
                except Exception as e:  # noqa: BLE001 - the table says what failed
                    rows[name] = {"status": "failed", "note": f"{type(e).__name__}: {e}"[:160]}
                console.print(f"{label} {name}: {rows[name]} ({time.perf_counter() - t0:.0f} s)")
            # every bundle of this model timed interleaved, so int8 / fp32 and target / target ratios hold
            for name, br in zip(converted, bench_bundles(list(converted.values()), iters=20)):
                rows[name].update(status=br.status, size_mb=br.size_mb, frames_per_s=br.frames_per_s, note=br.note)
                console.print(f"{label} {name}: {br.frames_per_s} frames/s, {br.size_mb} MB")
        for target in ("onnx", "ort", "executorch", "coreml"):
            a, b = rows.get(f"{target}-int8", {}), rows.get(f"{target}-fp32") or rows.get(f"{target}-fp16", {})
            if a.get("size_mb") and b.get("size_mb"):
                a["size_vs_float"] = round(a["size_mb"] / b["size_mb"], 3)
        res["targets"][label] = rows
        if partial is not None:   # what is measured so far survives an interrupted run
            partial.write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def markdown(res: dict, command: str) -> str:
    big = res["vit_b16_teacher"]["frames_per_s"]
    lines = [f"`{command}` ({res['threads']} threads, fp32 matmul peak {res['matmul_peak_gflops']} GFLOP/s; "
             f"ViT-B/16 AdaptSign teacher {big} frames/s eager, measured in the same run)", "",
             "| model | px | WER dev | WER test_si | WER test_us | GMACs/frame | eager torch f/s | x ViT-B/16 | "
             "onnxruntime fp32 / int8 f/s (.onnx; .ort) | ExecuTorch fp32 / int8 f/s | int8 WER test_si (delta): onnx, "
             "ort, executorch | int8/fp32 size: onnx, executorch, coreml |", "|" + "---|" * 12]
    for label, m in res["models"].items():
        w = m["wer"]
        t = res["targets"].get(label, {})

        def fps(name):
            return _f(t.get(name, {}).get("frames_per_s"), "{:,.0f}")

        int8 = ", ".join(f"{_f(t.get(f'{x}-int8', {}).get('wer'))} ({_f(t.get(f'{x}-int8', {}).get('wer_delta'), '{:+.2f}')})"
                         for x in ("onnx", "ort", "executorch")) if t else "-"
        sizes = ", ".join(_f(t.get(f"{x}-int8", {}).get("size_vs_float"), "{:.3f}")
                          for x in ("onnx", "executorch", "coreml")) if t else "-"
        lines.append(f"| {label} | {m['input_px']} | {_f(w['dev']['wer'])} | {_f(w['test_si']['wer'])} | "
                     f"{_f(w['test_us']['wer'])} | {_f(m['gmacs_per_frame'], '{:.4f}')} | "
                     f"{_f(m['eager_frames_per_s'], '{:,.0f}')} | {_f(m['eager_frames_per_s'] / big if big else None, '{:.1f}')} | "
                     + (f"{fps('onnx-fp32')} / {fps('onnx-int8')}; {fps('ort-fp32')} / {fps('ort-int8')} | "
                        f"{fps('executorch-fp32')} / {fps('executorch-int8')} | "
                        if t else "- | - | ") + f"{int8} | {sizes} |")
    words = {s: v["ref_words"] for s, v in next(iter(res["models"].values()))["wer"].items()}
    n8 = sorted({r.get("videos") for t in res["targets"].values() for k, r in t.items() if k.endswith("-int8")} - {None})
    lines += ["", f"Reference words: {words}; int8 WER on {', '.join(map(str, n8)) or '-'} test_si videos. "
              "Core ML files are validated only (no Core ML runtime on Linux)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from rich.console import Console

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/isharah"))
    p.add_argument("--glosses", type=int, default=None, help="glosses in the preset (default 100; up to 388+)")
    p.add_argument("--duration", type=float, default=None, help="scale of every sign, transition and hold "
                   "(the preset's signing rate; > 1 is slower signing, longer videos)")
    p.add_argument("--pretrain-steps", type=int, default=None, help="teacher tower steps (default 1000; the "
                   "student tower gets 3x)")
    p.add_argument("--tower-pool", choices=("crops", "squares"), default="crops", help="frames the towers pretrain "
                   "on: the data set's signing-space crops (default) or centred square renders (before 2026-12-02)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="default 8")
    p.add_argument("--student-epochs", type=int, default=None, help="default 6")
    p.add_argument("--teacher-lr", type=float, default=1e-3)
    p.add_argument("--no-flip", action="store_true", help="no horizontal-flip augmentation (the preset's signers "
                   "are all right-handed; a flip makes them left-handed and mirrors the signs' sided places and directions)")
    p.add_argument("--lite0-size", type=int, default=None, help="EfficientNet-Lite0 input (signing-space crop) px "
                   "(default 128)")
    p.add_argument("--lite0-lr", type=float, default=1e-3)
    p.add_argument("--lite0-epochs", type=int, default=None, help="EfficientNet-Lite0 epochs (default --student-epochs)")
    p.add_argument("--lite0-freeze", type=int, default=None, help="EfficientNet blocks kept frozen (default 0: "
                   "fine-tune all)")
    p.add_argument("--budget", action="store_true", help="the reduced run that fits 2 shared CPU cores "
                   "(BUDGET_DATA, BUDGET_ARGS); explicit flags still win")
    p.add_argument("--fp32-videos", type=int, default=16, help="test_si videos for fp32 parity (0 = all)")
    p.add_argument("--int8-videos", type=int, default=0, help="test_si videos for the int8 WER (0 = all)")
    p.add_argument("--eval-videos", type=int, default=0, help="videos scored per split (0 = all)")
    p.add_argument("--targets", nargs="*", default=None, help="targets to convert (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-raw", action="store_true", help="do not keep the portrait clips (faster data stage)")
    p.add_argument("--quick", action="store_true", help="tiny data and 1 epoch (tests)")
    p.add_argument("--build-only", action="store_true", help="stages 1-4 only")
    p.add_argument("--stop-after", choices=("pretrain", "teacher"), default=None,
                   help="stop after this stage (implies --build-only); a trial reuses data and towers when "
                   "OUT/data and OUT/clip are linked into its own OUT")
    p.add_argument("--render", action="store_true", help="only rewrite OUT/students.md from OUT/students.json")
    args = p.parse_args(argv)
    if args.render:
        res = json.loads((Path(args.out) / "students.json").read_text())
        md = markdown(res, res["command"])
        (Path(args.out) / "students.md").write_text(md)
        print(md)
        return 0
    for k, v in (BUDGET_ARGS if args.budget else FULL_ARGS).items():   # flags given explicitly win
        if getattr(args, k) is None:
            setattr(args, k, v)
    console = Console()
    paths = build(args, console)
    if args.build_only or args.stop_after:
        return 0
    res = measure(paths, args, console, partial=Path(args.out) / "students.partial.json")
    res["command"] = "python benchmarks/bench_students.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    (out / "students.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    md = markdown(res, res["command"])
    (out / "students.md").write_text(md)
    console.print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
