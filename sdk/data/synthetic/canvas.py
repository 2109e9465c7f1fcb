"""Antialiased drawing on a float image (ellipses, capsules, arcs) and the hand shapes drawn with them."""
from __future__ import annotations

import numpy as np


class Canvas:
    def __init__(self, img: np.ndarray):
        self.img = img  # float32 [H, W, 3]
        self.h, self.w = img.shape[:2]

    def _window(self, x0, y0, x1, y1):
        xa, ya = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        xb, yb = min(int(np.ceil(x1)) + 1, self.w), min(int(np.ceil(y1)) + 1, self.h)
        if xa >= xb or ya >= yb:
            return None
        ys, xs = np.mgrid[ya:yb, xa:xb].astype(np.float32)
        return ya, yb, xa, xb, xs + 0.5, ys + 0.5

    def _blend(self, win, alpha, colour):
        ya, yb, xa, xb = win[:4]
        a = np.clip(alpha, 0.0, 1.0)[..., None]
        region = self.img[ya:yb, xa:xb]
        region += a * (np.asarray(colour, np.float32) - region)

    def ellipse(self, cx, cy, rx, ry, colour, angle=0.0):
        r = max(rx, ry)
        win = self._window(cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1)
        if win is None:
            return
        dx, dy = win[4] - cx, win[5] - cy
        if angle:
            c, s = np.cos(angle), np.sin(angle)
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        d = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
        self._blend(win, (1.0 - d) * min(rx, ry) + 0.5, colour)

    def capsule(self, p0, p1, width, colour):
        (x0, y0), (x1, y1) = p0, p1
        r = width / 2
        win = self._window(min(x0, x1) - r - 1, min(y0, y1) - r - 1, max(x0, x1) + r + 1, max(y0, y1) + r + 1)
        if win is None:
            return
        vx, vy = x1 - x0, y1 - y0
        L2 = vx * vx + vy * vy + 1e-9
        t = np.clip(((win[4] - x0) * vx + (win[5] - y0) * vy) / L2, 0, 1)
        d = np.hypot(win[4] - (x0 + t * vx), win[5] - (y0 + t * vy))
        self._blend(win, r - d + 0.5, colour)

    def arc(self, cx, cy, r_in, r_out, centre_angle, half_span, colour):
        win = self._window(cx - r_out - 1, cy - r_out - 1, cx + r_out + 1, cy + r_out + 1)
        if win is None:
            return
        dx, dy = win[4] - cx, win[5] - cy
        rad = np.hypot(dx, dy)
        ang = np.arctan2(dx, -dy)  # 0 = up, clockwise
        diff = np.abs((ang - centre_angle + np.pi) % (2 * np.pi) - np.pi)
        alpha = np.minimum(np.minimum(rad - r_in + 0.5, r_out - rad + 0.5), (half_span - diff) * rad + 0.5)
        self._blend(win, alpha, colour)


def draw_hand(cv: Canvas, x, y, r, shape, angle_deg, colour, mirror=False):
    a = np.deg2rad(-angle_deg if mirror else angle_deg)
    dark = tuple(c * 0.78 for c in colour)

    def finger(off_deg, length, width):
        t = a + np.deg2rad(-off_deg if mirror else off_deg)
        start = (x + 0.45 * r * np.sin(t), y - 0.45 * r * np.cos(t))
        end = (x + length * r * np.sin(t), y - length * r * np.cos(t))
        cv.capsule(start, end, width * r, colour)

    if shape == "c":
        cv.arc(x, y, 0.55 * r, 1.05 * r, a + np.pi / 2 * (-1 if mirror else 1), 2.0, colour)
        return
    if shape == "fist":
        cv.ellipse(x, y, 0.85 * r, 0.85 * r, dark)
        cv.ellipse(x, y, 0.7 * r, 0.7 * r, colour)
        return
    cv.ellipse(x, y, 0.68 * r, 0.75 * r, colour, angle=a)
    if shape == "flat":
        cv.capsule((x, y), (x + 1.5 * r * np.sin(a), y - 1.5 * r * np.cos(a)), 1.15 * r, colour)
    elif shape == "spread":
        for off in (-75, -35, -10, 15, 40):
            finger(off, 1.55, 0.32)
    elif shape == "point":
        finger(0, 1.9, 0.38)
    elif shape == "v":
        finger(-20, 1.75, 0.34)
        finger(20, 1.75, 0.34)
    elif shape == "y":
        finger(-80, 1.45, 0.36)
        finger(60, 1.5, 0.34)
    elif shape == "o":
        cx, cy = x + 0.75 * r * np.sin(a), y - 0.75 * r * np.cos(a)
        cv.arc(cx, cy, 0.38 * r, 0.72 * r, 0.0, np.pi, colour)
    elif shape == "l":
        finger(0, 1.9, 0.36)
        finger(-88, 1.35, 0.36)
    elif shape == "w":
        for off in (-28, 0, 28):
            finger(off, 1.7, 0.3)
    elif shape == "bent":
        knuckle = (x + 1.1 * r * np.sin(a), y - 1.1 * r * np.cos(a))
        t = a + np.deg2rad(-95 if mirror else 95)
        cv.capsule((x, y), knuckle, 1.0 * r, colour)
        cv.capsule(knuckle, (knuckle[0] + 0.8 * r * np.sin(t), knuckle[1] - 0.8 * r * np.cos(t)), 0.9 * r, dark)


def draw_arms(cv: Canvas, hands, shoulders, to_px, scale: float, arm_w: float, sleeve) -> None:
    """Both sleeves, shoulder -> elbow -> hand (dominant hand from the left shoulder), in pixels via ``to_px``."""
    for hand, sh, side in ((hands[0], shoulders[0], -1), (hands[1], shoulders[1], 1)):
        s_px, h_px = to_px(sh), to_px(hand)
        elbow = ((s_px[0] + h_px[0]) / 2 + side * 0.09 * scale, max(s_px[1], h_px[1]) + 0.06 * scale)
        cv.capsule(s_px, elbow, arm_w, sleeve)
        cv.capsule(elbow, h_px, arm_w * 0.85, sleeve)
