"""`slsdk import ...`: bring models trained elsewhere into slsdk checkpoints."""
from __future__ import annotations

from pathlib import Path

import typer

import_app = typer.Typer(no_args_is_help=True, help="Import published models as slsdk checkpoints.")


@import_app.command("adaptsign")
def import_adaptsign_cmd(
        checkpoint: Path = typer.Argument(..., help="AdaptSign checkpoint (main.py's torch.save, e.g. *.pt)"),
        gloss_dict: Path = typer.Option(..., "--gloss-dict", help="the data set's gloss_dict.npy"),
        out: Path = typer.Option(Path("runs/adaptsign/teacher.pt"), "--out", "-o", help="slsdk teacher checkpoint"),
        conv_type: str = typer.Option("K5-P2-K5-P2", help="the reference's temporal conv (conv_type 2)"),
        force: bool = typer.Option(False, "--force", help="overwrite OUT")):
    """Import a published AdaptSign checkpoint (hulianyuyy/AdaptSign) as an slsdk teacher checkpoint."""
    from rich.console import Console

    from slsdk.cli import _run, fail
    from slsdk.models.adaptsign_import import import_adaptsign, save_imported

    if out.exists() and not force:
        fail(f"{out}: already exists (pass --force to overwrite)")
    model, vocab = _run(import_adaptsign, checkpoint, gloss_dict, conv_type=conv_type)
    path = _run(save_imported, model, vocab, out)
    cfg = model.config
    v = cfg.vision_config()
    Console().print(f"imported AdaptSign {cfg.backbone} (width {v.width}, {v.layers} layers, patch {v.patch_size}, "
                    f"{v.image_size} px), hidden {cfg.hidden}, {cfg.num_classes} classes incl. blank -> {path}")


__all__ = ["import_app"]
