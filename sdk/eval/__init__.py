"""Scoring: gloss WER with PHOENIX conventions, CTM/STM files for NIST sclite."""

from slsdk.eval.formats import CtmWord, events_to_ctm, read_ctm, read_stm, score_files, write_ctm, write_stm
from slsdk.eval.wer import (PHOENIX_LAYOUTS, SCLITE_COSTS, ScoringError, UttScore, WERResult, align, convention_for,
                            phoenix_cleanup, wer)

__all__ = [
    "wer",
    "WERResult",
    "UttScore",
    "align",
    "phoenix_cleanup",
    "convention_for",
    "PHOENIX_LAYOUTS",
    "SCLITE_COSTS",
    "ScoringError",
    "score_files",
    "CtmWord",
    "write_ctm",
    "read_ctm",
    "write_stm",
    "read_stm",
    "events_to_ctm",
]
