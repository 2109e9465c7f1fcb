"""Gloss vocabulary: index 0 is the CTC blank everywhere in slsdk."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from slsdk.errors import SlsdkError
from slsdk.fileio import atomic_write_text

BLANK = "<blank>"
UNK = "<unk>"
_FORMAT = "slsdk-vocab-1"


class VocabularyError(SlsdkError, ValueError):
    """A vocabulary problem: unknown gloss, bad file, size mismatch with a checkpoint."""


class Vocabulary:
    """Ordered gloss list; ``glosses[0] == "<blank>"``; optional ``<unk>`` at index 1.

    ``encode`` raises on an unknown gloss unless the vocabulary was built with ``unk=True``,
    in which case unknown glosses map to the ``<unk>`` id.
    """

    def __init__(self, glosses: Sequence[str], *, unk: bool | None = None):
        glosses = list(glosses)
        if not glosses or glosses[0] != BLANK:
            glosses = [BLANK, *glosses]
        if unk is None:
            unk = UNK in glosses
        if unk and UNK not in glosses:
            glosses.insert(1, UNK)
        seen: dict[str, int] = {}
        for i, g in enumerate(glosses):
            if not isinstance(g, str) or not g or any(c.isspace() for c in g):
                raise VocabularyError(f"vocabulary entry {i} is {g!r}: glosses must be non-empty strings without spaces")
            if g in seen:
                raise VocabularyError(f"vocabulary lists gloss {g!r} twice (indices {seen[g]} and {i})")
            seen[g] = i
        if BLANK in glosses[1:]:
            raise VocabularyError(f"{BLANK!r} may only be at index 0")
        self.glosses: list[str] = glosses
        self.unk = bool(unk)
        self._index = seen

    # construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, samples: Iterable[Any], *, unk: bool = False, min_count: int = 1) -> "Vocabulary":
        """Sorted gloss set of ``samples`` (``Sample`` objects or gloss lists), deterministic."""
        counts: dict[str, int] = {}
        for s in samples:
            glosses = s if isinstance(s, (list, tuple)) else s.glosses
            for g in glosses:
                counts[g] = counts.get(g, 0) + 1
        kept = sorted(g for g, c in counts.items() if c >= min_count and g not in (BLANK, UNK))
        if not kept:
            raise VocabularyError("cannot build a vocabulary: the samples contain no glosses")
        return cls(kept, unk=unk)

    # mapping --------------------------------------------------------------------------------
    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int | None:
        return self._index[UNK] if self.unk else None

    def __len__(self) -> int:
        return len(self.glosses)

    def __contains__(self, gloss: object) -> bool:
        return gloss in self._index

    def __getitem__(self, i: int) -> str:
        return self.glosses[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.glosses == other.glosses and self.unk == other.unk

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries incl. blank{', unk' if self.unk else ''})"

    def index(self, gloss: str) -> int:
        try:
            return self._index[gloss]
        except KeyError:
            if self.unk:
                return self._index[UNK]
            raise VocabularyError(
                f"gloss {gloss!r} is not in the vocabulary ({len(self)} entries); "
                "build the vocabulary from the training split or enable unk=True"
            ) from None

    def encode(self, glosses: Sequence[str], *, where: str = "") -> list[int]:
        out = []
        for g in glosses:
            if g == BLANK:
                raise VocabularyError(f"{where + ': ' if where else ''}label contains the blank token {BLANK!r}")
            try:
                out.append(self.index(g))
            except VocabularyError as e:
                raise VocabularyError(f"{where}: {e}" if where else str(e)) from None
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.glosses):
                raise VocabularyError(f"id {i} is out of range for a vocabulary of {len(self)} entries")
            out.append(self.glosses[i])
        return out

    # persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, "blank_id": 0, "unk": self.unk, "glosses": list(self.glosses)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "vocabulary") -> "Vocabulary":
        if not isinstance(d, dict) or not isinstance(d.get("glosses"), list):
            raise VocabularyError(f"{where}: expected an object with a 'glosses' list, got {type(d).__name__}")
        if d.get("blank_id", 0) != 0 or (d["glosses"] and d["glosses"][0] != BLANK):
            raise VocabularyError(f"{where}: blank must be entry 0 ('{BLANK}'), got {d['glosses'][:1]}")
        try:
            return cls(d["glosses"], unk=bool(d.get("unk", False)))
        except VocabularyError as e:
            raise VocabularyError(f"{where}: {e}") from None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the vocabulary as JSON (a new file, or one slsdk wrote when ``overwrite``)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n",
                                 overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise VocabularyError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        return cls.from_dict(d, where=str(path))

    def check_compatible(self, other: "Vocabulary | int", *, where: str = "checkpoint") -> None:
        """Raise if ``other`` (a vocabulary or a class count) does not fit this vocabulary."""
        if isinstance(other, Vocabulary):
            if other.glosses != self.glosses:
                diff = next((i for i, (a, b) in enumerate(zip(self.glosses, other.glosses)) if a != b), None)
                detail = (f"first difference at index {diff}: {self.glosses[diff]!r} vs {other.glosses[diff]!r}"
                          if diff is not None else f"sizes {len(self)} vs {len(other)}")
                raise VocabularyError(
                    f"vocabulary of {len(self)} glosses does not match the vocabulary of {where} "
                    f"({len(other)} glosses; {detail})")
            return
        n = int(other)
        if n != len(self):
            raise VocabularyError(
                f"vocabulary of {len(self)} glosses (incl. blank) does not match {where} with {n} classes")
