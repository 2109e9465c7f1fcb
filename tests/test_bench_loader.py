"""benchmarks/bench_loader.py (issue #33) on tiny data: the PHOENIX layout it writes is the one AdaptSign's
BaseFeeder reads, slsdk's side (uint8 crops, shared-memory batches) runs through DataLoader workers, and the GPU
arithmetic. The reference side runs only where an AdaptSign checkout is named
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

from slsdk.data.dataset import batch_to_device
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


def test_slsdk_rows(run):
    _, out, result = run
    assert json.loads((out / "loader.json").read_text())["rows"]
    sides = {(r["side"], r["workers"]) for r in result["rows"]}
    assert sides == {("slsdk", 1)}          # no reference named: only slsdk's side
    frames = result["data"]["frames"]
    for r in result["rows"]:
        assert r["clips"] == 3 and r["frames"] == frames
        assert r["frames_per_s"] > 0 and r["frames_per_cpu_s"] > 0 and r["page_faults_per_frame"] >= 0
    assert result["ratios"] == {} and result["prepare"]["frames"] == frames
    assert "| (b) slsdk" in result["table"]


def test_slsdk_side_hands_on_uint8_crops_in_shared_memory(run):
    """(b) is slsdk's loader as the trainer builds it: uint8 crops from the memory-mapped cache, nothing kept in
    memory, the batch built in shared memory by a worker; normalised on the device as the trainer does."""
    bench, out, _ = run
    loader, _ = bench.slsdk_loader(out / "data" / "cache", 1)
    ds = loader.dataset
    assert ds.cache_in_memory is None
    batch = next(iter(loader))
    assert batch["videos"].dtype == torch.uint8 and batch["videos"].shape[2:] == (224, 224, 3)
    assert batch["videos"].is_shared()
    videos = batch_to_device(batch, "cpu", ds.normalize)[0]
    assert videos.dtype == torch.float32 and videos.shape[2] == 3 and float(videos.abs().max()) <= 1.0
    assert ds._mem == {}


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
                        "--no-gpu-side", *TINY], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "loader.json").read_text())
    ref = next(x for x in result["rows"] if x["side"] == "reference")
    assert ref["clips"] == 2 and ref["frames"] > 0        # batch 2, drop_last: 3 clips -> one batch
    assert set(result["ratios"]) == {"slsdk workers 1"} and result["reference"] == str(Path(REF).resolve())
