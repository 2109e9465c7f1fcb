"""`slsdk data show`: the first command on a new dataset names what is wrong with it."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli_errors import one_line_error
from slsdk.cli import app
from slsdk.data import LAYOUTS
from slsdk.data.splits import layout_hint, looks_like, read_split
from slsdk.data.summary import summarize_dataset


def _dataset(tmp_path):
    """A synthetic set with three planted problems: an unreadable video, a dev gloss unseen in train, and a
    test_si signer that also signs in train."""
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.demos.pipeline import quick_kwargs

    root = generate_synthetic(tmp_path / "d", seed=0, **quick_kwargs())
    ann = root / "annotations.csv"
    rows = list(csv.reader(ann.open()))
    train_signer = next(r[2] for r in rows[1:] if r[3] == "train")
    for r in rows[1:]:
        if r[3] == "test_si":
            r[2] = train_signer
            break
    dev = next(r for r in rows[1:] if r[3] == "dev")
    dev[4] = dev[4] + " NEVERSEEN"
    broken = next(r for r in rows[1:] if r[3] == "test_us")
    (root / broken[1]).write_bytes(b"not a video at all")
    with ann.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return root, broken[1]


def test_summary_names_every_planted_problem(tmp_path):
    root, broken = _dataset(tmp_path)
    s = summarize_dataset(root)
    by = {x.name: x for x in s.splits}
    assert set(by) == {"train", "dev", "test_si", "test_us"}
    assert by["dev"].unseen_glosses == ["NEVERSEEN"]
    assert by["train"].frames[0] <= by["train"].frames[1] <= by["train"].frames[2]
    assert by["train"].fps == [25.0]
    assert [v for v, _ in by["test_us"].unreadable] == [str(root / broken)]
    text = " ".join(s.warnings)
    assert "NEVERSEEN" in text and "unseen signers" in text and broken.split("/")[-1] in text
    from slsdk.data import read_folder

    assert s.vocabulary == len({g for x in read_folder(root, "train") for g in x.glosses})


def test_data_show_cli_relative_path(tmp_path, monkeypatch):
    root, broken = _dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    shutil.move(str(root), "mydata")
    r = CliRunner().invoke(app, ["data", "show", "mydata", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["vocabulary"] >= 4 and any("NEVERSEEN" in w for w in d["warnings"])
    r = CliRunner().invoke(app, ["data", "show", "mydata"])
    assert r.exit_code == 0 and "unreadable" in r.output and "warning" in r.output


# -- a wrong --layout names the layout the folder looks like ------------------------------------------------
# the first annotation file each layout's reader looks for (readers.py), relative to a dataset root
LAYOUT_FILES = {
    "folder": "annotations.csv",
    "phoenix2014": "phoenix-2014-multisigner/annotations/manual/train.corpus.csv",   # the release's parent too
    "phoenix2014t": "annotations/manual/PHOENIX-2014-T.dev.corpus.csv",
    "csl-daily": "sentence_label/video_map.txt",
    "isharah": "annotations_v2/isharah2000/SI/train.csv",
    "isharah-us": "annotations/US/test.txt",
    # the challenge kit's keypoint tree: its annotation files and its keypoint pickle
    "isharah-pose": ("annotations_v2/isharah2000/SI/train.csv",
                     "data/pose_data_isharah2000_hands_lips_body_phase2_SI.pkl"),
    "isharah-pose-us": ("annotations_v2/isharah2000/US/dev.csv",
                        "data/pose_data_isharah2000_hands_lips_body_phase2_US.pkl"),
}


@pytest.mark.parametrize("layout", list(LAYOUT_FILES))
def test_looks_like_reads_where_each_reader_looks(tmp_path, layout):
    assert set(LAYOUT_FILES) == set(LAYOUTS)
    files = LAYOUT_FILES[layout]
    for name in (files,) if isinstance(files, str) else files:
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("")
    assert looks_like(tmp_path) == [layout]
    assert layout_hint(tmp_path, layout) == ""
    other = "folder" if layout != "folder" else "isharah"
    assert layout_hint(tmp_path, other) == f"; this folder looks like --layout {layout}"
    assert looks_like(tmp_path / "missing") == [] and layout_hint(tmp_path / "missing", other) == ""


def test_read_split_names_the_layout_the_folder_looks_like(tmp_path):
    root = tmp_path / "isharah"
    for protocol in ("SI", "US"):
        (root / "annotations" / protocol).mkdir(parents=True)
        (root / "annotations" / protocol / "train.txt").write_text("id|gloss\n01_0001|A\n")
    with pytest.raises(FileNotFoundError, match=r"annotations.csv; this folder looks like --layout isharah or "
                                                r"--layout isharah-us$"):
        read_split(root, "train", "folder")
    with pytest.raises(FileNotFoundError, match=r"video not found for id 01_0001 .*\)$"):   # its own layout: no hint
        read_split(root, "train", "isharah")


def _slsdk(args, cwd):
    exe = shutil.which("slsdk")
    cmd = [exe] if exe else [sys.executable, "-m", "slsdk.cli"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_wrong_layout_on_synthetic_data_names_layout_folder(tmp_path):
    """`slsdk data show DATA --layout isharah` on `slsdk data synth DATA --quick`: the error says --layout folder."""
    r = _slsdk(["data", "synth", "DATA", "--quick"], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _slsdk(["data", "show", "DATA", "--layout", "isharah"], tmp_path)
    one_line_error(r, "DATA: no split of --layout isharah found; this folder looks like --layout folder")
    r = _slsdk(["data", "prepare", "DATA", "-o", "cache", "--crop", "full", "--layout", "phoenix2014t"], tmp_path)
    one_line_error(r, "DATA: no split of --layout phoenix2014t found; this folder looks like --layout folder")
    assert not (tmp_path / "cache").exists()
    r = _slsdk(["train", "DATA", "--layout", "csl-daily", "-o", "run"], tmp_path)
    one_line_error(r, "CSL-Daily video map not found: DATA/sentence_label/video_map.txt; "
                      "this folder looks like --layout folder")
    r = _slsdk(["data", "show", "DATA", "--layout", "folder", "--json", "--no-frames"], tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["layout"] == "folder", r.stderr
