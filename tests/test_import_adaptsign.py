"""`slsdk import adaptsign`: published AdaptSign checkpoints (hulianyuyy/AdaptSign) as slsdk teachers.

The checkpoints are random-weight files written by tests/adaptsign_checkpoints.py in the reference's exact
container / key / shape layout; `reference_forward` there is an independent functional implementation of the
reference forward pass (joint-softmax prefix attention, explicit neighbour shifts) to compare against.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptsign_checkpoints import (VIT_B16, RefShape, gloss_names, normalised_video, plain_clip_state_dict,
                                   reference_forward, reference_state_dict, resnet_cslr_state_dict,
                                   write_checkpoint, write_gloss_dict)
from slsdk.errors import SlsdkError
from slsdk.models import import_adaptsign
from slsdk.cli_import import save_imported
from slsdk.models.adaptsign_import import AdaptSignImportError, read_gloss_dict

TOL = 1e-4            # the bound; measured <= 2e-6 against the reference code itself
SMALL = RefShape()    # width 64, 2 layers, 32 px, hidden 64, 7 classes
WIDE = RefShape(width=128, layers=3, patch=8, image_size=32, embed_dim=48, hidden=96, num_classes=11)


def _files(tmp_path, shape=SMALL, seed=0, **kw):
    ck = write_checkpoint(tmp_path / "ck.pt", shape, seed=seed, **kw)
    gd = write_gloss_dict(tmp_path / "gloss_dict.npy", gloss_names(shape.num_classes - 1))
    return ck, gd


def _max_diff(model, sd, shape, b=2, t=19, seed=1):
    x = normalised_video(b, t, shape.image_size, seed=seed)
    ref = reference_forward(sd, x, shape)
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out["feat_lengths"].cpu(), ref["feat_len"])
    return {k: float((out[k] - ref[k]).abs().max()) for k in ("sequence_logits", "conv_logits")}


# ------------------------------------------------------------------------------------------ equality
@pytest.mark.parametrize("shape,prefix", [(SMALL, False), (WIDE, True), (RefShape(weight_norm=False), True)])
def test_logits_equal_reference(tmp_path, shape, prefix):
    ck, gd = _files(tmp_path, shape, seed=3, module_prefix=prefix)
    model, vocab = import_adaptsign(ck, gd)
    diffs = _max_diff(model, reference_state_dict(shape, seed=3), shape)
    assert max(diffs.values()) <= TOL, diffs
    assert len(vocab) == shape.num_classes and vocab.glosses[0] == "<blank>"


def test_everything_reference_specific_is_carried(tmp_path):
    ck, gd = _files(tmp_path, WIDE, seed=4)
    model, _ = import_adaptsign(ck, gd)
    sd = reference_state_dict(WIDE, seed=4)
    cfg, fe = model.config, model.frame_encoder
    v = cfg.vision_config()
    assert (v.width, v.layers, v.patch_size, v.image_size, v.heads, v.output_dim) == (128, 3, 8, 32, 2, 48)
    assert (cfg.hidden, cfg.num_classes, cfg.weight_norm, cfg.conv_type) == (96, 11, True, "K5-P2-K5-P2")
    assert cfg.mean == cfg.std == (0.5, 0.5, 0.5)                       # x / 127.5 - 1
    assert fe.cfg.prefix_tokens == 8 and fe.cfg.adapter_ratio == 0.25 and fe.s_adapters[0].c_in.out_features == 32
    assert torch.equal(fe.prefix_gate, torch.ones(3, 2))                # full-strength prefix K/V
    assert torch.equal(fe.mix, sd["conv2d.visual.ada_weight"])
    assert torch.equal(fe.cross_frame_gate, sd["conv2d.visual.transformer.temporal_ada_weight"])
    assert torch.equal(fe.ln_post_query.weight, sd["conv2d.visual.ln_post_cls.weight"])
    bn = model.sequence.temporal_conv[5]
    assert torch.equal(bn.running_var, sd["conv1d.temporal_conv.5.running_var"])
    assert torch.equal(model.sequence.classifier.weight, sd["classifier.weight"])
    # the gate matters: at 0 (our own init) the output moves away from the reference
    with torch.no_grad():
        fe.prefix_gate.zero_()
    assert max(_max_diff(model, sd, WIDE).values()) > 10 * TOL


def test_saved_teacher_loads_and_matches(tmp_path):
    from slsdk.train.checkpoint import load_checkpoint, load_model

    ck, gd = _files(tmp_path, SMALL, seed=5, module_prefix=True)
    model, vocab = import_adaptsign(ck, gd)
    out = save_imported(model, vocab, tmp_path / "teacher.pt")
    loaded, vocab2, kind = load_model(out)
    assert kind == "teacher" and vocab2.glosses == vocab.glosses
    assert max(_max_diff(loaded, reference_state_dict(SMALL, seed=5), SMALL).values()) <= TOL
    extra = load_checkpoint(out)["extra"]["imported_from"]
    assert extra["format"] == "adaptsign" and extra["data_parallel"] is True and extra["epoch"] == 39


def test_gloss_dict_order_and_numpy2_pickles(tmp_path):
    path = write_gloss_dict(tmp_path / "g.npy", ["B", "A", "C"], ids=[2, 3, 1], numpy1=False)
    assert read_gloss_dict(path) == ["<blank>", "C", "B", "A"]
    pickle_path = tmp_path / "g.pkl"
    pickle_path.write_bytes(pickle.dumps({"X": [1, 4], "Y": (2, 1)}))
    assert read_gloss_dict(pickle_path) == ["<blank>", "X", "Y"]
    gap = write_gloss_dict(tmp_path / "gap.npy", ["A", "B"], ids=[1, 3])
    with pytest.raises(AdaptSignImportError, match=r"gap.npy: gloss ids must be 1..2 .*\[2, 3\]"):
        read_gloss_dict(gap)


# ------------------------------------------------------------------------------------------ safety
class _WritesFile:
    """A pickle payload: unpickling it runs exec(), which writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_malicious_gloss_dict_does_not_run(tmp_path):
    ck, _ = _files(tmp_path)
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil_gloss_dict.npy"
    np.save(evil, {"REGEN": [1, 3], "SONNE": [2, _WritesFile(marker)]}, allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(AdaptSignImportError, match=r"evil_gloss_dict.npy: refused .*builtins.exec.*nothing was "
                                                   "executed") as e:
        import_adaptsign(ck, evil)
    assert isinstance(e.value, SlsdkError) and isinstance(e.value, ValueError)
    assert not marker.exists()
    np.load(evil, allow_pickle=True)       # the payload is live: an ordinary np.load runs it
    assert marker.read_text() == "pwned"


def test_malicious_checkpoint_does_not_run(tmp_path):
    _, gd = _files(tmp_path)
    marker = tmp_path / "pwned.txt"
    sd = reference_state_dict(SMALL)
    evil = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "model_state_dict": sd, "rng_state": {"numpy": _WritesFile(marker)}}, evil)
    with pytest.raises(AdaptSignImportError, match=r"evil.pt: refused: the checkpoint pickles builtins.exec"):
        import_adaptsign(evil, gd)
    assert not marker.exists()
    torch.load(evil, weights_only=False)   # the payload is live
    assert marker.exists()


