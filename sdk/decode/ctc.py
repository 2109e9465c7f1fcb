"""CTC decoding for gloss recognition: greedy and prefix beam search, offline and streaming.

Everything here is numpy + the standard library so the same code runs on a phone-side Python, in
tests and behind ``slsdk.runtime``.  Input is a log-probability matrix ``[T, V]`` (time-major, one
row per output step of the model, blank id 0 by default).  A model output step lasts
``frame_shift = output_stride / fps`` seconds; all times reported are ``step * frame_shift``
counted from the stream's *global* step offset, which survives :meth:`reset` (a new utterance).

The offline functions are the streaming classes fed with one big chunk, and the streaming classes
process frames strictly one after another with all state carried between calls, so decoding a
video in chunks gives exactly the tokens, times and confidences of decoding it whole.

Token timing: a token occupies a *run* of consecutive frames on the (best) path; its event has
``start = first_frame * frame_shift`` and ``end = (last_frame + 1) * frame_shift``; its confidence
is the mean posterior ``exp(log_prob[t, id])`` over the frames of the run.  For greedy decoding the
path is the argmax path; for prefix beam search it is the single most probable CTC alignment
(Viterbi path) of the reported label sequence among the paths the beam kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

import numpy as np

from slsdk.errors import ConfigError

__all__ = [
    "GlossEvent",
    "Result",
    "EndpointRule",
    "EndpointConfig",
    "LanguageModel",
    "NGramLM",
    "GreedyStream",
    "BeamStream",
    "greedy",
    "prefix_beam_search",
]

NEG_INF = float("-inf")
DEFAULT_BEAM = 10   # one beam width for every decoder entry point (AdaptSign decodes with a beam of 10)


# ----------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class GlossEvent:
    """One decoded gloss: vocabulary id, start/end time in seconds, confidence in [0, 1]."""

    id: int
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Result:
    """Decoder output for the current utterance.

    ``tokens == committed_tokens + partial_tokens``; ``events[i]`` times ``tokens[i]``.
    ``committed_tokens`` can no longer change; ``partial_tokens`` may still be revised.
    ``score`` is the log probability of the hypothesis (CTC sum over alignments, plus
    ``lm_weight *`` LM log probability for beam search; the best path's log prob for greedy).
    """

    tokens: list[int]
    committed_tokens: list[int]
    partial_tokens: list[int]
    events: list[GlossEvent]
    score: float = 0.0
    is_final: bool = False


# ----------------------------------------------------------------------------------------------
# endpointing (the sherpa-onnx rules)


@dataclass(frozen=True)
class EndpointRule:
    """Fires when all hold: (tokens decoded or not ``must_contain_nonsilence``), trailing blank
    time >= ``min_trailing_silence`` s and utterance length >= ``min_utterance_length`` s."""

    must_contain_nonsilence: bool
    min_trailing_silence: float
    min_utterance_length: float

    def activated(self, contains_nonsilence: bool, trailing_silence: float, utterance_length: float) -> bool:
        eps = 1e-9  # times are step * frame_shift; compare robustly to thresholds given in seconds
        return (
            (contains_nonsilence or not self.must_contain_nonsilence)
            and trailing_silence + eps >= self.min_trailing_silence
            and utterance_length + eps >= self.min_utterance_length
        )


@dataclass(frozen=True)
class EndpointConfig:
    """Three rules as in sherpa-onnx; set a rule to ``None`` to disable it.

    rule1: long trailing blank run with nothing decoded (the signer never started);
    rule2: shorter trailing blank run after some glosses (the sentence ended);
    rule3: the utterance is too long, cut it whatever the decoder state.
    """

    rule1: EndpointRule | None = EndpointRule(False, 2.4, 0.0)
    rule2: EndpointRule | None = EndpointRule(True, 1.2, 0.0)
    rule3: EndpointRule | None = EndpointRule(False, 0.0, 20.0)

    def rules(self) -> list[EndpointRule]:
        return [r for r in (self.rule1, self.rule2, self.rule3) if r is not None]


# ----------------------------------------------------------------------------------------------
# language model hook


class LanguageModel(Protocol):
    def score(self, prefix: tuple[int, ...], next_id: int) -> float:  # log P(next_id | prefix)
        ...


class NGramLM:
    """Gloss n-gram LM with add-k smoothing; usable as the ``lm`` hook of prefix beam search.

    ``score(prefix, next_id)`` = ``log P(next_id | last n-1 ids of prefix)``, contexts shorter than
    ``n-1`` are padded with a begin-of-sentence symbol.  Ids are vocabulary ids (the blank is never
    scored).  ``P(w | h) = (c(h, w) + k) / (c(h) + k * vocab_size)``.
    """

    BOS = -1

    def __init__(self, n: int, counts: dict[tuple[int, ...], dict[int, int]], vocab_size: int, smoothing: float):
        if n < 1:
            raise ConfigError(f"n-gram order must be >= 1, got {n}")
        if smoothing <= 0:
            raise ConfigError(f"add-k smoothing must be > 0 (zero gives log(0) for unseen grams), got {smoothing}")
        if vocab_size < 1:
            raise ConfigError(f"vocab_size must be >= 1, got {vocab_size}")
        self.n = n
        self.vocab_size = vocab_size
        self.k = float(smoothing)
        self._counts = counts
        self._totals = {h: sum(d.values()) for h, d in counts.items()}
        self._cache: dict[tuple[tuple[int, ...], int], float] = {}

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[Sequence[int]],
        n: int = 2,
        smoothing: float = 0.5,
        vocab_size: int | None = None,
    ) -> "NGramLM":
        counts: dict[tuple[int, ...], dict[int, int]] = {}
        max_id = 0
        for seq in sequences:
            seq = [int(x) for x in seq]
            if seq:
                max_id = max(max_id, max(seq))
            padded = [cls.BOS] * (n - 1) + seq
            for i in range(n - 1, len(padded)):
                h = tuple(padded[i - n + 1 : i])
                d = counts.setdefault(h, {})
                d[padded[i]] = d.get(padded[i], 0) + 1
        if vocab_size is None:
            vocab_size = max_id + 1
        return cls(n, counts, vocab_size, smoothing)

    def _history(self, prefix: Sequence[int]) -> tuple[int, ...]:
        if self.n == 1:
            return ()
        h = tuple(prefix[-(self.n - 1) :]) if prefix else ()
        return (self.BOS,) * (self.n - 1 - len(h)) + h

    def score(self, prefix: tuple[int, ...], next_id: int) -> float:
        h = self._history(prefix)
        key = (h, int(next_id))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        c = self._counts.get(h, {}).get(int(next_id), 0)
        tot = self._totals.get(h, 0)
        val = math.log((c + self.k) / (tot + self.k * self.vocab_size))
        self._cache[key] = val
        return val


# ----------------------------------------------------------------------------------------------
# helpers


def _check_chunk(log_probs, vocab: int | None, blank: int) -> np.ndarray:
    x = np.asarray(log_probs)
    if x.ndim != 2:
        raise ValueError(f"log_probs must be a 2-D array [T, V] (one video, time-major); got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
            x = x.astype(np.float64)
        else:
            raise ValueError(f"log_probs must be a float array, got dtype {x.dtype}")
    if x.shape[1] == 0:
        raise ValueError("log_probs has an empty vocabulary axis (V == 0)")
    if vocab is not None and x.shape[1] != vocab:
        raise ValueError(f"vocabulary size changed between chunks: {vocab} then {x.shape[1]}")
    if not 0 <= blank < x.shape[1]:
        raise ValueError(f"blank id {blank} out of range for V={x.shape[1]}")
    if np.isnan(x).any():
        bad = np.argwhere(np.isnan(x))[0]
        raise ValueError(f"log_probs contains NaN (first at step {bad[0]}, id {bad[1]})")
    if np.isposinf(x).any():
        raise ValueError("log_probs contains +inf; expected log probabilities (<= 0)")
    return x


def _lse(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


class _StreamBase:
    def __init__(self, blank: int, frame_shift: float, endpoint: EndpointConfig | None):
        if frame_shift <= 0:
            raise ConfigError(f"frame_shift must be > 0 seconds, got {frame_shift}")
        if blank < 0:
            raise ConfigError(f"blank id must be >= 0, got {blank}")
        self.blank = int(blank)
        self.frame_shift = float(frame_shift)
        self.endpoint = endpoint if endpoint is not None else EndpointConfig()
        self._vocab: int | None = None
        self._frame = 0  # global step offset, survives reset()
        self._utt_start = 0
        self._final = False

    # -- public API shared by both decoders
    @property
    def frame_offset(self) -> int:
        """Global number of steps accepted since construction (not cleared by ``reset``)."""
        return self._frame

    @property
    def utterance_start(self) -> float:
        return self._utt_start * self.frame_shift

    def accept(self, log_probs_chunk) -> None:
        """Feed ``[t, V]`` log probabilities (``t`` may be 0)."""
        if self._final:
            raise RuntimeError("stream was finalized; call reset() to start a new utterance")
        x = _check_chunk(log_probs_chunk, self._vocab, self.blank)
        self._vocab = x.shape[1]
        if x.shape[0]:
            self._accept(x)

    def is_endpoint(self) -> bool:
        n_utt = self._frame - self._utt_start
        utt_len = n_utt * self.frame_shift
        trailing = self._trailing_blanks() * self.frame_shift
        has_tokens = self._has_tokens()
        return any(r.activated(has_tokens, trailing, utt_len) for r in self.endpoint.rules())

    def finalize(self) -> Result:
        """No more input for this utterance: every token becomes committed."""
        self._final = True
        return self.result()

    def _events(self, runs) -> list[GlossEvent]:
        fs = self.frame_shift
        return [GlossEvent(int(i), s * fs, e * fs, ps / n) for (i, s, e, ps, n) in runs]


# ----------------------------------------------------------------------------------------------
# greedy


class GreedyStream(_StreamBase):
    """Streaming best-path (argmax) CTC decoding.

    State: previous argmax id, the run statistics of the token being emitted, trailing blank count
    and the global step offset.  All emitted tokens are committed at once.
    """

    def __init__(self, blank: int = 0, frame_shift: float = 0.04, endpoint: EndpointConfig | None = None):
        super().__init__(blank, frame_shift, endpoint)
        self._clear()

    def _clear(self) -> None:
        self._prev = self.blank
        self._runs: list[list] = []  # [id, start, end, prob_sum, n]
        self._trail = 0
        self._score = 0.0

    def reset(self) -> None:
        """Start a new utterance; the global time offset is kept."""
        self._clear()
        self._utt_start = self._frame
        self._final = False

    def _accept(self, x: np.ndarray) -> None:
        ids = x.argmax(axis=1)
        best = x[np.arange(x.shape[0]), ids]
        blank = self.blank
        prev = self._prev
        runs = self._runs
        t = self._frame
        score = self._score
        trail = self._trail
        for i, lp in zip(ids.tolist(), best.tolist()):
            score += lp
            if i == blank:
                trail += 1
            else:
                p = math.exp(lp)
                if i == prev:
                    r = runs[-1]
                    r[2] = t + 1
                    r[3] += p
                    r[4] += 1
                else:
                    runs.append([i, t, t + 1, p, 1])
                trail = 0
            prev = i
            t += 1
        self._prev, self._frame, self._score, self._trail = prev, t, score, trail

    def _trailing_blanks(self) -> int:
        return self._trail

    def _has_tokens(self) -> bool:
        return bool(self._runs)

    def result(self) -> Result:
        toks = [r[0] for r in self._runs]
        return Result(
            tokens=toks,
            committed_tokens=list(toks),
            partial_tokens=[],
            events=self._events(self._runs),
            score=self._score,
            is_final=self._final,
        )


# ----------------------------------------------------------------------------------------------
# prefix beam search


class _Hyp:
    """One prefix: CTC log probs ending in blank / non-blank, LM log prob, Viterbi path runs."""

    __slots__ = ("pb", "pnb", "lm", "vb", "vnb", "rb", "rnb")

    def __init__(self):
        self.pb = NEG_INF
        self.pnb = NEG_INF
        self.lm = 0.0
        self.vb = NEG_INF  # best single path ending in blank
        self.vnb = NEG_INF
        # runs of that path as a linked list (parent, (id, start, end, prob_sum, n)) or None:
        # extending a path is O(1) whatever the utterance length
        self.rb = None
        self.rnb = None

    def total(self) -> float:
        return _lse(self.pb, self.pnb)

    def runs(self) -> list:
        node = self.rnb if self.vnb > self.vb else self.rb
        out = []
        while node is not None:
            node, run = node
            out.append(run)
        out.reverse()
        return out


class BeamStream(_StreamBase):
    """Streaming CTC prefix beam search (log domain) with optional LM shallow fusion and lexicon.

    Per step every kept prefix is extended by blank, by repeating its last token, and by the
    candidate tokens of that step: all ids of ``lexicon`` (or of the vocabulary) whose log prob is
    >= ``prune_logp`` if given, else the ``cand_top_k`` (default ``beam``) most probable ids of the
    step.  Extending prefix ``y`` with ``c`` adds ``lm_weight * lm.score(y, c)``.  The ``beam``
    best prefixes by total score survive.  Committed tokens = the longest common prefix of all
    surviving hypotheses (it can only grow, since every later prefix extends a current one).
    """

    def __init__(
        self,
        beam: int = DEFAULT_BEAM,
        blank: int = 0,
        frame_shift: float = 0.04,
        endpoint: EndpointConfig | None = None,
        lm: LanguageModel | None = None,
        lm_weight: float = 0.0,
        lexicon: Iterable[int] | None = None,
        prune_logp: float | None = None,
        cand_top_k: int | None = None,
    ):
        super().__init__(blank, frame_shift, endpoint)
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        if lm_weight != 0.0 and lm is None:
            raise ConfigError("lm_weight given but no lm")
        if lm is not None and not callable(getattr(lm, "score", None)):
            raise TypeError("lm must have a score(prefix_tuple, next_id) -> float method")
        self.beam = int(beam)
        self.lm = lm
        self.lm_weight = float(lm_weight)
        self.lexicon = None if lexicon is None else sorted({int(i) for i in lexicon} - {self.blank})
        if self.lexicon is not None and any(i < 0 for i in self.lexicon):
            raise ConfigError("lexicon ids must be >= 0")
        self.prune_logp = prune_logp
        self.cand_top_k = int(cand_top_k) if cand_top_k is not None else self.beam
        self._clear()

    def _clear(self) -> None:
        h = _Hyp()
        h.pb = 0.0
        h.vb = 0.0
        self._beams: list[tuple[tuple[int, ...], _Hyp]] = [((), h)]

    def reset(self) -> None:
        """Start a new utterance (fresh prefix table); the global time offset is kept."""
        self._clear()
        self._utt_start = self._frame
        self._final = False

    def _candidates(self, row: np.ndarray) -> list[int]:
        if self.lexicon is not None:
            allowed = np.asarray(self.lexicon, dtype=np.int64)
            if allowed.size and allowed.max() >= row.shape[0]:
                raise ValueError(f"lexicon id {int(allowed.max())} out of range for V={row.shape[0]}")
        else:
            allowed = np.arange(row.shape[0])
            allowed = allowed[allowed != self.blank]
        vals = row[allowed]
        if self.prune_logp is not None:
            keep = allowed[vals >= self.prune_logp]
        else:
            k = min(self.cand_top_k, allowed.size)
            if k < allowed.size:
                idx = np.argpartition(-vals, k - 1)[:k]
                keep = allowed[idx]
            else:
                keep = allowed
        keep = keep[row[keep] > NEG_INF]
        return sorted(keep.tolist())

    def _accept(self, x: np.ndarray) -> None:
        blank = self.blank
        lm, lw = self.lm, self.lm_weight
        lexset = None if self.lexicon is None else set(self.lexicon)
        beams = self._beams
        t = self._frame
        for row in x:
            rowl = row.tolist()
            lpb = rowl[blank]
            cands = self._candidates(row)
            nxt: dict[tuple[int, ...], _Hyp] = {}

            def get(prefix, parent_lm):
                h = nxt.get(prefix)
                if h is None:
                    h = _Hyp()
                    h.lm = parent_lm
                    nxt[prefix] = h
                return h

            for prefix, h in beams:
                # 1) blank: prefix unchanged, now ends in blank
                if lpb > NEG_INF:
                    nh = get(prefix, h.lm)
                    nh.pb = _lse(nh.pb, _lse(h.pb, h.pnb) + lpb)
                    v, r = (h.vb, h.rb) if h.vb >= h.vnb else (h.vnb, h.rnb)
                    if v + lpb > nh.vb:
                        nh.vb, nh.rb = v + lpb, r
                last = prefix[-1] if prefix else None
                # 2) repeat of the last token without blank: prefix unchanged, run extended
                if last is not None and (lexset is None or last in lexset):
                    lp = rowl[last]
                    if lp > NEG_INF and h.pnb > NEG_INF:
                        nh = get(prefix, h.lm)
                        nh.pnb = _lse(nh.pnb, h.pnb + lp)
                        if h.vnb + lp > nh.vnb:
                            parent, (i, s, _e, ps, n) = h.rnb
                            nh.vnb = h.vnb + lp
                            nh.rnb = (parent, (i, s, t + 1, ps + math.exp(lp), n + 1))
                # 3) extensions by a new token
                for c in cands:
                    lp = rowl[c]
                    if c == last:
                        src_p, src_v, src_r = h.pb, h.vb, h.rb  # needs a blank in between
                    else:
                        src_p = _lse(h.pb, h.pnb)
                        src_v, src_r = (h.vb, h.rb) if h.vb >= h.vnb else (h.vnb, h.rnb)
                    if src_p == NEG_INF:
                        continue
                    new = prefix + (c,)
                    nh = nxt.get(new)
                    if nh is None:
                        nh = _Hyp()
                        nh.lm = h.lm + (lw * lm.score(prefix, c) if lm is not None and lw != 0.0 else 0.0)
                        nxt[new] = nh
                    nh.pnb = _lse(nh.pnb, src_p + lp)
                    if src_v + lp > nh.vnb:
                        nh.vnb = src_v + lp
                        nh.rnb = (src_r, (c, t, t + 1, math.exp(lp), 1))
            ranked = sorted(nxt.items(), key=lambda kv: (-(kv[1].total() + kv[1].lm), kv[0]))
            beams = [kv for kv in ranked[: self.beam] if kv[1].total() > NEG_INF]
            if not beams:
                raise ValueError(f"every hypothesis has probability 0 at step {t} (all candidate log probs -inf)")
            t += 1
        self._beams = beams
        self._frame = t

    # -- state queries
    def _best(self) -> tuple[tuple[int, ...], _Hyp]:
        return self._beams[0]

    def _trailing_blanks(self) -> int:
        _, h = self._best()
        node = h.rnb if h.vnb > h.vb else h.rb
        end = node[1][2] if node is not None else self._utt_start
        return self._frame - end

    def _has_tokens(self) -> bool:
        return bool(self._best()[0])

    def nbest(self) -> list[tuple[list[int], float]]:
        """All kept hypotheses with their scores (CTC + weighted LM log prob), best first."""
        return [(list(p), h.total() + h.lm) for p, h in self._beams]

    def result(self) -> Result:
        prefix, h = self._best()
        toks = list(prefix)
        if self._final:
            n_commit = len(toks)
        else:
            n_commit = len(toks)
            for p, _ in self._beams[1:]:
                m = 0
                lim = min(n_commit, len(p))
                while m < lim and p[m] == prefix[m]:
                    m += 1
                n_commit = m
                if n_commit == 0:
                    break
        return Result(
            tokens=toks,
            committed_tokens=toks[:n_commit],
            partial_tokens=toks[n_commit:],
            events=self._events(h.runs()),
            score=h.total() + h.lm,
            is_final=self._final,
        )


# ----------------------------------------------------------------------------------------------
# offline = streaming with one chunk


def greedy(log_probs, blank: int = 0) -> list[int]:
    """Best-path CTC decoding of one video ``[T, V]``: argmax per step, collapse repeats, drop blanks."""
    s = GreedyStream(blank=blank)
    s.accept(log_probs)
    return s.finalize().tokens


def prefix_beam_search(
    log_probs,
    beam: int = DEFAULT_BEAM,
    blank: int = 0,
    lm: LanguageModel | None = None,
    lm_weight: float = 0.0,
    lexicon: Iterable[int] | None = None,
    prune_logp: float | None = None,
    return_score: bool = False,
):
    """CTC prefix beam search of one video ``[T, V]`` (see :class:`BeamStream`).

    Returns the best label sequence, or ``(tokens, score)`` with ``return_score=True`` where
    score = log sum over the alignments of the sequence + ``lm_weight`` * LM log prob.
    """
    s = BeamStream(beam=beam, blank=blank, lm=lm, lm_weight=lm_weight, lexicon=lexicon, prune_logp=prune_logp)
    s.accept(log_probs)
    r = s.finalize()
    return (r.tokens, r.score) if return_score else r.tokens
