"""The synthetic signer's true pose in the 86-point layout (:data:`slsdk.landmarks.POSE86`), and what MediaPipe
would make of it.

The renderer knows where it drew everything: :func:`true_pose86` places, per frame, both hands (the renderer's
21-point stand-in hand landmarks, :func:`renderer_hand_landmarks`), 19 outer-lip points
on the drawn mouth (:data:`LIPS_TEMPLATE`) and MediaPipe Pose points 0-24 on the drawn head, shoulders, elbows,
wrists, hands and hips, in frame pixels. Left and right are the signer's, as in Holistic: the dominant hand, drawn
from the shoulder on the image's left, is the right hand.

:func:`observe_pose86` adds what MediaPipe Tasks shows on real clips (:data:`MEDIAPIPE_NOISE`, measured with
slsdk's own extractor, :class:`slsdk.runtime.pose86_landmarks.Pose86Landmarker`): a part outside the frame is
missing (zeros, as the kit has it), a hand in view is dropped in some frames, and every found point jitters.
"""
from __future__ import annotations

import numpy as np

from slsdk.landmarks import LIPS_FACEMESH, NUM_POINTS, PARTS, POSE86

__all__ = ["renderer_hand_landmarks", "MEDIAPIPE_NOISE", "LIPS_TEMPLATE", "true_pose86_frame", "observe_pose86",
           "part_scale"]

# hand landmark template in hand units (x across the palm, y along the fingers), MediaPipe's 21-point order:
# wrist, thumb 1-4, then index, middle, ring and pinky (MCP, PIP, DIP, tip)
_HAND_TEMPLATE = np.array([(0.0, -1.0), (-0.45, -0.6), (-0.75, -0.2), (-0.95, 0.15), (-1.05, 0.45)]
                          + [(x, y) for x in (-0.45, -0.15, 0.15, 0.45) for y in (0.3, 0.8, 1.15, 1.45)],
                          np.float32)


# the fingers (index, middle, ring, pinky) and the thumb each drawn hand shape extends (canvas.draw_hand); the others
# are curled: their PIP, DIP and tip pulled back over the palm
_EXTENDED = {"flat": (1, 1, 1, 1, 1), "spread": (1, 1, 1, 1, 1), "point": (1, 0, 0, 0, 0), "v": (1, 1, 0, 0, 0),
             "y": (0, 0, 0, 1, 1), "o": (0, 0, 0, 0, 0), "l": (1, 0, 0, 0, 1), "w": (1, 1, 1, 0, 0),
             "bent": (0, 0, 0, 0, 0), "c": (0, 0, 0, 0, 1), "fist": (0, 0, 0, 0, 0)}
_CURLED = {"fist": (0.45, 0.2, 0.05), "bent": (0.8, 0.9, 0.75), "c": (0.7, 0.95, 1.0), "o": (0.6, 0.55, 0.4)}
_FOLDED = {"o": ((-0.4, 0.15), (-0.1, 0.45))}     # thumb (IP, tip) folded: over the palm, or to the fingertips (o)


def _hand_template(shape: str | None) -> np.ndarray:
    t = _HAND_TEMPLATE.copy()
    ext = _EXTENDED.get(shape) if shape is not None else None
    if ext is None:
        return t
    curled = _CURLED.get(shape, _CURLED["fist"])    # PIP, DIP, tip along the fingers
    for f in range(4):
        if not ext[f]:
            t[6 + 4 * f:9 + 4 * f, 1] = curled
    if not ext[4]:
        t[3:5] = _FOLDED.get(shape, ((-0.55, 0.0), (-0.3, 0.2)))
    if shape == "spread":                          # fingers spread (the knuckles stay)
        fingers = [i for i in range(5, 21) if (i - 5) % 4]
        t[fingers, 0] *= 1.4
    return t


def renderer_hand_landmarks(x: float, y: float, r: float, angle_deg: float, mirror: bool = False,
                            shape: str | None = None) -> np.ndarray:
    """``float32 [21, 3]`` stand-in landmarks (MediaPipe layout, frame pixels) of a drawn hand at (x, y); with
    ``shape`` (a drawn hand shape) the fingers it does not extend are curled."""
    a = np.deg2rad(-angle_deg if mirror else angle_deg)
    template = _hand_template(shape)
    tx = template[:, 0] * (-1 if mirror else 1)
    ty = template[:, 1]
    along = np.array([np.sin(a), -np.cos(a)], np.float32)   # finger direction (0 deg = up)
    across = np.array([np.cos(a), np.sin(a)], np.float32)
    xy = np.array([x, y], np.float32) + r * (tx[:, None] * across + ty[:, None] * along)
    return np.concatenate([xy, np.zeros((21, 1), np.float32)], 1).astype(np.float32)