# ------------------------------------------------------------------------------------------ refusals
def test_refuses_other_checkpoints(tmp_path):
    _, gd = _files(tmp_path)
    cases = {"vac.pt": (resnet_cslr_state_dict(), "VAC / ResNet CSLR checkpoint"),
             "corrnet.pt": (resnet_cslr_state_dict(corrnet=True), "CorrNet checkpoint"),
             "clip.pt": (plain_clip_state_dict(), "plain CLIP model")}
    for name, (sd, what) in cases.items():
        torch.save({"epoch": 0, "model_state_dict": sd}, tmp_path / name)
        with pytest.raises(AdaptSignImportError, match=rf"{name}: not an AdaptSign checkpoint: it looks like .*{what}"):
            import_adaptsign(tmp_path / name, gd)
    bare = {k: v for k, v in reference_state_dict(SMALL).items() if "Adapter" not in k and "aggblocks" not in k}
    torch.save({"model_state_dict": bare}, tmp_path / "vit.pt")
    with pytest.raises(AdaptSignImportError, match="without AdaptSign's modules"):
        import_adaptsign(tmp_path / "vit.pt", gd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit is deprecated; CLIP .pt files are TorchScript
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "jit.pt")
    with pytest.raises(AdaptSignImportError, match="jit.pt: a TorchScript archive"):
        import_adaptsign(tmp_path / "jit.pt", gd)
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "ck.pt").read_bytes()[:5000])
    with pytest.raises(AdaptSignImportError, match="trunc.pt: cannot be read"):
        import_adaptsign(tmp_path / "trunc.pt", gd)
    with pytest.raises(AdaptSignImportError, match="missing.pt: checkpoint not found"):
        import_adaptsign(tmp_path / "missing.pt", gd)


