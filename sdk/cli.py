"""The `slsdk` command: one sub-command per stage of the data flow.

Dataset -> train -> distill -> quantize/convert -> bundle -> run/eval/bench. Heavy libraries are imported
inside each command, so `slsdk --help` stays fast.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continuous sign language recognition from training to phones.")
eval_app = typer.Typer(no_args_is_help=True, help="Decode and score a model, or score existing CTM/STM files.")
bundle_app = typer.Typer(no_args_is_help=True, help="Inspect and validate bundles.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: generate the synthetic default, read a layout.")
app.add_typer(eval_app, name="eval")
app.add_typer(bundle_app, name="bundle")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _run(fn, *args, **kwargs):
    """Call a stage; turn expected user errors into one clear line and a non-zero exit."""
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError, UserError) as e:  # noqa: PERF203
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        fail(f"{type(e).__name__}: {msg}")


# -- models -------------------------------------------------------------------------------------------
@app.command()
def info(model: str = typer.Argument("ViT-B/16", help="a CLIP config name (see `slsdk info --list`) or checkpoint"),
         frames: int = typer.Option(3, help="frames per clip used for counting (cross-frame parts)"),
         list_: bool = typer.Option(False, "--list", help="list the registered CLIP configs")):
    """Trainable and frozen parameters and GMACs per frame of each frame-encoder variant."""
    from rich.table import Table

    from slsdk.models import list_models

    if list_:
        for name in list_models():
            console.print(name)
        return
    from slsdk.models.flops import info_rows

    rows = _run(info_rows, model, frames=frames)
    table = Table(title=f"frame encoders on {model}")
    for col in rows[0].keys():
        table.add_column(col, justify="right" if col != "variant" else "left")
    for r in rows:
        table.add_row(*(f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
                        for v in r.values()))
    console.print(table)


# -- data ---------------------------------------------------------------------------------------------
@data_app.command("synth")
def data_synth(out: Path = typer.Argument(..., help="output folder"),
               seed: int = typer.Option(0), quick: bool = typer.Option(False, help="a tiny set for tests")):
    """Generate the synthetic signing dataset (the embedded default) in the folder format."""
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.demos.pipeline import quick_kwargs

    path = _run(generate_synthetic, out, seed=seed, **(quick_kwargs() if quick else {}))
    console.print(f"wrote {path}")


@data_app.command("show")
def data_show(root: Path, layout: str = typer.Option("folder", help="folder|phoenix2014|phoenix2014t|csl-daily|isharah"),
              split: str = typer.Option("train")):
    """Read a dataset layout and print its size and vocabulary."""
    from slsdk.data import Vocabulary, read_dataset

    samples = _run(read_dataset, root, layout, split)
    vocab = Vocabulary.build(samples)
    console.print(f"{len(samples)} samples in {split}; {len(vocab) - 1} glosses; "
                  f"signers: {len({s.signer for s in samples})}")


# -- training -----------------------------------------------------------------------------------------
@app.command()
def pretrain(data: Path = typer.Argument(..., help="synthetic data set root (`slsdk data synth`)"),
             out: Path = typer.Option(Path("runs/clip-synthetic.safetensors"), "--out", "-o"),
             backbone: str = typer.Option("ViT-S/16-demo", help="CLIP config name"),
             student: bool = typer.Option(False, help="pretrain the default student's encoder instead"),
             steps: int = typer.Option(1000), lr: float = typer.Option(1e-3), seed: int = typer.Option(0)):
    """Pretrain a CLIP tower on synthetic frames: the demo's stand-in for downloadable CLIP weights."""
    from slsdk.train.pretrain import PretrainConfig, pretrain_backbone

    vision = None
    if student:
        from slsdk.models.student import StudentConfig

        vision = StudentConfig(num_classes=2).encoder_config
    _run(pretrain_backbone, data, out, PretrainConfig(backbone=backbone, steps=steps, lr=lr, seed=seed),
         vision_config=vision)


@app.command()
def train(data: Path = typer.Argument(..., help="dataset root"),
          out: Path = typer.Option(Path("runs/teacher"), "--out", "-o"),
          layout: str = typer.Option("folder", help="folder|phoenix2014|phoenix2014t|csl-daily|isharah"),
          backbone: str = typer.Option("ViT-S/16-demo", help="CLIP config name"),
          weights: Optional[Path] = typer.Option(None, help="CLIP weights (OpenAI, open_clip or HF file)"),
          variant: str = typer.Option("adaptsign", help="adaptsign|sla-lora|sla-adapter|frozen"),
          epochs: int = typer.Option(12), batch_size: int = typer.Option(8), lr: float = typer.Option(1e-3),
          hidden: int = typer.Option(256), unfreeze_backbone: bool = typer.Option(False),
          resume: bool = typer.Option(False, help="continue from OUT/last.pt"),
          seed: int = typer.Option(0)):
    """Train the teacher (frozen CLIP + adapters + CTC sequence model). Works under torchrun (DDP)."""
    from slsdk.train import TrainConfig, teacher_config, train as run_train

    model_cfg = teacher_config(backbone=backbone, weights=str(weights) if weights else None, variant=variant,
                               hidden=hidden)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                       unfreeze_backbone=unfreeze_backbone)
    res = _run(run_train, data, out, model_cfg, tcfg, resume=resume, layout=layout)
    console.print(f"best dev WER {res.dev_wer:.2f}%  checkpoint {res.best_checkpoint}")


