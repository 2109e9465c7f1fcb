"""The `slsdk` command: one sub-command per stage of the data flow.

Dataset -> train -> distill -> quantize/convert -> bundle -> run/eval/bench. The building stages (which load
torch) are imported inside their commands (the allow-list below), so `slsdk --help` stays fast and `slsdk run`
works where torch is not installed. Every choice option is an Enum read off the table that
owns the choices (targets, layouts, ...), so `--help` lists the values and the parser refuses a wrong one.
User errors (``slsdk.errors.SlsdkError`` and the OS errors of bad paths) print as one line, no traceback;
anything else is a bug and keeps its traceback, with a line asking to report it (``slsdk.cli_common``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from slsdk.bench import run_bench
from slsdk.bundle import MANIFEST_NAME, inspect_bundle, load_bundle, resolve_bundle_dir
from slsdk.bundle.manifest import read_manifest_dict
from slsdk.bundle.schema import schema_json, schema_problems
from slsdk.terminal import plain
from slsdk.cli_common import (USER_ERRORS, Command, Group, again_command, choice_value, console, err_console,
                              error_line, fail, flag, on_interrupt, print_error, report_bug, run_kept, run_stage,
                              shown_path, version_line, working)
from slsdk.cli_choices import (CONVENTION_HELP, Backend, Convention, Crop, Decoder, Layout, Modality,
                               Precision, Student, Target, Variant)
from slsdk.cli_data import data_app
from slsdk.cli_import import import_app
from slsdk.data.splits import LAYOUTS, read_split
from slsdk.data.video import read_video
from slsdk.decode.ctc import DEFAULT_BEAM
from slsdk.eval import convention_for, score_files
from slsdk.fileio import output_lock, reading
from slsdk.data.landmarks import load_landmarks
from slsdk.landmarks import normalize_pose86
from slsdk.quiet import install as quiet_console
from slsdk.quiet import is_quiet
from slsdk.runtime.cli_run import run_command
from slsdk.tables import fidelity_line, fit_table
from slsdk.targets import TARGETS, check_precision, get_target, target_rows, targets_markdown

# Imports inside command functions: ONLY the building stages, which load torch (the CLI must start fast and run
# `slsdk run` / `slsdk bundle inspect` where torch is not installed). The allow-list, one entry per import:
#   info:      slsdk.models (list_models), slsdk.models.flops (info_table, student_table)
#   pretrain:  slsdk.train.pretrain (PretrainConfig, pretrain_backbone), slsdk.models.student (StudentConfig)
#   train/distill recipes: slsdk.train.recipe (merge, parse_recipe, load_recipe, complete, dump_recipe,
#                          shipped_recipes)
#   train:     slsdk.train (train);  distill: slsdk.train (distill);  eval model: slsdk.train.evaluate (evaluate)
#   _convert:  slsdk.convert.pipeline (convert, load_source)
#   demo:      slsdk.demos.pipeline (run_demo: the whole pipeline, training included)
# Everything else is imported above.

app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continuous sign language recognition from training to phones.")
eval_app = typer.Typer(cls=Group, no_args_is_help=True, help="Decode and score a model, or score existing CTM/STM files.")
bundle_app = typer.Typer(cls=Group, no_args_is_help=True, help="Inspect and validate bundles.")
app.add_typer(eval_app, name="eval")
app.add_typer(bundle_app, name="bundle")
app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")


def _print_version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit(0)


@app.callback()
def global_options(verbose: bool = flag("verbose", "show other libraries' warnings and logs (torch, coremltools, "
                                        "ExecuTorch, MediaPipe, ...); quiet by default"),
                   version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, metavar="",
                                                help="print the version and exit")):
    # runs before every command, so before the command imports torch & co (slsdk.quiet)
    quiet_console(verbose=verbose)

# -- models -------------------------------------------------------------------------------------------
@app.command(cls=Command)
def info(model: str = typer.Argument("ViT-B/16", help="a CLIP config name (see `slsdk info --list`) or checkpoint"),
         frames: int = typer.Option(3, help="frames per clip used for counting (cross-frame parts)"),
         list_: bool = typer.Option(False, "--list", help="list the registered CLIP configs")):
    """Trainable and frozen parameters and GMACs per frame of each frame-encoder variant."""
    from slsdk.models import list_models

    if list_:
        for name in list_models():
            console.print(name)
        return
    from slsdk.models.flops import info_table, student_table

    console.print(run_stage(info_table, model, frames=frames, console=console))
    console.print(run_stage(student_table, console=console))


# -- training -----------------------------------------------------------------------------------------
@app.command(cls=Command)
def pretrain(data: Path = typer.Argument(..., help="synthetic data set root (`slsdk data synth`)"),
             out: Path = typer.Option(Path("runs/clip-synthetic.safetensors"), "--out", "-o"),
             backbone: str = typer.Option("ViT-S/16-demo", help="CLIP config name"),
             student: bool = flag("student", "pretrain the default student's encoder instead"),
             steps: int = typer.Option(1000), lr: float = typer.Option(1e-3), seed: int = typer.Option(0),
             device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
             overwrite: bool = flag("overwrite", "replace OUT if slsdk wrote it (never another file)")):
    """Pretrain a CLIP tower on synthetic frames: the demo's stand-in for downloadable CLIP weights."""
    from slsdk.train.pretrain import PretrainConfig, pretrain_backbone

    vision = None
    if student:
        from slsdk.models.student import StudentConfig

        vision = StudentConfig(num_classes=2).encoder_config
    cfg = run_stage(PretrainConfig, backbone=backbone, steps=steps, lr=lr, seed=seed, device=device)
    with on_interrupt(lambda: f"nothing was written to {shown_path(out)} (the weights are written at the end); "
                              f"start again with `{again_command(resume=False)}`"):
        run_stage(pretrain_backbone, data, out, cfg, vision_config=vision, overwrite=overwrite)