def test_refuses_wrong_gloss_dict_size_and_conv_type(tmp_path):
    ck, _ = _files(tmp_path)
    small = write_gloss_dict(tmp_path / "five.npy", gloss_names(4))
    with pytest.raises(AdaptSignImportError, match=r"five.npy: .*4 glosses \+ blank = 5 classes, but the classifier "
                                                   r"of .*ck.pt has 7"):
        import_adaptsign(ck, small)
    with pytest.raises(AdaptSignImportError, match=r"do not fit conv_type K5-K5"):
        import_adaptsign(ck, tmp_path / "gloss_dict.npy", conv_type="K5-K5")
    (tmp_path / "notes.npy").write_text("hello")
    with pytest.raises(AdaptSignImportError, match="notes.npy: neither a .npy file nor a pickle"):
        import_adaptsign(ck, tmp_path / "notes.npy")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(AdaptSignImportError, match="arr.npy: a .npy array of dtype float64"):
        import_adaptsign(ck, tmp_path / "arr.npy")


# ------------------------------------------------------------------------------------------ CLI round trip
def write_phoenix_fixture(root: Path, glosses: list[str], size=(40, 32), frames: int = 20,
                          per_split: int = 2) -> Path:
    """A tiny RWTH-PHOENIX-Weather 2014 layout (annotations/manual/*.corpus.csv + PNG frame folders)."""
    from slsdk.data import write_frames

    base = root / "phoenix-2014-multisigner"
    rng = np.random.default_rng(0)
    for split in ("train", "dev", "test"):
        rows = ["id|folder|signer|annotation"]
        for i in range(per_split):
            vid = f"01April_2010_Thursday_{split}_default-{i}"
            words = [glosses[(i + j) % len(glosses)] for j in range(2)]
            rows.append(f"{vid}|{vid}/1/*.png|Signer0{i + 1}|{' '.join(words)}")
            clip = rng.integers(0, 256, (frames, size[0], size[1], 3), dtype=np.uint8)
            write_frames(base / "features" / "fullFrame-210x260px" / split / vid / "1", clip)
        ann = base / "annotations" / "manual" / f"{split}.corpus.csv"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text("\n".join(rows) + "\n")
    return root


def _slsdk(*args, timeout=900):
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return r