# Per part: ``drop`` = the probability that MediaPipe misses the part in a frame although it is in view, ``jitter`` =
# the standard deviation of each point's frame-to-frame noise as a fraction of the part's size (hands: wrist to
# middle-finger MCP; lips: mouth width; body: shoulder width).
# Measured with Pose86Landmarker (HandLandmarker from shared/models/hand_landmarker.task, PoseLandmarker built from
# the mediapipe 0.10.14 wheel, FaceLandmarker from shared/models/face_landmarker.task) on the real webcam clip
# shared/data/hands/webcam_gestures.mp4 (58 frames, 540x720, one hand signing): ``drop`` = frames where the part is
# missing although found within 3 frames before and after / such frames (right hand 6/25; lips 0/56; body 0/56);
# ``jitter`` = 1.4826 * median |x_t - (x_{t-1} + x_{t+1}) / 2| * sqrt(2/3) over points and frames found three in a row
# (white noise of that sigma gives that median), divided by the part's median size: right hand 8.38 px / 107.0 px,
# lips 1.34 / 177.4, body 0.93 / 288.1. The hand figure includes some of the hand's real motion (the median
# discounts most of it); MediaPipe Holistic's own recording shared/data/pose/pose_repo/holistic_full_example.pose
# gives hands 0.023-0.031, lips 0.0040, body 0.0005 and hand drops 4/88 by the same measure. The left hand was
# found in 1 frame of the clip (too few for a figure): it takes the right hand's.
MEDIAPIPE_NOISE = {
    "right_hand": {"drop": 0.24, "jitter": 0.078},
    "left_hand": {"drop": 0.24, "jitter": 0.078},
    "lips": {"drop": 0.0, "jitter": 0.0075},
    "body": {"drop": 0.0, "jitter": 0.0032},
}


def _lips_template() -> np.ndarray:
    """The 19 outer-lip points (:data:`LIPS_FACEMESH` order) in mouth widths around the mouth's centre: FaceMesh's
    outer contour, upper lip 61-185-40-39-37-0-267-269-270-(409)-291 and lower lip 61-146-91-181-84-17-314-405-321-
    375-291, evenly spaced from the image-left corner (61) to the right one (291); the upper lip rises 0.18 mouth
    widths with a dip at 0, the lower lip falls 0.22."""
    upper = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
    lower = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
    where: dict[int, tuple[float, float]] = {}
    for k, i in enumerate(upper):
        t = k / 10
        where[i] = (t - 0.5, -0.18 * np.sin(np.pi * t) * (0.8 if i == 0 else 1.0))
    for k, i in enumerate(lower):
        t = k / 10
        where.setdefault(i, (t - 0.5, 0.22 * np.sin(np.pi * t)))
    return np.array([where[i] for i in LIPS_FACEMESH], np.float32)


LIPS_TEMPLATE = _lips_template()