# flag -> (recipe section, field): the flags that a recipe file can also set
TRAIN_FLAGS = {"layout": ("data", "layout"), "backbone": ("model", "backbone"),
               "weights": ("model", "backbone_weights"), "variant": ("model.encoder", "variant"),
               "image_size": ("model", "image_size"), "hidden": ("model", "hidden"),
               "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
               "unfreeze_backbone": ("train", "unfreeze_backbone"), "device": ("train", "device"),
               "workers": ("train", "num_workers"), "seed": ("train", "seed"), "deterministic": ("train", "deterministic")}
DISTILL_FLAGS = {"layout": ("data", "layout"), "epochs": ("distill", "epochs"),
                 "chunk_frames": ("student", "chunk_frames"), "feature_weight": ("distill", "feature_weight"),
                 "student_weights": ("distill", "student_weights"), "device": ("distill", "device"),
                 "workers": ("distill", "num_workers"), "seed": ("distill", "seed"), "deterministic": ("distill", "deterministic"),
                 "student": ("student", "encoder")}


def _effective_recipe(ctx: typer.Context, kind: str, config: Path | None, flags: dict):
    """Defaults of this command < the recipe file < flags typed on the command line."""
    from slsdk.train.recipe import merge, parse_recipe

    base: dict = {}
    typed: dict = {}
    for param, (section, key) in flags.items():
        value = choice_value(ctx.params[param])
        value = str(value) if isinstance(value, Path) else value
        src = ctx.get_parameter_source(param)
        into = typed if getattr(src, "name", "") in ("COMMANDLINE", "ENVIRONMENT") else base
        into.setdefault(section, {})[key] = value

    def nest(d):
        out = {k: dict(v) for k, v in d.items() if k != "model.encoder"}
        if "model.encoder" in d:
            out.setdefault("model", {})["encoder"] = dict(d["model.encoder"])
        return out

    recipe = parse_recipe({"kind": kind, **nest(base)}, kind, "<command defaults>")
    if config is not None:
        from slsdk.train.recipe import load_recipe

        file_recipe = load_recipe(config, kind)
        recipe = merge(recipe, file_recipe.sections)
        recipe.source = str(config)
    return merge(recipe, typed) if typed else recipe


