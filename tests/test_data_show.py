"""`slsdk data show`: the first command on a new dataset names what is wrong with it."""
from __future__ import annotations

import csv
import json
import shutil

from typer.testing import CliRunner

from slsdk.cli import app
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
