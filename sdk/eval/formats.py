"""NIST CTM (hypotheses) and STM (references) files, as read by sclite and the PHOENIX scripts.

CTM: one gloss per line ``<id> 1 <start> <dur> <gloss> [<conf>]``.
STM: one segment per line ``<id> 1 <speaker> <start> <end> [<label>] <gloss> <gloss> ...``.
PHOENIX ground truth uses ``start = 0.0`` and ``end = 1.79769e+308`` so that every hypothesis
gloss of a video falls in its one segment; :func:`write_stm` does the same by default.

Score written files yourself with::

    sclite -h HYP.ctm ctm -r REF.stm stm -s -o sum rsum pra stdout

(``-s``: case-sensitive, as :func:`slsdk.eval.wer` is by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from slsdk.eval.wer import ScoringError, WERResult, phoenix_cleanup, wer
from slsdk.fileio import atomic_write_text

__all__ = ["CtmWord", "write_ctm", "read_ctm", "write_stm", "read_stm", "score_files", "events_to_ctm"]

STM_OPEN_END = "1.79769e+308"


@dataclass(frozen=True)
class CtmWord:
    gloss: str
    start: float
    dur: float
    conf: float | None = None


def _check_id(uid: str) -> str:
    uid = str(uid)
    if not uid or any(c.isspace() for c in uid):
        raise ScoringError(f"utterance id must be non-empty without whitespace: {uid!r}")
    return uid


def _check_gloss(g: str) -> str:
    g = str(g)
    if not g or any(c.isspace() for c in g):
        raise ScoringError(f"gloss must be non-empty without whitespace: {g!r}")
    return g


def events_to_ctm(events: Iterable, id_to_gloss) -> list[CtmWord]:
    """Turn decoder :class:`~slsdk.decode.GlossEvent` s into CTM words (``id_to_gloss``: callable or
    mapping/sequence indexed by id)."""
    look = id_to_gloss if callable(id_to_gloss) else id_to_gloss.__getitem__
    return [CtmWord(look(e.id), float(e.start), float(e.end) - float(e.start), float(e.confidence)) for e in events]


def write_ctm(
    path,
    hyps: Mapping[str, Sequence],
    convention: str = "none",
    step: float = 0.04,
    *,
    overwrite: bool = False,
) -> None:
    """Write hypotheses. ``hyps[id]`` is a list of glosses (times made up: ``step`` s per gloss) or
    of :class:`CtmWord` / ``(gloss, start, dur[, conf])``.  ``convention="phoenix"`` applies
    :func:`~slsdk.eval.phoenix_cleanup` (so an empty hypothesis becomes ``[EMPTY]``); otherwise an
    empty hypothesis writes no line (sclite then counts all reference glosses as deleted).
    """
    lines = []
    for uid, words in hyps.items():
        uid = _check_id(uid)
        ws: list[CtmWord] = []
        for k, w in enumerate(words):
            if isinstance(w, CtmWord):
                ws.append(w)
            elif isinstance(w, str):
                ws.append(CtmWord(w, k * step, step))
            else:
                ws.append(CtmWord(*w))
        if convention == "phoenix":
            cleaned = phoenix_cleanup([w.gloss for w in ws])
            if len(cleaned) != len(ws) or any(c != w.gloss for c, w in zip(cleaned, ws)):
                # re-time: keep the times of the surviving glosses where they map one to one
                kept = [w for w in ws if phoenix_cleanup([w.gloss]) != ["[EMPTY]"]]
                if len(kept) == len(cleaned):
                    ws = [CtmWord(c, w.start, w.dur, w.conf) for c, w in zip(cleaned, kept)]
                else:
                    ws = [CtmWord(c, k * step, step) for k, c in enumerate(cleaned)]
        elif convention != "none":
            raise ScoringError(f"convention must be 'none' or 'phoenix', got {convention!r}")
        for w in ws:
            g = _check_gloss(w.gloss)
            if not (math.isfinite(w.start) and math.isfinite(w.dur)) or w.dur < 0 or w.start < 0:
                raise ScoringError(f"bad CTM time for {uid} {g}: start {w.start}, dur {w.dur}")
            line = f"{uid} 1 {w.start:.3f} {w.dur:.3f} {g}"
            if w.conf is not None:
                line += f" {w.conf:.6f}"
            lines.append(line)
    atomic_write_text(path, "".join(x + "\n" for x in lines), overwrite=overwrite)


def read_ctm(path) -> dict[str, list[CtmWord]]:
    """Read a CTM file: ids in first-seen order, words of each id sorted by start time (stable)."""
    out: dict[str, list[CtmWord]] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(";;"):
            continue
        f = line.split()
        if len(f) not in (5, 6):
            raise ScoringError(f"{path}:{n}: CTM line needs 5 or 6 fields (id chan start dur gloss [conf]): {raw!r}")
        try:
            start, dur = float(f[2]), float(f[3])
            conf = float(f[5]) if len(f) == 6 else None
        except ValueError as e:
            raise ScoringError(f"{path}:{n}: bad number in CTM line {raw!r}") from e
        out.setdefault(f[0], []).append(CtmWord(f[4], start, dur, conf))
    for uid in out:
        out[uid].sort(key=lambda w: w.start)
    return out


def write_stm(path, refs: Mapping[str, Sequence[str]], speaker: str = "signer", start: float = 0.0, end=None, *,
              overwrite: bool = False) -> None:
    """Write references, one segment per id spanning ``[start, end]`` (default: open ended)."""
    _check_id(speaker)
    end_s = STM_OPEN_END if end is None else f"{float(end):.3f}"
    lines = []
    for uid, glosses in refs.items():
        uid = _check_id(uid)
        words = " ".join(_check_gloss(g) for g in glosses)
        lines.append(f"{uid} 1 {speaker} {start:.1f} {end_s} {words}".rstrip())
    atomic_write_text(path, "".join(x + "\n" for x in lines), overwrite=overwrite)


def read_stm(path) -> dict[str, list[str]]:
    """Read an STM file: glosses per id (segments of one id joined in start-time order)."""
    segs: dict[str, list[tuple[float, list[str]]]] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(";;"):
            continue
        f = line.split()
        if len(f) < 5:
            raise ScoringError(f"{path}:{n}: STM line needs id chan speaker start end [words]: {raw!r}")
        try:
            start = float(f[3])
            float(f[4])
        except ValueError as e:
            raise ScoringError(f"{path}:{n}: bad time in STM line {raw!r}") from e
        words = f[5:]
        if words and words[0].startswith("<") and words[0].endswith(">"):
            words = words[1:]  # optional label field, e.g. <o,f0,male>
        segs.setdefault(f[0], []).append((start, words))
    return {uid: [w for _, ws in sorted(s, key=lambda x: x[0]) for w in ws] for uid, s in segs.items()}


def score_files(ref_stm, hyp_ctm, convention: str = "none", aligner: str = "sclite", case_sensitive: bool = True) -> WERResult:
    """WER of a CTM hypothesis file against an STM reference file (ids missing from the CTM count
    as empty hypotheses; ids in the CTM but not in the STM are an error)."""
    refs = read_stm(ref_stm)
    hyps = read_ctm(hyp_ctm)
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise ScoringError(f"{len(extra)} hypothesis ids not in the reference, e.g. {extra[:3]}")
    ids = list(refs)
    return wer(
        [refs[u] for u in ids],
        [[w.gloss for w in hyps.get(u, [])] for u in ids],
        convention=convention,
        aligner=aligner,
        ids=ids,
        case_sensitive=case_sensitive,
    )