def _round_trip(tmp_path, monkeypatch, shape, targets):
    """import -> eval (PHOENIX layout, beam 10) -> convert; relative paths, default output folders.

    ``targets``: [(target, "MIN:MAX" frames)]. Returns (teacher path, {target: manifest fidelity}).
    """
    monkeypatch.chdir(tmp_path)
    vit_b = shape is VIT_B16
    limit = 3600 if vit_b else 900     # ViT-B/16 to ExecuTorch: 13 min wall on 2 busy CPU cores
    write_checkpoint(Path("adaptsign_phoenix.pt"), shape, seed=7, module_prefix=True, full_optimizer=not vit_b)
    write_gloss_dict(Path("gloss_dict.npy"), gloss_names(shape.num_classes - 1))
    write_phoenix_fixture(Path("phoenix2014-release"), gloss_names(min(shape.num_classes - 1, 6)),
                          size=(260, 210) if vit_b else (40, 32), per_split=1 if vit_b else 2)
    r = _slsdk("import", "adaptsign", "adaptsign_phoenix.pt", "--gloss-dict", "gloss_dict.npy")
    assert r.returncode == 0, r.stderr
    teacher = Path("runs/adaptsign/teacher.pt")
    assert teacher.is_file() and "imported AdaptSign" in r.stdout
    r = _slsdk("import", "adaptsign", "adaptsign_phoenix.pt", "--gloss-dict", "gloss_dict.npy")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = _slsdk("eval", "model", teacher, "phoenix2014-release", "--layout", "phoenix2014", "--split", "dev",
               "--decoder", "beam", "--beam", "10", timeout=limit)
    assert r.returncode == 0, r.stderr
    assert "dev: WER" in r.stdout
    fidelity = {}
    for target, frames in targets:
        before = set(Path("bundles").rglob("manifest.json")) if Path("bundles").exists() else set()
        r = _slsdk("convert", teacher, "-t", target, "--frames", frames, timeout=limit)
        assert r.returncode == 0, r.stderr
        (manifest,) = set(Path("bundles").rglob("manifest.json")) - before
        m = json.loads(manifest.read_text())
        assert m["input"]["mean"] == [0.5, 0.5, 0.5] and m["input"]["std"] == [0.5, 0.5, 0.5]
        assert m["input"]["height"] == shape.image_size and m["fidelity"]["status"] == "run"
        assert m["fidelity"]["max_abs_err"] <= TOL, m["fidelity"]
        fidelity[target] = m["fidelity"]
    return teacher, fidelity


def test_cli_import_eval_convert_distill(tmp_path, monkeypatch):
    teacher, _ = _round_trip(tmp_path, monkeypatch, SMALL, [("onnx", "16:64")])
    r = _slsdk("distill", "phoenix2014-release", "--layout", "phoenix2014", "--teacher", teacher, "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert Path("runs/student/best.pt").is_file() or Path("runs/student/last.pt").is_file()


@pytest.mark.slow
def test_cli_executorch_fixed_frames(tmp_path, monkeypatch):
    """ExecuTorch takes one fixed frame count (~2 min to lower on 2 CPU cores even at this size)."""
    _round_trip(tmp_path, monkeypatch, SMALL, [("executorch", "20:20")])


def test_cli_refusal_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model_state_dict": resnet_cslr_state_dict()}, "vac.pt")
    write_gloss_dict(Path("gloss_dict.npy"), gloss_names(6))
    r = _slsdk("import", "adaptsign", "vac.pt", "--gloss-dict", "gloss_dict.npy")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "vac.pt: not an AdaptSign checkpoint: it looks like a VAC / ResNet" in " ".join(r.stderr.split())
    assert not Path("runs").exists()


@pytest.mark.slow
def test_vit_b16_checkpoint_round_trip(tmp_path, monkeypatch):
    """Acceptance: a ViT-B/16-shaped reference checkpoint imports, equals the reference forward, evaluates,
    and converts to onnx (dynamic frames) and executorch (16 frames) with fp32 parity <= 1e-4."""
    teacher, fidelity = _round_trip(tmp_path, monkeypatch, VIT_B16, [("onnx", "16:64"), ("executorch", "16:16")])
    from slsdk.train.checkpoint import load_model

    model, vocab, _ = load_model(teacher)
    assert len(vocab) == 1296 and model.config.backbone == "ViT-B/16" and model.config.hidden == 1024
    diffs = _max_diff(model, reference_state_dict(VIT_B16, seed=7), VIT_B16, b=1, t=16)
    assert max(diffs.values()) <= TOL, diffs
    print("ViT-B/16 logits vs reference forward", diffs, "parity", {k: v["max_abs_err"] for k, v in fidelity.items()})
