"""`--overlay` contact sheets: written by `slsdk run` and demos/video_file.py whatever the bundle crops, the model's
input region boxed on frames without a hand crop, and a note where no hand was found (issue #30)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slsdk.data.video import write_video
from slsdk.preprocess import Preprocess
from slsdk.runtime.crop import CropResult
from slsdk.runtime.overlay import REGION_COLOR, draw_overlay, input_region, sheet_note

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]
PANEL = (192, 224)  # one frame's panel on a sheet, in pixels: 2.4 x 2.8 inches at 80 dpi (save_overlay_png)


@pytest.fixture(scope="module")
def workdir(tiny_student, tmp_path_factory):
    """A working folder holding a bundle that crops nothing (``bundle``) and a 45-frame clip (``clip.mp4``)."""
    from slsdk.convert import convert

    cwd = tmp_path_factory.mktemp("overlay")
    convert(tiny_student(len(VOCAB)), "onnx", "fp32", cwd / "bundle", vocab=VOCAB)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (45, 48, 64, 3), dtype=np.uint8)   # as tests/test_runtime.py: a moving blob
    for t in range(45):
        frames[t, 10:30, 5 + t:17 + t] = (230, 200, 170)
    write_video(cwd / "clip.mp4", frames, fps=25)
    return cwd


def _fresh(workdir: Path, tmp_path: Path) -> Path:
    """A copy of the working folder for one test (each writes its own ov.png)."""
    return Path(shutil.copytree(workdir, tmp_path / "cwd"))


def _run(cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def _region_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the sheet drawn in the region box's colour (cyan; the clip has none)."""
    r, g, b = (img[..., k].astype(int) for k in range(3))
    assert REGION_COLOR == (0, 255, 255)
    return (r < 90) & (g > 170) & (b > 170)


def _panels_with_region(png: Path) -> tuple[int, list[tuple[float, bool]]]:
    """``(panel count the size allows at most, [(box width / height, has box) per panel cell])``."""
    img = np.asarray(Image.open(png).convert("RGB"))
    h, w = img.shape[:2]
    assert w % PANEL[0] == 0 and h % PANEL[1] == 0, (w, h)
    cols, rows = w // PANEL[0], h // PANEL[1]
    mask = _region_mask(img)
    cells = []
    for r in range(rows):
        for c in range(cols):
            m = mask[r * PANEL[1]:(r + 1) * PANEL[1], c * PANEL[0]:(c + 1) * PANEL[0]]
            ys, xs = np.nonzero(m)
            cells.append(((np.ptp(xs) + 1) / (np.ptp(ys) + 1) if len(xs) else 0.0, len(xs) > 50))
    return rows * cols, cells


def _check_boxed_sheet(png: Path, panels: int | None = None) -> None:
    """Every panel of the sheet (a prefix of its grid cells) boxes the square region the model sees, not the
    4:3 frame; ``panels``: how many there must be."""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells_total, cells = _panels_with_region(png)
    n = sum(has for _, has in cells)
    assert [has for _, has in cells] == [True] * n + [False] * (cells_total - n)
    cols = min(n, 6)
    assert cells_total == cols * math.ceil(n / cols)        # the grid save_overlay_png makes for n frames
    if panels is not None:
        assert n == panels
    for aspect, _ in cells[:n]:
        assert 0.9 < aspect < 1.15, aspect   # the 42x41 px centre crop of the 64x48 frame (aspect 1.33)


def test_input_region_is_the_centre_crop_of_the_resized_frame():
    # 64x48 -> 49x37 (shorter side 37), centre 32x32 at (8, 2): x 8..40 * 64/49, y 2..34 * 48/37
    assert input_region(48, 64, Preprocess(32)) == (10, 3, 52, 44)
    assert input_region(64, 48, Preprocess(32)) == (3, 10, 44, 52)
    # 1280x720 -> 455x256, centre 224x224 at (115, 16)
    assert input_region(720, 1280, Preprocess(224)) == (324, 45, 954, 675)
    assert input_region(37, 37, Preprocess(32)) == (2, 2, 34, 34)
    # what the model takes is all inside the box: a frame white there and black around it comes out white
    pre = Preprocess(32)
    for h, w in ((48, 64), (64, 48), (90, 160), (37, 37)):
        x0, y0, x1, y1 = input_region(h, w, pre)
        frame = np.zeros((h, w, 3), np.uint8)
        frame[y0:y1, x0:x1] = 255
        x = pre(frame[None])[0]
        pixels = x * (255 * np.asarray(pre.std)[:, None, None]) + 255 * np.asarray(pre.mean)[:, None, None]
        assert pixels[:, 1:-1, 1:-1].min() > 240, (h, w)


def test_draw_overlay_boxes_the_region_and_sheet_notes_say_what_boxes_are():
    frame = np.zeros((48, 64, 3), np.uint8)
    out = draw_overlay(frame, None, region=(10, 3, 52, 44))
    assert (out[3, 10:52] == REGION_COLOR).all() and (out[43, 10:52] == REGION_COLOR).all()
    assert (out[3:44, 10] == REGION_COLOR).all() and (out[3:44, 51] == REGION_COLOR).all()
    assert not out[20:30, 20:40].any() and not out[:, :9].any()      # inside and outside the box untouched
    assert "model's input region" in sheet_note([None, None], Preprocess(32))
    no_hands = CropResult(frame, (8, 0, 56, 48), 0, status="fallback")
    assert "no hands found" in sheet_note([no_hands, no_hands])
    assert sheet_note([CropResult(frame, (8, 0, 56, 48), 1), no_hands]) is None


def test_slsdk_run_overlay_boxes_the_model_input_when_the_bundle_crops_nothing(workdir, tmp_path):
    cwd = _fresh(workdir, tmp_path)
    r = _run(cwd, "-m", "slsdk.cli", "run", "bundle", "clip.mp4", "--overlay", "ov.png")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote ov.png (no hand crop: the box is the model's input region)" in " ".join(r.stdout.split())
    _check_boxed_sheet(cwd / "ov.png")


def test_video_file_demo_overlay_boxes_the_model_input(workdir, tmp_path):
    cwd = _fresh(workdir, tmp_path)
    r = _run(cwd, ROOT / "demos" / "video_file.py", "bundle", "clip.mp4", "--overlay", "ov.png",
             "--overlay-frames", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote ov.png (no hand crop: the box is the model's input region)" in r.stdout
    _check_boxed_sheet(cwd / "ov.png", panels=4)
    assert Image.open(cwd / "ov.png").size == (4 * PANEL[0], PANEL[1])


def test_slsdk_run_overlay_without_hands_found_writes_and_says_so(workdir, tmp_path, shared_file):
    pytest.importorskip("mediapipe")
    model = shared_file("models/hand_landmarker.task")
    cwd = _fresh(workdir, tmp_path)
    r = _run(cwd, "-m", "slsdk.cli", "run", "bundle", "clip.mp4", "--crop", "hands", "--hand-model", model,
             "--overlay", "ov.png", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    summary = next(x for x in lines if x["type"] == "summary")
    assert summary["crop"]["frames_with_hands"] == 0     # a blob, no hands: every crop is the fallback
    overlay = next(x for x in lines if x["type"] == "overlay")
    assert overlay["path"] == "ov.png" and "no hands found" in overlay["note"]
    img = np.asarray(Image.open(cwd / "ov.png").convert("RGB"))
    assert not _region_mask(img).any()            # hand crops: their (fallback) boxes, not the model's region
