"""Many streams on one recognizer: ``decode_streams`` (one model call per round when the file takes a batch),
and the thread rule (a Recognizer may be shared by threads, a Stream may not)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]


@pytest.fixture(scope="module")
def student(tiny_student):
    return tiny_student(len(VOCAB))


@pytest.fixture(scope="module")
def onnx_bundle(student, tmp_path_factory):
    from slsdk.convert import convert

    return convert(student, "onnx", "fp32", tmp_path_factory.mktemp("streams") / "student-onnx", vocab=VOCAB)


@pytest.fixture(scope="module")
def checkpoint(student, tmp_path_factory):
    from slsdk.train.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    return save_checkpoint(path, kind="student", config=student.config.to_dict(), vocab=VOCAB,
                           model=student.state_dict())


@pytest.fixture(scope="module")
def clips():
    """Three different clips (a bright blob moving at different speeds), 37, 45 and 29 frames."""
    out = []
    for k, n in enumerate((37, 45, 29)):
        rng = np.random.default_rng(k)
        f = rng.integers(0, 60, (n, 48, 64, 3), dtype=np.uint8)
        for t in range(n):
            x = (3 + (k + 1) * t) % 50
            f[t, 8:30, x:x + 12] = (230, 200 - 40 * k, 170)
        out.append(f)
    return out


def _alone(rec, clip):
    s = rec.create_stream()
    for i in range(0, len(clip), 10):
        s.accept_frames(clip[i:i + 10])
    s.input_finished()
    return rec.result(s)


def _together(rec, clips):
    streams = [rec.create_stream() for _ in clips]
    for i in range(0, max(map(len, clips)), 10):
        live = []
        for s, c in zip(streams, clips):
            if i < len(c):
                s.accept_frames(c[i:i + 10], decode=False)
                live.append(s)
        rec.decode_streams(live)
    for s in streams:
        assert not rec.is_ready(s)
        s.input_finished()
    return [rec.result(s) for s in streams]


def _count_calls(rec):
    calls, run = [], rec.backend.run
    rec.backend.run = lambda feeds: (calls.append(feeds[rec.frames_input].shape[0]), run(feeds))[1]
    return calls


def test_exported_students_take_a_batch(onnx_bundle):
    """The ONNX student slsdk writes has a free batch axis on every input, bounded by the manifest's
    streaming.max_batch (its shapes stay one stream's); torch takes any batch."""
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    assert all(not isinstance(i.shape[0], int) for i in rec.backend.session.get_inputs())
    assert [io.shape[0] for io in onnx_bundle.manifest.streaming.inputs] == [1] * 5
    assert rec.backend.batch_inputs is True and rec.backend.max_batch == onnx_bundle.manifest.streaming.max_batch > 1


def test_decode_streams_loops_on_a_batch_one_bundle(onnx_bundle, clips, tmp_path):
    """A manifest without streaming.max_batch (bundles written before it) declares batch 1: one call per stream,
    even where the file's axis is free."""
    import json
    import shutil

    from slsdk.runtime.recognizer import Recognizer

    old = tmp_path / "old"
    shutil.copytree(onnx_bundle.root, old)
    m = json.loads((old / "manifest.json").read_text())
    del m["streaming"]["max_batch"]
    (old / "manifest.json").write_text(json.dumps(m, indent=2))
    rec = Recognizer(old)
    assert rec.backend.batch_inputs is False
    want = [_alone(rec, c) for c in clips]
    assert any(w.glosses for w in want)
    calls = _count_calls(rec)
    got = _together(rec, clips)
    assert [g.to_dict() for g in got] == [w.to_dict() for w in want]
    assert set(calls) == {1}


def test_decode_streams_batches_on_the_torch_backend(checkpoint, clips):
    """One call per round for all ready streams, stacked along batch with their states; each stream gets what
    it gets alone."""
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(checkpoint, backend="torch")
    assert rec.backend.batch_inputs is True
    want = [_alone(rec, c) for c in clips]
    calls = _count_calls(rec)
    got = _together(rec, clips)
    assert max(calls) == 3  # three streams in one call
    assert sum(calls) == sum(-(-len(c) // rec.chunk) for c in clips)  # every chunk ran once
    for g, w in zip(got, want):
        assert g.glosses == w.glosses and g.committed == w.committed
        assert [(e["gloss"], e["start"], e["end"]) for e in g.events] == [(e["gloss"], e["start"], e["end"])
                                                                        for e in w.events]
        np.testing.assert_allclose([e["confidence"] for e in g.events], [e["confidence"] for e in w.events],
                                   atol=1e-3)


def test_decode_streams_refuses_a_stream_twice(onnx_bundle):
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    s = rec.create_stream()
    with pytest.raises(ValueError, match="listed twice"):
        rec.decode_streams([s, s])


def test_one_recognizer_shared_by_threads(onnx_bundle, clips):
    """Each thread owns its stream; the shared recognizer gives every stream what it gets alone."""
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(onnx_bundle.root)
    want = [_alone(rec, c).to_dict() for c in clips] * 2
    got = [None] * len(want)
    errors = []
    start = threading.Barrier(len(want))

    def work(i):
        try:
            start.wait()
            got[i] = _alone(rec, (clips * 2)[i]).to_dict()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(want))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == want
