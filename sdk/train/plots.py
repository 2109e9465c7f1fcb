"""Training curves as a PNG (matplotlib's Agg canvas; no display, no pyplot global state)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slsdk.fileio import atomic_write


def plot_history(history: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Plot training loss (and its components) and dev WER per epoch into ``path`` (PNG), atomically.

    ``history`` rows are the per-epoch dicts of the trainer: ``epoch``, ``train_loss``, ``loss/<term>``,
    ``dev_wer`` (may be None), ``lr``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415  (slow to import: only for plots)
    from matplotlib.figure import Figure  # noqa: PLC0415

    path = Path(path)
    if not history:
        raise ValueError(f"plot_history: no epochs to plot into {path}")
    epochs = [int(h["epoch"]) for h in history]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_wer = fig.subplots(1, 2)

    ax_loss.plot(epochs, [h.get("train_loss") for h in history], "o-", label="train loss (total)")
    terms = sorted({k for h in history for k in h if k.startswith("loss/")})
    for k in terms:
        ax_loss.plot(epochs, [h.get(k) for h in history], ".--", lw=1, label=k[5:])
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=7)

    wer = [(e, h["dev_wer"]) for e, h in zip(epochs, history) if h.get("dev_wer") is not None]
    if wer:
        ax_wer.plot([e for e, _ in wer], [w for _, w in wer], "s-", color="tab:red", label="dev WER")
        best = min(wer, key=lambda x: x[1])
        ax_wer.annotate(f"best {best[1]:.1f}%", best, textcoords="offset points", xytext=(0, 8), fontsize=8)
        ax_wer.legend(fontsize=7)
    else:
        ax_wer.text(0.5, 0.5, "no dev split", ha="center", va="center", transform=ax_wer.transAxes)
    ax_wer.set_xlabel("epoch")
    ax_wer.set_ylabel("WER %")
    ax_wer.set_title("dev WER")
    ax_wer.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    atomic_write(path, lambda f: fig.savefig(f, format="png"), fsync=False)
    return path


__all__ = ["plot_history"]