def _list_recipes(kind: str) -> None:
    """Print the shipped recipes of ``kind``: name and the first line of the file's header."""
    from slsdk.train.recipe import shipped_recipes

    recipes = shipped_recipes(kind)
    title = f"shipped recipes ({recipes[0].command if recipes else kind} --config NAME)"
    console.print(fit_table(console, title, ("name", "description"), [(r.name, r.description) for r in recipes],
                            right=[False, False]))


def _show_recipe(recipe, print_config: bool) -> dict:
    from slsdk.train.recipe import complete, dump_recipe

    full = complete(recipe)
    if print_config:
        print(dump_recipe(full), end="")
        raise typer.Exit(0)
    source = "the command's defaults" if (recipe.source or "<").startswith("<") else escape(recipe.source)
    console.print(f"[dim]settings: {source} + the flags typed (every one: --print-config; stored in the "
                  "checkpoint)[/]")
    if not is_quiet():
        console.print(escape(dump_recipe(full)), style="dim", end="")
    return full


@app.command(cls=Command)
def train(ctx: typer.Context,
          data: Optional[Path] = typer.Argument(None, help="dataset root"),
          out: Path = typer.Option(Path("runs/teacher"), "--out", "-o"),
          config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="NAME|FILE",
                                                help="a shipped recipe (--list-configs) or a recipe file (YAML, JSON)"),
          print_config: bool = flag("print-config", "write the complete effective recipe to stdout and exit"),
          list_configs: bool = flag("list-configs", "list the shipped recipes (--config NAME) and exit"),
          layout: Layout = typer.Option("folder", metavar="LAYOUT", help="dataset layout: " + ", ".join(LAYOUTS)),
          backbone: str = typer.Option("ViT-S/16-demo", help="CLIP config name (`slsdk info --list`)"),
          weights: Optional[Path] = typer.Option(None, help="CLIP weights (OpenAI, open_clip or HF file)"),
          variant: Variant = typer.Option("adaptsign", help="frame encoder"),
          image_size: Optional[int] = typer.Option(None, help="input size (default: the backbone's)"),
          epochs: int = typer.Option(12), batch_size: int = typer.Option(8), lr: float = typer.Option(1e-3),
          hidden: int = typer.Option(256),
          unfreeze_backbone: bool = flag("unfreeze-backbone", "train the CLIP backbone too (default: frozen)"),
          device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
          workers: int = typer.Option(0, help="data loader worker processes"),
          resume: bool = flag("resume", "continue from OUT/last.pt"),
          overwrite: bool = flag("overwrite", "start over in OUT (replaces only the run's own files: last.pt, "
                                 "best.pt, metrics.jsonl, ...)"),
          modality: Optional[Modality] = typer.Option(None, help="what the teacher sees where the layout has both: "
                                                      "rgb (video frames, CLIP), landmarks (the 86 pose points); "
                                                      "default: the layout's (isharah-pose: landmarks)"),
          seed: int = typer.Option(0),
          deterministic: bool = flag("deterministic", "repeatable runs: deterministic algorithms")):
    """Train the teacher (frozen CLIP + adapters + CTC sequence model). Works under torchrun (DDP)."""
    if list_configs:
        return _list_recipes("teacher")
    recipe = run_stage(_effective_recipe, ctx, "teacher", config, TRAIN_FLAGS)
    full = _show_recipe(recipe, print_config)
    if data is None:
        fail("give the dataset root: slsdk train DATA")
    from slsdk.train import train as run_train

    model_cfg, tcfg = run_stage(recipe.build, "model"), run_stage(recipe.build, "train")
    with on_interrupt(lambda: run_kept(out)):
        res = run_stage(run_train, data, out, model_cfg, tcfg, resume=resume, overwrite=overwrite,
                        layout=recipe.sections["data"]["layout"], extra={"recipe": full},
                        modality=choice_value(modality))
    w = "n/a (no dev split)" if res.dev_wer is None else f"{res.dev_wer:.2f}%"
    console.print(f"best dev WER {w}  checkpoint {escape(shown_path(res.best_checkpoint))}")


