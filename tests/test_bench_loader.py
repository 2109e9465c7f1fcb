"""benchmarks/bench_loader.py (issue #33) on tiny data: the PHOENIX layout it writes is the one AdaptSign's
BaseFeeder reads, slsdk's side and the uint8 sketch run through DataLoader workers, the sketch applies exactly
slsdk's augmentation, and the GPU arithmetic. The reference side runs only where an AdaptSign checkout is named
by $SLSDK_ADAPTSIGN_REF (it is not in CI)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slsdk.data.splits import read_split

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_loader.py"
# clips of 8-11 frames: shorter than CTC needs for 3-6 glosses, so the repeat-padding path is exercised too
pytestmark = pytest.mark.filterwarnings("ignore:.*shorter than CTC needs")
TINY = ["--clips", "3", "--min-frames", "8", "--max-frames", "11", "--size", "32", "--repeats", "1", "--quiet"]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_loader", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_loader")
    result = bench.main(["--out", str(out), "--workers", "1", "--no-gpu-side", *TINY])
    return bench, out, result


def test_writes_the_reference_layout(run):
    bench, out, result = run
    root = out / "data"
    info = np.load(root / "preprocess" / "phoenix2014" / "train_info.npy", allow_pickle=True).item()
    # csv2dict's dict: a "prefix" entry and one record per clip (BaseFeeder's len is len(dict) - 1)
    assert isinstance(info["prefix"], str) and len(info) - 1 == 3
    gloss_dict = np.load(root / "preprocess" / "phoenix2014" / "gloss_dict.npy", allow_pickle=True).item()
    assert sorted(v[0] for v in gloss_dict.values()) == list(range(1, len(gloss_dict) + 1))
    base = bench.phoenix_base(root)
    rows = (base / "annotations" / "manual" / "train.corpus.csv").read_text().splitlines()
    assert rows[0] == "id|folder|signer|annotation" and len(rows) == 4
    for i in range(3):
        rec = info[i]
        assert set(rec) == {"fileid", "folder", "signer", "label", "num_frames", "original_info"}
        assert rec["folder"] == f"train/{rec['fileid']}/1/*.png" and rec["original_info"] == rows[i + 1]
        assert all(g in gloss_dict for g in rec["label"].split())
        # where BaseFeeder.read_video globs (prefix/features/fullFrame-256x256px/<folder>)
        pngs = sorted((base / "features" / "fullFrame-256x256px").glob(rec["folder"]))
        assert 8 <= len(pngs) <= 11 and len(pngs) == rec["num_frames"]
    # slsdk's PHOENIX reader finds the very same files
    samples = read_split(root / "phoenix2014", "train", "phoenix2014")
    assert [s.id for s in samples] == [info[i]["fileid"] for i in range(3)]
    assert samples[0].video.resolve() == (base / "features" / "fullFrame-256x256px" / "train"
                                          / info[0]["fileid"] / "1").resolve()


def test_slsdk_and_sketch_rows(run):
    _, out, result = run
    assert json.loads((out / "loader.json").read_text())["rows"]
    sides = {(r["side"], r["workers"]) for r in result["rows"]}
    assert sides == {("slsdk", 1), ("sketch", 1)}          # no reference named: only slsdk's side
    frames = result["data"]["frames"]
    for r in result["rows"]:
        assert r["clips"] == 3 and r["frames"] == frames
        assert r["frames_per_s"] > 0 and r["frames_per_cpu_s"] > 0 and r["page_faults_per_frame"] >= 0
    assert result["ratios"] == {} and result["prepare"]["frames"] == frames
    assert "| (b) slsdk" in result["table"]


def test_sketch_is_slsdks_augmentation(run):
    """(c) reads uint8 crops straight from the cache; normalised as the GPU would, each item equals the
    VideoDataset item slsdk's trainer makes from the same seed and epoch (crop, flip, temporal rescale, padding)."""
    bench, out, _ = run
    cache = out / "data" / "cache"
    ds = bench.slsdk_dataset(cache)
    for epoch in range(3):
        ds.set_epoch(epoch)
        sketch = bench.Uint8Sketch(cache, epoch=epoch)
        for i in range(len(ds)):
            ours, fast = ds[i], sketch[i]
            assert fast["video"].dtype == torch.uint8 and fast["id"] == ours["id"]
            x = fast["video"].permute(0, 3, 1, 2).float().sub_(127.5).div_(127.5)
            torch.testing.assert_close(x, ours["video"], rtol=0, atol=1e-6)
            assert torch.equal(fast["label"], ours["label"])
    a, b = sketch[0], sketch[1]
    batch, ref = bench.collate_shared([a, b]), bench.collate([ds[0], ds[1]])
    assert batch["videos"].dtype == torch.uint8 and torch.equal(batch["lengths"], ref["lengths"])
    x = batch["videos"].permute(0, 1, 4, 2, 3).float().sub_(127.5).div_(127.5)
    pad = batch["lengths"].min()
    assert torch.equal(batch["videos"][int(torch.argmin(batch["lengths"])), pad:], torch.zeros_like(
        batch["videos"][0, pad:]))                       # zero padding, as slsdk's collate
    torch.testing.assert_close(x[:, :pad], ref["videos"][:, :pad], rtol=0, atol=1e-6)


def test_gpu_arithmetic(bench, monkeypatch):
    import slsdk.models.flops as flops

    monkeypatch.setattr(flops, "info_rows", lambda *a, **k: [{"variant": "adaptsign", "gmacs_per_frame": 20.0}])
    g = bench.gpu_need({"reference": 100.0, "slsdk": 1000.0}, mfu=0.5, log=lambda *a: None)
    assert g["train_flops_per_frame"] == 3 * 2 * 20e9
    h100 = g["gpus"]["H100 SXM"]
    assert h100["frames_per_s"] == pytest.approx(989e12 * 0.5 / 120e9)
    assert h100["cores"]["slsdk"] == pytest.approx(h100["frames_per_s"] / 1000.0)
    assert h100["cores"]["reference"] == pytest.approx(10 * h100["cores"]["slsdk"])


REF = os.environ.get("SLSDK_ADAPTSIGN_REF")


@pytest.mark.skipif(not (REF and (Path(REF) / "dataset" / "dataloader_video.py").is_file()),
                    reason="no AdaptSign checkout named by $SLSDK_ADAPTSIGN_REF")
def test_reference_side_runs_from_its_checkout(tmp_path):
    """AdaptSign's own BaseFeeder (imported from the checkout, in its own process) reads the written layout."""
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, str(SCRIPT), "--reference", REF, "--out", str(out), "--workers", "1",
                        "--no-gpu-side", "--no-sketch", *TINY], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "loader.json").read_text())
    ref = next(x for x in result["rows"] if x["side"] == "reference")
    assert ref["clips"] == 2 and ref["frames"] > 0        # batch 2, drop_last: 3 clips -> one batch
    assert set(result["ratios"]) == {"slsdk workers 1"} and result["reference"] == str(Path(REF).resolve())
