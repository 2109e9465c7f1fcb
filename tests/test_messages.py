"""Messages in the CLI's words: a refusal names the flag that lifts it (``--overwrite``, ``--calib``,
``--frames``), never the Python keyword (``overwrite=True``, ``calib=``, ``frames_range=(T, T)``).

Each refusal is met as a user meets it: the real `slsdk` command in a fresh folder, relative paths, tiny models
(an imported small AdaptSign teacher, the tests' tiny student) and the ``--quick`` data set.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaptsign_checkpoints import RefShape, gloss_names, write_checkpoint, write_gloss_dict
from cli_errors import one_line_error

PYTHON_KEYWORD = re.compile(r"\b[a-z_]+=")   # overwrite=True, calib=, frames_range=(T, T)


def slsdk(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`slsdk ARGS` typed in the folder ``cwd``."""
    exe = shutil.which("slsdk")
    argv = [exe] if exe else [sys.executable, "-m", "slsdk.cli"]
    return subprocess.run([*argv, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def refusal(r: subprocess.CompletedProcess, flag: str, *needles: str) -> str:
    """``r`` failed with one ``error:`` line naming ``flag`` (and ``needles``) and no Python keyword."""
    line = one_line_error(r, flag, *needles)
    assert not PYTHON_KEYWORD.search(line), line
    return line


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory) -> Path:
    """A user's folder: a small published AdaptSign checkpoint and its gloss dict, imported with
    `slsdk import adaptsign` into the default runs/adaptsign/teacher.pt."""
    folder = tmp_path_factory.mktemp("teacher")
    write_checkpoint(folder / "adaptsign.pt", RefShape())
    write_gloss_dict(folder / "gloss_dict.npy", gloss_names(RefShape().num_classes - 1))
    r = slsdk(folder, "import", "adaptsign", "adaptsign.pt", "--gloss-dict", "gloss_dict.npy")
    assert r.returncode == 0, r.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory) -> Path:
    """A user's folder holding `slsdk data synth mydata --quick`."""
    folder = tmp_path_factory.mktemp("data")
    r = slsdk(folder, "data", "synth", "mydata", "--quick")
    assert r.returncode == 0, r.stderr[-3000:]
    return folder


def test_a_second_import_names_overwrite(teacher_folder):
    r = slsdk(teacher_folder, "import", "adaptsign", "adaptsign.pt", "--gloss-dict", "gloss_dict.npy")
    refusal(r, "pass --overwrite", "runs/adaptsign/teacher.pt: already exists")


def test_executorch_teacher_over_a_frame_range_names_frames(teacher_folder):
    r = slsdk(teacher_folder, "convert", "runs/adaptsign/teacher.pt", "-t", "executorch")
    refusal(r, "pass --frames T:T", "one fixed frame count", "16:1024")


def test_int8_without_calibration_data_names_calib(teacher_folder):
    r = slsdk(teacher_folder, "convert", "runs/adaptsign/teacher.pt", "-t", "onnx", "--precision", "int8")
    refusal(r, "pass --calib", "needs calibration data")


def test_bundle_and_its_zip_in_the_way_name_overwrite(tmp_path, tiny_student):
    from slsdk.train.checkpoint import save_checkpoint

    model = tiny_student(3)
    save_checkpoint(tmp_path / "student.pt", kind="student", config=model.config.to_dict(),
                    vocab=["<blank>", "A", "B"], model=model.state_dict())
    convert = ("convert", "student.pt", "-t", "onnx", "-o", "b", "--zip")
    r = slsdk(tmp_path, *convert)
    assert r.returncode == 0, r.stderr[-3000:]
    refusal(slsdk(tmp_path, *convert), "pass --overwrite", "b: already holds an slsdk bundle")
    shutil.rmtree(tmp_path / "b")   # the zip alone is in the way now (met after the conversion's work)
    refusal(slsdk(tmp_path, *convert), "pass --overwrite", "b.zip: already holds a zipped slsdk bundle")


def test_data_synth_over_other_settings_names_overwrite(quick_data):
    r = slsdk(quick_data, "data", "synth", "mydata")
    refusal(r, "pass --overwrite", "mydata: holds a synthetic data set made with other settings")


def test_pretrain_overwrite_replaces_the_weights_and_their_json(quick_data):
    """What the refusal advises works: a second run with overwrite replaces the tower and the ``.json`` beside it
    (two processes, as two `slsdk pretrain` runs; the Python API with a tiny tower and pool, as `slsdk pretrain`
    renders 160 sentences)."""
    run = ("from slsdk.models.clip import CLIPVisionConfig\n"
           "from slsdk.train.pretrain import PretrainConfig, pretrain_backbone\n"
           "import sys\n"
           "tiny = CLIPVisionConfig(image_size=48, patch_size=8, width=32, layers=1, heads=2, output_dim=16)\n"
           "cfg = PretrainConfig(steps=int(sys.argv[1]), batch_frames=4, pool_videos=2, heldout_videos=1)\n"
           "pretrain_backbone('mydata', 'tower.safetensors', cfg, vision_config=tiny, progress=False,\n"
           "                  overwrite=sys.argv[1] == '2')\n")
    for steps in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", run, steps], cwd=quick_data, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((quick_data / "tower.safetensors.json").read_text())["config"]["steps"] == 2