@app.command(cls=Command)
def distill(ctx: typer.Context,
            data: Optional[Path] = typer.Argument(None, help="dataset root"),
            teacher: Optional[Path] = typer.Option(None, "--teacher", help="teacher checkpoint"),
            out: Path = typer.Option(Path("runs/student"), "--out", "-o"),
            config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="NAME|FILE",
                                                  help="a shipped recipe (--list-configs) or a recipe file (YAML, JSON)"),
            print_config: bool = flag("print-config", "write the complete effective recipe to stdout and exit"),
            list_configs: bool = flag("list-configs", "list the shipped recipes (--config NAME) and exit"),
            layout: Layout = typer.Option("folder", metavar="LAYOUT", help="dataset layout: " + ", ".join(LAYOUTS)), epochs: int = typer.Option(15),
            chunk_frames: int = typer.Option(8),
            student: Student = typer.Option("vit-tiny", "--student", help="student frame encoder "
                                            "(slsdk.models.student.list_students(); `slsdk info --students`)"),
            feature_weight: float = typer.Option(1.0, help="frame-feature distillation weight (0 = off)"),
            student_weights: Optional[Path] = typer.Option(None, help="pretrained student encoder "
                                                           "(`slsdk pretrain --student`)"),
            modality: Optional[Modality] = typer.Option(None, help="what the student sees: the teacher's (rgb or "
                                                        "landmarks; default), or fusion (an RGB teacher's student "
                                                        "on the frames and their .pose landmarks)"),
            device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
            workers: int = typer.Option(0, help="data loader worker processes"),
            resume: bool = flag("resume", "continue from OUT/last.pt"),
            overwrite: bool = flag("overwrite", "start over in OUT (replaces only the run's own files)"),
            seed: int = typer.Option(0),
            deterministic: bool = flag("deterministic", "repeatable runs: deterministic algorithms")):
    """Distill a teacher into the streaming edge student (CTC + KL to the teacher's posteriors)."""
    if list_configs:
        return _list_recipes("student")
    recipe = run_stage(_effective_recipe, ctx, "student", config, DISTILL_FLAGS)
    full = _show_recipe(recipe, print_config)
    if data is None or teacher is None:
        fail("give the dataset root and the teacher: slsdk distill DATA --teacher runs/teacher/best.pt")
    from slsdk.train import distill as run_distill

    cfg = run_stage(recipe.build, "distill")
    with on_interrupt(lambda: run_kept(out)):
        res = run_stage(run_distill, teacher, data, out, cfg, resume=resume, overwrite=overwrite,
                        layout=recipe.sections["data"]["layout"], extra={"recipe": full},
                        modality=choice_value(modality))
    if res.report:   # the teacher-vs-student WER report (distill() returns it; the caller prints it)
        console.print(escape(res.summary()), soft_wrap=False)
    console.print(f"student checkpoint {escape(shown_path(res.best_checkpoint))}")


def _print_wer(split: str, wer_pct: float | None, sub: int, dels: int, ins: int, n_ref: int) -> None:
    console.print(f"{escape(split)}: WER {wer_pct:.2f}%  (sub {sub}, del {dels}, ins {ins}, ref words {n_ref})")


