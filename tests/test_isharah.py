"""The Isharah reader on files in the real format, and the whole chain on them.

The fixture is written exactly as the MSLR 2025 starter kit ships Isharah's annotations (repository
gufranSabri/Pose86K-CSLR-Isharah, ``annotations_v2/isharah2000/{SI,US}/{train,dev,test}.csv``): ``|``-separated,
header ``id|gloss``, ids ``SS_NNNN``, Arabic-script glosses in UTF-8 separated by spaces (``كره_قدم`` is one
gloss), the test file with ids only. Its rows are copied from the kit's ``SI/test_orig.csv`` (signers 08/10).
The videos are rendered by the synthetic signer, one sign per Arabic gloss, so a model can be trained on them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slsdk.data import AnnotationError, read_isharah
from slsdk.data.splits import read_split

# rows as in annotations_v2/isharah2000/SI/test_orig.csv (the kit's own lines)
KIT_ROWS = """\
id|gloss
08_0001|سوال هو
08_0002|هو معلم لغه اشاره
08_0005|هو سوال
08_0022|انا ذهاب مدرسه سبب كره_قدم
"""
ARABIC = ["هو", "سوال", "معلم", "لغه", "اشاره", "كره_قدم"]   # glosses of the rows above


def _sclite() -> str | None:
    for cand in (shutil.which("sclite"), "/usr/lib/sctk/bin/sclite"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def test_reads_the_kit_rows_verbatim(tmp_path):
    d = tmp_path / "annotations_v2" / "isharah2000" / "SI"
    d.mkdir(parents=True)
    (d / "train.csv").write_text(KIT_ROWS, encoding="utf-8")
    s = read_isharah(tmp_path, "SI", "train", check_videos=False)
    assert [x.id for x in s] == ["08_0001", "08_0002", "08_0005", "08_0022"]
    assert s[0].signer == "08" and s[0].meta["sentence"] == "0001"
    assert s[3].glosses == ["انا", "ذهاب", "مدرسه", "سبب", "كره_قدم"]


@pytest.mark.parametrize("text,ids", [
    ("id|gloss|text\n000001|هو سوال|نص\n", ["000001"]),                 # older id form + text column
    ("00_0001|هو سوال\n", ["00_0001"]),                                 # no header
])
def test_other_accepted_forms(tmp_path, text, ids):
    d = tmp_path / "annotations" / "SI"
    d.mkdir(parents=True)
    (d / "train.txt").write_text(text, encoding="utf-8")
    assert [x.id for x in read_isharah(tmp_path, "SI", "train", check_videos=False)] == ids


@pytest.mark.parametrize("text,needle", [
    ("id|gloss\n0_001|هو\n", "0_001"),
    ("id|gloss\n00_0001|هو\n00_0002| \n", "empty gloss"),
])
def test_bad_rows_name_file_and_line(tmp_path, text, needle):
    d = tmp_path / "annotations" / "SI"
    d.mkdir(parents=True)
    (d / "train.csv").write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError, match=re.escape(needle)) as e:
        read_isharah(tmp_path, "SI", "train", check_videos=False)
    assert "train.csv:" in str(e.value)


def test_non_utf8_file_is_named(tmp_path):
    d = tmp_path / "annotations" / "SI"
    d.mkdir(parents=True)
    (d / "train.csv").write_bytes("id|gloss\n00_0001|".encode() + "هو".encode("cp1256") + b"\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2: not UTF-8"):
        read_isharah(tmp_path, "SI", "train", check_videos=False)


def make_isharah_fixture(root: Path, work: Path) -> Path:
    """An Isharah-format dataset (SI protocol) whose videos are synthetic signing of Arabic glosses."""
    from slsdk.data import read_folder
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.demos.pipeline import quick_kwargs

    synth = generate_synthetic(work / "synth", seed=0, **{**quick_kwargs(), "num_glosses": len(ARABIC)})
    samples = read_folder(synth)
    names = sorted({g for s in samples for g in s.glosses})
    to_ar = dict(zip(names, ARABIC))
    ann = root / "annotations_v2" / "isharah2000" / "SI"
    ann.mkdir(parents=True)
    (root / "videos").mkdir()
    rows = {"train": [], "dev": [], "test": []}
    counter: dict[str, int] = {}
    for s in samples:
        subset = {"train": "train", "dev": "dev"}.get(s.split, "test")
        signer = f"{int(s.signer):02d}" if subset == "train" else f"{int(s.signer) + 10:02d}"
        counter[signer] = counter.get(signer, 0) + 1
        vid = f"{signer}_{counter[signer]:04d}"
        shutil.copy(s.video, root / "videos" / f"{vid}.mp4")
        rows[subset].append((vid, " ".join(to_ar[g] for g in s.glosses)))
    for subset, rs in rows.items():
        if subset == "test":   # the kit's test files carry ids only
            text = "id\n" + "".join(f"{v}\n" for v, _ in rs)
        else:
            text = "id|gloss\n" + "".join(f"{v}|{g}\n" for v, g in rs)
        (ann / f"{subset}.csv").write_text(text, encoding="utf-8")
    return root


@pytest.mark.slow
def test_isharah_chain_read_train_eval_equals_sclite(tmp_path, monkeypatch):
    make_isharah_fixture(tmp_path / "isharah", tmp_path / "work")
    monkeypatch.chdir(tmp_path)
    train = read_split("isharah", "train", "isharah")
    test = read_split("isharah", "test", "isharah")
    assert all(s.glosses for s in train) and not any(s.glosses for s in test)
    from slsdk.data import Vocabulary

    vocab = Vocabulary.build(train)
    assert set(vocab.glosses[1:]) <= set(ARABIC) and len(vocab) - 1 >= 4

    def slsdk(*argv, ok=True):
        res = subprocess.run([sys.executable, "-m", "slsdk.cli", *argv], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
        assert (res.returncode == 0) == ok, f"{argv}: {res.stdout[-1500:]}\n{res.stderr[-2500:]}"
        assert "Traceback" not in res.stderr
        return res

    show = slsdk("data", "show", "isharah", "--layout", "isharah", "--json")
    import json

    summary = json.loads(show.stdout)
    by = {s["name"]: s for s in summary["splits"]}
    assert by["test"]["labelled"] is False and by["train"]["labelled"] is True
    assert summary["vocabulary"] == len(vocab) - 1
    # one training step: the whole train split in one batch, one epoch
    slsdk("train", "isharah", "--layout", "isharah", "--backbone", "ViT-T/16-test", "--epochs", "1",
          "--hidden", "32", "--batch-size", str(len(train)), "-o", "runs/teacher")
    slsdk("eval", "model", "runs/teacher/best.pt", "isharah", "--layout", "isharah", "--split", "dev",
          "-o", "scores")
    stm = (tmp_path / "scores" / "dev.stm").read_text(encoding="utf-8")
    assert any(g in stm for g in ARABIC)
    ours = slsdk("eval", "wer", "--ref", "scores/dev.stm", "--hyp", "scores/dev.ctm", "--convention", "none")
    m = re.search(r"WER ([\d.]+)%\s+\(sub (\d+), del (\d+), ins (\d+), ref words (\d+)\)", ours.stdout)
    assert m, ours.stdout
    # the unlabelled test split: hypotheses only with -o, a clear refusal without
    slsdk("eval", "model", "runs/teacher/best.pt", "isharah", "--layout", "isharah", "--split", "test",
          "-o", "scores")
    assert (tmp_path / "scores" / "test.ctm").is_file() and not (tmp_path / "scores" / "test.stm").exists()
    refused = slsdk("eval", "model", "runs/teacher/best.pt", "isharah", "--layout", "isharah", "--split", "test",
                    ok=False)
    assert "no glosses" in refused.stderr
    sclite = _sclite()
    if sclite is None:
        pytest.skip("NIST sclite not installed (Debian package sctk): the Arabic WER was not compared")
    out = subprocess.run([sclite, "-e", "utf-8", "-s", "-h", "scores/dev.ctm", "ctm", "-r", "scores/dev.stm",
                          "stm", "-o", "rsum", "stdout"], cwd=tmp_path, capture_output=True, text=True, check=True)
    row = next(ln for ln in out.stdout.splitlines() if re.match(r"\s*\|\s*Sum\s*\|", ln))
    nums = re.findall(r"[\d.]+", row)
    # | Sum | #Snt #Wrd | Corr Sub Del Ins Err S.Err |
    wrd, sub, dele, ins = int(nums[1]), int(nums[3]), int(nums[4]), int(nums[5])
    assert (int(m.group(5)), int(m.group(2)), int(m.group(3)), int(m.group(4))) == (wrd, sub, dele, ins)


def test_training_refuses_an_unlabelled_split(tmp_path):
    from slsdk.data.splits import resolve_datasets

    d = tmp_path / "annotations" / "SI"
    d.mkdir(parents=True)
    (d / "train.csv").write_text("id\n00_0001\n00_0002\n", encoding="utf-8")
    (tmp_path / "videos").mkdir()
    for v in ("00_0001", "00_0002"):
        (tmp_path / "videos" / f"{v}.mp4").write_bytes(b"")
    with pytest.raises(AnnotationError, match="no glosses"):
        resolve_datasets(tmp_path, "isharah")
