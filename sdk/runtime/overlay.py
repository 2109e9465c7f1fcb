"""Drawing crop boxes, hand skeletons, the model's input region and text on frames (numpy only), and contact sheets
(matplotlib)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from slsdk import fileio
from slsdk.preprocess import Preprocess
from slsdk.runtime.crop import CropResult

# MediaPipe's 21-point hand topology (HandLandmarksConnections.HAND_CONNECTIONS), kept here so drawing
# needs no mediapipe import.
HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
REGION_COLOR = (0, 255, 255)  # the box of the model's input region on frames without a hand crop

_FONT_3x5 = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    " ": "000000000000000", "-": "000000111000000", ".": "000000000000010", ":": "000010000010000",
    "/": "001001010100100", "_": "000000000000111", "=": "000111000111000", "%": "101001010100101",
    "?": "111001010000010", "(": "010100100100010", ")": "010001001001010", ",": "000000000010100",
    "+": "000010111010000", "|": "010010010010010", "'": "010010000000000", "#": "101111101111101",
}


def _draw_text(img: np.ndarray, text: str, x: int, y: int, scale: int, color) -> None:
    h, w = img.shape[:2]
    for i, ch in enumerate(text.upper()):
        glyph = _FONT_3x5.get(ch, _FONT_3x5["?"])
        for k, bit in enumerate(glyph):
            if bit == "1":
                r, c = divmod(k, 3)
                y0, x0 = y + r * scale, x + (i * 4 + c) * scale
                if y0 < h and x0 < w:
                    img[max(y0, 0):y0 + scale, max(x0, 0):x0 + scale] = color


def _draw_line(img: np.ndarray, p, q, color, thickness: int) -> None:
    h, w = img.shape[:2]
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
    xs = np.rint(np.linspace(p[0], q[0], n)).astype(int)
    ys = np.rint(np.linspace(p[1], q[1], n)).astype(int)
    r = thickness // 2
    for dx in range(-r, thickness - r):
        for dy in range(-r, thickness - r):
            xx, yy = xs + dx, ys + dy
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            img[yy[ok], xx[ok]] = color


def input_region(height: int, width: int, preprocess: Preprocess) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of a ``height x width`` frame that ``preprocess`` feeds the model (its centre
    crop after the shorter-side resize), in frame pixels."""
    r, size = preprocess.resize_shorter, preprocess.size
    rh, rw = ((r, max(r, int(round(width * r / height)))) if height <= width
              else (max(r, int(round(height * r / width))), r))   # as slsdk.preprocess.resize_shorter
    y0, x0 = (rh - size) // 2, (rw - size) // 2
    sy, sx = height / rh, width / rw
    return (int(round(x0 * sx)), int(round(y0 * sy)), int(round((x0 + size) * sx)), int(round((y0 + size) * sy)))


def _draw_box(img: np.ndarray, box, color, thickness: int) -> None:
    x0, y0, x1, y1 = box
    for p, q in (((x0, y0), (x1 - 1, y0)), ((x1 - 1, y0), (x1 - 1, y1 - 1)),
                 ((x1 - 1, y1 - 1), (x0, y1 - 1)), ((x0, y1 - 1), (x0, y0))):
        _draw_line(img, p, q, color, thickness)


def draw_overlay(frame: np.ndarray, result: CropResult | None, text: str | None = None, *,
                 region: tuple[int, int, int, int] | None = None, box_color=(0, 255, 0),
                 landmark_color=(255, 0, 0), bone_color=(255, 255, 0), region_color=REGION_COLOR) -> np.ndarray:
    """A copy of ``frame`` with the crop box, hand skeletons, the ``region`` box (see :func:`input_region`) and
    optional text (numpy only)."""
    out = np.array(frame, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    t = max(1, round(min(h, w) / 200))
    if region is not None:
        _draw_box(out, region, region_color, 2 * t)
    if result is not None:
        for pts in result.landmarks:
            for a, b in HAND_CONNECTIONS:
                _draw_line(out, pts[a, :2], pts[b, :2], bone_color, t)
            for x, y in pts[:, :2]:
                xi, yi = int(round(x)), int(round(y))
                out[max(yi - t, 0):max(yi + t + 1, 0), max(xi - t, 0):max(xi + t + 1, 0)] = landmark_color
        color = box_color if result.status in ("hands", "full") else (255, 128, 0)
        _draw_box(out, result.box, color, 2 * t)
    if text:
        scale = max(2, min(h, w) // 120)
        bar = 7 * scale
        out[:bar] = (out[:bar].astype(np.uint16) // 3).astype(np.uint8)
        _draw_text(out, text, scale, scale, scale, (255, 255, 255))
    return out


def sheet_note(results, preprocess: Preprocess | None = None) -> str | None:
    """What a contact sheet of these crop results (None: a frame without a hand crop) boxes when it is not hands:
    the model's input region (with ``preprocess``), or the fallback crops of frames in which no hand was found."""
    results = list(results)
    if any(r is None for r in results):
        return "no hand crop" + (": the box is the model's input region" if preprocess is not None else "")
    if results and not any(r.hands_found for r in results):
        return "no hands found in these frames: the boxes are the fallback crops"
    return None


def save_overlay_png(path: str | Path, frames_with_results, *, preprocess: Preprocess | None = None,
                     cols: int | None = None, dpi: int = 80, title: str | None = None, overwrite: bool = False) -> Path:
    """Contact sheet (matplotlib, Agg) of ``(frame, CropResult or None[, caption])`` items with overlays drawn.

    A frame without a hand crop (None) gets the box of the region the model's ``preprocess`` feeds it
    (:func:`input_region`); :func:`sheet_note` says what the boxes are under the title.
    Written by :mod:`slsdk.fileio`: an existing ``path`` is replaced only with ``overwrite`` and only if slsdk
    wrote it (never a user's file, a link or one of the command's inputs)."""
    # matplotlib is heavy and optional (slsdk[train]): loaded only to write a contact sheet
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = list(frames_with_results)
    if not items:
        raise ValueError("save_overlay_png: nothing to draw")
    n = len(items)
    cols = cols or min(n, 6)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.4 * cols, 2.8 * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, item in enumerate(items):
        frame, res = item[0], item[1]
        caption = item[2] if len(item) > 2 else (
            f"{i}: {res.hands_found} hand(s), {res.status}" if res is not None else f"{i}: no hand crop")
        region = (input_region(*np.shape(frame)[:2], preprocess) if res is None and preprocess is not None
                  else None)
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(draw_overlay(frame, res, region=region))
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    heading = "\n".join(x for x in (title, sheet_note((item[1] for item in items), preprocess)) if x)
    if heading:
        fig.suptitle(heading)
    fig.tight_layout()
    path = Path(path)
    # the temp name keeps the suffix: matplotlib picks the format by it (.png; .jpg / .pdf work too)
    with fileio.atomic_path(path, overwrite=overwrite, suffix=path.suffix or ".png") as tmp:
        fig.savefig(tmp)
    return path


__all__ = ["HAND_CONNECTIONS", "REGION_COLOR", "draw_overlay", "input_region", "save_overlay_png", "sheet_note"]