@eval_app.command("model", cls=Command)
def eval_model(checkpoint: Path, data: Path, split: str = typer.Option("test_si", help="split name (Isharah: "
                                                                        "train/dev/test or SI/test, US/test)"),
               layout: Layout = typer.Option("folder", metavar="LAYOUT", help="dataset layout: " + ", ".join(LAYOUTS)),
               decoder: Decoder = typer.Option("greedy"), beam: int = typer.Option(DEFAULT_BEAM),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="write CTM/STM here"),
               convention: Convention = typer.Option("auto", help=CONVENTION_HELP),
               overwrite: bool = flag("overwrite", "replace the CTM/STM files slsdk wrote there before (never "
                                      "other files)")):
    """Decode a split with a checkpoint and score it (WER; PHOENIX clean-up for the PHOENIX layouts)."""
    from slsdk.train.evaluate import evaluate

    with working(f"decoding {split}"):
        res = run_stage(evaluate, checkpoint, data, split=split, layout=choice_value(layout),
                        decoder=choice_value(decoder), beam=beam, out_dir=out, overwrite=overwrite,
                        convention=choice_value(convention))
    if res.wer is None:
        console.print(escape(res.summary()))
    else:
        _print_wer(split, res.wer, res.sub, res.dels, res.ins, res.n_ref)
    for kind, path in res.files.items():
        console.print(f"  {kind}: {escape(str(path))}")


@eval_app.command("wer", cls=Command)
def eval_wer(ref: Path = typer.Option(..., "--ref", help="reference STM"),
             hyp: Path = typer.Option(..., "--hyp", help="hypothesis CTM"),
             layout: Layout = typer.Option("folder", help="the data set the files come from (picks --convention auto)"),
             convention: Convention = typer.Option("auto", help=CONVENTION_HELP)):
    """Score existing CTM hypotheses against STM references (same figures as NIST sclite)."""
    res = run_stage(score_files, ref, hyp, convention=convention_for(choice_value(layout), choice_value(convention)))
    _print_wer(str(hyp), 100.0 * res.wer, res.sub, res.del_, res.ins, res.n_ref)


# -- export -------------------------------------------------------------------------------------------
TARGET_HELP = ("conversion target, required by convert and quantize alike: " + ", ".join(TARGETS)
               + " (`slsdk targets`)")


def _parse_frames(frames: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in frames.split(":"))
    except ValueError:
        fail(f"--frames must be MIN:MAX (two integers), got {frames!r}")
    return lo, hi


def _convert(checkpoint: Path, target: str, precision: str, calib: Path | None, heldout: Path | None, split: str,
             layout: str, out: Path | None, frames: tuple[int, int], zip_: bool, overwrite: bool = False) -> None:
    """`slsdk convert` and `slsdk quantize`: refuse bad choices before any heavy work, then convert."""
    tgt = run_stage(get_target, target)
    run_stage(check_precision, tgt, precision)
    if not checkpoint.is_file():
        fail(f"{checkpoint}: no such checkpoint")
    from slsdk.convert.pipeline import convert as run_convert
    from slsdk.convert.pipeline import load_source

    # loaded once, here; `slsdk data prepare` settings (preparation): the bundle crops as training did
    model, vocab, kind, preparation = run_stage(load_source, checkpoint)
    landmarks = getattr(model, "modality", None)   # landmark models: normalised landmarks; fusion: both
    calib_videos = _videos(calib, "train", layout, vocab, 16, landmarks)[0] if calib else None
    held = _videos(heldout, split, layout, vocab, None, landmarks)[1] if heldout else None
    if out is None:   # the default: a folder of bundles, each in its own <kind>-<target>-<precision> subfolder
        out = Path("bundles")
        run_stage(out.mkdir, parents=True, exist_ok=True)
    dest, _ = run_stage(resolve_bundle_dir, out, f"{kind}-{tgt.name}-{precision}", overwrite=overwrite)  # refuse early

    def locked_convert():
        with reading(checkpoint, calib, heldout), output_lock(dest):   # one conversion into a bundle at a time
            return run_convert(model, tgt.name, precision, out, vocab=vocab, calib=calib_videos, heldout=held,
                               teacher=kind == "teacher", zip=zip_, frames_range=frames, overwrite=overwrite,
                               preparation=preparation)

    with on_interrupt(lambda: f"no bundle was written to {shown_path(dest)} (a bundle is written whole, at the "
                              f"end); start again with `{again_command(resume=False)}`"):
        with working(f"converting to {tgt.name} {precision} and measuring its fidelity to torch"):
            bundle = run_stage(locked_convert)
    if bundle.replaced:
        console.print(f"--overwrite: replaced the slsdk bundle that was at {bundle.root}")
    console.print(f"wrote {escape(shown_path(bundle.root))}")
    console.print(fidelity_line(bundle.manifest.fidelity))


