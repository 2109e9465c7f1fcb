"""RGB, landmark and fusion students on the Isharah-style synthetic preset, measured in one run (issue #31).

    python benchmarks/bench_modalities.py [--out runs/isharah] [--budget] [--landmark-epochs 30]
        [--pretrain-steps N] [--teacher-epochs N] [--fusion] [--fusion-epochs N] [--fusion-kl-weight W] [--kit] [--clip ../shared/data/hands/webcam_gestures.mp4]

Stages 1-4 are ``benchmarks/bench_students.py``'s (the preset with its ``.pose`` files, the towers, the CLIP
teacher, the Lite0 student; a finished stage is skipped, so a run of that benchmark in the same OUT is reused).
Then:

  5 landmarks  a landmark teacher (``slsdk train --modality landmarks``) on the preset's ``.pose`` files (the
               renderer's true pose in the 86-point layout, with MediaPipe's measured misses and jitter), distilled
               into the streaming landmark student (``slsdk distill``)
  6 fusion     (``--fusion``) the hand-crop RGB + landmark student distilled from the CLIP teacher
  7 kit path   (``--kit``) the preset's landmarks written as the Isharah challenge kit ships its data (the SI and US
               annotation files and keypoint pickles: train = the preset's train, dev = dev, test = test_si / test_us,
               with glosses, which the real kit's test files do not carry), then the CLI as a user runs it there:
               ``data show``, ``train`` and ``distill`` with ``--layout isharah-pose``, ``eval model`` on both
               protocols' test files, ``convert`` to int8 ONNX and ``run BUNDLE FILE.pose --json``
  8 measure    per student: WER dev / test_si / test_us (eager torch, greedy, every video), parameters; an ONNX
               fp32 and an int8 bundle each (fidelity in the manifest), the int8 file's size, ONNX Runtime frames/s
               of every bundle timed interleaved (``slsdk.bench.bench_bundles``: ratios hold on a shared machine);
               the serving cost per frame on a real clip: ``slsdk run BUNDLE CLIP --json``'s per-stage timings
               (hand crop, landmark extraction, model), i.e. what a user's laptop pays per camera frame.

Writes OUT/modalities.json and OUT/modalities.md. Goals (issue #31): the landmark student <= 1/10 of Lite0's
int8 size and >= 10x its frames/s; fusion better than either alone on test_us.
"""
from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from slsdk.bench import bench_bundles, dir_size_mb
from slsdk.convert import convert
from slsdk.data import read_folder
from slsdk.data.landmark_dataset import LandmarkDataset
from slsdk.data.landmarks import load_landmarks
from slsdk.models.factory import load_model
from slsdk.models.landmark import LandmarkConfig
from slsdk.train import DistillConfig, TrainConfig, distill, train
from slsdk.train.evaluate import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_students  # noqa: E402 - the benchmarks folder is not a package

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "hands" / "webcam_gestures.mp4"
DEFAULT_FACE = ROOT.parent / "shared" / "models" / "face_landmarker.task"
DEFAULT_HAND = ROOT.parent / "shared" / "models" / "hand_landmarker.task"


def build_landmarks(data: Path, out: Path, args, console) -> dict:
    """Stage 5: the landmark teacher and the streaming landmark student (resumed / skipped like the others)."""
    t0 = bench_students._stage(console, "5 landmark teacher and student")
    teacher = out / "landmark-teacher"
    epochs = 1 if args.quick else args.landmark_epochs
    state = bench_students._trained(teacher, epochs)
    if not state:
        train(data, teacher, LandmarkConfig(hidden=64 if args.quick else 256),
              TrainConfig(epochs=epochs, batch_size=8, lr=1e-3, warmup_steps=20, seed=args.seed, augment=not args.quick),
              modality="landmarks", resume=state is False, overwrite=state is None, progress=True)
    student = out / "student-landmarks"
    state = bench_students._trained(student, epochs)
    if not state:
        distill(teacher / "best.pt", data, student,
                DistillConfig(epochs=epochs, batch_size=8, lr=1e-3, warmup_steps=20, seed=args.seed,
                              augment=not args.quick, report=False),
                resume=state is False, overwrite=state is None, progress=True)
    console.print(f"({time.perf_counter() - t0:.0f} s)")
    return {"landmark teacher": teacher / "best.pt", "student landmarks": student / "best.pt"}


