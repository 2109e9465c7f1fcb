"""A training run killed at every write point resumes to the state of an uninterrupted run.

Each write slsdk makes in a run folder passes two points in ``slsdk.fileio`` (before and after the rename
that makes it visible; before and after an append). An uninterrupted run counts them; then, for every N, a
forked child trains with a hook that ``os._exit``s at the Nth point (no clean-up, no ``finally``: a kill),
and ``train(..., resume=True)`` finishes the run. ``last.pt``, ``best.pt``, ``metrics.jsonl`` and ``vocab.json``
must then equal the uninterrupted run's, and no temp file may be left.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch

from slsdk import fileio
from slsdk.train import TrainConfig, load_checkpoint, teacher_config, train

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                                reason="needs os.fork (Linux) to kill a child at a write point")

TINY_TEACHER = dict(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2)
KILLED = 77


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=2, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1), **kw})


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from slsdk.data import read_folder
    from slsdk.data.synthetic import generate_synthetic

    root = generate_synthetic(tmp_path_factory.mktemp("kill") / "data", seed=0, num_glosses=4, num_signers=2,
                              num_test_si_signers=1, sentences_per_signer=3, num_train_sentences=4,
                              num_test_us_sentences=1, dev_per_signer=1, test_si_per_signer=1,
                              test_us_per_sentence=1, image_size=32, min_len=1, max_len=2, video_format="png")
    return {"train": read_folder(root, "train")}   # no dev split: best.pt follows the training loss (new best often)


def _train(splits, out, **kw):
    torch.set_num_threads(1)
    return train(splits, out, teacher_config(**TINY_TEACHER), _cfg(), progress=False, **kw)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _state(out):
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"last": last, "best": best, "metrics": _strip(rows), "vocab": (out / "vocab.json").read_text()}


def _assert_same(got, want, where):
    for name in ("last", "best"):
        g, w = got[name], want[name]
        assert (g["epoch"], g["step"], g["best_metric"], g.get("best_epoch")) == \
            (w["epoch"], w["step"], w["best_metric"], w.get("best_epoch")), f"{where}: {name}.pt header differs"
        bad = [k for k in w["model"] if not torch.equal(g["model"][k], w["model"][k])]
        assert not bad, f"{where}: {name}.pt weights differ: {bad[:3]}"
        assert _strip(g["metrics_history"]) == _strip(w["metrics_history"]), f"{where}: {name}.pt history differs"
        for k, v in w["optimizer"]["state"].items():
            assert torch.equal(g["optimizer"]["state"][k]["exp_avg"], v["exp_avg"]), f"{where}: {name}.pt optimizer"
    assert got["metrics"] == want["metrics"], f"{where}: metrics.jsonl differs"
    assert got["vocab"] == want["vocab"], f"{where}: vocab.json differs"


def _leftovers(out):
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != fileio.LEDGER)


def test_kill_at_every_write_point_then_resume(splits, tmp_path):
    points = []
    fileio.set_write_hook(lambda point, path: points.append((point, path.name)))
    try:
        ref = _train(splits, tmp_path / "ref")
    finally:
        fileio.set_write_hook(None)
    want = _state(tmp_path / "ref")
    assert want["last"]["epoch"] == 2 and want["best"]["epoch"] == want["last"]["best_epoch"]
    names = {n for _, n in points}
    assert {"last.pt", "best.pt", "metrics.jsonl", "vocab.json"} <= names, points
    assert sum(n == "best.pt" for _, n in points) >= 4, "the test needs a new best in both epochs"

    for n in range(1, len(points) + 1):
        out = tmp_path / f"kill{n}"
        pid = os.fork()
        if pid == 0:   # child: train until the n-th write point, then die without any clean-up
            count = [0]

            def hook(point, path):
                count[0] += 1
                if count[0] == n:
                    os._exit(KILLED)

            fileio.set_write_hook(hook)
            try:
                _train(splits, out)
            finally:
                os._exit(1)   # reached only if the hook never fired (or training failed)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == KILLED, \
            f"child killed at point {n} {points[n - 1]} exited with {status}"
        res = _train(splits, out, resume=True)
        where = f"killed at write point {n}/{len(points)} {points[n - 1]}"
        assert res.best_checkpoint.is_file(), where
        _assert_same(_state(out), want, where)
        assert _leftovers(out) == [], f"{where}: temp files left: {_leftovers(out)}"
    assert ref.best_checkpoint.is_file()


def test_resume_rebuilds_a_missing_or_stale_best_pt(splits, tmp_path):
    import shutil

    out = tmp_path / "run"
    _train(splits, out)
    want = _state(out)
    assert want["last"]["best_epoch"] == 2          # the last epoch is the best: best.pt can come from last.pt
    # a kill (or older slsdk) left no best.pt
    (out / "best.pt").unlink()
    res = _train(splits, out, resume=True)
    assert res.best_checkpoint.is_file()
    _assert_same(_state(out), want, "missing best.pt")
    # a stale best.pt (an epoch-1 checkpoint) is replaced by the epoch last.pt records
    shutil.copy(_train_epochs(splits, tmp_path / "one", 1) / "best.pt", out / "best.pt")
    assert load_checkpoint(out / "best.pt")["epoch"] == 1
    _train(splits, out, resume=True)
    _assert_same(_state(out), want, "stale best.pt")


def _train_epochs(splits, out, epochs):
    train(splits, out, teacher_config(**TINY_TEACHER), _cfg(epochs=epochs), progress=False)
    return out


def test_stale_temp_files_of_a_killed_run_are_removed(splits, tmp_path):
    out = tmp_path / "run"
    _train(splits, out)
    dead = 2 ** 22 + 12345      # beyond the default pid_max: no such process
    ours = out / f".last.pt.{dead}-0123abcd.slsdk-tmp"
    legacy = out / ".last.pt.ab12cd34.tmp"        # a name older slsdk used, but also one a user may choose:
    user = out / "last.pt.notes.tmp"              # only names with slsdk's pid-token-suffix are ever removed
    for p in (ours, legacy, user):
        p.write_bytes(b"x" * 100)
    old = os.path.getmtime(legacy) - 30 * 24 * 3600
    os.utime(legacy, (old, old))
    _train(splits, out, resume=True)       # a finished run: nothing trained, but the next run cleans the folder
    assert not ours.exists()
    assert legacy.exists() and user.exists()


def test_overwrite_replaces_only_a_run_of_the_same_kind(tmp_path):
    from slsdk.fileio import OutputExistsError
    from slsdk.train.checkpoint import save_checkpoint
    from slsdk.train.run_folder import check_run_folder as _check_run_folder

    run = tmp_path / "teacher"
    for n in ("last.pt", "best.pt"):
        save_checkpoint(run / n, kind="teacher", config={}, vocab=["<blank>", "A"], model={}, epoch=2)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--resume.*--overwrite"):
        _check_run_folder(run, resume=False, overwrite=False, kind="teacher")
    # distilling into the teacher's folder with --overwrite must not delete the teacher
    with pytest.raises(OutputExistsError, match="is a teacher checkpoint"):
        _check_run_folder(run, resume=False, overwrite=True, kind="student")
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "last.pt").write_text("not a checkpoint")
    with pytest.raises(OutputExistsError, match="holds last.pt, which slsdk did not write"):
        _check_run_folder(tmp_path / "other", resume=False, overwrite=True, kind="teacher")
    _check_run_folder(run, resume=False, overwrite=True, kind="teacher")
    assert sorted(n for n in os.listdir(run) if n != fileio.LEDGER) == ["notes.txt"]
