"""Tests for slsdk.eval: WER against NIST sclite, PHOENIX cleanup, CTM/STM files, jiwer agreement."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import jiwer
import pytest

from slsdk.eval import (
    CtmWord,
    align,
    events_to_ctm,
    phoenix_cleanup,
    read_ctm,
    read_stm,
    score_files,
    wer,
    write_ctm,
    write_stm,
)


def _find_sclite() -> str | None:
    for cand in (shutil.which("sclite"), "/usr/lib/sctk/bin/sclite", "/usr/bin/sclite"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


SCLITE = _find_sclite()
needs_sclite = pytest.mark.skipif(SCLITE is None, reason="NIST sclite not installed (Debian package sctk)")


def run_sclite(ref_stm, hyp_ctm, case_sensitive=True):
    """Return ({speaker: (n_ref, sub, del, ins, err)}, sum tuple, Sum/Avg Err %) from sclite rsum + sum."""
    cmd = [SCLITE, "-h", str(hyp_ctm), "ctm", "-r", str(ref_stm), "stm", "-o", "rsum", "sum", "stdout"]
    if case_sensitive:
        cmd.insert(-4, "-s")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    per, total, err_pct = {}, None, None
    # both reports carry the same title; the raw one ends in a "Sum" row, the percent one in "Sum/Avg"
    for section in out.split("SYSTEM SUMMARY PERCENTAGES")[1:]:
        raw = re.search(r"\|\s*Sum\s*\|", section) is not None
        for line in section.splitlines():
            m = re.match(r"\s*\|\s*(\S+)\s*\|\s*(\d+)\s+(\d+)\s*\|(.*)\|", line)
            if not m:
                continue
            name, wrd = m.group(1), int(m.group(3))
            corr, sub, dele, ins, err = [float(x) for x in m.group(4).split()][:5]
            if raw:
                rec = (wrd, int(sub), int(dele), int(ins), int(err))
                if name == "Sum":
                    total = rec
                else:
                    per[name] = rec
            elif name == "Sum/Avg":
                err_pct = err
    assert total is not None and err_pct is not None, out
    return per, total, err_pct


def write_pair(tmp_path, refs, hyps, convention="none"):
    ids = [f"utt{k:04d}" for k in range(len(refs))]
    ref_stm, hyp_ctm = tmp_path / "ref.stm", tmp_path / "hyp.ctm"
    # one speaker per utterance so that sclite reports per-utterance counts
    with open(ref_stm, "w") as f:
        for u, r in zip(ids, refs):
            f.write(f"{u} 1 spk_{u} 0.0 1.79769e+308 {' '.join(r)}\n")
    write_ctm(hyp_ctm, dict(zip(ids, hyps)), convention=convention)
    return ids, ref_stm, hyp_ctm


def random_case(rng: random.Random, n_utt: int, vocab: list[str]):
    refs = [[rng.choice(vocab) for _ in range(rng.randint(1, 12))] for _ in range(n_utt)]
    hyps = []
    for r in refs:
        mode = rng.random()
        if mode < 0.1:
            hyps.append([])
        elif mode < 0.5:  # a noisy copy of the reference
            h = [g if rng.random() > 0.3 else rng.choice(vocab) for g in r]
            if rng.random() < 0.5 and h:
                del h[rng.randrange(len(h))]
            if rng.random() < 0.5:
                h.insert(rng.randint(0, len(h)), rng.choice(vocab))
            hyps.append(h)
        else:
            hyps.append([rng.choice(vocab) for _ in range(rng.randint(0, 14))])
    return refs, hyps


@needs_sclite
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("vocab", [["A", "B"], ["A", "B", "C"], ["LIEB", "ZUSCHAUER", "REGEN", "regen", "SONNE", "IX"]])
def test_wer_equals_sclite_random(tmp_path, seed, vocab):
    rng = random.Random(seed * 100 + len(vocab))
    refs, hyps = random_case(rng, 60, vocab)
    ids, ref_stm, hyp_ctm = write_pair(tmp_path, refs, hyps)
    per, total, err_pct = run_sclite(ref_stm, hyp_ctm)
    ours = wer(refs, hyps, ids=ids)
    assert (ours.n_ref, ours.sub, ours.del_, ours.ins, ours.errors) == total
    assert round(100 * ours.wer, 1) == err_pct
    for u in ours.per_utt:
        assert (u.n_ref, u.sub, u.del_, u.ins, u.errors) == per[f"spk_{u.id}"], u
    # the same numbers when reading the written files back
    again = score_files(ref_stm, hyp_ctm)
    assert (again.sub, again.del_, again.ins, again.n_ref) == (ours.sub, ours.del_, ours.ins, ours.n_ref)


@needs_sclite
def test_wer_equals_sclite_hand_made(tmp_path):
    refs = [
        ["__ON__", "LIEB", "ZUSCHAUER", "ABEND", "__OFF__"],
        ["A", "B", "C"],
        ["E", "B", "D", "A", "D", "C", "E"],  # equal-cost alignments with different totals
        ["X"],
        ["A", "A", "A", "A", "B", "A", "B", "A"],
    ]
    hyps = [
        ["__ON__", "LIEB", "ABEND", "ABEND", "__OFF__"],
        [],
        ["A", "C", "E", "D", "C", "A", "B"],
        ["Y", "Z"],
        ["A", "B", "B", "B", "B", "A", "A", "A", "B"],
    ]
    ids, ref_stm, hyp_ctm = write_pair(tmp_path, refs, hyps)
    per, total, err_pct = run_sclite(ref_stm, hyp_ctm)
    ours = wer(refs, hyps, ids=ids)
    assert [(u.n_ref, u.sub, u.del_, u.ins, u.errors) for u in ours.per_utt] == [per[f"spk_{i}"] for i in ids]
    assert (ours.n_ref, ours.sub, ours.del_, ours.ins, ours.errors) == total
    assert ours.per_utt[1].del_ == 3 and ours.per_utt[1].ins == 0
    assert (ours.per_utt[2].sub, ours.per_utt[2].del_, ours.per_utt[2].ins) == (4, 1, 1)


@needs_sclite
def test_phoenix_convention_equals_sclite_on_cleaned_ctm(tmp_path):
    refs = [["__ON__", "REGEN", "NORD", "__OFF__"], ["SONNE", "ZEIGEN-BILDSCHIRM"], ["MORGEN", "WOLKE"]]
    hyps = [
        ["__ON__", "loc-NORD", "REGEN", "__EMOTION__", "REGEN", "NORD", "__OFF__"],
        ["S0NNE", "ZEIGEN", "__EPENTHESIS__"],
        ["__PU__", "__LEFTHAND__"],  # becomes [EMPTY]
    ]
    ids, ref_stm, hyp_ctm = write_pair(tmp_path, refs, hyps, convention="phoenix")
    assert [w.gloss for w in read_ctm(hyp_ctm)[ids[2]]] == ["[EMPTY]"]
    per, total, err_pct = run_sclite(ref_stm, hyp_ctm)
    ours = wer(refs, hyps, convention="phoenix", ids=ids)
    assert (ours.n_ref, ours.sub, ours.del_, ours.ins, ours.errors) == total
    assert ours.per_utt[1].errors == 0
    assert (ours.per_utt[2].sub, ours.per_utt[2].del_) == (1, 1)


@needs_sclite
def test_case_insensitive_matches_sclite_default(tmp_path):
    refs = [["REGEN", "Sonne", "wolke"], ["a", "B"]]
    hyps = [["regen", "SONNE", "WOLKE", "X"], ["A", "b"]]
    ids, ref_stm, hyp_ctm = write_pair(tmp_path, refs, hyps)
    _, total, _ = run_sclite(ref_stm, hyp_ctm, case_sensitive=False)
    ours = wer(refs, hyps, ids=ids, case_sensitive=False)
    assert (ours.n_ref, ours.sub, ours.del_, ours.ins, ours.errors) == total == (5, 0, 0, 1, 1)
    assert wer(refs, hyps).errors == 6


# ---------------------------------------------------------------------------------------------
# without sclite


def test_phoenix_cleanup_rules():
    assert phoenix_cleanup(["loc-NORD", "cl-KOMMEN", "qu-WAS", "poss-MEIN", "lh-IX"]) == [
        "NORD", "KOMMEN", "WAS", "MEIN", "IX",
    ]
    assert phoenix_cleanup(["__ON__", "__EMOTION__", "__PU__", "__LEFTHAND__", "__EPENTHESIS__", "A", "__OFF__"]) == [
        "__ON__", "A", "__OFF__",
    ]
    assert phoenix_cleanup(["A", "A", "loc-A", "B", "A"]) == ["A", "B", "A"]  # repeats collapse after stripping
    assert phoenix_cleanup(["S0NNE", "HABEN2", "ZEIGEN", "SUEDRAUM", "REGEN-PLUSPLUS"]) == [
        "SONNE", "HABEN", "ZEIGEN-BILDSCHIRM", "SUED", "REGEN",
    ]
    assert phoenix_cleanup([]) == ["[EMPTY]"]
    assert phoenix_cleanup(["__EMOTION__", "__PU__"]) == ["[EMPTY]"]
    assert phoenix_cleanup(["__ON__", "__OFF__"]) == ["__ON__", "__OFF__"]


def test_wer_basic_and_conventions():
    r = wer([["A", "B", "C"], ["D"]], [["A", "X", "C", "E"], []])
    assert (r.sub, r.del_, r.ins, r.n_ref) == (1, 1, 1, 4)
    assert r.wer == pytest.approx(3 / 4)
    assert [u.errors for u in r.per_utt] == [2, 1]
    # PHOENIX cleanup only touches hypotheses
    r = wer([["NORD", "REGEN"]], [["loc-NORD", "REGEN", "REGEN"]], convention="phoenix")
    assert r.errors == 0
    assert wer([["NORD", "REGEN"]], [["loc-NORD", "REGEN", "REGEN"]]).errors == 2
    # empty hypothesis: all deletions; under PHOENIX rules [EMPTY] substitutes one gloss
    r = wer([["A", "B", "C"]], [[]])
    assert (r.sub, r.del_, r.ins, r.wer) == (0, 3, 0, 1.0)
    r = wer([["A", "B", "C"]], [[]], convention="phoenix")
    assert (r.sub, r.del_, r.ins, r.wer) == (1, 2, 0, 1.0)
    # empty reference
    assert wer([[]], [[]]).wer == 0.0
    assert wer([[]], [["A"]]).wer == float("inf")
    with pytest.raises(ValueError):
        wer([["A"]], [["A"], ["B"]])
    with pytest.raises(TypeError):
        wer(["A B"], [["A"]])
    with pytest.raises(ValueError, match="whitespace"):
        wer([["A B"]], [["A"]])
    with pytest.raises(ValueError):
        wer([["A"]], [["A"]], convention="kaldi")


@pytest.mark.parametrize("seed", range(4))
def test_jiwer_agreement(seed):
    rng = random.Random(seed)
    refs, hyps = random_case(rng, 80, ["A", "B", "C", "D"])
    j = wer(refs, hyps, aligner="jiwer")
    want = jiwer.process_words([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    assert (j.sub, j.del_, j.ins) == (want.substitutions, want.deletions, want.insertions)
    assert j.wer == pytest.approx(want.wer)
    s = wer(refs, hyps)
    assert s.n_ref == j.n_ref
    for us, uj in zip(s.per_utt, j.per_utt):
        # jiwer minimises the number of errors; sclite's weighted alignment never does better
        assert us.errors >= uj.errors
        # both are valid alignments: hits + sub + del == n_ref, and the weighted cost is minimal
        assert us.hits + us.sub + us.del_ == us.n_ref
        assert 4 * us.sub + 3 * (us.del_ + us.ins) <= 4 * uj.sub + 3 * (uj.del_ + uj.ins)
    assert abs(s.wer - j.wer) < 0.05


def test_align_costs():
    assert align(list("ABC"), list("ABC")) == (0, 0, 0, 3)
    assert align(list("AB"), list("BA")) == (0, 1, 1, 1)  # sclite: del+ins (6) beats 2 subs (8)
    assert align(list("AB"), list("BA"), costs=(1, 1, 1))[:3] in {(2, 0, 0), (0, 1, 1)}
    assert align([], list("AB")) == (0, 0, 2, 0)
    assert align(list("AB"), []) == (0, 2, 0, 0)


def test_ctm_stm_roundtrip(tmp_path):
    refs = {"v1": ["__ON__", "A", "B", "__OFF__"], "v2": ["C"], "v0": []}
    write_stm(tmp_path / "r.stm", refs)
    assert read_stm(tmp_path / "r.stm") == refs
    line = (tmp_path / "r.stm").read_text().splitlines()[0]
    assert line == "v1 1 signer 0.0 1.79769e+308 __ON__ A B __OFF__"
    hyps = {"v1": [CtmWord("A", 0.12, 0.2, 0.9), CtmWord("B", 0.4, 0.08)], "v2": ["C", "D"], "v0": []}
    write_ctm(tmp_path / "h.ctm", hyps)
    back = read_ctm(tmp_path / "h.ctm")
    assert back["v1"] == [CtmWord("A", 0.12, 0.2, 0.9), CtmWord("B", 0.4, 0.08, None)]
    assert [w.gloss for w in back["v2"]] == ["C", "D"] and "v0" not in back
    assert (tmp_path / "h.ctm").read_text().splitlines()[0] == "v1 1 0.120 0.200 A 0.900000"
    r = score_files(tmp_path / "r.stm", tmp_path / "h.ctm")
    assert (r.sub, r.del_, r.ins, r.n_ref) == (0, 2, 1, 5)
    # a reference with a label field and two segments of one id
    (tmp_path / "s.stm").write_text(";; comment\nx 1 s 5.0 9.0 <o,f0,male> C D\nx 1 s 0.0 5.0 A B\n")
    assert read_stm(tmp_path / "s.stm") == {"x": ["A", "B", "C", "D"]}
    (tmp_path / "bad.ctm").write_text("zz 1 0.0 0.1 A\n")
    with pytest.raises(ValueError, match="not in the reference"):
        score_files(tmp_path / "r.stm", tmp_path / "bad.ctm")
    (tmp_path / "bad2.ctm").write_text("v1 1 0.0 A\n")
    with pytest.raises(ValueError, match="5 or 6 fields"):
        read_ctm(tmp_path / "bad2.ctm")


def test_events_to_ctm_from_decoder():
    import numpy as np

    from slsdk.decode import GreedyStream

    x = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    s = GreedyStream(frame_shift=0.25)
    s.accept(x)
    words = events_to_ctm(s.finalize().events, ["<blank>", "REGEN", "SONNE"])
    assert [(w.gloss, w.start, w.dur) for w in words] == [("REGEN", 0.0, 0.5), ("SONNE", 0.75, 0.25)]
    assert words[0].conf == pytest.approx(0.8)