def _videos(root: Path, split: str, layout: str, vocab, limit, landmarks: str | None = None):
    """(videos, [(frames, gloss ids)]) of one split of a dataset root in ``layout`` (``landmarks`` "landmarks": the
    samples' normalised landmarks [T, 86, 2] in place of their frames; "fusion": ``{"frames", "landmarks"}`` of the
    same frames)."""
    samples = run_stage(read_split, root, split, layout)[:limit]
    if landmarks == "fusion":
        frames = [_fusion_item(s) for s in samples]
    elif landmarks == "landmarks":
        frames = [normalize_pose86(run_stage(load_landmarks, s)) for s in samples]
    else:
        frames = [run_stage(read_video, s.video) for s in samples]
    return frames, [(f, vocab.encode(s.glosses)) for f, s in zip(frames, samples)]


def _fusion_item(sample) -> dict:
    """A fusion model's calibration / held-out input: the sample's frames and normalised landmarks, cut to the
    shorter of the two (landmark frame k is frame k)."""
    video, points = run_stage(read_video, sample.video), normalize_pose86(run_stage(load_landmarks, sample))
    n = min(len(video), len(points))
    return {"frames": video[:n], "landmarks": points[:n]}


@app.command(cls=Command)
def convert(checkpoint: Path = typer.Argument(..., help="student (or teacher) checkpoint"),
            target: Target = typer.Option(..., "--target", "-t", metavar="TARGET", help=TARGET_HELP),
            precision: Precision = typer.Option("fp32", help="what the target allows (`slsdk targets`)"),
            calib: Optional[Path] = typer.Option(None, help="dataset root for int8 calibration (its train split)"),
            heldout: Optional[Path] = typer.Option(None, help="dataset root for held-out fidelity (WER)"),
            split: str = typer.Option("test_si", help="held-out split"),
            layout: Layout = typer.Option("folder", help="layout of --calib and --heldout"),
            out: Optional[Path] = typer.Option(None, "--out", "-o", help="bundle folder (default: bundles/"
                                               "<kind>-<target>-<precision>); an existing folder that is not a "
                                               "bundle gets that subfolder"),
            frames: str = typer.Option("16:1024", help="offline teacher only: MIN:MAX frames per clip "
                                       "(executorch needs one fixed count, e.g. 64:64)"),
            zip_: bool = flag("zip", "also write OUT.zip"),
            overwrite: bool = flag("overwrite", "replace OUT if it is an slsdk bundle (nothing else is ever "
                                   "replaced)")):
    """Convert a checkpoint into a bundle for one target, and measure its fidelity to torch."""
    _convert(checkpoint, choice_value(target), choice_value(precision), calib, heldout, split, choice_value(layout),
             out, _parse_frames(frames), zip_, overwrite)


