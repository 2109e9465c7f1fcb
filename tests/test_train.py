"""Trainer, checkpoints, resume, evaluation and distillation on a tiny synthetic data set with tiny models."""
from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

from tiny_data import tiny_synthetic

from slsdk.errors import ConfigError
from slsdk.fileio import LEDGER
from slsdk.train import (
    CheckpointError,
    DistillConfig,
    TrainConfig,
    distill,
    evaluate,
    load_checkpoint,
    load_model,
    save_checkpoint,
    teacher_config,
    train,
)

torch.set_num_threads(1)

TINY_TEACHER = dict(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2)
TINY_STUDENT = dict(image_size=32, width=32, layers=1, heads=2, feature_dim=32, hidden=32)


def _tcfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("train") / "data")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """An uninterrupted 2-epoch run (shared by several tests)."""
    out = tmp_path_factory.mktemp("run") / "full"
    return train(data, out, teacher_config(**TINY_TEACHER), _tcfg(), progress=False)


def _samples(data, split):
    from slsdk.data import read_folder

    return read_folder(data, split)


def _state_equal(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def _strip_times(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


# ------------------------------------------------------------------------------------------------ training
def test_loss_decreases_on_a_fixed_batch(data):
    from slsdk.data import Vocabulary
    from slsdk.data.dataset import VideoDataset, batch_to_device, collate
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.train.trainer import TeacherObjective, build_optimizer, seed_everything

    samples = _samples(data, "train")[:2]
    vocab = Vocabulary.build(_samples(data, "train"))
    seed_everything(0)
    cfg = teacher_config(**TINY_TEACHER, num_classes=len(vocab))
    model = CSLRRecognizer(cfg)
    ds = VideoDataset(samples, vocab, cfg.input_size, cfg.mean, cfg.std)
    videos, lengths, labels, label_lengths = batch_to_device(collate([ds[i] for i in range(2)]), "cpu", ds.normalize)
    obj = TeacherObjective(model).train()
    opt = build_optimizer([(n, p) for n, p in obj.named_parameters() if p.requires_grad], _tcfg(lr=3e-3))
    losses = []
    for _ in range(12):
        out = obj(videos, lengths, labels, label_lengths)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        losses.append(float(out["total"].detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0], losses


def test_grad_checkpointing_gives_the_same_gradients(data):
    from slsdk.data import Vocabulary
    from slsdk.data.dataset import VideoDataset, batch_to_device, collate
    from slsdk.models.recognizer import CSLRRecognizer
    from slsdk.train.trainer import TeacherObjective, seed_everything

    samples = _samples(data, "train")[:2]
    vocab = Vocabulary.build(_samples(data, "train"))
    cfg = teacher_config(**TINY_TEACHER, num_classes=len(vocab))
    seed_everything(0)
    model = CSLRRecognizer(cfg)
    ds = VideoDataset(samples, vocab, cfg.input_size, cfg.mean, cfg.std)
    videos, lengths, labels, label_lengths = batch_to_device(collate([ds[i] for i in range(2)]), "cpu", ds.normalize)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        obj = TeacherObjective(model, grad_checkpointing=ckpt).train()
        obj(videos, lengths, labels, label_lengths)["total"].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6)


def test_lr_schedule_warmup_cosine_and_step():
    from slsdk.train.optim import lr_lambda as _lr_lambda

    f = _lr_lambda(TrainConfig(epochs=2, warmup_steps=2, schedule="cosine"), steps_per_epoch=5)
    assert [round(f(s), 4) for s in (0, 1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.0, abs=1e-9)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    g = _lr_lambda(TrainConfig(epochs=4, schedule="step", step_epochs=2, step_gamma=0.1), steps_per_epoch=3)
    assert [g(s) for s in (0, 5, 6, 11)] == pytest.approx([1, 1, 0.1, 0.1])
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lamb")


def test_train_writes_checkpoints_log_and_plot(trained):
    out = trained.out_dir
    assert trained.best_checkpoint == out / "best.pt" and trained.best_checkpoint.is_file()
    assert trained.last_checkpoint.is_file()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert _strip_times(rows) == _strip_times(trained.history)
    assert all(r["dev_wer"] is not None and 0 <= r["dev_wer"] for r in rows)
    assert trained.dev_wer == min(r["dev_wer"] for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = torch.load(trained.last_checkpoint, weights_only=True)   # plain weights_only load works
    assert ckpt["format"] == "slsdk-checkpoint" and ckpt["version"] == 1 and ckpt["kind"] == "teacher"
    assert ckpt["epoch"] == 2 and ckpt["step"] == 8 and ckpt["vocab"][0] == "<blank>"
    assert ckpt["train_config"]["epochs"] == 2 and ckpt["config"]["num_classes"] == len(ckpt["vocab"])
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])
    assert ckpt["optimizer"]["state"] and ckpt["scheduler"]["last_epoch"] == 8


def test_load_model_rebuilds_the_teacher(trained, data):
    from slsdk.models.recognizer import CSLRRecognizer

    model, vocab, kind = load_model(trained.last_checkpoint)
    assert kind == "teacher" and isinstance(model, CSLRRecognizer) and not model.training
    assert vocab.glosses == load_checkpoint(trained.last_checkpoint)["vocab"]
    assert _state_equal(model.state_dict(), load_checkpoint(trained.last_checkpoint)["model"]) == []


def test_existing_run_needs_resume_or_overwrite(trained, data):
    with pytest.raises(FileExistsError, match="resume"):
        train(data, trained.out_dir, teacher_config(**TINY_TEACHER), _tcfg(), progress=False)


def test_resume_after_kill_matches_uninterrupted_run(trained, data, tmp_path):
    out = tmp_path / "killed"

    def kill_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        train(data, out, teacher_config(**TINY_TEACHER), _tcfg(), progress=False, on_epoch_end=kill_after_first_epoch)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert (out / "metrics.jsonl").read_text().count("\n") == 1
    # random state at restart must not matter: it is restored / re-derived
    torch.manual_seed(12345)
    res = train(data, out, teacher_config(**TINY_TEACHER), _tcfg(), resume=True, progress=False)
    full = load_checkpoint(trained.last_checkpoint)
    resumed = load_checkpoint(res.last_checkpoint)
    assert resumed["epoch"] == full["epoch"] == 2 and resumed["step"] == full["step"]
    assert _state_equal(full["model"], resumed["model"]) == [], "resumed weights differ from the uninterrupted run"
    assert _strip_times(res.history) == _strip_times(trained.history)
    assert res.dev_wer == trained.dev_wer
    assert (out / "metrics.jsonl").read_text().count("\n") == 2
    for k, v in full["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], resumed["optimizer"]["state"][k]["exp_avg"])
    # resuming a finished run trains nothing and reports the same
    again = train(data, out, teacher_config(**TINY_TEACHER), _tcfg(), resume=True, progress=False)
    assert _strip_times(again.history) == _strip_times(res.history)
    assert _state_equal(load_checkpoint(out / "last.pt")["model"], resumed["model"]) == []


def test_resume_refuses_a_different_model_config(trained, data, tmp_path):
    import shutil

    out = tmp_path / "cfg"
    out.mkdir()
    shutil.copy(trained.last_checkpoint, out / "last.pt")
    with pytest.raises(CheckpointError, match="hidden"):
        train(data, out, teacher_config(**{**TINY_TEACHER, "hidden": 48}), _tcfg(), resume=True, progress=False)


# ------------------------------------------------------------------------------------------------ checkpoints
def _tiny_payload(value=1.0):
    return dict(kind="student", config={"num_classes": 3}, vocab=["<blank>", "A", "B"],
                model={"w": torch.full((2, 2), value)})


def test_checkpoint_atomic_write(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, **_tiny_payload(1.0), extra={"note": "first"})
    save_checkpoint(path, **_tiny_payload(2.0), extra={"note": "second"})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LEDGER) == ["ck.pt"]
    assert float(load_checkpoint(path)["model"]["w"][0, 0]) == 2.0

    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial bytes of a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, **_tiny_payload(3.0))
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LEDGER) == ["ck.pt"], "temp file left behind"
    ck = load_checkpoint(path)
    assert float(ck["model"]["w"][0, 0]) == 2.0 and ck["extra"]["note"] == "second"

    # a value weights_only loading would refuse is rejected before anything is written
    with pytest.raises(TypeError, match=r"extra.*\['fn'\]"):
        save_checkpoint(path, **_tiny_payload(4.0), extra={"fn": print})
    assert float(load_checkpoint(path)["model"]["w"][0, 0]) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LEDGER) == ["ck.pt"]


