"""`slsdk import ...`: bring models trained elsewhere into slsdk checkpoints.

The importer and the checkpoint writer load torch, so they are imported inside the functions that use them
(slsdk.models.adaptsign_import, slsdk.train.checkpoint): the CLI starts without torch.
"""
from __future__ import annotations

from pathlib import Path

import typer

from slsdk.cli_common import Command, Group, console, run_stage
from slsdk.fileio import check_replace, output_lock, reading

import_app = typer.Typer(cls=Group, no_args_is_help=True, help="Import published models as slsdk checkpoints.")


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


def save_imported(model, vocab, out: str | Path) -> Path:
    """Write an imported teacher as an slsdk ``teacher`` checkpoint (loadable by ``load_model``), atomically."""
    from slsdk.train.checkpoint import save_checkpoint   # torch

    origin = dict(getattr(model, "imported_from", {}))
    return save_checkpoint(out, kind="teacher", config=model.config.to_dict(), vocab=vocab, model=model.state_dict(),
                           epoch=int(origin.get("epoch", 0)), extra={"imported_from": origin})


__all__ = ["import_app", "save_imported"]
