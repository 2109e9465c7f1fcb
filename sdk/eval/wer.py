"""Gloss error rate (WER) with the PHOENIX evaluation conventions.

Two aligners give the sub/del/ins breakdown:

* ``aligner="sclite"`` (default): dynamic-programming alignment with NIST sclite's default costs
  (substitution 4, deletion 3, insertion 3, match 0), so counts and WER are those of
  ``sclite -h HYP.ctm ctm -r REF.stm stm`` (the tool behind the published PHOENIX numbers).
* ``aligner="jiwer"``: jiwer's unit-cost Levenshtein alignment.  The total error count is the
  minimum edit distance; it can be lower than sclite's, and the split between sub/del/ins can
  differ (e.g. sclite prefers one deletion + one insertion over two substitutions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from slsdk.errors import SlsdkError

__all__ = ["UttScore", "WERResult", "wer", "phoenix_cleanup", "PHOENIX_LAYOUTS", "convention_for", "align", "SCLITE_COSTS", "ScoringError"]

# the data sets whose glosses the PHOENIX clean-up was written for (its evaluation scripts)
PHOENIX_LAYOUTS = ("phoenix2014", "phoenix2014t")


def convention_for(layout: str, convention: str = "auto") -> str:
    """The clean-up to score with: ``convention`` unless "auto", which is "phoenix" for the PHOENIX layouts
    (``PHOENIX_LAYOUTS``) and "none" for every other data set (`eval model` and `eval wer` share this rule)."""
    if convention != "auto":
        return convention
    return "phoenix" if layout in PHOENIX_LAYOUTS else "none"


class ScoringError(SlsdkError, ValueError):
    """References and hypotheses that cannot be scored: a malformed CTM/STM line (file and line named), ids that
    do not match, unequal counts, an unknown convention or aligner."""


SCLITE_COSTS = (4, 3, 3)  # substitution, deletion, insertion (sclite defaults)

_PREFIXES = ("loc-", "cl-", "qu-", "poss-", "lh-")
_REMOVED = ("__EMOTION__", "__PU__", "__LEFTHAND__")
_DROP_IF_CONTAINS = ("__LEFTHAND__", "__EPENTHESIS__", "__EMOTION__")
_RAUM = re.compile(r"([A-Z][A-Z])RAUM")
EMPTY = "[EMPTY]"


def phoenix_cleanup(glosses: Sequence[str]) -> list[str]:
    """Hypothesis cleanup of the official PHOENIX-2014 evaluation (``evaluatePhoenix2014.sh``).

    The official script runs ``sed`` over a CTM file (one gloss per line); per gloss this means:
    remove the substrings ``loc-``, ``cl-``, ``qu-``, ``poss-``, ``lh-``; ``S0NNE`` -> ``SONNE``,
    ``HABEN2`` -> ``HABEN``; remove ``__EMOTION__``, ``__PU__``, ``__LEFTHAND__``; a gloss ending
    in ``ZEIGEN`` gets ``-BILDSCHIRM``; ``XYRAUM`` -> ``XY``; remove ``-PLUSPLUS``; drop glosses
    still containing ``__LEFTHAND__``/``__EPENTHESIS__``/``__EMOTION__`` and glosses left empty.
    Then consecutive repeats are collapsed (as the PHOENIX-2014-T script does) and an empty result
    becomes ``[EMPTY]`` (so that the utterance still aligns).  ``__ON__``/``__OFF__`` stay.
    The sentence-level letter-joining rules of the script (``A B`` -> ``A+B``) never match a CTM
    line and are not applied.
    """
    out: list[str] = []
    for g in glosses:
        g = str(g)
        for p in _PREFIXES:
            g = g.replace(p, "")
        g = g.replace("S0NNE", "SONNE").replace("HABEN2", "HABEN")
        for m in _REMOVED:
            g = g.replace(m, "")
        if g.endswith("ZEIGEN"):
            g = g + "-BILDSCHIRM"
        g = _RAUM.sub(r"\1", g)
        g = g.replace("-PLUSPLUS", "")
        g = g.strip()
        if not g or any(m in g for m in _DROP_IF_CONTAINS):
            continue
        if out and out[-1] == g:
            continue
        out.append(g)
    return out if out else [EMPTY]


@dataclass(frozen=True)
class UttScore:
    id: str
    n_ref: int
    sub: int
    del_: int
    ins: int
    hits: int

    @property
    def errors(self) -> int:
        return self.sub + self.del_ + self.ins


@dataclass(frozen=True)
class WERResult:
    """Corpus WER (``(sub + del_ + ins) / n_ref``; inf if n_ref == 0 and errors > 0)."""

    wer: float
    sub: int
    del_: int
    ins: int
    n_ref: int
    per_utt: list[UttScore] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.sub + self.del_ + self.ins

    def __str__(self) -> str:
        return (
            f"WER {100 * self.wer:.2f}% ({self.errors}/{self.n_ref}: sub {self.sub}, del {self.del_}, "
            f"ins {self.ins}; {len(self.per_utt)} utterances)"
        )


def align(ref: Sequence[str], hyp: Sequence[str], costs: tuple[int, int, int] = SCLITE_COSTS) -> tuple[int, int, int, int]:
    """Weighted edit-distance alignment; returns (sub, del, ins, hits).

    Among alignments of equal cost the backtrace (from the end) prefers a match/substitution,
    then an insertion, then a deletion: this reproduces sclite's choice between equal-cost
    alignments (checked against sclite 2.4.10 on random cases, see tests/test_eval.py), which can
    differ in the sub/del/ins split and even in the total error count (4 sub + 1 del + 1 ins and
    1 sub + 3 del + 3 ins both cost 22).
    """
    cs, cd, ci = costs
    n, m = len(ref), len(hyp)
    # D[i][j] = cost of aligning ref[:i] with hyp[:j]
    prev = [j * ci for j in range(m + 1)]
    table = [prev]
    for i in range(1, n + 1):
        row = [i * cd] + [0] * m
        ri = ref[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (0 if ri == hyp[j - 1] else cs)
            up = prev[j] + cd
            left = row[j - 1] + ci
            row[j] = min(diag, up, left)
        table.append(row)
        prev = row
    i, j = n, m
    s = d = ins = h = 0
    while i > 0 or j > 0:
        cur = table[i][j]
        if i > 0 and j > 0:
            same = ref[i - 1] == hyp[j - 1]
            if cur == table[i - 1][j - 1] + (0 if same else cs):
                if same:
                    h += 1
                else:
                    s += 1
                i -= 1
                j -= 1
                continue
        if j > 0 and cur == table[i][j - 1] + ci:
            ins += 1
            j -= 1
            continue
        d += 1
        i -= 1
    return s, d, ins, h


def _check(seqs, what: str) -> list[list[str]]:
    out = []
    for k, seq in enumerate(seqs):
        if isinstance(seq, str):
            raise TypeError(f"{what}[{k}] is a string; pass a list of glosses (e.g. text.split())")
        seq = [str(g) for g in seq]
        for g in seq:
            if not g or any(c.isspace() for c in g):
                raise ScoringError(f"{what}[{k}] has an empty gloss or one with whitespace: {g!r}")
        out.append(seq)
    return out


def _jiwer_counts(refs: list[list[str]], hyps: list[list[str]]) -> list[tuple[int, int, int, int]]:
    import jiwer  # noqa: PLC0415 - optional (the [train] extra), only for aligner='jiwer'

    out = []
    # jiwer splits on spaces; tokens were checked to contain none
    o = jiwer.process_words([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    for chunks in o.alignments:
        s = d = i = h = 0
        for c in chunks:
            if c.type == "equal":
                h += c.ref_end_idx - c.ref_start_idx
            elif c.type == "substitute":
                s += c.ref_end_idx - c.ref_start_idx
            elif c.type == "delete":
                d += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                i += c.hyp_end_idx - c.hyp_start_idx
        out.append((s, d, i, h))
    return out


def wer(
    refs: Sequence[Sequence[str]],
    hyps: Sequence[Sequence[str]],
    convention: str = "none",
    aligner: str = "sclite",
    ids: Sequence[str] | None = None,
    case_sensitive: bool = True,
) -> WERResult:
    """Corpus gloss error rate of ``hyps`` against ``refs`` (lists of glosses per utterance).

    ``convention="phoenix"`` applies :func:`phoenix_cleanup` to the hypotheses (the references are
    the ground truth of the corpus, already in evaluation form).  ``case_sensitive=False`` matches
    sclite without ``-s``.
    """
    if convention not in ("none", "phoenix"):
        raise ScoringError(f"convention must be 'none' or 'phoenix', got {convention!r}")
    if aligner not in ("sclite", "jiwer"):
        raise ScoringError(f"aligner must be 'sclite' or 'jiwer', got {aligner!r}")
    refs_l = _check(refs, "refs")
    hyps_l = _check(hyps, "hyps")
    if len(refs_l) != len(hyps_l):
        raise ScoringError(f"{len(refs_l)} references but {len(hyps_l)} hypotheses")
    if ids is None:
        ids = [str(k) for k in range(len(refs_l))]
    elif len(ids) != len(refs_l):
        raise ScoringError(f"{len(ids)} ids for {len(refs_l)} utterances")
    if convention == "phoenix":
        hyps_l = [phoenix_cleanup(h) for h in hyps_l]
    if not case_sensitive:
        refs_l = [[g.lower() for g in r] for r in refs_l]
        hyps_l = [[g.lower() for g in h] for h in hyps_l]
    if aligner == "jiwer" and refs_l:
        counts = _jiwer_counts(refs_l, hyps_l)
    else:
        counts = [align(r, h) for r, h in zip(refs_l, hyps_l)]
    per = [UttScore(str(u), len(r), s, d, i, h) for u, r, (s, d, i, h) in zip(ids, refs_l, counts)]
    S = sum(p.sub for p in per)
    D = sum(p.del_ for p in per)
    I = sum(p.ins for p in per)
    N = sum(p.n_ref for p in per)
    E = S + D + I
    rate = E / N if N else (0.0 if E == 0 else float("inf"))
    return WERResult(rate, S, D, I, N, per)