def test_checkpoint_rng_roundtrip(tmp_path):
    import random

    import numpy as np

    from slsdk.train.checkpoint import get_rng_state, set_rng_state

    save_checkpoint(tmp_path / "r.pt", **_tiny_payload())
    state = load_checkpoint(tmp_path / "r.pt")["rng"]
    expect = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]
    assert set(get_rng_state()) >= {"torch", "numpy", "python"}


def test_bad_checkpoints_give_clear_errors(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    trunc = tmp_path / "trunc.pt"
    blob = trained.best_checkpoint.read_bytes()
    trunc.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt.*truncated or corrupt"):
        load_checkpoint(trunc)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(trunc)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an slsdk checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with open(tmp_path / "pickled.pt", "wb") as f:
        torch.save({"format": "slsdk-checkpoint", "obj": pickle.PickleError("x")}, f)
    with pytest.raises(CheckpointError, match="pickles pickle.PickleError: it holds code.*nothing was unpickled"):
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="is a teacher checkpoint, expected a student"):
        load_checkpoint(trained.best_checkpoint, kind="student")


def test_vocab_mismatch_errors(trained, data, tmp_path):
    from slsdk.data import Sample
    from slsdk.data.vocab import VocabularyError

    dev = _samples(data, "dev")
    alien = [Sample("x1", ["NOT_A_GLOSS", *dev[0].glosses], dev[0].video, split="dev")]
    with pytest.raises(CheckpointError, match=r"vocabulary mismatch.*NOT_A_GLOSS"):
        evaluate(trained.best_checkpoint, alien, split="dev")
    # a checkpoint whose class count disagrees with its vocabulary
    ck = load_checkpoint(trained.best_checkpoint)
    ck["vocab"] = ck["vocab"][:-1]
    bad = tmp_path / "badvocab.pt"
    save_checkpoint(bad, kind="teacher", config=ck["config"], vocab=ck["vocab"], model=ck["model"])
    with pytest.raises(CheckpointError, match=r"classes but the checkpoint vocabulary has"):
        load_model(bad)
    # resuming on data with another vocabulary
    train_s = _samples(data, "train")
    renamed = [Sample(s.id, [g + "X" for g in s.glosses], s.video, split="train") for s in train_s]
    out = tmp_path / "resume_vocab"
    out.mkdir()
    (out / "last.pt").write_bytes(trained.last_checkpoint.read_bytes())
    with pytest.raises(VocabularyError, match="does not match the vocabulary of resume checkpoint"):
        train({"train": renamed}, out, teacher_config(**TINY_TEACHER), _tcfg(), resume=True, progress=False)