def true_pose86_frame(to_px, sc: float, r: float, dom, nd, angle: float, nd_angle: float,
                      shift=(0.0, 0.0), shape: str | None = None, nd_shape: str | None = None) -> np.ndarray:
    """One frame's ``[86, 2]`` pixel keypoints of the drawn signer: ``to_px`` maps body units to the canvas's
    pixels, ``sc`` is the body scale in pixels, ``r`` the hand radius, ``dom`` / ``nd`` the hands' positions (body
    units), ``angle`` / ``nd_angle`` their finger directions and ``shape`` / ``nd_shape`` their shapes, ``shift`` is subtracted (the camera's offset of a
    phone frame inside its canvas). Nothing is left out here (see :func:`observe_pose86`)."""
    sx, sy = float(shift[0]), float(shift[1])

    def px(p):
        x, y = to_px(p)
        return np.array([x - sx, y - sy], np.float32)

    right = renderer_hand_landmarks(*px(dom), r, angle, shape=shape)[:, :2]
    left = renderer_hand_landmarks(*px(nd), r, nd_angle, mirror=True, shape=nd_shape)[:, :2]
    head = px((0.5, 0.22))

    def at(dx, dy):       # a point on the head, offsets in body units
        return head + np.array([dx, dy], np.float32) * sc

    sh_r, sh_l = px((0.31, 0.49)), px((0.69, 0.49))

    def elbow(sh, hand, side):   # as draw_arms places it
        return np.array([(sh[0] + hand[0]) / 2 + side * 0.09 * sc, max(sh[1], hand[1]) + 0.06 * sc], np.float32)

    wr_r, wr_l = px(dom), px(nd)
    body = np.stack([
        at(0, 0.035),                                               # 0 nose
        at(0.03, -0.01), at(0.045, -0.01), at(0.06, -0.01),         # 1-3 left eye inner, eye, outer
        at(-0.03, -0.01), at(-0.045, -0.01), at(-0.06, -0.01),      # 4-6 right eye
        at(0.115, 0.0), at(-0.115, 0.0),                            # 7 left ear, 8 right ear
        at(0.03, 0.07), at(-0.03, 0.07),                            # 9 mouth left, 10 mouth right
        sh_l, sh_r,                                                 # 11, 12 shoulders
        elbow(sh_l, wr_l, 1), elbow(sh_r, wr_r, -1),                # 13, 14 elbows
        left[0], right[0],                                          # 15, 16 wrists
        left[17], right[17], left[5], right[5], left[2], right[2],  # 17-22 pinky, index, thumb
        px((0.72, 1.3)), px((0.28, 1.3)),                           # 23 left hip, 24 right hip
    ])
    lips = at(0, 0.07) + LIPS_TEMPLATE * np.float32(0.084 * sc)
    out = np.zeros((NUM_POINTS, 2), np.float32)
    out[PARTS["right_hand"].slice], out[PARTS["left_hand"].slice] = right, left
    out[PARTS["lips"].slice], out[PARTS["body"].slice] = lips, body
    return out


def part_scale(keypoints: np.ndarray, part: str) -> np.ndarray:
    """``[T]`` the size :data:`MEDIAPIPE_NOISE` measures jitter against: a hand's wrist to middle-finger MCP, the
    mouth's width, the shoulders' distance (pixels)."""
    x = np.asarray(keypoints)[:, PARTS[part].slice]
    if part.endswith("hand"):
        return np.linalg.norm(x[:, 9] - x[:, 0], axis=1)
    if part == "lips":
        return x[:, :, 0].max(1) - x[:, :, 0].min(1)
    return np.linalg.norm(x[:, 11] - x[:, 12], axis=1)


def observe_pose86(true: np.ndarray, width: int, height: int, rng: np.random.Generator,
                   noise: dict | None = None) -> np.ndarray:
    """``true`` ``[T, 86, 2]`` (pixels of a ``width`` x ``height`` frame) as MediaPipe would give it: a hand whose
    wrist and middle-finger MCP are both outside the frame, lips whose centre is outside, or a body whose shoulders
    are both outside are missing (all zeros); a part in view is dropped with probability ``noise[part]["drop"]``
    per frame, and each found point moves by Gaussian noise of ``noise[part]["jitter"]`` x the part's size.
    ``noise``: :data:`MEDIAPIPE_NOISE` by default."""
    noise = MEDIAPIPE_NOISE if noise is None else noise
    k = np.array(true, np.float32, copy=True)
    T = len(k)

    def inside(p):
        return (p[..., 0] >= 0) & (p[..., 0] < width) & (p[..., 1] >= 0) & (p[..., 1] < height)

    for part in POSE86:
        x = k[:, part.slice]
        if part.name.endswith("hand"):
            seen = inside(x[:, 0]) | inside(x[:, 9])
        elif part.name == "lips":
            seen = inside(x.mean(axis=1))
        else:
            seen = inside(x[:, 11]) | inside(x[:, 12])
        n = noise[part.name]
        found = seen & (rng.random(T) >= float(n["drop"]))
        sigma = float(n["jitter"]) * part_scale(k, part.name)
        x = x + rng.normal(0.0, 1.0, x.shape).astype(np.float32) * sigma[:, None, None].astype(np.float32)
        x[~found] = 0.0
        k[:, part.slice] = x
    return k
