"""Text from files, made safe for a terminal: what slsdk prints of a bundle or a data set (a gloss, a name, a
path) is shown as the characters it holds, never as Rich markup, a hyperlink or an escape sequence that styles,
links or retitles the terminal. Standard library and rich only (the runtime uses it)."""
from __future__ import annotations

import unicodedata

from rich.markup import escape

__all__ = ["visible", "plain"]

_KEEP = {"\u200c", "\u200d"}   # zero-width (non-)joiners: part of Arabic / Persian / emoji text, not controls
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text) -> str:
    """``text`` with every control / format / separator character shown escaped (ESC as the four characters
    ``\\x1b``, U+202E as ``\\u202e``, a newline as ``\\n``): safe to put on a terminal, always one line. Text
    without such characters comes back unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c not in _KEEP and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            o = ord(c)
            out.append(_NAMED.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000
                                         else f"\\U{o:08x}"))
        else:
            out.append(c)
    return "".join(out)


def plain(text) -> str:
    """Text from a bundle or a dataset (a gloss, a vocabulary entry, a name, a path) made ready to go inside Rich
    markup as plain text: control characters shown escaped (:func:`visible`), markup escaped (``[/]``,
    ``[link=...]`` print as they are). Print the result with ``emoji=False`` so ``:name:`` stays literal too."""
    return escape(visible(text))