@app.command()
def distill(data: Path = typer.Argument(..., help="dataset root"),
            teacher: Path = typer.Option(..., "--teacher", help="teacher checkpoint"),
            out: Path = typer.Option(Path("runs/student"), "--out", "-o"),
            layout: str = typer.Option("folder"), epochs: int = typer.Option(15),
            chunk_frames: int = typer.Option(8),
            feature_weight: float = typer.Option(1.0, help="frame-feature distillation weight (0 = off)"),
            student_weights: Optional[Path] = typer.Option(None, help="pretrained student encoder "
                                                           "(`slsdk pretrain --student`)"),
            resume: bool = typer.Option(False), seed: int = typer.Option(0)):
    """Distill a teacher into the streaming edge student (CTC + KL to the teacher's posteriors)."""
    from slsdk.train import DistillConfig, distill as run_distill

    cfg = DistillConfig(epochs=epochs, seed=seed, student={"chunk_frames": chunk_frames},
                        feature_weight=feature_weight,
                        student_weights=str(student_weights) if student_weights else None)
    res = _run(run_distill, teacher, data, out, cfg, resume=resume, layout=layout)
    console.print(f"student checkpoint {res.best_checkpoint}")  # distill() already printed the WER report


@eval_app.command("model")
def eval_model(checkpoint: Path, data: Path, split: str = typer.Option("test_si"),
               layout: str = typer.Option("folder"),
               decoder: str = typer.Option("greedy", help="greedy|beam"), beam: int = typer.Option(10),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="write CTM/STM here")):
    """Decode a split with a checkpoint and score it (WER, PHOENIX conventions)."""
    from slsdk.train.evaluate import evaluate

    res = _run(evaluate, checkpoint, data, split=split, layout=layout, decoder=decoder, beam=beam, out_dir=out)
    console.print(f"{split}: WER {res.wer:.2f}%  (sub {res.sub}, del {res.dels}, ins {res.ins}, "
                  f"ref words {res.n_ref})")


@eval_app.command("wer")
def eval_wer(ref: Path = typer.Option(..., "--ref", help="reference STM"),
             hyp: Path = typer.Option(..., "--hyp", help="hypothesis CTM"),
             convention: str = typer.Option("phoenix", help="phoenix|none")):
    """Score existing CTM hypotheses against STM references (same figures as NIST sclite)."""
    from slsdk.eval import score_files

    res = _run(score_files, ref, hyp, convention=convention)
    console.print(f"WER {res.wer:.2f}%  (sub {res.sub}, del {res.dels}, ins {res.ins}, ref words {res.n_ref})")


# -- export -------------------------------------------------------------------------------------------
def _target_names() -> str:
    from slsdk.convert.targets import TARGETS

    return ", ".join(TARGETS)


@app.command()
def convert(checkpoint: Path = typer.Argument(..., help="student (or teacher) checkpoint"),
            target: str = typer.Option(..., "--target", "-t", help="onnx|ort|executorch|executorch-coreml|coreml"),
            precision: str = typer.Option("fp32", help="fp32|fp16|int8 (what the target allows)"),
            calib: Optional[Path] = typer.Option(None, help="dataset root for int8 calibration"),
            heldout: Optional[Path] = typer.Option(None, help="dataset root for held-out fidelity (WER)"),
            split: str = typer.Option("test_si", help="held-out split"),
            out: Path = typer.Option(Path("bundles"), "--out", "-o"),
            frames: str = typer.Option("16:1024", help="offline teacher only: MIN:MAX frames per clip "
                                       "(executorch needs one fixed count, e.g. 64:64)"),
            zip_: bool = typer.Option(False, "--zip", help="also write OUT.zip")):
    """Convert a checkpoint into a bundle for one target, and measure its fidelity to torch."""
    from slsdk.convert import convert as run_convert
    from slsdk.convert.targets import check_precision, get_target

    tgt = _run(get_target, target)  # refuse unknown targets / precisions before any heavy work
    _run(check_precision, tgt, precision)
    try:
        lo, hi = (int(v) for v in frames.split(":"))
    except ValueError:
        fail(f"--frames must be MIN:MAX (two integers), got {frames!r}")
    if not checkpoint.is_file():
        fail(f"{checkpoint}: no such checkpoint")
    from slsdk.train.checkpoint import load_model

    model, vocab, kind = _run(load_model, checkpoint)
    calib_videos = _videos(calib, "train", vocab, 16)[0] if calib else None
    held = _videos(heldout, split, vocab, None)[1] if heldout else None
    bundle = _run(run_convert, model, tgt.name, precision, out, vocab=vocab, calib=calib_videos, heldout=held,
                  teacher=kind == "teacher", zip=zip_, frames_range=(lo, hi))
    console.print(f"wrote {bundle.root}")
    console.print_json(json.dumps(bundle.manifest.fidelity, default=str))