def build_fusion(data: Path, out: Path, teacher: Path, args, console) -> dict:
    """Stage 6: the fusion student (hand-crop RGB + landmarks) distilled from the CLIP teacher."""
    t0 = bench_students._stage(console, "6 fusion student")
    student = out / "student-fusion"
    epochs = 1 if args.quick else (args.fusion_epochs or args.lite0_epochs or args.student_epochs)
    state = bench_students._trained(student, epochs)
    if not state:
        distill(teacher, data, student,
                DistillConfig(epochs=epochs, batch_size=4, lr=args.lite0_lr, warmup_steps=20, seed=args.seed,
                              augment=not args.quick, flip=False, report=False, student_encoder="efficientnet-lite0",
                              kl_weight=args.fusion_kl_weight,
                              student={"image_size": args.lite0_size, "freeze_blocks": args.lite0_freeze}),
                modality="fusion", resume=state is False, overwrite=state is None, progress=True)
    console.print(f"({time.perf_counter() - t0:.0f} s)")
    return {"student fusion": student / "best.pt"}


def _slsdk(argv: list, cwd: Path) -> str:
    """One CLI command as a user types it in ``cwd``; its output (a failure raises with the command's tail)."""
    res = subprocess.run([sys.executable, "-m", "slsdk.cli", *map(str, argv)], cwd=cwd, capture_output=True,
                         text=True, timeout=7200)
    if res.returncode:
        raise RuntimeError(f"slsdk {' '.join(map(str, argv))} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res.stdout


def write_kit_tree(data: Path, root: Path) -> dict:
    """The preset's landmarks in the challenge kit's files: ``annotations_v2/isharah2000/{SI,US}/{train,dev,test}.csv``
    (``id|gloss``, ids ``SS_NNNN``) and ``data/pose_data_isharah2000_hands_lips_body_phase2_{SI,US}.pkl`` (a dict id ->
    ``{'keypoints': float64 [T, 86, 2]}`` pixel coordinates, a part not found all zeros, as the kit pickles it)."""
    counts = {}
    for protocol, test in (("SI", "test_si"), ("US", "test_us")):
        ann = root / "annotations_v2" / "isharah2000" / protocol
        ann.mkdir(parents=True, exist_ok=True)
        table: dict[str, dict] = {}
        for split, name in (("train", "train"), ("dev", "dev"), ("test", test)):
            lines = ["id|gloss"]
            for s in read_folder(data, name):
                kid = f"{s.id[:2]}_{s.id[2:]}"
                if kid in table:
                    raise ValueError(f"{data}: id {s.id} is in two splits; the kit's ids are unique per protocol")
                table[kid] = {"keypoints": load_landmarks(s).astype(np.float64)}
                lines.append(f"{kid}|{' '.join(s.glosses)}")
            (ann / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
            counts[f"{protocol}/{split}"] = len(lines) - 1
        (root / "data").mkdir(parents=True, exist_ok=True)
        with open(root / "data" / f"pose_data_isharah2000_hands_lips_body_phase2_{protocol}.pkl", "wb") as f:
            pickle.dump(table, f, protocol=4)
    return counts


def kit_path(data: Path, out: Path, args, console) -> dict:
    """Stage 7: the kit-format path end to end through the CLI, in ``OUT/kit`` with relative paths."""
    t0 = bench_students._stage(console, "7 the kit-format path (slsdk CLI, --layout isharah-pose)")
    work = out / "kit"
    work.mkdir(parents=True, exist_ok=True)
    epochs = str(1 if args.quick else args.landmark_epochs)
    res: dict = {"epochs": int(epochs), "commands": []}

    def run(argv):
        res["commands"].append("slsdk " + " ".join(map(str, argv)))
        t = time.perf_counter()
        text = _slsdk(argv, work)
        console.print(f"slsdk {' '.join(map(str, argv))} ({time.perf_counter() - t:.0f} s)")
        return text

    if not (work / "kit" / "data").is_dir():
        res["files"] = write_kit_tree(data, work / "kit")
    res["show"] = run(["data", "show", "kit", "--layout", "isharah-pose"])
    hidden = "64" if args.quick else "256"
    if not bench_students._trained(work / "runs" / "teacher", int(epochs)):
        run(["train", "kit", "--layout", "isharah-pose", "--epochs", epochs, "--batch-size", "8", "--hidden", hidden,
             "--device", "cpu", "--overwrite", "-o", "runs/teacher"])
    if not bench_students._trained(work / "runs" / "student", int(epochs)):
        run(["distill", "kit", "--layout", "isharah-pose", "--teacher", "runs/teacher/best.pt", "--epochs", epochs,
             "--device", "cpu", "--overwrite", "-o", "runs/student"])
    res["wer"] = {}
    for who in ("teacher", "student"):
        for layout, split in (("isharah-pose", "SI/test"), ("isharah-pose-us", "US/test")):
            text = run(["eval", "model", f"runs/{who}/best.pt", "kit", "--layout", layout, "--split", "test"])
            m = re.search(r"WER ([0-9.]+)%.*ref words (\d+)", text)
            res["wer"].setdefault(who, {})[split] = float(m.group(1)) if m else None
    run(["convert", "runs/student/best.pt", "--target", "onnx", "--precision", "int8", "--calib", "kit",
         "--heldout", "kit", "--split", "dev", "--layout", "isharah-pose", "--overwrite", "-o", "bundles/onnx-int8"])
    man = json.loads((work / "bundles" / "onnx-int8" / "manifest.json").read_text())
    res["manifest"] = {"input": man["input"].get("modality"), "landmarks": man["input"].get("landmarks", {}).get("layout"),
                       "fidelity": {k: man["fidelity"].get(k) for k in ("status", "cosine", "max_abs_err", "wer_delta")}}
    sample = read_folder(data, "test_si")[0]
    shutil.copyfile(sample.landmarks.path, work / "clip.pose")
    ran = run(["run", "bundles/onnx-int8", "clip.pose", "--json"])
    summary = [json.loads(x) for x in ran.splitlines() if x.startswith("{")][-1]
    res["served"] = {"file": f"{sample.id}.pose (test_si)", "reference": " ".join(sample.glosses),
                     "glosses": " ".join(summary.get("glosses") or []), "frames": summary.get("frames")}
    res["seconds"] = round(time.perf_counter() - t0)
    console.print(json.dumps({k: v for k, v in res.items() if k not in ("show", "commands")}, indent=1))
    return res


def _inputs(model, samples, vocab, limit: int) -> list:
    """(input, labels) pairs the converter's parity and calibration take, in the model's own modality: decoded
    videos for an RGB student, the normalised ``[T, 86, 2]`` landmarks (as training reads them) for a landmark one."""
    picked = bench_students._subset(samples, limit)
    modality = getattr(model, "modality", "rgb")
    if modality == "rgb":
        return bench_students._videos(picked, vocab, 0)
    lm = LandmarkDataset(picked, vocab, train=False)
    if modality == "landmarks":
        return [(lm.landmarks(i), vocab.encode(s.glosses)) for i, s in enumerate(picked)]
    videos = bench_students._videos(picked, vocab, 0)   # fusion: the frames and the landmarks of the same frames
    pairs = []
    for i, (frames, labels) in enumerate(videos):
        points = lm.landmarks(i)
        n = min(len(frames), len(points))
        pairs.append(({"frames": frames[:n], "landmarks": points[:n]}, labels))
    return pairs


def _serving_cost(bundle: Path, clip: Path, modality: str, face_model: Path | None, hand_model: Path | None,
                  pose_model: Path | None = None) -> dict:
    """``slsdk run BUNDLE CLIP --json`` as a user serves each bundle (an RGB student with ``--crop hands``: MediaPipe
    finds the hands and the model sees the crop; a landmark one makes the 86 points per frame with the hand, face
    and pose landmarkers): the run's per-stage seconds over the clip's source frames, in ms per frame."""
    cmd = [sys.executable, "-m", "slsdk.cli", "run", str(bundle), str(clip), "--json"]
    if hand_model is not None and hand_model.is_file():
        cmd += ["--hand-model", str(hand_model)]
    if modality == "rgb":
        cmd += ["--crop", "hands"]
    else:
        for flag, path in (("--face-model", face_model), ("--pose-model", pose_model)):
            if path is not None and path.is_file():
                cmd += [flag, str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode:
        return {"status": "failed", "note": res.stderr.strip().splitlines()[-1][:160] if res.stderr.strip() else ""}
    summary = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")][-1]
    frames = summary.get("frames") or 0     # model frames (the clip resampled to the bundle's fps)
    timing = summary.get("timing_s") or {}
    per = {k: 1e3 * timing.get(k, 0.0) / frames for k in ("crop", "preprocess", "model", "decode")} if frames else {}
    lm = (summary.get("landmarks") or {}).get("per_frame_ms") or {}
    if lm:   # the landmark front end's own account (hands + lips + body, the normaliser), which the runtime's
        # crop stage contains: the hand pass is the landmarks' (one per frame), so it is counted once, here
        per["landmarks"] = (lm.get("landmarks") or 0.0) + (lm.get("normalise") or 0.0)
        per["crop"] = max(per.get("crop", 0.0) - per["landmarks"], 0.0)
    per["total"] = sum(per.values())
    return {"per_frame_ms": {k: round(v, 3) for k, v in per.items()}, "frames": frames,
            "source_frames": summary.get("source_frames"), "glosses": summary.get("glosses"), "timing_s": timing}


def measure(models: dict, data: Path, args, console) -> dict:
    """Stage 8: one row per student."""
    bench_students._stage(console, "8 measure")
    splits = {s: bench_students._subset(read_folder(data, s), args.eval_videos) for s in bench_students.SPLITS}
    res = {"threads": torch.get_num_threads(), "models": {}}
    bundles: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, ckpt in models.items():
            model, vocab, _kind = load_model(ckpt)
            model.eval()
            row = {"parameters": int(sum(p.numel() for p in model.parameters())), "wer": {}}
            for split, samples in splits.items():
                r = evaluate(model, samples, split=split, vocab=vocab, device="cpu")
                row["wer"][split] = {"wer": r.wer, "ref_words": r.n_ref}
                console.print(f"{label}: {split} WER {r.wer:.2f}% ({r.n_ref} words)")
            res["models"][label] = row
            if "teacher" in label:
                continue
            held = _inputs(model, splits["test_si"], vocab, args.fp32_videos)
            calib = [x for x, _ in _inputs(model, read_folder(data, "train"), vocab, 16)]
            for precision in ("fp32", "int8"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    b = convert(model, "onnx", precision, Path(tmp) / f"{label}-{precision}".replace(" ", "-"),
                                vocab=vocab, heldout=held, calib=calib if precision == "int8" else None)
                f = b.manifest.fidelity
                row[f"onnx_{precision}"] = {"mb": round(dir_size_mb(b.model_path), 3), "cosine": f.get("cosine"),
                                            "max_abs_err": f.get("max_abs_err"), "wer_delta": f.get("wer_delta")}
                bundles[f"{label} {precision}"] = b.root
                console.print(f"{label} onnx {precision}: {row[f'onnx_{precision}']}")
            if args.clip and Path(args.clip).is_file():
                row["serving"] = _serving_cost(bundles[f"{label} fp32"], Path(args.clip),
                                               getattr(model, "modality", "rgb"), args.face_model,
                                               args.hand_model, args.pose_model)
                console.print(f"{label} serving: {row['serving']}")
        for name, br in zip(bundles, bench_bundles(list(bundles.values()), iters=20)):
            label, precision = name.rsplit(" ", 1)
            res["models"][label][f"onnx_{precision}"]["frames_per_s"] = br.frames_per_s
            console.print(f"{name}: {br.frames_per_s} frames/s")
    return res


def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def markdown(res: dict, command: str) -> str:
    lines = [f"`{command}` ({res['threads']} threads; ONNX Runtime frames/s of every bundle timed interleaved)", "",
             "| model | params | WER dev / test_si / test_us | int8 MB | onnxruntime f/s fp32 / int8 | "
             "serving ms / frame: hand crop, landmarks, model, all stages |", "|" + "---|" * 6]
    for label, m in res["models"].items():
        w = m["wer"]
        fp32, int8 = m.get("onnx_fp32", {}), m.get("onnx_int8", {})
        per = (m.get("serving") or {}).get("per_frame_ms") or {}
        serving = ", ".join(_f(per.get(k)) for k in ("crop", "landmarks", "model", "total")) if per else "-"
        lines.append(f"| {label} | {m['parameters']:,} | {_f(w['dev']['wer'])} / {_f(w['test_si']['wer'])} / "
                     f"{_f(w['test_us']['wer'])} | {_f(int8.get('mb'), '{:.3f}')} | "
                     f"{_f(fp32.get('frames_per_s'), '{:,.0f}')} / {_f(int8.get('frames_per_s'), '{:,.0f}')} | "
                     f"{serving} |")
    lite, lm = res["models"].get("student efficientnet-lite0"), res["models"].get("student landmarks")
    if lite and lm and lite.get("onnx_int8") and lm.get("onnx_int8"):
        size = lm["onnx_int8"]["mb"] / lite["onnx_int8"]["mb"]
        speed = (lm["onnx_int8"].get("frames_per_s") or 0) / max(lite["onnx_int8"].get("frames_per_s") or 1, 1e-9)
        lines += ["", f"Landmark student vs Lite0 (int8 ONNX): size {size:.3f}x (goal <= 0.1), frames/s "
                      f"{speed:.1f}x (goal >= 10)."]
    fusion = res["models"].get("student fusion")
    if fusion and lite and lm:
        us = {k: res["models"][k]["wer"]["test_us"]["wer"] for k in
              ("student efficientnet-lite0", "student landmarks", "student fusion")}
        lines.append(f"test_us: fusion {us['student fusion']:.2f}, Lite0 {us['student efficientnet-lite0']:.2f}, "
                     f"landmarks {us['student landmarks']:.2f} (goal: fusion below both).")
    kit = res.get("kit")
    if kit:
        w = kit["wer"]
        lines += ["", f"The kit-format path ({kit['epochs']} epochs each; the preset written as the challenge kit's "
                      "annotation files and keypoint pickles, then `slsdk data show / train / distill / eval model / "
                      "convert / run` with `--layout isharah-pose`): test WER SI / US: landmark teacher "
                      f"{_f(w['teacher']['SI/test'])} / {_f(w['teacher']['US/test'])}, landmark student "
                      f"{_f(w['student']['SI/test'])} / {_f(w['student']['US/test'])}; int8 ONNX bundle "
                      f"(input {kit['manifest']['input']}, cosine {_f(kit['manifest']['fidelity']['cosine'], '{:.4f}')}"
                      f") served `{kit['served']['file']}`: \"{kit['served']['glosses']}\" (reference "
                      f"\"{kit['served']['reference']}\")."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/isharah"))
    p.add_argument("--budget", action="store_true", help="bench_students' reduced run (BUDGET_DATA, BUDGET_ARGS)")
    p.add_argument("--landmark-epochs", type=int, default=30, help="landmark teacher and student epochs")
    p.add_argument("--fusion", action="store_true", help="also distil and measure the fusion student")
    p.add_argument("--fusion-kl-weight", type=float, default=1.0,
                   help="the fusion student's weight on the CLIP teacher's posteriors (0: trained on the labels alone)")
    p.add_argument("--kit", action="store_true", help="also run the kit-format path end to end (stage 7)")
    p.add_argument("--fusion-epochs", type=int, default=None, help="fusion student epochs (default: Lite0's)")
    p.add_argument("--pretrain-steps", type=int, default=None, help="teacher tower steps (student tower: 3x)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="CLIP teacher epochs")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="real clip for the serving cost ('' to skip)")
    p.add_argument("--hand-model", type=Path, default=DEFAULT_HAND, help="hand_landmarker.task for the serving cost")
    p.add_argument("--face-model", type=Path, default=DEFAULT_FACE, help="face_landmarker.task for the serving cost")
    p.add_argument("--pose-model", type=Path, default=None,
                   help="pose_landmarker.task for the serving cost (default: the runtime's search; `slsdk import pose`)")
    p.add_argument("--fp32-videos", type=int, default=8)
    p.add_argument("--eval-videos", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny data and 1 epoch (tests)")
    args = p.parse_args(argv)
    # the RGB stages: bench_students' own, with its defaults (Lite0 only is measured here)
    ns = argparse.Namespace(out=args.out, glosses=None, duration=None, pretrain_steps=args.pretrain_steps,
                            tower_pool="crops", teacher_epochs=args.teacher_epochs, student_epochs=None, teacher_lr=1e-3, no_flip=True, lite0_size=None,
                            lite0_lr=1e-3, lite0_epochs=None, lite0_freeze=None, budget=args.budget,
                            fp32_videos=args.fp32_videos, int8_videos=0, eval_videos=args.eval_videos, targets=None,
                            seed=args.seed, no_raw=True, quick=args.quick, build_only=True, stop_after=None,
                            render=False)
    for k, v in (bench_students.BUDGET_ARGS if args.budget else bench_students.FULL_ARGS).items():
        if getattr(ns, k) is None:
            setattr(ns, k, v)
    console = Console()
    paths = bench_students.build(ns, console, students=("efficientnet-lite0",))
    data = Path(paths["data"])
    models = {"CLIP teacher": paths["teacher"], "student efficientnet-lite0": paths["students"]["efficientnet-lite0"]}
    models.update(build_landmarks(data, Path(args.out), args, console))
    if args.fusion:
        models.update(build_fusion(data, Path(args.out), paths["teacher"],
                                   argparse.Namespace(**vars(ns), fusion_epochs=args.fusion_epochs,
                                                      fusion_kl_weight=args.fusion_kl_weight), console))
    kit = kit_path(data, Path(args.out), args, console) if args.kit else None
    res = measure(models, data, args, console)
    if kit is not None:
        res["kit"] = kit
    res["command"] = "python benchmarks/bench_modalities.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    (out / "modalities.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    md = markdown(res, res["command"])
    (out / "modalities.md").write_text(md)
    console.print(md)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