# ------------------------------------------------------------------------------------------------ evaluation
def test_evaluate_scores_and_writes_ctm_stm(trained, data, tmp_path):
    from slsdk.eval import read_ctm, read_stm, wer

    res = evaluate(trained.best_checkpoint, data, split="test_si", out_dir=tmp_path / "ev")
    samples = _samples(data, "test_si")
    assert set(res.hyps) == set(res.refs) == {s.id for s in samples}
    direct = wer([res.refs[s.id] for s in samples], [res.hyps[s.id] for s in samples])
    assert res.wer == pytest.approx(100 * direct.wer)
    assert (res.sub, res.dels, res.ins, res.n_ref) == (direct.sub, direct.del_, direct.ins, direct.n_ref)
    assert read_stm(res.files["stm"]) == res.refs
    ctm = read_ctm(res.files["ctm"])
    assert {k: [w.gloss for w in v] for k, v in ctm.items()} == {k: v for k, v in res.hyps.items() if v}
    beam = evaluate(trained.best_checkpoint, data, split="test_si", decoder="beam", beam=4)
    assert beam.decoder == "beam 4" and set(beam.hyps) == set(res.hyps)
    with pytest.raises(ValueError, match="decoder"):
        evaluate(trained.best_checkpoint, data, split="dev", decoder="viterbi")