def _videos(root: Path, split: str, vocab, limit):
    """(videos, [(frames, gloss ids)]) of a folder-format split."""
    from slsdk.data import read_folder
    from slsdk.data.video import read_video

    samples = _run(read_folder, root, split)[:limit]
    frames = [read_video(s.video) for s in samples]
    return frames, [(f, vocab.encode(s.glosses)) for f, s in zip(frames, samples)]


@app.command()
def quantize(checkpoint: Path, target: str = typer.Option("executorch", "--target", "-t"),
             calib: Path = typer.Option(..., help="dataset root for calibration"),
             heldout: Optional[Path] = typer.Option(None), split: str = typer.Option("test_si"),
             out: Path = typer.Option(Path("bundles"), "--out", "-o")):
    """int8 for one target (the target's recipe, calibrated on CALIB): same as convert --precision int8."""
    convert(checkpoint, target=target, precision="int8", calib=calib, heldout=heldout, split=split, out=out,
            zip_=False)


@app.command()
def targets():
    """The targets table (what `convert --target` accepts)."""
    from slsdk.convert.targets import targets_markdown

    console.print(targets_markdown())


@bundle_app.command("inspect")
def bundle_inspect(path: Path):
    """Validate a bundle (schema, checksums, paths) and print its manifest."""
    from slsdk.bundle import inspect_bundle

    console.print(_run(inspect_bundle, path))


# -- runtime ------------------------------------------------------------------------------------------
@app.command()
def run(bundle: Path = typer.Argument(..., help="bundle directory or .zip"),
        video: Optional[Path] = typer.Argument(None, help="video file or frame folder"),
        camera: Optional[int] = typer.Option(None, "--camera", help="camera index instead of a video"),
        backend: Optional[str] = typer.Option(None, help="onnxruntime|executorch|torch (default: from the bundle)"),
        crop: Optional[str] = typer.Option(None, help="hands|full (default: the bundle's crop policy)"),
        hand_model: Optional[Path] = typer.Option(None, help="hand_landmarker.task"),
        decoder: str = typer.Option("greedy", help="greedy|beam"), beam: int = typer.Option(8),
        threads: int = typer.Option(0, help="backend threads (0 = runtime default)"),
        json_: bool = typer.Option(False, "--json", help="JSON lines instead of the live line"),
        overlay: Optional[Path] = typer.Option(None, help="write a PNG contact sheet of crops + glosses")):
    """Recognise signing in a video or camera stream with a bundle (streaming)."""
    from slsdk.runtime.cli_run import run_command

    if (video is None) == (camera is None):
        fail("give either a VIDEO or --camera N")
    _run(run_command, bundle, video=video, camera=camera, backend=backend, crop=crop, hand_model=hand_model,
         decoder=decoder, beam=beam, threads=threads, as_json=json_, overlay=overlay, console=console)


@app.command()
def bench(bundles: Optional[Path] = typer.Option(None, help="folder of bundles (default: the demo's)"),
          arch: bool = typer.Option(False, "--arch", help="time the real sizes (ViT-B/16 teacher, default student)"),
          out: Path = typer.Option(Path("bench"), "--out", "-o"),
          data: Optional[Path] = typer.Option(None, help="dataset root for WER and videos")):
    """Benchmark every target x precision: size, latency p50/p90, frames/s, ratio to eager fp32 torch."""
    from slsdk.bench import run_bench

    _run(run_bench, bundles_dir=bundles, arch=arch, out_dir=out, data_root=data, console=console)


@app.command()
def demo(out: Path = typer.Option(Path("slsdk_demo"), "--out", "-o"),
         quick: bool = typer.Option(False, "--quick", help="tiny data and few epochs (tests)"),
         seed: int = typer.Option(0)):
    """The whole pipeline offline: synthetic data -> teacher -> student -> int8 -> every target -> stream."""
    from slsdk.demos.pipeline import run_demo

    _run(run_demo, out, quick=quick, seed=seed, console=console)


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("slsdk"):
            err.print(f"[bold red]error:[/] this stage is not built yet ({e.name} is missing)")
            sys.exit(2)
        err.print(f"[bold red]error:[/] {e}. Install the extras: pip install 'slsdk[all]'")
        sys.exit(2)


if __name__ == "__main__":
    main()
