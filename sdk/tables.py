"""Tables and numbers as a person reads them: every value whole, at the width of the terminal.

``num`` writes a number to its meaningful digits (``2.4e-07``, ``85.7``, ``3,698,112``, ``n/a`` for a missing
value). ``fit_table`` builds a rich Table whose cells wrap only at spaces, never cut; where even that cannot fit
the console's width (a narrow terminal), it prints one block per row instead: the row's name, then one
``header  value`` line per column. Standard library and rich only (the runtime's commands use it).
"""
from __future__ import annotations

import math
from typing import Sequence

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["num", "fit_table", "wrapped", "fidelity_line", "NA"]

NA = "n/a"   # what a missing value prints as (never ``None``)


def num(x, digits: int = 3, *, unit: str = "") -> str:
    """``x`` to ``digits`` significant digits, as plain as it can be written: integers and values of ``digits``
    or more integer digits with thousands separators (``3,698,112``, ``1,234``), small values in scientific
    notation (``2.4e-07`` at ``digits=2``), the rest as a decimal (``85.7``, ``0.0029``). ``None`` / NaN print
    ``n/a``; ``unit`` is appended after a space (``85.7 %``)."""
    if x is None or isinstance(x, str):
        return NA if x is None else x
    if isinstance(x, bool):
        return str(x)
    suffix = f" {unit}" if unit else ""
    if isinstance(x, int):
        return f"{x:,}{suffix}"
    x = float(x)
    if math.isnan(x):
        return NA
    if math.isinf(x) or x == 0:
        return f"{x:g}{suffix}"
    mag = math.floor(math.log10(abs(x)))
    if mag >= digits - 1:
        return f"{x:,.0f}{suffix}"
    if mag < -3:
        return f"{x:.{max(digits - 1, 0)}e}{suffix}"
    decimals = digits - 1 - mag
    text = f"{round(x, decimals):.{decimals}f}"
    return text + suffix


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[int] | None:
    """Content width per column so the table fits ``width``: each column starts at its longest line and the
    widest one gives way first, never below its longest word (cells wrap at spaces only). ``None``: even that
    is too wide."""
    cols = [[str(h), *(str(r[i]) for r in rows)] for i, h in enumerate(headers)]
    natural = [max(len(c) for c in col) for col in cols]
    least = [max(_longest_word(c) for c in col) for col in cols]
    room = width - (3 * len(headers) + 1)           # borders and one space of padding either side of a cell
    if sum(least) > room:
        return None
    widths = list(natural)
    while sum(widths) > room:
        i = max((j for j in range(len(widths)) if widths[j] > least[j]), key=lambda j: widths[j])
        widths[i] -= 1
    return widths


def _table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool],
           widths: Sequence[int]) -> Table:
    table = Table(title=title)
    for h, r, w in zip(headers, right, widths):
        table.add_column(h, justify="right" if r else "left", overflow="fold", width=w)
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))
    return table


def _blocks(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Group:
    parts: list[RenderableType] = []
    if title:
        parts.append(Text(title, style="italic"))
    for row in rows:
        parts.append(Text(str(row[0]), style="bold"))
        grid = Table.grid(padding=(0, 2), pad_edge=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for h, c in zip(headers[1:], row[1:]):
            grid.add_row("  " + h, Text(str(c)))
        parts.append(grid)
    return Group(*parts)


def wrapped(text: str) -> Table:
    """``text`` wrapped at spaces to the console's width, even on a console that prints with ``soft_wrap``."""
    grid = Table.grid()
    grid.add_column(overflow="fold")
    grid.add_row(Text(text))
    return grid


def fit_table(console: Console, title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]],
              right: Sequence[bool] | None = None, notes: Sequence[str] = ()) -> RenderableType:
    """A rich Table of ``rows`` (strings; the first column names the row) that fits ``console``'s width without
    cutting a value, or, where it cannot, one block per row; ``notes`` (lines) under it, wrapped at spaces.
    ``right``: right-justify that column (default: every column but the first, numbers)."""
    right = list(right) if right is not None else [i > 0 for i in range(len(headers))]
    widths = _widths(headers, rows, console.width)
    body = _blocks(title, headers, rows) if widths is None else _table(title, headers, rows, right, widths)
    return Group(body, *(wrapped(n) for n in notes)) if notes else body


def _longest_word(text) -> int:
    return max((len(w) for w in str(text).split()), default=0)


def fidelity_line(fidelity: dict) -> str:
    """A bundle's ``manifest.fidelity`` in words: how close the converted model is to torch, on what data."""
    if fidelity.get("status") != "run":
        return f"fidelity: {fidelity.get('status', NA)} ({fidelity.get('reason', '')})".replace(" ()", "")
    on = fidelity.get("data") or f"{fidelity.get('videos', NA)} videos"
    parts = [f"max abs logit error {num(fidelity.get('max_abs_err'), 2)}", f"cosine {num(fidelity.get('cosine'), 5)}",
             f"frame argmax agreement {num(100 * fidelity['argmax_agreement'], 3, unit='%')}"
             if "argmax_agreement" in fidelity else None]
    if "wer" in fidelity:
        parts.append(f"held-out WER {num(fidelity['wer'], 3, unit='%')} (torch {num(fidelity['wer_torch'], 3, unit='%')})")
    if fidelity.get("meets_int8_budget") is not None:
        parts.append("within the int8 WER budget" if fidelity["meets_int8_budget"] else "OVER the int8 WER budget")
    return (f"fidelity to {fidelity.get('reference', 'torch')} ({fidelity.get('runtime', NA)}, {on}): "
            + ", ".join(p for p in parts if p) + " (manifest.json: fidelity)")
