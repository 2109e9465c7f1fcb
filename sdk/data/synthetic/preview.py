"""Pictures of the synthetic data: a contact sheet of the signs and a strip of frames per preset (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slsdk import fileio
from slsdk.data.synthetic.generate import load_spec
from slsdk.data.synthetic.lexicon import make_lexicon, make_signer
from slsdk.data.synthetic.phone import PhoneFraming, render_phone_sentence, renderer_crop
from slsdk.data.synthetic.presets import PRESETS
from slsdk.data.synthetic.render import render_sentence
from slsdk.runtime.crop import CropConfig


def _save_png(fig, png_path: str | Path, overwrite: bool) -> Path:
    """``fig`` as the PNG ``png_path``, written by :mod:`slsdk.fileio` (normal permissions)."""
    png_path = Path(png_path)
    with fileio.atomic_path(png_path, overwrite=overwrite, suffix=png_path.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=80)
    return png_path


def preset_strip(png_path: str | Path, frames: int = 7, seed: int = 0, *, overwrite: bool = False) -> Path:
    """PNG with a strip of frames per preset: ``demo`` (square, centred signer), ``isharah`` as the phone
    records it (portrait, off-centre, shake, lighting) and the signing-space crops its videos hold."""
    import matplotlib  # heavy, optional: only for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demo = render_sentence([0, 3, 5, 7], 0, np.random.default_rng([seed, 20]))
    isk = PRESETS["isharah"]
    lex = make_lexicon(isk["num_glosses"], seed)
    sent = [int(g) for g in np.random.default_rng([seed, 21]).integers(0, len(lex), 6)]
    raw, hands = render_phone_sentence(sent, make_signer(11, seed), np.random.default_rng([seed, 22]), lexicon=lex,
                                       framing=PhoneFraming(**isk["phone"]), coarticulation=isk["coarticulation"])
    crops, boxes = renderer_crop(raw, hands, isk["image_size"], config=CropConfig(**isk["crop"]))
    rows = [("demo (96 px)", demo), ("isharah: phone frame", raw), ("isharah: signing-space crop", crops)]
    fig, axes = plt.subplots(3, frames, figsize=(1.3 * frames, 6.2), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.7, 1]})
    for r, (label, video) in enumerate(rows):
        for c, t in enumerate(np.linspace(0, len(video) - 1, frames).round().astype(int)):
            ax = axes[r][c]
            ax.imshow(video[t])
            if r == 1:
                x0, y0, x1, y1 = boxes[t]
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1))
            ax.set_xticks([]); ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.tight_layout()
    try:
        return _save_png(fig, png_path, overwrite)
    finally:
        plt.close(fig)


def preview(out_dir: str | Path | None, png_path: str | Path, *, glosses: int = 6, frames_per_sign: int = 4,
            signer: int = 0, seed: int = 0, overwrite: bool = False) -> Path:
    """Contact sheet PNG: one row per gloss (isolated sign, ``frames_per_sign`` frames)."""
    import matplotlib  # heavy, optional: only for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if out_dir is not None and (Path(out_dir) / "synthetic.json").is_file():
        lex, signers, settings = load_spec(out_dir)
        size = settings["image_size"]
        sp = signers[signer]
    else:
        lex, sp, size = make_lexicon(seed=seed), make_signer(signer, seed), 96
    lex = lex[:glosses]
    fig, axes = plt.subplots(len(lex), frames_per_sign, figsize=(1.4 * frames_per_sign, 1.5 * len(lex)), squeeze=False)
    for r, sign in enumerate(lex):
        video, segs = render_sentence([sign.name], sp, np.random.default_rng([seed, 9, r]), lexicon=lex,
                                      image_size=size, return_segments=True)
        _, a, b = segs[0]
        for c, t in enumerate(np.linspace(a, b - 1, frames_per_sign).round().astype(int)):
            ax = axes[r][c]
            ax.imshow(video[t])
            ax.set_xticks([]); ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{sign.name}\n{sign.shape}/{sign.movement}", fontsize=7)
    fig.tight_layout()
    try:
        return _save_png(fig, png_path, overwrite)
    finally:
        plt.close(fig)
