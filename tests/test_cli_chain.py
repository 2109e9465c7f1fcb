"""Every `slsdk` command, run the way a user types it: in their own folder, relative paths, default outputs.

One chain, in the order of a user's first hour: data synth -> data show -> pretrain -> train -> distill ->
quantize -> convert (every target) -> bundle inspect -> run -> eval model -> eval wer -> bench -> info ->
targets. The chain is data (``CHAIN``); ``test_every_command_is_in_the_chain`` fails when a registered
command (or sub-command) has no step, so a new command cannot ship without being run once here.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]

# the tiny student of the `tiny_student` fixture, as a user would write it in a recipe file
TINY_STUDENT_RECIPE = """\
# a tiny student for tests (same shape as tests/conftest.py's tiny_student)
kind: student
student:
  image_size: 32
  patch_size: 16
  width: 64
  layers: 1
  heads: 2
  feature_dim: 64
  hidden: 64
  chunk_frames: 8
distill:
  report: false
"""

# (command path, argv after `slsdk`); "{onnx}" etc. are filled in from earlier steps' output
CHAIN: list[tuple[str, list[str]]] = [
    ("data synth", ["data", "synth", "mydata", "--quick"]),
    ("data show", ["data", "show", "mydata"]),
    ("data prepare", ["data", "prepare", "mydata", "--crop", "full", "--size", "32"]),
    ("pretrain", ["pretrain", "mydata", "-o", "runs/clip.safetensors", "--backbone", "ViT-T/16-test",
                  "--steps", "3"]),
    ("train", ["train", "mydata", "--backbone", "ViT-T/16-test", "--weights", "runs/clip.safetensors",
               "--epochs", "1", "--hidden", "32", "--batch-size", "4"]),
    ("distill", ["distill", "mydata", "--teacher", "runs/teacher/best.pt", "--config", "student.yaml",
                 "--epochs", "1"]),
    ("import adaptsign", ["import", "adaptsign", "downloads/adaptsign.pt", "--gloss-dict",
                          "downloads/gloss_dict.npy", "-o", "runs/adaptsign.pt"]),
    ("quantize", ["quantize", "runs/student/best.pt", "-t", "onnx", "--calib", "mydata", "--heldout", "mydata"]),
    *[("convert", ["convert", "runs/student/best.pt", "-t", t, "-o", f"exported/{t}"])
      for t in ("onnx", "ort", "executorch", "executorch-coreml", "coreml")],
    ("bundle inspect", ["bundle", "inspect", "exported/onnx"]),
    ("bundle schema", ["bundle", "schema", "exported/onnx"]),
    ("run", ["run", "exported/onnx", "{test_video}", "--json"]),
    ("eval model", ["eval", "model", "runs/student/best.pt", "mydata", "--split", "test_si", "-o", "scores"]),
    ("eval wer", ["eval", "wer", "--ref", "scores/test_si.stm", "--hyp", "scores/test_si.ctm"]),
    ("bench", ["bench", "--bundles", "exported", "--data", "mydata"]),
    ("info", ["info", "ViT-T/16-test"]),
    ("targets", ["targets"]),
]


def _slsdk() -> list[str]:
    exe = shutil.which("slsdk")
    return [exe] if exe else [sys.executable, "-m", "slsdk.cli"]


def registered_commands() -> set[str]:
    """Every leaf command path of the `slsdk` CLI ("data synth", "train", ...)."""
    import typer

    from slsdk.cli import app

    out: set[str] = set()

    def walk(cmd, prefix):
        if hasattr(cmd, "commands"):   # a group (typer vendors its own click: no isinstance)
            for name, sub in cmd.commands.items():
                walk(sub, prefix + [name])
        else:
            out.add(" ".join(prefix))

    walk(typer.main.get_command(app), [])
    return out


def test_every_command_is_in_the_chain():
    # demo: tests/test_demo.py runs the README's command; import hand-lite (needs the 36 MB mediapipe wheel):
    # tests/test_hand_models_lite.py runs it in a fresh folder with relative paths; import pose (the same wheel):
    # tests/test_pose86_landmarks.py
    ran = {name for name, _ in CHAIN} | {"demo", "import hand-lite", "import pose"}
    missing = registered_commands() - ran
    assert not missing, f"commands no test runs as a user would: {sorted(missing)} (add a step to CHAIN)"


@pytest.mark.slow
def test_user_chain_in_a_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "student.yaml").write_text(TINY_STUDENT_RECIPE)
    sys.path.insert(0, str(ROOT / "tests"))
    from adaptsign_checkpoints import RefShape, gloss_names, write_checkpoint, write_gloss_dict

    # a published AdaptSign checkpoint as the user downloaded it (random weights in the reference layout)
    write_checkpoint("downloads/adaptsign.pt", RefShape())
    write_gloss_dict("downloads/gloss_dict.npy", gloss_names(RefShape().num_classes - 1))
    subs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for name, argv in CHAIN:
        if "{test_video}" in argv:
            subs["test_video"] = next(Path("mydata/videos/test_si").glob("*.mp4")).as_posix()
        argv = [a.format(**subs) for a in argv]
        res = subprocess.run(_slsdk() + argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, f"slsdk {' '.join(argv)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        outputs[" ".join(argv)] = res.stdout
        if name == "quantize":   # the default output folder: wherever it went, it says so
            m = re.search(r"wrote (\S+)", res.stdout)
            assert m, res.stdout
            assert Path(m.group(1)).is_relative_to("bundles") and (Path(m.group(1)) / "manifest.json").is_file()
    # the dataset is readable from where it was written (relative paths in annotations.csv)
    assert "videos/train/" in Path("mydata/annotations.csv").read_text()
    for t in ("onnx", "ort", "executorch", "executorch-coreml", "coreml"):
        man = json.loads(Path(f"exported/{t}/manifest.json").read_text())
        assert man["target"] == t
    assert outputs["bundle schema exported/onnx"].strip() == "exported/onnx: valid"
    # the effective recipe is stored in the checkpoint
    from slsdk.train.checkpoint import load_checkpoint

    ck = load_checkpoint(Path("runs/student/best.pt"), kind="student")
    assert ck["extra"]["recipe"]["student"]["width"] == 64
    # run --json: one JSON object per line, the last a summary
    run_out = next(v for k, v in outputs.items() if k.startswith("run "))
    lines = [json.loads(x) for x in run_out.splitlines() if x.startswith("{")]
    assert lines, run_out
    wer_out = next(v for k, v in outputs.items() if k.startswith("eval wer"))
    model_out = next(v for k, v in outputs.items() if k.startswith("eval model"))
    wer_a = re.search(r"WER ([\d.]+)%", wer_out).group(1)
    wer_b = re.search(r"WER ([\d.]+)%", model_out).group(1)
    assert wer_a == wer_b, (wer_out, model_out)


def test_choice_options_are_refused_by_the_parser(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from typer.testing import CliRunner

    from slsdk.cli import app

    r = CliRunner().invoke(app, ["data", "show", "x", "--layout", "phoenix"])
    assert r.exit_code == 2 and "phoenix2014" in r.output   # the parser lists the valid values
    r = CliRunner().invoke(app, ["convert", "x.pt", "-t", "onnx", "--precision", "int4"])
    assert r.exit_code == 2 and "fp32" in r.output
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert "adaptsign" in r.output and "sla-lora" in r.output


def test_cli_choices_match_their_tables():
    from slsdk import cli_choices
    from slsdk.models.adapters import VARIANTS

    assert {v.value for v in cli_choices.Variant} == set(VARIANTS)
    from slsdk.models.student import list_students

    assert {v.value for v in cli_choices.Student} == set(list_students())
    from slsdk.runtime import backends

    assert set(cli_choices.BACKENDS) >= {"onnxruntime", "executorch", "torch"}
    assert list(cli_choices.BACKENDS) == backends.backend_names()   # read off the registry, not copied


def test_install_hint_keeps_the_extra(monkeypatch, capsys):
    """rich markup must not eat `[all]` in the install hint."""
    from slsdk import cli

    def boom():
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit):
        cli.main()
    assert "pip install 'slsdk[all]'" in capsys.readouterr().err.replace("\n", "")


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    """Only SlsdkError and OSError are the user's (one line); any other exception is a bug: traceback + report line."""
    from slsdk import cli
    from slsdk.cli_common import run_stage
    from slsdk.errors import ConfigError

    def boom():
        raise ValueError("an internal invariant broke")

    with pytest.raises(ValueError):          # not swallowed into a one-line "user error"
        run_stage(boom)
    with pytest.raises(typer.Exit):           # the user's error: one line
        run_stage(lambda: (_ for _ in ()).throw(ConfigError("--steps must be >= 1, got 0")))
    assert capsys.readouterr().err.startswith("error: --steps must be >= 1")
    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an internal invariant broke" in err
    assert "this is a bug in slsdk" in err and "please report it" in err


def test_expected_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        ["data", "show", "nothing-here"],
        ["eval", "wer", "--ref", "a.stm", "--hyp", "b.ctm"],
        ["bundle", "inspect", "no-bundle"],
        ["train", "nothing-here", "--config", "missing.yaml"],
    ]
    for argv in cases:
        res = subprocess.run(_slsdk() + argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0, argv
        assert "Traceback" not in res.stderr, (argv, res.stderr)
        msg = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert msg and msg[0].startswith("error:"), (argv, res.stderr)
