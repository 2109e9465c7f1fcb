"""The CLI speaks in its own words: flags (never Python keywords), Ctrl-C that says what was kept, the device named,
`--version`, `--flag/--no-flag` booleans, one `--target` rule, one default beam, one clean-up rule for WER.

Each test runs `slsdk` as a user does: a temporary working folder and relative paths.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slsdk.decode import DEFAULT_BEAM
from slsdk.eval import convention_for
from slsdk.runtime import hand_model
from slsdk.runtime.recognizer import Recognizer
from slsdk.version import __version__

SLSDK = [sys.executable, "-m", "slsdk.cli"]
TINY = ["--backbone", "ViT-T/16-test", "--hidden", "32", "--batch-size", "2", "--device", "cpu"]
PY_KEYWORD = re.compile(r"\b(resume|overwrite|unfreeze_backbone|backbone_weights|model_path|calib)=")


def slsdk(cwd: Path, *args: str, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([*SLSDK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if ok:
        assert r.returncode == 0, f"slsdk {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("words")
    slsdk(cwd, "data", "synth", "data", "--quick")
    return cwd


def test_version(tmp_path):
    r = slsdk(tmp_path, "--version")
    assert r.stdout.strip() == f"slsdk {__version__}"


def test_booleans_are_flag_pairs_without_a_metavar(tmp_path):
    out = slsdk(tmp_path, "train", "--help").stdout
    for name in ("resume", "overwrite", "unfreeze-backbone", "print-config"):
        line = next(x for x in out.splitlines() if f"--{name} " in x)
        assert f"--no-{name}" in line, line
        assert "<bool>" not in line, line


def test_one_target_rule_and_one_beam(tmp_path):
    for cmd in ("convert", "quantize"):
        r = slsdk(tmp_path, cmd, "x.pt", "--calib", "data", ok=False)
        assert r.returncode == 2 and "--target" in r.stderr, (cmd, r.stderr)
    for cmd in (["run"], ["eval", "model"]):
        assert f"[default: {DEFAULT_BEAM}]" in slsdk(tmp_path, *cmd, "--help").stdout
    from slsdk.train.config import TrainConfig
    from slsdk.train.evaluate import evaluate

    assert inspect.signature(Recognizer).parameters["beam"].default == DEFAULT_BEAM
    assert inspect.signature(evaluate).parameters["beam"].default == DEFAULT_BEAM
    assert TrainConfig().eval_beam == DEFAULT_BEAM
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"beam of {DEFAULT_BEAM} " in readme


def test_hand_model_error_names_the_flag():
    text = hand_model._HOW_TO
    assert "--hand-model PATH" in text and not PY_KEYWORD.search(text) and "hand_model=" not in text


def test_convention_rule_is_shared(tmp_path):
    assert convention_for("phoenix2014") == convention_for("phoenix2014t") == "phoenix"
    assert convention_for("folder") == convention_for("isharah") == "none"
    assert convention_for("folder", "phoenix") == "phoenix"
    # eval wer: "__LEFTHAND__" is dropped by the PHOENIX clean-up only; a folder data set keeps it (as eval model does)
    (tmp_path / "r.stm").write_text("u1 1 A 0.0 1.0 A B\n", encoding="utf-8")
    (tmp_path / "h.ctm").write_text("u1 1 0.0 0.5 A\nu1 1 0.5 0.5 B\nu1 1 0.9 0.1 __LEFTHAND__\n", encoding="utf-8")
    folder = slsdk(tmp_path, "eval", "wer", "--ref", "r.stm", "--hyp", "h.ctm").stdout
    phoenix = slsdk(tmp_path, "eval", "wer", "--ref", "r.stm", "--hyp", "h.ctm", "--layout", "phoenix2014").stdout
    assert "ins 1" in folder and "WER 50.00%" in folder, folder
    assert "ins 0" in phoenix and "WER 0.00%" in phoenix, phoenix


def test_run_folder_refusal_names_flags(work):
    out = "runs/refuse"
    slsdk(work, "train", "data", *TINY, "--epochs", "1", "-o", out)
    r = slsdk(work, "train", "data", *TINY, "--epochs", "1", "-o", out, ok=False)
    assert r.returncode == 1
    msg = r.stderr
    assert "--resume" in msg and "--overwrite" in msg, msg
    assert not PY_KEYWORD.search(msg), msg


def test_notes_name_flags(work):
    r = slsdk(work, "train", "data", *TINY, "--epochs", "1", "-o", "runs/note")
    text = " ".join((r.stdout + r.stderr).split())
    assert "--weights" in text and "--unfreeze-backbone" in text, text
    assert not PY_KEYWORD.search(text), text
    assert "device: cpu" in text
    row = json.loads((work / "runs/note/metrics.jsonl").read_text().splitlines()[0])
    assert row["device"] == "cpu"
    import torch

    ckpt = torch.load(work / "runs/note/last.pt", map_location="cpu", weights_only=False)
    assert ckpt["extra"]["device"] == "cpu"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_during_train_says_what_was_kept_and_resume_continues(work):
    out = "runs/teacher"
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}   # each epoch line as it is printed
    err_path = work / "train.stderr"
    with open(err_path, "w") as err:
        # SIGINT as the terminal sends it (default disposition, whatever the parent ignores)
        proc = subprocess.Popen([*SLSDK, "train", "data", *TINY, "--epochs", "1000", "-o", out, "--overwrite"],
                                cwd=work, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 300
        while "teacher epoch 1/1000" not in err_path.read_text():   # the training log goes to stderr
            assert proc.poll() is None, err_path.read_text()
            assert time.time() < deadline, "no epoch finished in time"
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err_path.read_text()
    assert proc.returncode == 130, (proc.returncode, stderr)
    m = re.search(r"interrupted: runs/teacher keeps the checkpoint of epoch (\d+) \(runs/teacher/last\.pt\); "
                  r"continue with `(slsdk train .*)`", stderr)
    assert m, stderr
    assert "Traceback" not in stderr
    epoch = int(m.group(1))
    again = m.group(2).split()
    assert again[-1] == "--resume" and "--overwrite" not in again, again
    # continue as told (fewer epochs so it ends): the run goes on from the kept epoch
    args = again[2:]
    args[args.index("1000")] = str(epoch + 1)
    r = slsdk(work, "train", *args)
    assert "starting a new run" not in r.stdout + r.stderr
    assert f"teacher epoch {epoch + 1}/{epoch + 1}" in r.stdout + r.stderr
    rows = (work / out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == epoch + 1
