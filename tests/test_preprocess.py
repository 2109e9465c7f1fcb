"""The numpy preprocessing (slsdk.preprocess) that the runtime, parity and calibration use, against the torch
training transform (slsdk.data.transforms) on the real photos, and its own rules."""
from __future__ import annotations

import numpy as np
import pytest

from slsdk.preprocess import (CLIP_MEAN, CLIP_STD, Preprocess, center_crop, chunk_video, output_frames,
                              prepare_video, resize_shorter, resize_size)


def _photos(shared_dir):
    from PIL import Image

    files = sorted(p for p in (shared_dir / "data" / "hands").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if len(files) < 30:
        pytest.skip(f"expected the ~40 real photos under {shared_dir / 'data/hands'}, found {len(files)}")
    return [np.array(Image.open(p).convert("RGB")) for p in files]


@pytest.mark.parametrize("size", [32, 224])
def test_numpy_equals_the_torch_transform_on_real_photos(shared_dir, size):
    """max |numpy - torch| <= 1/255 in pixel units (one uint8 rounding step) on every real photo."""
    import torch

    from slsdk.data.transforms import eval_transform

    spec = Preprocess(size, CLIP_MEAN, CLIP_STD)
    torch_t = eval_transform(size, CLIP_MEAN, CLIP_STD)
    assert spec.resize_shorter == torch_t.resize_to
    std = np.asarray(CLIP_STD, np.float32).reshape(1, 3, 1, 1)
    worst, differing = 0.0, 0
    for img in _photos(shared_dir):
        got = spec(img[None])
        with torch.no_grad():
            want = torch_t(img[None]).numpy()
        assert got.shape == want.shape == (1, 3, size, size) and got.dtype == np.float32
        d = np.abs(got - want) * std  # back to [0, 1] pixel units
        worst = max(worst, float(d.max()))
        differing += int((d > 1e-6).sum())
    assert worst <= 1 / 255 + 1e-6, worst
    assert differing < 1e-3 * 40 * 3 * size * size  # rounding ties only: a different filter would differ widely


def test_resize_is_antialiased_not_a_point_sample():
    """A 1-pixel checkerboard downsized 4x averages to grey (no aliasing), as PIL / torch antialias do."""
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[None, :, :, None], 3, axis=3)
    out = resize_shorter(img, 16)
    assert out.shape == (1, 16, 16, 3)
    assert np.abs(out.astype(int) - 128).max() <= 2


def test_resize_keeps_aspect_and_crop_is_central():
    out = resize_shorter(np.zeros((2, 720, 540, 3), np.uint8), 73)
    assert out.shape == (2, 97, 73, 3)
    frames = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(1, 5, 7, 3)
    np.testing.assert_array_equal(center_crop(frames, 3), frames[:, 1:4, 2:5])
    with pytest.raises(ValueError, match="cannot centre-crop"):
        center_crop(frames, 6)
    assert resize_size(224) == 256 and resize_size(32) == 37


def test_normalise_uses_the_given_mean_and_std():
    spec = Preprocess(4, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0), resize_shorter=4)
    x = spec(np.full((1, 4, 4, 3), 255, np.uint8))
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, 3.0, 1.0], rtol=1e-6)


def test_chunks_are_zero_padded_and_output_frames_rounded_up():
    v = np.ones((19, 3, 2, 2), np.float32)
    chunks = chunk_video(v, 8)
    assert [c.shape for c in chunks] == [(1, 8, 3, 2, 2)] * 3
    assert chunks[-1][0, :3].min() == 1 and chunks[-1][0, 3:].max() == 0
    assert output_frames(19, 4) == 5
    with pytest.raises(ValueError, match="empty video"):
        chunk_video(v[:0], 8)


def test_bad_input_is_named():
    spec = Preprocess(8)
    with pytest.raises(ValueError, match="expected uint8 frames"):
        spec(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="must be 8x8"):
        prepare_video(np.zeros((2, 3, 9, 9), np.float32), spec)
    with pytest.raises(ValueError, match="only centre crops"):
        Preprocess(8, crop="random")
    with pytest.raises(ValueError, match="square centre crops"):
        Preprocess.from_input_spec({"height": 8, "width": 9, "mean": CLIP_MEAN, "std": CLIP_STD,
                                    "resize_shorter": 9, "crop": "center"})


@pytest.mark.parametrize("size", [37, 256])
def test_pillow_resize_is_the_antialiased_bilinear_filter(shared_dir, size):
    """The one resize (Pillow, fixed point) against the float filter it implements: torch's antialiased
    ``interpolate`` and the numpy reference, within one grey level on every real photo (issue #32)."""
    import torch
    import torch.nn.functional as F

    from slsdk.preprocess import resize_shorter_numpy, shorter_size

    for img in _photos(shared_dir)[:12]:
        nh, nw = shorter_size(*img.shape[:2], size)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
        want = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        want = want.round().clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(int)
        got = resize_shorter(img[None], size)[0].astype(int)
        ref = resize_shorter_numpy(img[None], size)[0].astype(int)
        assert got.shape == want.shape == (nh, nw, 3)
        assert np.abs(got - want).max() <= 1 and np.abs(got - want).mean() < 0.2
        assert np.abs(ref - want).max() <= 1 and (ref != want).mean() < 1e-3  # the float filter: ties only