@app.command(cls=Command)
def quantize(checkpoint: Path = typer.Argument(..., help="student (or teacher) checkpoint"),
             target: Target = typer.Option(..., "--target", "-t", metavar="TARGET", help=TARGET_HELP),
             calib: Path = typer.Option(..., help="dataset root for calibration (its train split)"),
             heldout: Optional[Path] = typer.Option(None, help="dataset root for held-out fidelity (WER)"),
             split: str = typer.Option("test_si", help="held-out split"),
             layout: Layout = typer.Option("folder", help="layout of --calib and --heldout"),
             out: Optional[Path] = typer.Option(None, "--out", "-o", help="bundle folder (default: bundles/"
                                                "<kind>-<target>-int8)"),
             frames: str = typer.Option("16:1024", help="offline teacher only: MIN:MAX frames per clip"),
             overwrite: bool = flag("overwrite", "replace OUT if it is an slsdk bundle")):
    """int8 for one target (the target's recipe, calibrated on CALIB): same as convert --precision int8."""
    _convert(checkpoint, choice_value(target), "int8", calib, heldout, split, choice_value(layout), out,
             _parse_frames(frames), False, overwrite)


@app.command(cls=Command)
def targets(markdown: bool = typer.Option(False, "--markdown", help="print the Markdown table (the README's)")):
    """The targets table (what `convert --target` accepts)."""
    if markdown:
        typer.echo(targets_markdown())
        return
    headers, rows = target_rows()
    console.print(fit_table(console, "conversion targets (slsdk convert --target NAME)", headers, rows,
                            right=[False] * len(headers)))


@bundle_app.command("inspect", cls=Command)
def bundle_inspect(path: Path):
    """Validate a bundle (schema, checksums, paths) and print its manifest."""
    console.print(escape(str(run_stage(inspect_bundle, path))), emoji=False, highlight=False)


def _manifest_json(path: Path) -> dict:
    """The manifest.json object of a bundle folder, a manifest file or a bundle .zip (read as the loader reads it)."""
    if path.is_dir():
        return read_manifest_dict(path / MANIFEST_NAME)
    if path.suffix == ".json":
        return read_manifest_dict(path)
    return load_bundle(path, verify=False).manifest.to_dict()


@bundle_app.command("schema", cls=Command)
def bundle_schema(paths: Optional[list[Path]] = typer.Argument(
        None, help="bundles (folder or .zip) or manifest.json files to check against the schema")):
    """Print the manifest's JSON Schema (draft 2020-12), or check manifests against it (needs jsonschema)."""
    if not paths:
        sys.stdout.write(schema_json())
        return
    bad = 0
    for path in paths:
        problems = run_stage(schema_problems, run_stage(_manifest_json, path))
        bad += bool(problems)
        where = shown_path(path)
        console.print(escape(f"{where}: valid" if not problems else f"{where}: {len(problems)} problem(s)"),
                      emoji=False, highlight=False)
        for line in problems:
            console.print(escape(f"  {plain(line)}"), emoji=False, highlight=False)
    if bad:
        raise typer.Exit(1)


