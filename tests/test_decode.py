"""Tests for slsdk.decode: greedy / prefix beam search, streaming == offline, endpointing."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slsdk.decode import (
    BeamStream,
    EndpointConfig,
    EndpointRule,
    GreedyStream,
    NGramLM,
    greedy,
    prefix_beam_search,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_log_probs(seed: int, T: int, V: int, peaky: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(V, peaky), size=T)
    p = np.maximum(p, 1e-12)
    return np.log(p / p.sum(axis=1, keepdims=True))


def split_points(T: int, cuts: list[int]) -> list[int]:
    pts = sorted({c % (T + 1) for c in cuts})
    return [0] + pts + [T]


def feed_chunks(stream, x, cuts):
    pts = split_points(x.shape[0], cuts)
    committed_seen = []
    for a, b in zip(pts[:-1], pts[1:]):
        stream.accept(x[a:b])  # includes empty chunks
        r = stream.result()
        assert r.tokens == r.committed_tokens + r.partial_tokens
        # committed tokens never change and only grow
        assert r.committed_tokens[: len(committed_seen)] == committed_seen
        committed_seen = r.committed_tokens
    return stream, committed_seen


# ---------------------------------------------------------------------------------------------
# greedy


def reference_greedy(x: np.ndarray, blank: int) -> list[int]:
    path = [int(np.argmax(row)) for row in x]
    return [k for k, _ in itertools.groupby(path) if k != blank]


@FAST
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(0, 60), V=st.integers(2, 8), blank=st.integers(0, 7))
def test_greedy_matches_argmax_collapse(seed, T, V, blank):
    blank = blank % V
    x = random_log_probs(seed, T, V)
    assert greedy(x, blank=blank) == reference_greedy(x, blank)


def test_greedy_hand_made_repeats_and_blanks():
    # path: 1 1 0 1 2 2 0 0 2 -> 1 1 2 2
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2]
    x = np.full((len(path), 3), math.log(0.1))
    for t, k in enumerate(path):
        x[t, k] = math.log(0.8)
    assert greedy(x) == [1, 1, 2, 2]
    s = GreedyStream(frame_shift=0.5)
    s.accept(x)
    ev = s.finalize().events
    assert [(e.id, e.start, e.end) for e in ev] == [(1, 0.0, 1.0), (1, 1.5, 2.0), (2, 2.0, 3.0), (2, 4.0, 4.5)]
    assert all(abs(e.confidence - 0.8) < 1e-12 for e in ev)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(0, 80),
    V=st.integers(2, 7),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_greedy_chunked_equals_offline(seed, T, V, cuts):
    x = random_log_probs(seed, T, V, peaky=0.3)
    whole = GreedyStream(frame_shift=0.04)
    whole.accept(x)
    chunked, _ = feed_chunks(GreedyStream(frame_shift=0.04), x, cuts)
    assert chunked.result() == whole.result()  # tokens, events (times, confidences), score
    assert chunked.is_endpoint() == whole.is_endpoint()
    assert chunked.finalize() == whole.finalize()


# ---------------------------------------------------------------------------------------------
# prefix beam search


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(0, 40),
    V=st.integers(2, 6),
    beam=st.sampled_from([1, 2, 3, 5, 8]),
    cuts=st.lists(st.integers(0, 100), max_size=10),
)
def test_beam_chunked_equals_offline(seed, T, V, beam, cuts):
    x = random_log_probs(seed, T, V, peaky=0.4)
    whole = BeamStream(beam=beam, frame_shift=0.04)
    whole.accept(x)
    chunked, committed = feed_chunks(BeamStream(beam=beam, frame_shift=0.04), x, cuts)
    assert chunked.result() == whole.result()
    assert chunked.nbest() == whole.nbest()
    final = chunked.finalize()
    assert final == whole.finalize()
    assert final.tokens[: len(committed)] == committed
    assert final.committed_tokens == final.tokens and final.partial_tokens == []


def brute_force(x: np.ndarray, blank: int = 0):
    """Enumerate all alignments; return {label sequence: (log total prob, best alignment)}."""
    T, V = x.shape
    totals: dict[tuple, float] = {}
    best_path: dict[tuple, tuple[float, tuple]] = {}
    for path in itertools.product(range(V), repeat=T):
        lp = float(sum(x[t, k] for t, k in enumerate(path)))
        lab = tuple(k for k, _ in itertools.groupby(path) if k != blank)
        totals[lab] = np.logaddexp(totals.get(lab, -np.inf), lp)
        if lab not in best_path or lp > best_path[lab][0]:
            best_path[lab] = (lp, path)
    return totals, best_path


def runs_of(path, x, blank, fs):
    out = []
    t = 0
    for k, grp in itertools.groupby(path):
        n = len(list(grp))
        if k != blank:
            conf = sum(math.exp(x[s, k]) for s in range(t, t + n)) / n
            out.append((k, t * fs, (t + n) * fs, conf))
        t += n
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 5), V=st.integers(3, 4))
def test_beam_wide_equals_brute_force(seed, T, V):
    x = random_log_probs(seed, T, V, peaky=0.7)
    totals, best_path = brute_force(x)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    best_lab, best_score = ranked[0]
    tokens, score = prefix_beam_search(x, beam=10_000, return_score=True)
    assert score == pytest.approx(best_score, abs=1e-9)
    if len(ranked) == 1 or ranked[0][1] - ranked[1][1] > 1e-9:
        assert tuple(tokens) == best_lab
    # the score of every kept hypothesis is its exact CTC probability
    s = BeamStream(beam=10_000)
    s.accept(x)
    for lab, sc in s.nbest():
        assert sc == pytest.approx(totals[tuple(lab)], abs=1e-9)
    assert len(s.nbest()) == len(totals)
    # event timing = the most probable alignment of the decoded sequence
    lp, path = best_path[tuple(tokens)]
    ev = s.finalize().events
    got = [(e.id, e.start, e.end, e.confidence) for e in ev]
    want = runs_of(path, x, 0, 0.04)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    assert [g[3] for g in got] == pytest.approx([w[3] for w in want], abs=1e-12)


def test_beam_beats_greedy_on_classic_case():
    # label [] has the best single path (0 0) but [1] has more total mass
    p = np.array([[0.55, 0.45], [0.55, 0.45]])  # V=2: blank, 1
    x = np.log(p)
    assert greedy(x) == []  # path 0 0 = 0.3025
    # [1]: 1 1, 0 1, 1 0 = 0.2025 + 0.2475 * 2 = 0.6975
    assert prefix_beam_search(x, beam=4) == [1]


def test_beam_score_is_at_least_greedy_path_score():
    x = random_log_probs(3, 30, 6)
    _, sc = prefix_beam_search(x, beam=16, return_score=True)
    s = GreedyStream()
    s.accept(x)
    g = s.finalize()
    # the beam score is a sum over alignments; the greedy score is one alignment of its labels
    assert sc >= g.score - 1e-9


def test_lm_hook_changes_decision():
    # acoustics favour [1, 2] slightly over [1, 3]
    p = np.array(
        [
            [0.05, 0.90, 0.025, 0.025],
            [0.90, 0.05, 0.025, 0.025],
            [0.05, 0.05, 0.47, 0.43],
        ]
    )
    x = np.log(p)
    assert prefix_beam_search(x, beam=8) == [1, 2]
    lm = NGramLM.from_sequences([[1, 3]] * 20 + [[2, 1]], n=2, smoothing=0.1, vocab_size=4)
    assert lm.score((1,), 3) > lm.score((1,), 2)
    assert prefix_beam_search(x, beam=8, lm=lm, lm_weight=1.0) == [1, 3]
    # weight 0 means the hook is ignored
    assert prefix_beam_search(x, beam=8, lm=lm, lm_weight=0.0) == [1, 2]


def test_lm_scores_are_counted_in_score():
    x = random_log_probs(5, 6, 4)
    lm = NGramLM.from_sequences([[1, 2, 3], [3, 2, 1]], n=2, smoothing=0.5)
    toks, sc = prefix_beam_search(x, beam=500, lm=lm, lm_weight=0.7, return_score=True)
    totals, _ = brute_force(x)
    lm_lp = sum(lm.score(tuple(toks[:i]), toks[i]) for i in range(len(toks)))
    assert sc == pytest.approx(totals[tuple(toks)] + 0.7 * lm_lp, abs=1e-9)
    # and it is the best fused score over all label sequences
    fused = {
        lab: v + 0.7 * sum(lm.score(lab[:i], lab[i]) for i in range(len(lab))) for lab, v in totals.items()
    }
    assert sc == pytest.approx(max(fused.values()), abs=1e-9)


def test_ngram_lm_is_normalised():
    lm = NGramLM.from_sequences([[1, 2, 3, 1], [2, 2], [4]], n=3, smoothing=0.3)
    for prefix in [(), (1,), (1, 2), (2, 2), (4, 4)]:
        tot = sum(math.exp(lm.score(prefix, w)) for w in range(lm.vocab_size))
        assert tot == pytest.approx(1.0)
    with pytest.raises(ValueError):
        NGramLM.from_sequences([[1]], smoothing=0.0)


def test_lexicon_restricts_output():
    x = random_log_probs(11, 40, 6, peaky=0.3)
    assert 4 in prefix_beam_search(x, beam=8) or 5 in prefix_beam_search(x, beam=8)
    out = prefix_beam_search(x, beam=8, lexicon={1, 2, 3})
    assert out and set(out) <= {1, 2, 3}


def test_prune_logp_keeps_exactness_when_loose_and_prunes_when_tight():
    x = random_log_probs(2, 5, 4)
    assert prefix_beam_search(x, beam=100, prune_logp=-1e9) == prefix_beam_search(x, beam=100)
    # a threshold above every non-blank log prob admits no token
    assert prefix_beam_search(x, beam=100, prune_logp=0.5) == []


# ---------------------------------------------------------------------------------------------
# endpointing, reset, validation


def frames(path, V=4, p=0.9):
    x = np.full((len(path), V), math.log((1 - p) / (V - 1)))
    for t, k in enumerate(path):
        x[t, k] = math.log(p)
    return x


EP = EndpointConfig(
    rule1=EndpointRule(False, 1.0, 0.0),
    rule2=EndpointRule(True, 0.5, 0.0),
    rule3=EndpointRule(False, 0.0, 3.0),
)


@pytest.mark.parametrize("make", [lambda: GreedyStream(frame_shift=0.1, endpoint=EP),
                                  lambda: BeamStream(beam=4, frame_shift=0.1, endpoint=EP)])
def test_endpoint_rules(make):
    s = make()
    # rule1: 1.0 s of blanks with nothing decoded
    s.accept(frames([0] * 9))
    assert not s.is_endpoint()
    s.accept(frames([0]))
    assert s.is_endpoint()
    s.reset()
    assert not s.is_endpoint()
    # rule2: 0.5 s of trailing blanks after a token (rule1 would need 1.0 s)
    s.accept(frames([1, 1] + [0] * 4))
    assert s.result().tokens == [1]
    assert not s.is_endpoint()
    s.accept(frames([0]))
    assert s.is_endpoint()
    s.reset()
    # rule3: utterance length >= 3 s even without trailing blanks
    s.accept(frames([1, 2] * 14 + [3]))
    assert not s.is_endpoint()
    s.accept(frames([1]))
    assert s.is_endpoint()
    s.reset()
    # disabling all rules: never an endpoint
    s2 = type(s)(frame_shift=0.1, endpoint=EndpointConfig(None, None, None))
    s2.accept(frames([0] * 100))
    assert not s2.is_endpoint()


def test_default_endpoint_is_sherpa_like():
    ep = EndpointConfig()
    assert (ep.rule1.min_trailing_silence, ep.rule2.min_trailing_silence, ep.rule3.min_utterance_length) == (
        2.4,
        1.2,
        20.0,
    )
    assert ep.rule2.must_contain_nonsilence and not ep.rule1.must_contain_nonsilence


@pytest.mark.parametrize("cls", [GreedyStream, BeamStream])
def test_reset_keeps_time_offset(cls):
    s = cls(frame_shift=0.25)
    s.accept(frames([0, 1, 1, 0, 0, 2, 0, 0, 0, 0]))
    assert s.result().tokens == [1, 2]
    s.reset()
    assert s.result().tokens == [] and s.frame_offset == 10
    s.accept(frames([0, 0, 3, 3, 3, 0]))
    r = s.finalize()
    assert r.tokens == [3]
    (ev,) = r.events
    assert (ev.start, ev.end) == (12 * 0.25, 15 * 0.25)
    assert s.utterance_start == 10 * 0.25
    with pytest.raises(RuntimeError):
        s.accept(frames([0]))
    s.reset()
    s.accept(frames([1]))
    assert s.result().events[0].start == 16 * 0.25


@pytest.mark.parametrize("cls", [GreedyStream, BeamStream])
def test_input_validation(cls):
    s = cls()
    with pytest.raises(ValueError, match="2-D"):
        s.accept(np.zeros(5))
    with pytest.raises(ValueError, match="2-D"):
        s.accept(np.zeros((1, 5, 4)))
    bad = np.log(np.full((3, 4), 0.25))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.accept(bad)
    with pytest.raises(ValueError, match=r"\+inf"):
        s.accept(np.full((2, 4), np.inf))
    s.accept(np.log(np.full((3, 4), 0.25)))
    with pytest.raises(ValueError, match="vocabulary size changed"):
        s.accept(np.log(np.full((3, 5), 0.2)))
    with pytest.raises(ValueError, match="blank"):
        cls(blank=7).accept(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="frame_shift"):
        cls(frame_shift=0.0)
    with pytest.raises(ValueError, match="NaN"):
        greedy(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        prefix_beam_search(np.zeros(3))
    with pytest.raises(ValueError, match="beam"):
        BeamStream(beam=0)


def test_minus_inf_log_probs_are_allowed():
    with np.errstate(divide="ignore"):
        x = np.log(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert greedy(x) == [1, 2]
    assert prefix_beam_search(x, beam=3) == [1, 2]