# ------------------------------------------------------------------------------------------------ distillation
def test_aligned_kl():
    from slsdk.train.distill import aligned_kl

    torch.manual_seed(0)
    teacher = torch.randn(5, 2, 6)
    student = torch.cat([torch.randn(3, 2, 6), teacher, torch.randn(2, 2, 6)])   # shifted by the offset 3
    s_len, t_len = torch.tensor([10, 8]), torch.tensor([5, 4])
    assert float(aligned_kl(student, teacher, s_len, t_len, 3, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(aligned_kl(student, teacher, s_len, t_len, 2, 2.0)) > 0.01
    # steps past a sample's valid length do not count
    student2 = student.clone()
    student2[3 + 4:, 1] = torch.randn(student2.shape[0] - 7, 6) * 5
    assert float(aligned_kl(student2, teacher, s_len, t_len, 3, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_distill_trains_a_student_and_reports(trained, data, tmp_path):
    from slsdk.models.student import StreamingStudent

    cfg = DistillConfig(epochs=1, batch_size=2, seed=0, device="cpu", feature_weight=0.5, student=TINY_STUDENT,
                        report_splits=("dev", "test_us"))
    res = distill(trained.best_checkpoint, data, tmp_path / "stu", cfg, progress=False)
    ck = load_checkpoint(res.best_checkpoint, kind="student")
    assert ck["aux"] is not None and "weight" in ck["aux"]                      # the feature projection
    assert ck["extra"]["teacher_checkpoint"].endswith("best.pt")
    assert ck["train_config"]["temperature"] == cfg.temperature
    assert {"loss/ctc", "loss/kl", "loss/feature"} <= set(res.history[0])
    student, vocab, kind = load_model(res.best_checkpoint)
    assert kind == "student" and isinstance(student, StreamingStudent)
    assert vocab.glosses == load_checkpoint(trained.best_checkpoint)["vocab"]
    rep = res.report
    assert set(rep["wer"]["student"]) == set(rep["wer"]["teacher"]) == {"dev", "test_us"}
    assert 0 < rep["gmacs_per_frame"]["student"] < rep["gmacs_per_frame"]["teacher"]
    assert json.loads((tmp_path / "stu" / "report.json").read_text())["wer"] == rep["wer"]
    assert "student" in res.summary() and "GMACs/frame" in res.summary()


def test_distill_rejects_data_outside_the_teacher_vocabulary(trained, data, tmp_path):
    from slsdk.data import Sample

    s = _samples(data, "train")[0]
    with pytest.raises(CheckpointError, match="vocabulary mismatch"):
        distill(trained.best_checkpoint, {"train": [Sample("z", ["ZZZ"], s.video)]}, tmp_path / "x",
                DistillConfig(epochs=1, device="cpu", student=TINY_STUDENT), progress=False)
    with pytest.raises(CheckpointError, match="expected a teacher"):
        bad = tmp_path / "s.pt"
        save_checkpoint(bad, **_tiny_payload())
        distill(bad, data, tmp_path / "y", DistillConfig(epochs=1, device="cpu"), progress=False)


def test_package_exports_functions_not_modules():
    import slsdk.train as t

    assert callable(t.distill) and callable(t.evaluate) and callable(t.train)
    assert os.path.basename(t.__file__) == "__init__.py"


def test_the_reference_data_path_trains_through_the_real_trainer(data, tmp_path):
    """AdaptSign's augmentation draws, collate padding and reduction settings, wired from TrainConfig (as the
    adaptsign-phoenix2014 recipe sets them): one epoch trains, its loss is finite, and the settings are stored."""
    cfg = _tcfg(data_style="reference", padding="reference", length_policy="pad", kd_reduction="reference",
                encoder_masks_padding=False)
    res = train(data, tmp_path / "ref", teacher_config(**TINY_TEACHER), cfg, progress=False)
    assert np.isfinite(res.history[-1]["train_loss"])
    stored = torch.load(res.last_checkpoint, map_location="cpu", weights_only=True)["train_config"]
    assert (stored["data_style"], stored["padding"], stored["kd_reduction"]) == ("reference", "reference", "reference")
    with pytest.raises(ConfigError, match="padding must be one of"):
        TrainConfig(padding="edges")


def test_weight_average_is_what_is_evaluated_kept_and_resumed(data, tmp_path):
    """ema_decay: the checkpoints hold the moving average (the model's own trained tensors beside it), the
    frozen tower is not copied into it, and a run killed after its first epoch resumes to the same weights,
    average and history as an uninterrupted one."""
    from slsdk.train.ema import WeightAverage

    cfg = _tcfg(ema_decay=0.9)
    full = train(data, tmp_path / "full", teacher_config(**TINY_TEACHER), cfg, progress=False)
    ck = load_checkpoint(full.last_checkpoint)
    raw = ck["ema"]["raw"]
    assert ck["ema"]["updates"] == ck["step"] and raw
    assert not [k for k in raw if k.startswith("frame_encoder.backbone.transformer")], "frozen weights averaged"
    moved = [k for k in raw if not torch.equal(raw[k], ck["model"][k])]
    assert moved, "the stored weights are the model's own, not the average"

    def kill(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt("simulated kill")

    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(data, out, teacher_config(**TINY_TEACHER), cfg, progress=False, on_epoch_end=kill)
    res = train(data, out, teacher_config(**TINY_TEACHER), cfg, resume=True, progress=False)
    resumed = load_checkpoint(res.last_checkpoint)
    assert _state_equal(ck["model"], resumed["model"]) == []
    assert _state_equal(raw, resumed["ema"]["raw"]) == []
    assert _strip_times(res.history) == _strip_times(full.history)
    with pytest.raises(ValueError):
        WeightAverage(torch.nn.Linear(2, 2), 1.0)
    with pytest.raises(ConfigError):
        _tcfg(ema_decay=1.5)