# -- runtime ------------------------------------------------------------------------------------------
@app.command(cls=Command)
def run(bundle: Path = typer.Argument(..., help="bundle directory or .zip"),
        video: Optional[Path] = typer.Argument(None, help="video file or frame folder (or a .pose landmark recording for a landmark bundle)"),
        camera: Optional[int] = typer.Option(None, "--camera", help="camera index instead of a video"),
        backend: Optional[Backend] = typer.Option(None, help="default: the bundle's"),
        crop: Optional[Crop] = typer.Option(None, help="default: the bundle's crop policy"),
        hand_model: Optional[Path] = typer.Option(None, help="a hand_landmarker.task, or full (the default "
                                                  "search) or lite (MediaPipe's lite models: slsdk import hand-lite)"),
        face_model: Optional[Path] = typer.Option(None, help="face_landmarker.task (a landmark bundle from video)"),
        pose_model: Optional[Path] = typer.Option(None, help="pose_landmarker.task (a landmark bundle from video)"),
        hand_every: Optional[int] = typer.Option(None, help="while no hand is tracked, run the hand landmarker on "
                                                 "every N-th frame (CropConfig.detect_every; default: the bundle's, else 2)"),
        decoder: Decoder = typer.Option("greedy"), beam: int = typer.Option(DEFAULT_BEAM),
        threads: int = typer.Option(0, help="backend threads (0 = runtime default)"),
        providers: Optional[str] = typer.Option(None, "--providers", metavar="LIST",
                                                help="onnxruntime execution providers in order, e.g. cuda,cpu or "
                                                "tensorrt,cuda,cpu (default: $SLSDK_ORT_PROVIDERS, else TensorRT > "
                                                "CUDA > CPU as installed); a missing one is an error"),
        read_ahead: int = typer.Option(16, min=0, help="video files: frames decoded ahead on a reader thread, "
                                       "overlapping decoding with cropping and the model (0 = in turn)"),
        pipeline: bool = flag("pipeline", "crop and preprocess on a front-end thread while the model runs (same "
                              "results; --no-pipeline: one thread)", default=True),
        json_: bool = flag("json", "JSON lines instead of the live line"),
        overlay: Optional[Path] = typer.Option(None, help="write a PNG contact sheet: frames with the hand crops (or the model's input region) and the glosses"),
        overwrite: bool = flag("overwrite", "replace the --overlay PNG if slsdk wrote it")):
    """Recognise signing in a video or camera stream with a bundle (streaming)."""
    if (video is None) == (camera is None):
        fail("give either a VIDEO or --camera N")
    run_stage(run_command, bundle, video=video, camera=camera, backend=choice_value(backend), crop=choice_value(crop),
              hand_model=hand_model, decoder=choice_value(decoder), beam=beam, threads=threads, as_json=json_,
              overlay=overlay, console=console, hand_every=hand_every, read_ahead=read_ahead, pipeline=pipeline,
              overwrite=overwrite, providers=providers, face_model=face_model, pose_model=pose_model)


@app.command(cls=Command)
def bench(bundles: Optional[Path] = typer.Option(None, help="folder of bundles (default: the demo's)"),
          arch: bool = flag("arch", "time the real sizes (ViT-B/16 teacher, default student)"),
          out: Path = typer.Option(Path("bench"), "--out", "-o"),
          data: Optional[Path] = typer.Option(None, help="dataset root for WER and videos"),
          overwrite: bool = flag("overwrite", "replace the bench.* files slsdk wrote in OUT before (never other "
                                 "files)")):
    """Benchmark every target x precision: size, latency p50/p90, frames/s, ratio to eager fp32 torch."""
    run_stage(run_bench, bundles_dir=bundles, arch=arch, out_dir=out, data_root=data, console=console,
              overwrite=overwrite)


@app.command(cls=Command)
def demo(out: Path = typer.Option(Path("slsdk_demo"), "--out", "-o"),
         quick: bool = flag("quick", "tiny data and few epochs (tests)"),
         seed: int = typer.Option(0)):
    """The whole pipeline offline: synthetic data -> teacher -> student -> int8 -> every target -> stream."""
    from slsdk.demos.pipeline import run_demo

    run_stage(run_demo, out, quick=quick, seed=seed, console=console)


def main() -> None:
    """The `slsdk` entry point: user errors were printed as one line by run_stage; a missing optional
    dependency names the extra to install; anything else is a bug, shown with its traceback and where to report it."""
    try:
        app()
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "slsdk":
            report_bug(e)   # a bug in slsdk itself, not a missing extra: keep the traceback
            sys.exit(1)
        err_console.print(f"[bold red]error:[/] {escape(str(e))}. This command needs an optional dependency; "
                          "install the extras: " + escape("pip install 'slsdk[all]'"), highlight=False)
        sys.exit(2)
    except USER_ERRORS as e:   # raised outside run_stage (e.g. taking an output lock): still the user's to fix
        print_error(error_line(e))
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - not a user error (those were printed as one line): a bug
        report_bug(e)
        sys.exit(1)


if __name__ == "__main__":
    main()
