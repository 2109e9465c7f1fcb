"""Phone-framed clips (the Isharah preset): portrait frames, an off-centre signer, hand-held shake, motion blur and
lighting drift; the renderer's stand-in hand landmarks, and the runtime's signing-space crop of a rendered clip."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slsdk.data.synthetic.canvas import Canvas, draw_arms, draw_hand
from slsdk.data.synthetic.landmarks import renderer_hand_landmarks, true_pose86_frame
from slsdk.data.synthetic.lexicon import SignerSpec, SignSpec, lookup_signs, make_lexicon, make_signer
from slsdk.data.synthetic.render import draw_static_layer
from slsdk.data.synthetic.timeline import pose_array, sign_timeline
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.hand_tracker import HandCropper
from slsdk.runtime.landmarker import Hand


# ------------------------------------------------------------------------------------- phone framing
@dataclass(frozen=True)
class PhoneFraming:
    """Phone-style capture for :func:`render_phone_sentence` (the Isharah preset).

    Portrait ``width`` x ``height`` frames; per video the signer's body scale (fraction of the width), the
    body centre (fraction of the width) and the head top (fraction of the height) are drawn from the ranges,
    so the signer is off-centre and at varying size. Hand-held shake is a smooth random walk of std
    ``shake`` (fraction of the width) plus rare jolts (``jolt_p`` per frame); ``blur`` averages the frame
    along the camera's motion (motion blur); lighting drifts by ``lighting`` (relative gain, slow sine), has a
    colour cast, and switches by up to 25 % within a video with probability ``light_switch_p``.
    """

    width: int = 144
    height: int = 256
    scale: tuple = (0.7, 1.15)
    centre_x: tuple = (0.32, 0.68)
    top_y: tuple = (0.1, 0.3)
    shake: float = 0.012
    jolt_p: float = 0.02
    blur: bool = True
    lighting: float = 0.12
    light_switch_p: float = 0.3
    noise: float = 4.0

    def __post_init__(self):
        if self.width < 16 or self.height < 16:
            raise ValueError(f"PhoneFraming frames must be at least 16x16, got {self.width}x{self.height}")
        for name in ("scale", "centre_x", "top_y"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"PhoneFraming.{name} must be a range 0 < lo <= hi, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))

    @classmethod
    def from_dict(cls, d: dict) -> "PhoneFraming":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown PhoneFraming keys: {sorted(unknown)}")
        return cls(**d)


def render_phone_sentence(glosses, signer: SignerSpec | int = 0, rng: np.random.Generator | int | None = None, *,
                          lexicon: list[SignSpec] | None = None, framing: PhoneFraming | None = None,
                          coarticulation: float = 0.6, return_segments: bool = False, duration: float = 1.0,
                          return_poses: bool = False, return_landmarks: bool = False):
    """Render one phone-framed signing video (``duration``: as :func:`render_sentence`'s).

    Returns ``(frames uint8 [T, H, W, 3], hands)`` where ``hands[t]`` lists ``(landmarks float32 [21, 3],
    handedness)`` for each hand whose centre is inside frame ``t`` (the renderer's own hand positions, which
    stand in for a hand detector), plus ``[(gloss, start, end)]`` with ``return_segments`` and the per-frame
    poses (as :func:`render_sentence`'s, image positions as fractions of the portrait frame) with ``return_poses``,
    and last, with ``return_landmarks``, the signer's true pose in the 86-point layout ``float32 [T, 86, 2]`` (frame
    pixels, nothing missing: :func:`slsdk.data.synthetic.landmarks.true_pose86_frame`).
    """
    framing = framing or PhoneFraming()
    lexicon = lexicon if lexicon is not None else make_lexicon()
    signs = lookup_signs(glosses, lexicon)
    if isinstance(signer, (int, np.integer)):
        signer = make_signer(int(signer))
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    w, h = framing.width, framing.height
    t_len_guess = None  # noqa: F841 - the timeline decides the length
    sc = signer.scale * w * rng.uniform(*framing.scale)
    pad = int(np.ceil(6 * framing.shake * w)) + 2
    ox = pad + rng.uniform(*framing.centre_x) * w
    oy = pad + rng.uniform(*framing.top_y) * h - 0.06 * sc

    def to_px(p):
        return (ox + (p[0] - 0.5) * sc, oy + p[1] * sc)

    base = draw_static_layer(signer, h + 2 * pad, to_px, rng, width=w + 2 * pad, sc=sc)
    dom, nd, shapes, nd_shapes, angles, segments = sign_timeline(signs, signer, rng, coarticulation, duration)
    n = len(dom)
    # hand-held camera: AR(1) walk in pixels + rare jolts, clipped to the padding
    walk = np.zeros((n, 2))
    for i in range(1, n):
        walk[i] = 0.85 * walk[i - 1] + rng.normal(0, framing.shake * w * 0.55, 2)
        if rng.random() < framing.jolt_p:
            walk[i] += rng.normal(0, 3 * framing.shake * w, 2)
    offs = np.clip(np.round(walk), -pad + 1, pad - 1).astype(int)
    # lighting: slow drift, colour cast, maybe a switch
    tt = np.arange(n)
    gain = rng.uniform(0.85, 1.1) * (1 + framing.lighting * np.sin(2 * np.pi * tt / rng.uniform(40, 120)
                                                                   + rng.uniform(0, 2 * np.pi)))
    if rng.random() < framing.light_switch_p:
        gain = gain * np.where(tt >= rng.integers(0, max(n, 1)), rng.uniform(0.75, 1.25), 1.0)
    cast = (1 + rng.normal(0, 0.05, 3)).astype(np.float32)
    bank = (rng.normal(0, framing.noise, (4, h, w, 3)).astype(np.float32) if framing.noise > 0 else None)
    noise_idx = rng.integers(0, 4, n)
    r = 0.062 * sc
    arm_w = 0.085 * sc
    sleeve = tuple(c * 0.72 for c in signer.clothing)
    shoulders = ((0.31, 0.49), (0.69, 0.49))
    out = np.empty((n, h, w, 3), np.uint8)
    hands: list[list[tuple[np.ndarray, str]]] = []
    image_xy = np.empty((n, 4), np.float32)
    prev = offs[0]
    true = np.zeros((n, 86, 2), np.float32) if return_landmarks else None
    for i in range(n):
        img = base.copy()
        cv = Canvas(img)
        draw_arms(cv, (dom[i], nd[i]), shoulders, to_px, sc, arm_w, sleeve)
        nd_angle = angles[i] if nd_shapes[i] != "flat" or angles[i] != 180 else 180
        draw_hand(cv, *to_px(nd[i]), r, nd_shapes[i], nd_angle, signer.skin, mirror=True)
        draw_hand(cv, *to_px(dom[i]), r, shapes[i], angles[i], signer.skin)
        dx, dy = offs[i]
        steps = int(max(abs(dx - prev[0]), abs(dy - prev[1]))) if framing.blur else 0
        if steps >= 2:  # motion blur: average the windows along the camera's path this frame
            path = np.round(np.linspace(prev, offs[i], min(steps, 5) + 1)).astype(int)
            frame = sum(img[pad + y:pad + y + h, pad + x:pad + x + w] for x, y in path) / len(path)
        else:
            frame = img[pad + dy:pad + dy + h, pad + dx:pad + dx + w].copy()
        prev = offs[i]
        frame *= np.float32(gain[i]) * cast
        if bank is not None:
            frame += bank[noise_idx[i]]
        np.clip(frame, 0, 255, out=frame)
        out[i] = frame.astype(np.uint8)
        seen = []
        for k, (pos, ang, mirror, label) in enumerate(((dom[i], angles[i], False, "Right"),
                                                       (nd[i], nd_angle, True, "Left"))):
            x, y = to_px(pos)
            x, y = x - pad - dx, y - pad - dy
            image_xy[i, 2 * k:2 * k + 2] = x / w, y / h
            if 0 <= x < w and 0 <= y < h:
                seen.append((renderer_hand_landmarks(x, y, r, ang, mirror), label))
        hands.append(seen)
        if true is not None:
            true[i] = true_pose86_frame(to_px, sc, r, dom[i], nd[i], angles[i], nd_angle, (pad + dx, pad + dy),
                                        shapes[i], nd_shapes[i])
    extra = ((segments,) if return_segments else ()) + \
        ((pose_array(dom, nd, shapes, nd_shapes, angles, image_xy),) if return_poses else ()) + \
        ((true,) if true is not None else ())
    return (out, hands, *extra)


def poses_in_crops(poses: np.ndarray, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Poses of a portrait clip (:func:`render_phone_sentence`) -> the same poses with the hands' image positions
    as fractions of each frame's crop box (``boxes`` from :func:`renderer_crop`)."""
    out = np.array(poses, np.float32, copy=True)
    b = np.asarray(boxes, np.float32)
    side_x, side_y = (b[:, 2] - b[:, 0])[:, None], (b[:, 3] - b[:, 1])[:, None]
    out[:, [8, 10]] = (out[:, [8, 10]] * width - b[:, [0]]) / side_x
    out[:, [9, 11]] = (out[:, [9, 11]] * height - b[:, [1]]) / side_y
    return out


def renderer_crop(frames: np.ndarray, hands: list, size: int, fps: float = 25.0, config=None):
    """Signing-space crops ``uint8 [T, size, size, 3]`` and boxes ``int [T, 4]`` of a rendered clip.

    The runtime's :class:`slsdk.runtime.hand_tracker.HandCropper` does the cropping (box rule, smoothing, hold and
    fallback); only its hand source is replaced by the renderer's hand positions (MediaPipe does not find
    drawn hands).
    """
    class _RendererHands(HandCropper):
        def __init__(self, per_frame, cfg, size):
            super().__init__(CropConfig.from_dict({**cfg.to_dict(), "policy": "full"}), size=size)
            self.config, self._per_frame, self._i = cfg, per_frame, 0   # the hands rule, hands given

        def reset(self):
            super().reset()
            self._i = 0

        def detect(self, frame, timestamp_ms):
            found = self._per_frame[self._i] if self._i < len(self._per_frame) else []
            self._i += 1
            return [Hand(lm, label, 1.0) for lm, label in found]

    cfg = config if config is not None else CropConfig()
    if cfg.policy != "hands":
        raise ValueError(f"renderer_crop needs a 'hands' crop policy, got {cfg.policy!r}")
    cropper = _RendererHands(hands, cfg, size)
    try:
        crops, stats = cropper.crop_video(frames, fps, size=size)
    finally:
        cropper.close()
    return crops, np.asarray(stats.boxes, np.int32).reshape(-1, 4)
