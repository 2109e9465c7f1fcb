"""User-facing outputs respect the umask: what `slsdk pretrain`, training and conversion write gets
``0o666 & ~umask`` (folders ``0o777 & ~umask``), as any file the user makes, even where the writer (safetensors,
matplotlib) makes its own temp file 0600."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from tiny_data import tiny_synthetic

from slsdk.models.clip import CLIPVisionConfig
from slsdk.train import TrainConfig, teacher_config, train
from slsdk.train.pretrain import PretrainConfig, pretrain_backbone

torch.set_num_threads(1)

VOCAB = ["<blank>", "A", "B", "C"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("umask") / "data")


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under ``root`` (relative name -> mode)."""
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def _check(root: Path, umask: int, *must: str) -> None:
    modes = _modes(root)
    assert set(must) <= set(modes), sorted(modes)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o777 if (root / name).is_dir() else 0o666) & ~umask}
    assert not wrong, f"umask {umask:03o}: {wrong}"


def test_pretrain_training_and_bundle_files_respect_the_umask(data, umask, tmp_path, tiny_student):
    from slsdk.convert import convert

    pretrain_backbone(data, tmp_path / "pre" / "tower.safetensors",
                      PretrainConfig(steps=1, batch_frames=4, pool_videos=2, heldout_videos=1),
                      vision_config=CLIPVisionConfig(image_size=32, patch_size=8, width=32, layers=1, heads=2,
                                                     output_dim=16), progress=False)
    _check(tmp_path / "pre", umask, "tower.safetensors", "tower.safetensors.json")

    train(data, tmp_path / "run", teacher_config(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2),
          TrainConfig(epochs=1, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1), progress=False)
    _check(tmp_path / "run", umask, "curves.png", "best.pt", "last.pt", "metrics.jsonl", "vocab.json")

    convert(tiny_student(len(VOCAB)), "onnx", "fp32", tmp_path / "out" / "bundle", vocab=VOCAB)
    _check(tmp_path / "out", umask, "bundle", "bundle/manifest.json", "bundle/model.onnx")
