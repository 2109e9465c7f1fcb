"""The uint8 loader (issue #33): items are uint8 crops, normalised on the training device after ``.to(device)``.

Normalised there they equal the float items the dataset handed on before (the former ``VideoTransform`` written
out here: frame selection, resize, crop, float, flip, normalise), for decoded videos and for prepared clips read
through their memory map; the trainer's first-epoch loss is the same with the former float items.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_data import tiny_synthetic

from slsdk.data.dataset import VideoDataset, batch_to_device, collate, min_input_length, pad_frames
from slsdk.data.transforms import resize_shorter, temporal_indices


def _former_item(ds: VideoDataset, index: int) -> dict:
    """The float ``[T, 3, S, S]`` item ``VideoDataset`` returned before the uint8 loader (``style="slsdk"``)."""
    t = ds.transform
    frames = np.array(ds.frames(index))
    label = ds.labels[index]
    need = min_input_length(label, ds.output_length_fn) if ds.output_length_fn is not None else 1
    rng = np.random.default_rng([ds.seed, ds.epoch, index]) if ds.train else None
    s = t.image_size
    if t.train:
        scale = 1.0 + rng.uniform(-t.temporal_scale, t.temporal_scale)
        frames = frames[temporal_indices(len(frames), scale, min_frames=min(need, len(frames)))]
    frames = resize_shorter(frames, t.resize_to)
    h, w = frames.shape[1:3]
    if t.train:
        y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        do_flip = t.flip and rng.random() < t.flip_p
    else:
        y0, x0, do_flip = (h - s) // 2, (w - s) // 2, False
    x = torch.from_numpy(np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s])).permute(0, 3, 1, 2).float()
    if do_flip:
        x = x.flip(-1)
    mean = torch.tensor(t.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
    std = torch.tensor(t.std, dtype=torch.float32).view(1, 3, 1, 1) * 255
    video = ((x - mean) / std).contiguous()
    if ds.output_length_fn is not None and len(video) < need:
        video = pad_frames(video, need)
    return {"video": video, "label": torch.tensor(label, dtype=torch.long), "id": ds.samples[index].id}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("u8") / "data", image_size=48)


def _check_items(ds: VideoDataset, epochs=(0, 1, 2)):
    for epoch in epochs:
        ds.set_epoch(epoch)
        items = [ds[i] for i in range(len(ds))]
        for i, it in enumerate(items):
            old = _former_item(ds, i)
            assert it["video"].dtype == torch.uint8 and it["video"].shape[-1] == 3
            assert torch.equal(ds.normalize(it["video"]), old["video"]), (epoch, i)
            assert torch.equal(it["label"], old["label"]) and it["id"] == old["id"]
        for k in range(0, len(items) - 1, 2):    # the batch a training step gets: the former collate's, bit for bit
            new = batch_to_device(collate(items[k:k + 2]), "cpu", ds.normalize)
            old = collate([_former_item(ds, k), _former_item(ds, k + 1)])
            assert all(torch.equal(a, old[key]) for a, key in
                       zip(new, ("videos", "lengths", "labels", "label_lengths"))), (epoch, k)


@pytest.mark.parametrize("train", [True, False])
def test_uint8_items_normalised_equal_the_former_float_items(data, train):
    from slsdk.data import Vocabulary, read_folder

    samples = read_folder(data, "train")
    ds = VideoDataset(samples, Vocabulary.build(samples), 32, train=train, seed=5)
    _check_items(ds, (0, 1, 2) if train else (0,))


def test_prepared_clips_are_read_through_the_memory_map(data, tmp_path):
    """A cache at the resize size: the item indexes the memory map (frames, crop window), nothing kept in memory;
    the items equal the former float items and those of the same data set kept in memory."""
    from slsdk.data import Vocabulary, read_folder
    from slsdk.data.prepare import PrepareConfig, prepare_dataset

    size = round(32 * 256 / 224)            # the resize size of 32 px crops: no resize on load
    prep = prepare_dataset(data, tmp_path / "cache", PrepareConfig(crop="full", size=size), splits=["train"],
                           progress=False)
    assert not prep.failures
    samples = read_folder(tmp_path / "cache", "train")
    vocab = Vocabulary.build(samples)
    ds = VideoDataset(samples, vocab, 32, train=True, seed=1)
    assert ds.cache_in_memory is None and isinstance(ds.frames(0), np.memmap)
    _check_items(ds, (0, 1))
    assert ds._mem == {}                        # prepared clips are memory-mapped, not kept per worker
    kept = VideoDataset(samples, vocab, 32, train=True, seed=1, cache_in_memory=True)
    kept.set_epoch(ds.epoch)
    for i in range(len(ds)):
        assert torch.equal(kept[i]["video"], ds[i]["video"])
    assert len(kept._mem) == len(ds) and not isinstance(kept._mem[0], np.memmap)


def test_trainers_first_epoch_loss_is_unchanged(data, tmp_path, monkeypatch):
    """The real trainer on the uint8 items (normalised on the device by batch_to_device) and on the former float
    items (batch_to_device only moves them): the same first-epoch loss, the same dev WER."""
    from slsdk.train import TrainConfig, teacher_config, train

    cfg = TrainConfig(epochs=1, batch_size=2, lr=3e-3, seed=0, device="cpu", warmup_steps=1)
    tiny = dict(backbone="ViT-T/16-test", hidden=32, prefix_tokens=2)
    new = train(data, tmp_path / "new", teacher_config(**tiny), cfg, progress=False)
    monkeypatch.setattr(VideoDataset, "__getitem__", _former_item)
    old = train(data, tmp_path / "old", teacher_config(**tiny), cfg, progress=False)
    # equal on a quiet machine; the tolerance absorbs thread-scheduling noise of CPU reductions on a shared one
    assert new.history[0]["train_loss"] == pytest.approx(old.history[0]["train_loss"], rel=1e-6, abs=1e-7)
    assert new.history[0].get("dev_wer") == old.history[0].get("dev_wer")
