"""Where the hands are in each frame of a signed sentence: movement paths, transitions and holds between signs,
and the per-frame pose targets (hand positions, shapes, finger direction) that pretraining learns from."""
from __future__ import annotations

import numpy as np

from slsdk.data.synthetic.lexicon import EXT_LOCATIONS, EXT_SHAPES, REST, SHAPES, SignerSpec, SignSpec


def _movement(kind: str, u: np.ndarray, amp: float) -> np.ndarray:
    tau = 2 * np.pi * u
    if kind == "static":
        return np.zeros((len(u), 2))
    if kind == "circle":
        return np.stack([amp * np.sin(tau), -amp * (1 - np.cos(tau)) / 1.0 + amp], 1) * 0.9
    if kind == "updown":
        return np.stack([np.zeros_like(u), amp * 1.3 * np.sin(tau)], 1)
    if kind == "side":
        return np.stack([amp * 1.4 * np.sin(tau), np.zeros_like(u)], 1)
    if kind == "diagonal":
        return np.stack([amp * np.sin(tau), -amp * np.sin(tau)], 1) * 1.3
    if kind == "tap":
        return np.stack([np.zeros_like(u), -amp * 0.9 * np.abs(np.sin(2 * tau))], 1)
    if kind == "arc":
        return np.stack([-amp * 1.3 * np.cos(np.pi * u), -amp * 1.2 * np.sin(np.pi * u)], 1)
    if kind == "zigzag":
        return np.stack([amp * 1.4 * (2 * u - 1), amp * 0.7 * np.sin(3 * tau)], 1)
    raise ValueError(f"unknown movement {kind!r}")


def sign_timeline(signs: list[SignSpec], signer: SignerSpec, rng: np.random.Generator, coarticulation: float = 0.0,
              duration: float = 1.0):
    """Per-frame poses: (dom_xy, nd_xy, dom_shape, nd_shape, angle, nd_visible) and gloss segments.

    ``coarticulation`` in [0, 1]: shorter transitions, the next handshape formed earlier in the transition,
    and each sign's place pulled towards the previous sign's (0 = the default data set's timeline).
    ``duration`` scales every hold, transition and sign (1 = the default data set's signing rate; the
    random draws are the same whatever it is).
    """
    dur = float(duration)
    co = float(coarticulation)
    switch = 0.5 - 0.35 * co  # fraction of a transition after which the next handshape shows
    amp = 0.07
    dom, nd, shapes, nd_shapes, angles, segments = [], [], [], [], [], []
    cur_dom, cur_nd, cur_shape, cur_angle = np.array(REST[0]), np.array(REST[1]), "flat", 180.0
    cur_nd_shape = "flat"

    def hold(n):
        for _ in range(n):
            dom.append(cur_dom.copy()); nd.append(cur_nd.copy())
            shapes.append(cur_shape); nd_shapes.append(cur_nd_shape); angles.append(cur_angle)

    def move_to(tgt_dom, tgt_nd, shape, nd_shape, angle, n):
        nonlocal cur_dom, cur_nd, cur_shape, cur_angle, cur_nd_shape
        for k in range(1, n + 1):
            w = k / (n + 1)
            w = w * w * (3 - 2 * w)  # smoothstep
            dom.append(cur_dom + w * (tgt_dom - cur_dom)); nd.append(cur_nd + w * (tgt_nd - cur_nd))
            late = k > (n // 2 if not co else n * switch)
            shapes.append(shape if late else cur_shape)
            nd_shapes.append(nd_shape if late else cur_nd_shape)
            angles.append(cur_angle + w * (angle - cur_angle))
        cur_dom, cur_nd, cur_shape, cur_angle, cur_nd_shape = tgt_dom, tgt_nd, shape, angle, nd_shape

    def frames(base):
        return max(3, int(round(dur * base / signer.speed * rng.uniform(0.9, 1.12))))

    def transition():
        n = frames(3)
        return max(2, int(round(n * (1 - 0.4 * co)))) if co else n

    def rest():
        return int(round(int(rng.integers(2, 5)) * dur))

    hold(rest())
    prev_loc = None
    for sign in signs:
        loc = np.array(EXT_LOCATIONS[sign.location]) + rng.normal(0, 0.008, 2)
        if co and prev_loc is not None:
            loc = loc + 0.15 * co * (prev_loc - loc)
        prev_loc = loc
        path = _movement(sign.movement, np.linspace(0, 1, frames(sign.frames)), amp)
        start_dom = loc + path[0]
        if sign.two_handed:
            start_nd = np.array([1 - start_dom[0], start_dom[1]])
            nd_shape = sign.shape
        else:
            start_nd, nd_shape = np.array(REST[1]), "flat"
        move_to(start_dom, start_nd, sign.shape, nd_shape, sign.angle, transition())
        seg_start = len(dom)
        for p in path:
            cur_dom = loc + p
            if sign.two_handed:
                cur_nd = np.array([1 - cur_dom[0], cur_dom[1]])
            dom.append(cur_dom.copy()); nd.append(cur_nd.copy())
            shapes.append(sign.shape); nd_shapes.append(nd_shape); angles.append(sign.angle)
        segments.append((sign.name, seg_start, len(dom)))
    move_to(np.array(REST[0]), np.array(REST[1]), "flat", "flat", 180.0, frames(3))
    hold(rest())
    return dom, nd, shapes, nd_shapes, angles, segments


POSE_SHAPES = ("flat",) + tuple(s for s in SHAPES if s != "flat")
EXT_POSE_SHAPES = POSE_SHAPES + tuple(s for s in EXT_SHAPES if s not in POSE_SHAPES)  # extended lexicons


def pose_shapes(lexicon) -> tuple[str, ...]:
    """The shape classes a lexicon's pose targets use: ``POSE_SHAPES``, or ``EXT_POSE_SHAPES`` if it needs them."""
    return POSE_SHAPES if all(s.shape in POSE_SHAPES for s in lexicon) else EXT_POSE_SHAPES


def pose_array(dom, nd, shapes, nd_shapes, angles, image_xy) -> np.ndarray:
    """Per-frame pose ``float32 [T, 12]``: dominant xy, other hand xy (body units), shape ids (``POSE_SHAPES``),
    sin/cos of the finger direction, both hands' image positions (fractions of the image size)."""
    ids = {s: i for i, s in enumerate(EXT_POSE_SHAPES)}
    a = np.deg2rad(np.asarray(angles, np.float64))
    return np.concatenate([np.asarray(dom), np.asarray(nd), np.array([[ids[x], ids[y]] for x, y in
                           zip(shapes, nd_shapes)]), np.sin(a)[:, None], np.cos(a)[:, None],
                           np.asarray(image_xy)], 1).astype(np.float32)
