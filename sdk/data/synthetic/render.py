"""Rendering a signed sentence as a square video: the signer's static layer (background, body, head) and the
arms and hands of each frame."""
from __future__ import annotations

import numpy as np

from slsdk.data.synthetic.canvas import Canvas, draw_arms, draw_hand
from slsdk.data.synthetic.landmarks import true_pose86_frame
from slsdk.data.synthetic.lexicon import SignerSpec, SignSpec, lookup_signs, make_lexicon, make_signer
from slsdk.data.synthetic.timeline import pose_array, sign_timeline


def draw_static_layer(signer: SignerSpec, size: int, to_px, rng, *, width: int | None = None,
                  sc: float | None = None) -> np.ndarray:
    """Background, body and head: ``float32 [size, width or size, 3]``; ``sc`` is the body scale in pixels."""
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    top, bottom = np.asarray(signer.bg_top, np.float32), np.asarray(signer.bg_bottom, np.float32)
    img = np.broadcast_to(top + t * (bottom - top), (size, width or size, 3)).copy()
    cv = Canvas(img)
    sc = signer.scale * size if sc is None else sc
    # a background object (door/shelf) for clutter
    bx = to_px((0.05 if signer.id < "04" else 0.85, 0.25))
    cv.capsule((bx[0], bx[1]), (bx[0], bx[1] + 0.5 * sc), 0.12 * sc, tuple(c * 0.8 for c in signer.bg_bottom))
    cx, cy = to_px((0.5, 0.95))
    cv.ellipse(cx, cy, 0.34 * sc, 0.52 * sc, signer.clothing)  # torso
    nx0, ny0 = to_px((0.5, 0.33))
    nx1, ny1 = to_px((0.5, 0.47))
    cv.capsule((nx0, ny0), (nx1, ny1), 0.13 * sc, signer.skin)  # neck
    hx, hy = to_px((0.5, 0.22))
    cv.ellipse(hx, hy - 0.03 * sc, 0.135 * sc, 0.14 * sc, signer.hair)  # hair
    cv.ellipse(hx, hy, 0.115 * sc, 0.14 * sc, signer.skin)  # face
    for ex in (-0.045, 0.045):
        cv.ellipse(hx + ex * sc, hy - 0.01 * sc, 0.014 * sc, 0.012 * sc, (25, 20, 20))
    cv.capsule((hx - 0.03 * sc, hy + 0.07 * sc), (hx + 0.03 * sc, hy + 0.07 * sc), 0.012 * sc, (120, 50, 50))
    return img


def render_sentence(glosses, signer: SignerSpec | int = 0, rng: np.random.Generator | int | None = None, *,
                    lexicon: list[SignSpec] | None = None, image_size: int = 96, noise: float = 3.0,
                    return_segments: bool = False, return_poses: bool = False, coarticulation: float = 0.0,
                    duration: float = 1.0, return_landmarks: bool = False):
    """Render one signing video: ``uint8 [T, S, S, 3]`` (and ``[(gloss, start, end)]`` if asked).

    ``duration`` scales the length of every hold, transition and sign (1 = the default signing rate).

    ``return_poses``: also return the per-frame hand poses (``float32 [T, 12]``, see ``pose_array``) that
    :func:`slsdk.train.pretrain.pretrain_backbone` learns from. ``return_landmarks``: last, the signer's true pose
    in the 86-point layout ``float32 [T, 86, 2]`` (pixels; :func:`slsdk.data.synthetic.landmarks.true_pose86_frame`).

    ``glosses``: names or indices into ``lexicon`` (default: ``make_lexicon()``, the default data
    set's signs); ``signer``: a ``SignerSpec`` or an index for ``make_signer(index)``.
    """
    lexicon = lexicon if lexicon is not None else make_lexicon()
    signs = lookup_signs(glosses, lexicon, "render_sentence")
    if isinstance(signer, (int, np.integer)):
        signer = make_signer(int(signer))
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    size = int(image_size)
    sc = signer.scale * size
    jitter = rng.normal(0, 0.008, 2)
    ox = (0.5 + signer.offset[0] + jitter[0]) * size
    oy = (0.06 + signer.offset[1] + jitter[1]) * size

    def to_px(p):
        return (ox + (p[0] - 0.5) * sc, oy + p[1] * sc)

    base = draw_static_layer(signer, size, to_px, rng)
    gain = np.float32(rng.uniform(0.92, 1.08))
    bank = rng.normal(0, noise, (4, size, size, 3)).astype(np.float32) if noise > 0 else None
    dom, nd, shapes, nd_shapes, angles, segments = sign_timeline(signs, signer, rng, coarticulation, duration)
    r = 0.062 * sc
    arm_w = 0.085 * sc
    sleeve = tuple(c * 0.72 for c in signer.clothing)
    out = np.empty((len(dom), size, size, 3), np.uint8)
    shoulders = ((0.31, 0.49), (0.69, 0.49))
    noise_idx = rng.integers(0, 4, len(dom))
    true = np.zeros((len(dom), 86, 2), np.float32) if return_landmarks else None
    for i in range(len(dom)):
        img = base.copy()
        cv = Canvas(img)
        draw_arms(cv, (dom[i], nd[i]), shoulders, to_px, sc, arm_w, sleeve)
        draw_hand(cv, *to_px(nd[i]), r, nd_shapes[i], angles[i] if nd_shapes[i] != "flat" or angles[i] != 180 else 180,
              signer.skin, mirror=True)
        draw_hand(cv, *to_px(dom[i]), r, shapes[i], angles[i], signer.skin)
        img *= gain
        if bank is not None:
            img += bank[noise_idx[i]]
        np.clip(img, 0, 255, out=img)
        out[i] = img.astype(np.uint8)
        if true is not None:
            nd_angle = angles[i] if nd_shapes[i] != "flat" or angles[i] != 180 else 180
            true[i] = true_pose86_frame(to_px, sc, r, dom[i], nd[i], angles[i], nd_angle, (0.0, 0.0), shapes[i],
                                        nd_shapes[i])
    if return_poses:
        px = np.array([[*to_px(a), *to_px(b)] for a, b in zip(dom, nd)], np.float32) / size
        poses = pose_array(dom, nd, shapes, nd_shapes, angles, px)
    extra = ((segments,) if return_segments else ()) + ((poses,) if return_poses else ()) + \
        ((true,) if true is not None else ())
    return (out, *extra) if extra else out
