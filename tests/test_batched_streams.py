"""Batched streams: the student files slsdk writes take a batch (ONNX / ORT: a free batch axis up to the
manifest's ``streaming.max_batch``; ExecuTorch fp32: one method per fixed size in ``streaming.batch_sizes``), and
``Recognizer.decode_streams`` stacks the ready chunks and states of N streams into one call per round, split into
the sizes the file takes. Each stream gets exactly the tokens and log-probs it gets alone (fp32 within 1e-5; int8:
the same tokens, log-probs close), streams of different lengths ending at different rounds; the batched path is
taken (the chunk runner's count of model calls by batch size). Batch 1 still runs the same file (``forward``), as
phones and the web page call it."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from slsdk.bundle import inspect_bundle

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]
LENGTHS = (37, 45, 29, 61, 16)   # five clips: the 16- and 29-frame streams end rounds before the 61-frame one
STEP = 10                        # frames fed to every live stream per round


@pytest.fixture(scope="module")
def student(tiny_student):
    return tiny_student(len(VOCAB))


@pytest.fixture(scope="module")
def clips():
    """Different clips (a bright blob moving at different speeds) of different lengths."""
    out = []
    for k, n in enumerate(LENGTHS):
        rng = np.random.default_rng(k)
        f = rng.integers(0, 60, (n, 48, 64, 3), dtype=np.uint8)
        for t in range(n):
            x = (3 + (k + 1) * t) % 50
            f[t, 8:30, x:x + 12] = (230, 200 - 40 * (k % 4), 170)
        out.append(f)
    return out


@pytest.fixture(scope="module")
def calib():
    import torch

    g = torch.Generator().manual_seed(100)
    return [torch.randn(24, 3, 32, 32, generator=g) for _ in range(4)]


@pytest.fixture(scope="module")
def bundles(student, calib, tmp_path_factory):
    """Converted once per module, on first use."""
    from slsdk.convert import convert

    root, made = tmp_path_factory.mktemp("batched"), {}

    def get(target, precision, recipe=None):
        key = (target, precision, recipe)
        if key not in made:
            made[key] = convert(student, target, precision, root / "-".join(filter(None, key)), vocab=VOCAB,
                                calib=calib if precision == "int8" else None, recipe=recipe)
        return made[key]

    return get


def _record(stream):
    """Keep every chunk's log-probs the stream's decoder gets (the stream's own method, called as before)."""
    got, accept = [], stream.accept_log_probs

    def keep(lp, seconds):
        got.append(np.array(lp, np.float32))
        accept(lp, seconds)

    stream.accept_log_probs = keep
    return got


def _alone(rec, clip):
    s = rec.create_stream()
    lps = _record(s)
    for i in range(0, len(clip), STEP):
        s.accept_frames(clip[i:i + STEP])
    s.input_finished()
    return rec.result(s), np.concatenate(lps)


def _together(rec, clips):
    """Round-robin: every live stream gets STEP frames, then one decode_streams; a stream whose clip is done
    finishes in that round (its zero-padded last chunk) while the others go on."""
    streams = [rec.create_stream() for _ in clips]
    lps = [_record(s) for s in streams]
    for i in range(0, max(map(len, clips)) + STEP, STEP):
        live = []
        for s, c in zip(streams, clips):
            if s.finished:
                continue
            if i < len(c):
                s.accept_frames(c[i:i + STEP], decode=False)
                live.append(s)
            else:
                s.input_finished()
        rec.decode_streams(live)
    assert all(s.finished for s in streams)
    return [rec.result(s) for s in streams], [np.concatenate(lp) for lp in lps]


def _check(rec, clips, *, atol):
    want = [_alone(rec, c) for c in clips]
    assert any(w.glosses for w, _ in want)
    rec.runner.calls.clear()
    got = _together(rec, clips)
    for (g, glp), (w, wlp) in zip(zip(*got), want):
        assert g.glosses == w.glosses and g.committed == w.committed
        assert [(e["gloss"], e["start"], e["end"]) for e in g.events] == \
               [(e["gloss"], e["start"], e["end"]) for e in w.events]
        assert glp.shape == wlp.shape
        np.testing.assert_allclose(glp, wlp, atol=atol, rtol=0)
    return rec.runner.calls


def _chunks(clips, chunk):
    """Model rows the clips make: every chunk once, the last one zero-padded."""
    return sum(-(-len(c) // chunk) for c in clips)


@pytest.mark.parametrize("target,precision,recipe,atol", [
    ("onnx", "fp32", None, 1e-5),
    ("onnx", "int8", None, 1e-3),     # onnx-int8-static: fixed activation scales, rows independent
    ("ort", "fp32", None, 1e-5),
    ("ort", "int8", None, 1e-3),      # the .ort conversion keeps the QDQ file's free axis
])
def test_onnx_files_take_a_batch(bundles, clips, target, precision, recipe, atol):
    from slsdk.runtime.recognizer import Recognizer

    b = bundles(target, precision, recipe)
    m = json.loads((b.root / "manifest.json").read_text())
    assert m["streaming"]["max_batch"] == 64 and "batch_sizes" not in m["streaming"]
    # the shapes stay one stream's (what phones and the web page read); the file's axis is free
    assert all(io["shape"][0] == 1 for io in m["streaming"]["inputs"] + m["streaming"]["outputs"])
    assert re.search(r"streams per call +1 to 64 ", inspect_bundle(b.root))
    # conversion measured the batch too: the fidelity videos stacked against each alone
    assert 0 <= b.manifest.fidelity["batch_max_abs_err"] <= atol
    rec = Recognizer(b.root)
    assert rec.backend.max_batch == 64 and rec.backend.batch_inputs
    sess_in = rec.backend.session.get_inputs()
    assert all(not isinstance(i.shape[0], int) for i in sess_in)
    calls = _check(rec, clips, atol=atol)
    # the first rounds stack all five streams into one call; every full chunk ran once, in a batch call
    assert calls[len(clips)] >= 1
    assert sum(k * v for k, v in calls.items()) == _chunks(clips, rec.chunk)


def test_dynamic_int8_declares_batch_one(bundles, clips):
    """onnx-int8-dynamic quantizes activations per call over every row, so stacked streams would change each
    other's numbers: its file declares batch 1 and decode_streams runs one call per stream."""
    from slsdk.runtime.recognizer import Recognizer

    b = bundles("onnx", "int8", "onnx-int8-dynamic")
    assert b.manifest.streaming.max_batch == 1 and "batch_max_abs_err" not in b.manifest.fidelity
    rec = Recognizer(b.root)
    assert not rec.backend.batch_inputs
    calls = _check(rec, clips, atol=0)
    assert set(calls) == {1} and calls[1] == _chunks(clips, rec.chunk)


def test_executorch_fixed_batch_methods(bundles, clips):
    """The fp32 .pte has ``forward`` (batch 1, what phones call) and ``forward_b4`` / ``forward_b16``; a round of
    five streams is a call of 4 and one of 1, a round of three a call of 4 with a zero row."""
    from slsdk.runtime.chunks import batch_plan
    from slsdk.runtime.recognizer import Recognizer
    from slsdk.toolchains.executorch.export import validate_pte

    b = bundles("executorch", "fp32")
    assert b.manifest.streaming.batch_sizes == [1, 4, 16] and b.manifest.streaming.max_batch == 16
    assert re.search(r"streams per call +1, 4, 16 \(fixed sizes", inspect_bundle(b.root))
    assert validate_pte(b.model_path)["methods"] == ["forward", "forward_b16", "forward_b4"]
    assert 0 <= b.manifest.fidelity["batch_max_abs_err"] <= 1e-5   # two fidelity videos: a call of 4, two zero rows
    rec = Recognizer(b.root)
    assert rec.backend.batch_sizes == (1, 4, 16)
    assert batch_plan(5, 16, (1, 4, 16)) == [(4, 4), (1, 1)] and batch_plan(3, 16, (1, 4, 16)) == [(3, 4)]
    calls = _check(rec, clips, atol=1e-5)
    assert calls[4] >= 2 and set(calls) <= {1, 4}


def test_batch_plan():
    from slsdk.runtime.chunks import batch_plan

    for n in range(1, 70):
        for plan in (batch_plan(n, 64), batch_plan(n, 8), batch_plan(n, 16, (1, 4, 16)), batch_plan(n, 1)):
            assert sum(rows for rows, _ in plan) == n
            assert all(rows <= size <= 2 * rows or rows == size for rows, size in plan)
    assert batch_plan(20, 8) == [(8, 8), (8, 8), (4, 4)]
    assert batch_plan(7, 16, (1, 4, 16)) == [(4, 4), (3, 4)] and batch_plan(9, 16, (1, 4, 16)) == [(9, 16)]


def test_the_manifest_checks_the_batch_keys(bundles):
    from slsdk.bundle import BundleError
    from slsdk.bundle.checks import check_manifest
    from slsdk.bundle.schema import schema_problems

    m = bundles("onnx", "fp32").manifest.to_dict()
    check_manifest(m)
    assert schema_problems(m) == []
    for bad, why in (({"max_batch": 0}, "max_batch"), ({"max_batch": True}, "max_batch"),
                     ({"max_batch": 16, "batch_sizes": [1, 16, 4]}, "batch_sizes"),
                     ({"max_batch": 16, "batch_sizes": [2, 16]}, "batch_sizes"),
                     ({"max_batch": 8, "batch_sizes": [1, 4, 16]}, "batch_sizes")):
        d = json.loads(json.dumps(m))
        d["streaming"].update(bad)
        with pytest.raises(BundleError, match=why):
            check_manifest(d, "m.json")
    d = json.loads(json.dumps(m))
    d["streaming"]["batch_sizes"] = [1, "4"]
    assert any("batch_sizes" in p for p in schema_problems(d))
