"""Hand trackers in parallel: ``Recognizer.accept_streams`` runs the front ends of a round (resample, MediaPipe hand
tracker, preprocess), one task per stream, on the hand-tracker pool's threads; the crops, tokens and log-probs
are exactly those of feeding the same streams one after the other, on the real webcam clip."""
from __future__ import annotations

import threading

import numpy as np
import pytest

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]
CLIP = "data/hands/webcam_gestures.mp4"
ROUND = 8   # frames per stream per round (one chunk of the tiny student)


@pytest.fixture(scope="module")
def checkpoint(tiny_student, tmp_path_factory):
    from slsdk.train.checkpoint import save_checkpoint

    student = tiny_student(len(VOCAB))
    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    return save_checkpoint(path, kind="student", config=student.config.to_dict(), vocab=VOCAB,
                           model=student.state_dict())


@pytest.fixture(scope="module")
def hand_model(shared_file):
    return shared_file("models/hand_landmarker.task")


@pytest.fixture(scope="module")
def clips(shared_file):
    """Four streams cut from the real clip: different starts and lengths, one mirrored (the other hand)."""
    from slsdk.data.video import read_video

    frames = read_video(shared_file(CLIP), max_frames=120)
    return [frames[0:64], frames[17:73], frames[40:120][:, :, ::-1].copy(), frames[5:45]]


def _run(rec, clips, parallel: bool):
    """Round-robin over the clips; per stream: every frame's (box, status, hands, crop image), the log-probs and
    the result; and the threads that fed it."""
    streams = [rec.create_stream() for _ in clips]
    crops = [[] for _ in clips]
    lps = [[] for _ in clips]
    threads = [set() for _ in clips]
    for i, s in enumerate(streams):
        push, accept = s.frontend.push, s.accept_log_probs

        def on_push(frames, ts=None, _push=push, _i=i):
            threads[_i].add(threading.current_thread().name)
            return _push(frames, ts)

        def on_lp(lp, seconds, _accept=accept, _i=i):
            lps[_i].append(np.array(lp))
            _accept(lp, seconds)

        s.frontend.push, s.accept_log_probs = on_push, on_lp
    for at in range(0, max(map(len, clips)), ROUND):
        live = [(i, s) for i, s in enumerate(streams) if at < len(clips[i])]
        batch = [clips[i][at:at + ROUND] for i, _ in live]
        if parallel:
            rec.accept_streams([s for _, s in live], batch)
        else:
            for (_, s), f in zip(live, batch):
                s.accept_frames(f, decode=False)
            rec.decode_streams([s for _, s in live])
        for i, s in live:
            crops[i].extend((r.box, r.status, r.hands_found, r.image.copy()) for r in s.last_crops)
    for s in streams:
        s.input_finished()
    out = [(c, np.concatenate(lp), rec.result(s).to_dict(), t) for c, lp, s, t in zip(crops, lps, streams, threads)]
    for s in streams:
        s.close()
    return out


def test_parallel_trackers_equal_sequential(checkpoint, hand_model, clips):
    from slsdk.runtime.recognizer import Recognizer

    seq = _run(Recognizer(checkpoint, backend="torch", crop="hands", hand_model=hand_model), clips, parallel=False)
    rec = Recognizer(checkpoint, backend="torch", crop="hands", hand_model=hand_model)
    rec.croppers.workers = max(2, rec.croppers.workers)   # parallel even on a one-core machine
    par = _run(rec, clips, parallel=True)
    rec.croppers.shutdown()
    assert sum(r[2] > 0 for c, *_ in seq for r in c) > 50   # the trackers found hands on the real clip
    for k, ((cs, ls, rs, ts), (cp, lp, rp, tp)) in enumerate(zip(seq, par)):
        assert len(cs) == len(cp) == len(clips[k])
        for a, b in zip(cs, cp):
            assert a[:3] == b[:3]
            np.testing.assert_array_equal(a[3], b[3])
        np.testing.assert_array_equal(ls, lp)
        assert rs == rp
        assert ts == {threading.current_thread().name}
        assert any(t.startswith("slsdk-hands") for t in tp)   # fed on the pool's threads (a lone stream: here)
    assert len(set().union(*(t for *_, t in par))) >= 2


def test_accept_streams_checks_its_arguments(checkpoint, hand_model):
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(checkpoint, backend="torch", crop="hands", hand_model=hand_model)
    a, b = rec.create_stream(), rec.create_stream()
    frame = np.zeros((1, 48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="listed twice"):
        rec.accept_streams([a, a], [frame, frame])
    with pytest.raises(ValueError, match="2 streams but 1 frame batches"):
        rec.accept_streams([a, b], [frame])
    with pytest.raises(ValueError, match="timestamps"):   # a stream's own error comes back on the caller's thread
        rec.accept_streams([a, b], [frame, frame], timestamps=[[0.0], [0.0, 0.04]])
