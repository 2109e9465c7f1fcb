"""`slsdk data ...`: generate the synthetic default data set, summarise a layout, prepare a crop cache or
landmarks (the readers, the generator and the cache are torch-free: imported at the top)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from slsdk.cli_choices import Crop, Layout
from slsdk.cli_common import Command, Group, choice_value, console, flag, run_stage
from slsdk.data.prepare import prepare_command
from slsdk.data.splits import LAYOUTS
from slsdk.data.summary import print_summary, summarize_dataset
from slsdk.data.synthetic import generate_synthetic, preset_settings

data_app = typer.Typer(cls=Group, no_args_is_help=True, help="Datasets: generate the synthetic default, summarise a layout.")


@data_app.command("synth", cls=Command)
def data_synth(out: Path = typer.Argument(..., help="output folder"),
               seed: int = typer.Option(0), quick: bool = flag("quick", "a tiny set for tests"),
               preset: str = typer.Option("demo", help="demo (the embedded default) | isharah (phone framing, "
                                          "15 signers, >= 100 glosses, landmarks)"),
               glosses: Optional[int] = typer.Option(None, help="number of glosses (isharah: up to 388 and more)"),
               landmarks: bool = flag("landmarks", "a .pose per video: the true 86-point pose as MediaPipe sees it"),
               overwrite: bool = flag("overwrite", "replace a synthetic data set made with other settings (never "
                                      "another data set)")):
    """Generate the synthetic signing dataset (the embedded default) in the folder format."""
    kw = run_stage(preset_settings, preset, quick=quick, **({"num_glosses": glosses} if glosses is not None else {}),
                   **({"landmarks": True} if landmarks else {}))
    path = run_stage(generate_synthetic, out, seed=seed, progress=True, overwrite=overwrite, **kw)
    console.print(f"wrote {path}")


@data_app.command("show", cls=Command)
def data_show(root: Path = typer.Argument(..., help="dataset root"),
              layout: Layout = typer.Option("folder", metavar="LAYOUT", help="dataset layout: " + ", ".join(LAYOUTS)),
              frames: bool = flag("frames", "count frames per video (container metadata) and read the landmarks "
                                  "(frames with a part missing)", default=True),
              json_: bool = flag("json", "print the summary as JSON")):
    """Summarise a dataset: samples, signers, vocabulary, frames per video, unseen glosses, bad videos; with
    landmarks (--layout isharah-pose, .pose files) the frames with each part missing."""
    s = run_stage(summarize_dataset, root, choice_value(layout), frames=frames)
    if json_:
        print(json.dumps(s.to_dict(), ensure_ascii=False, indent=2))
        return
    print_summary(s, console)


@data_app.command("prepare", cls=Command)
def data_prepare(data: Path = typer.Argument(..., help="dataset root"),
                 out: Path = typer.Option(Path("prepared"), "--out", "-o", help="cache folder"),
                 crop: Crop = typer.Option("hands", help="the runtime's signing-space crop, or the full frame"),
                 size: int = typer.Option(256, help="crop size (hands) or shorter side (full), pixels"),
                 fps: float = typer.Option(25.0, help="resample to this frame rate by timestamps (0: keep all)"),
                 workers: int = typer.Option(1, help="processes"),
                 layout: Layout = typer.Option("folder", metavar="LAYOUT", help="dataset layout: " + ", ".join(LAYOUTS)),
                 split: Optional[list[str]] = typer.Option(None, help="splits (default: all)"),
                 hand_model: Optional[Path] = typer.Option(None, help="a hand_landmarker.task, or full (the default "
                                                                    "search) or lite (slsdk import hand-lite)"),
                 landmarks: bool = flag("landmarks", "write each video's 86-point landmarks as a .pose beside it"),
                 face_model: Optional[Path] = typer.Option(None, help="face_landmarker.task (--landmarks)"),
                 pose_model: Optional[Path] = typer.Option(None, help="pose_landmarker.task (--landmarks)"),
                 overwrite: bool = flag("overwrite", "discard a cache made with other settings (or slsdk's .pose)")):
    """Decode each video once, crop it as the runtime does, write a cache for train/distill (--landmarks: .pose)."""
    run_stage(prepare_command, data, out, crop=choice_value(crop), size=size, fps=fps, workers=workers,
              layout=choice_value(layout), split=split, hand_model=hand_model, overwrite=overwrite,
              landmarks=landmarks, face_model=face_model, pose_model=pose_model)


__all__ = ["data_app"]
