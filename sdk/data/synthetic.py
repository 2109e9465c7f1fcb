"""The embedded default dataset: synthetic continuous signing rendered with numpy only.

Each gloss is a distinct sign = (dominant hand shape, orientation, location relative to head and
torso, movement path, one or two hands). A sentence is 2-6 signs joined by interpolated transitions,
starting and ending at a rest pose. Signers differ in skin, hair and clothing colours, background,
body scale, camera offset and signing speed; every frame gets a little noise, and videos are stored
as H.264 mp4 (so compression artefacts are part of the data too).

Splits follow Isharah: ``train``; ``dev`` (seen signers, seen sentences, unseen signer/sentence
pairs); ``test_si`` (held-out signers, seen sentences); ``test_us`` (seen signers, held-out
sentences). Ids are Isharah-style: 2-digit signer + 4-digit sentence. Everything is deterministic
from ``seed``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from slsdk import fileio
from slsdk.errors import SlsdkError

from .readers import Sample, write_folder_annotations
from .video import write_frames, write_video

GLOSS_NAMES = (
    "HELLO", "THANKS", "HOME", "WATER", "EAT", "WORK", "FRIEND", "SCHOOL", "HELP", "GOOD", "BAD", "TODAY",
    "TOMORROW", "YES", "NO", "WANT", "GO", "COME", "RAIN", "SUN", "BOOK", "CAR", "MOTHER", "FATHER",
    "DOCTOR", "MONEY", "TIME", "NAME", "PLAY", "SLEEP", "DRINK", "LEARN",
)
SHAPES = ("fist", "flat", "spread", "point", "v", "c", "y")
LOCATIONS = {  # body coordinates of the dominant hand (x to the image left = signer's right hand)
    "forehead": (0.42, 0.15), "chin": (0.44, 0.36), "chest": (0.40, 0.56), "belly": (0.40, 0.76),
    "side": (0.16, 0.58), "front": (0.28, 0.42), "shoulder": (0.64, 0.50),
}
MOVEMENTS = ("static", "circle", "updown", "side", "diagonal")
REST = ((0.30, 0.98), (0.70, 0.98))  # dominant, non-dominant rest positions
SKIN = ((241, 194, 165), (224, 172, 135), (198, 134, 96), (161, 102, 68), (120, 76, 50), (250, 214, 190),
        (180, 120, 85), (232, 185, 150))

# The extended sign parameters (lexicons of more than len(GLOSS_NAMES) signs, e.g. the Isharah preset): the
# default lexicon (<= 32 signs) keeps the sets above, so the default data set is unchanged.
EXT_SHAPES = SHAPES + ("o", "l", "w", "bent")
EXT_LOCATIONS = {**LOCATIONS, "cheek": (0.60, 0.24), "ear": (0.29, 0.18), "mouth": (0.48, 0.30),
                 "high": (0.16, 0.12), "hip": (0.63, 0.80)}
EXT_MOVEMENTS = MOVEMENTS + ("tap", "arc", "zigzag")
ANGLES = (-60.0, -30.0, 0.0, 30.0, 60.0, 90.0)
EXTRA_GLOSS_NAMES = (
    "HOUSE", "FOOD", "BREAD", "MILK", "TEA", "COFFEE", "SUGAR", "SALT", "RICE", "MEAT", "FISH", "EGG", "FRUIT",
    "APPLE", "CITY", "VILLAGE", "STREET", "SHOP", "MARKET", "HOSPITAL", "MOSQUE", "BANK", "OFFICE", "ROOM",
    "DOOR", "WINDOW", "TABLE", "CHAIR", "BED", "PHONE", "COMPUTER", "LETTER", "PEN", "PAPER", "TEACHER",
    "STUDENT", "CHILD", "BROTHER", "SISTER", "SON", "DAUGHTER", "FAMILY", "PEOPLE", "MAN", "WOMAN", "BOY",
    "GIRL", "OLD", "NEW", "BIG", "SMALL", "HOT", "COLD", "FAST", "SLOW", "HAPPY", "SAD", "ANGRY", "TIRED",
    "SICK", "HUNGRY", "THIRSTY", "BEAUTIFUL", "EASY", "HARD", "MORNING", "NIGHT", "YESTERDAY", "WEEK", "MONTH",
    "YEAR", "HOUR", "NOW", "LATER", "BEFORE", "AFTER", "ALWAYS", "NEVER", "MAYBE", "WHAT", "WHERE", "WHO",
    "WHY", "HOW", "WHEN", "WHICH", "MANY", "FEW", "ALL", "NOTHING", "ONE", "TWO", "THREE", "FOUR", "FIVE",
    "TEN", "HUNDRED", "BUY", "SELL", "PAY", "GIVE", "TAKE", "OPEN", "CLOSE", "SIT", "STAND", "WALK", "RUN",
    "DRIVE", "FLY", "SWIM", "READ", "WRITE", "SEE", "LOOK", "HEAR", "SAY", "ASK", "ANSWER", "KNOW", "THINK",
    "UNDERSTAND", "FORGET", "REMEMBER", "LIKE", "LOVE", "HATE", "NEED", "CAN", "MUST", "FINISH", "START",
    "WAIT", "MEET", "VISIT", "TRAVEL", "PRAY", "FAST-RAMADAN", "EID", "GIFT", "PARTY", "WEDDING", "BIRTHDAY",
)
_SYLLABLES = tuple(c + v for c in "BDFGHKLMNRSTZ" for v in "AEIOU")


def gloss_names(n: int) -> tuple[str, ...]:
    """``n`` distinct gloss names: the 32 default ones, then common words, then two-syllable pseudo-words."""
    names = list(GLOSS_NAMES) + [w for w in EXTRA_GLOSS_NAMES if w not in GLOSS_NAMES]
    k = 0
    while len(names) < n:
        a, b = divmod(k, len(_SYLLABLES))
        if a >= len(_SYLLABLES):
            raise ValueError(f"at most {len(names)} gloss names are available, asked for {n}")
        names.append(_SYLLABLES[a] + _SYLLABLES[b])
        k += 1
    return tuple(names[:n])


@dataclass(frozen=True)
class SignSpec:
    name: str
    shape: str
    angle: float  # degrees, direction the fingers point (0 = up)
    location: str
    movement: str
    two_handed: bool
    frames: int  # base duration at speed 1


@dataclass(frozen=True)
class SignerSpec:
    id: str
    skin: tuple
    hair: tuple
    clothing: tuple
    bg_top: tuple
    bg_bottom: tuple
    scale: float
    offset: tuple  # (dx, dy) in units of the image size
    speed: float  # > 1 signs faster (fewer frames)


def _hamming(a: tuple, b: tuple) -> int:
    return sum(x != y for x, y in zip(a, b))


def make_lexicon(num_glosses: int = 12, seed: int = 0, *, extended: bool | None = None) -> list[SignSpec]:
    """``num_glosses`` signs whose (shape, location, movement, hands) tuples differ in >= 2 places.

    ``extended`` (default: when ``num_glosses`` > 32) draws from the larger parameter sets (``EXT_*``, with the
    finger direction as a fifth parameter), enough for Isharah-500's 388 glosses and more (see
    :func:`max_glosses`).
    """
    if extended is None:
        extended = num_glosses > len(GLOSS_NAMES)
    if extended:
        return _extended_lexicon(num_glosses, seed)
    if not 1 <= num_glosses <= len(GLOSS_NAMES):
        raise ValueError(f"num_glosses must be in 1..{len(GLOSS_NAMES)}, got {num_glosses}")
    rng = np.random.default_rng([seed, 1])
    combos = [(s, l, m, h) for s in SHAPES for l in LOCATIONS for m in MOVEMENTS for h in (False, True)]
    order = rng.permutation(len(combos))
    chosen: list[tuple] = []
    for min_dist in (3, 2, 1):
        for i in order:
            c = combos[i]
            if c not in chosen and all(_hamming(c, o) >= min_dist for o in chosen):
                # balance: no shape/location used more than ceil(n/len)+1 times
                if sum(o[0] == c[0] for o in chosen) > num_glosses // len(SHAPES) + 1:
                    continue
                if sum(o[1] == c[1] for o in chosen) > num_glosses // len(LOCATIONS) + 1:
                    continue
                chosen.append(c)
            if len(chosen) == num_glosses:
                break
        if len(chosen) == num_glosses:
            break
    lex = []
    for k, (shape, loc, mov, two) in enumerate(chosen):
        angle = float(rng.choice([-60, -30, 0, 30, 60, 90]))
        lex.append(SignSpec(GLOSS_NAMES[k], shape, angle, loc, mov, bool(two), int(rng.integers(5, 8))))
    return lex


MAX_EXTENDED_GLOSSES = 900


def _extended_lexicon(num_glosses: int, seed: int) -> list[SignSpec]:
    """Signs over (shape, location, movement, hands, angle), pairwise different in >= 2 parameters."""
    if not 1 <= num_glosses <= MAX_EXTENDED_GLOSSES:
        raise ValueError(f"num_glosses must be in 1..{MAX_EXTENDED_GLOSSES}, got {num_glosses}")
    rng = np.random.default_rng([seed, 1, 1])
    sizes = (len(EXT_SHAPES), len(EXT_LOCATIONS), len(EXT_MOVEMENTS), 2, len(ANGLES))
    combos = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    combos = combos[rng.permutation(len(combos))]
    chosen = np.zeros((0, len(sizes)), np.int64)
    for c in combos:
        if len(chosen) == 0 or (chosen != c).sum(1).min() >= 2:
            chosen = np.concatenate([chosen, c[None]])
            if len(chosen) == num_glosses:
                break
    if len(chosen) < num_glosses:
        raise ValueError(f"only {len(chosen)} signs differ in >= 2 parameters; asked for {num_glosses}")
    locs = list(EXT_LOCATIONS)
    names = gloss_names(num_glosses)
    return [SignSpec(names[k], EXT_SHAPES[s], ANGLES[a], locs[l], EXT_MOVEMENTS[m], bool(h), int(rng.integers(5, 8)))
            for k, (s, l, m, h, a) in enumerate(chosen.tolist())]


def _colour(rng, lo=30, hi=230) -> tuple:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def make_signer(index: int, seed: int = 0) -> SignerSpec:
    rng = np.random.default_rng([seed, 2, index])
    skin = np.array(SKIN[index % len(SKIN)]) + rng.integers(-12, 13, 3)
    hair = _colour(rng, 10, 90) if rng.random() < 0.8 else _colour(rng, 120, 200)
    return SignerSpec(
        id=f"{index:02d}", skin=tuple(int(v) for v in np.clip(skin, 0, 255)), hair=hair,
        clothing=_colour(rng, 20, 200), bg_top=_colour(rng, 60, 250), bg_bottom=_colour(rng, 40, 230),
        scale=float(rng.uniform(0.86, 1.04)), offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.03, 0.05))),
        speed=float(rng.uniform(0.85, 1.2)),
    )


# ---------------------------------------------------------------------------------------------- drawing
class _Canvas:
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


def _hand(cv: _Canvas, x, y, r, shape, angle_deg, colour, mirror=False):
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


def _timeline(signs: list[SignSpec], signer: SignerSpec, rng: np.random.Generator, coarticulation: float = 0.0,
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


def _static_layer(signer: SignerSpec, size: int, to_px, rng, *, width: int | None = None,
                  sc: float | None = None) -> np.ndarray:
    """Background, body and head: ``float32 [size, width or size, 3]``; ``sc`` is the body scale in pixels."""
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    top, bottom = np.asarray(signer.bg_top, np.float32), np.asarray(signer.bg_bottom, np.float32)
    img = np.broadcast_to(top + t * (bottom - top), (size, width or size, 3)).copy()
    cv = _Canvas(img)
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
                    duration: float = 1.0):
    """Render one signing video: ``uint8 [T, S, S, 3]`` (and ``[(gloss, start, end)]`` if asked).

    ``duration`` scales the length of every hold, transition and sign (1 = the default signing rate).

    ``return_poses``: also return the per-frame hand poses (``float32 [T, 12]``, see ``_pose_array``) that
    :func:`slsdk.train.pretrain.pretrain_backbone` learns from.

    ``glosses``: names or indices into ``lexicon`` (default: ``make_lexicon()``, the default data
    set's signs); ``signer``: a ``SignerSpec`` or an index for ``make_signer(index)``.
    """
    lexicon = lexicon if lexicon is not None else make_lexicon()
    signs = _lookup_signs(glosses, lexicon, "render_sentence")
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

    base = _static_layer(signer, size, to_px, rng)
    gain = np.float32(rng.uniform(0.92, 1.08))
    bank = rng.normal(0, noise, (4, size, size, 3)).astype(np.float32) if noise > 0 else None
    dom, nd, shapes, nd_shapes, angles, segments = _timeline(signs, signer, rng, coarticulation, duration)
    r = 0.062 * sc
    arm_w = 0.085 * sc
    sleeve = tuple(c * 0.72 for c in signer.clothing)
    out = np.empty((len(dom), size, size, 3), np.uint8)
    shoulders = ((0.31, 0.49), (0.69, 0.49))
    noise_idx = rng.integers(0, 4, len(dom))
    for i in range(len(dom)):
        img = base.copy()
        cv = _Canvas(img)
        for hand, sh, side in ((dom[i], shoulders[0], -1), (nd[i], shoulders[1], 1)):
            s_px, h_px = to_px(sh), to_px(hand)
            elbow = ((s_px[0] + h_px[0]) / 2 + side * 0.09 * sc, max(s_px[1], h_px[1]) + 0.06 * sc)
            cv.capsule(s_px, elbow, arm_w, sleeve)
            cv.capsule(elbow, h_px, arm_w * 0.85, sleeve)
        _hand(cv, *to_px(nd[i]), r, nd_shapes[i], angles[i] if nd_shapes[i] != "flat" or angles[i] != 180 else 180,
              signer.skin, mirror=True)
        _hand(cv, *to_px(dom[i]), r, shapes[i], angles[i], signer.skin)
        img *= gain
        if bank is not None:
            img += bank[noise_idx[i]]
        np.clip(img, 0, 255, out=img)
        out[i] = img.astype(np.uint8)
    if return_poses:
        px = np.array([[*to_px(a), *to_px(b)] for a, b in zip(dom, nd)], np.float32) / size
        poses = _pose_array(dom, nd, shapes, nd_shapes, angles, px)
    extra = ((segments,) if return_segments else ()) + ((poses,) if return_poses else ())
    return (out, *extra) if extra else out


POSE_SHAPES = ("flat",) + tuple(s for s in SHAPES if s != "flat")
EXT_POSE_SHAPES = POSE_SHAPES + tuple(s for s in EXT_SHAPES if s not in POSE_SHAPES)  # extended lexicons


def pose_shapes(lexicon) -> tuple[str, ...]:
    """The shape classes a lexicon's pose targets use: ``POSE_SHAPES``, or ``EXT_POSE_SHAPES`` if it needs them."""
    return POSE_SHAPES if all(s.shape in POSE_SHAPES for s in lexicon) else EXT_POSE_SHAPES


def _pose_array(dom, nd, shapes, nd_shapes, angles, image_xy) -> np.ndarray:
    """Per-frame pose ``float32 [T, 12]``: dominant xy, other hand xy (body units), shape ids (``POSE_SHAPES``),
    sin/cos of the finger direction, both hands' image positions (fractions of the image size)."""
    ids = {s: i for i, s in enumerate(EXT_POSE_SHAPES)}
    a = np.deg2rad(np.asarray(angles, np.float64))
    return np.concatenate([np.asarray(dom), np.asarray(nd), np.array([[ids[x], ids[y]] for x, y in
                           zip(shapes, nd_shapes)]), np.sin(a)[:, None], np.cos(a)[:, None],
                           np.asarray(image_xy)], 1).astype(np.float32)


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


# hand landmark template in hand units (x across the palm, y along the fingers), MediaPipe's 21-point order:
# wrist, thumb 1-4, then index, middle, ring and pinky (MCP, PIP, DIP, tip)
_HAND_TEMPLATE = np.array([(0.0, -1.0), (-0.45, -0.6), (-0.75, -0.2), (-0.95, 0.15), (-1.05, 0.45)]
                          + [(x, y) for x in (-0.45, -0.15, 0.15, 0.45) for y in (0.3, 0.8, 1.15, 1.45)],
                          np.float32)


def renderer_hand_landmarks(x: float, y: float, r: float, angle_deg: float, mirror: bool = False) -> np.ndarray:
    """``float32 [21, 3]`` stand-in landmarks (MediaPipe layout, frame pixels) of a drawn hand at (x, y)."""
    a = np.deg2rad(-angle_deg if mirror else angle_deg)
    tx = _HAND_TEMPLATE[:, 0] * (-1 if mirror else 1)
    ty = _HAND_TEMPLATE[:, 1]
    along = np.array([np.sin(a), -np.cos(a)], np.float32)   # finger direction (0 deg = up)
    across = np.array([np.cos(a), np.sin(a)], np.float32)
    xy = np.array([x, y], np.float32) + r * (tx[:, None] * across + ty[:, None] * along)
    return np.concatenate([xy, np.zeros((21, 1), np.float32)], 1).astype(np.float32)


def _lookup_signs(glosses, lexicon: list[SignSpec], caller: str = "render_phone_sentence") -> list[SignSpec]:
    """The lexicon entries of ``glosses`` (names or indices); a clear error for unknown ones."""
    by_name = {s.name: s for s in lexicon}
    signs = []
    for g in glosses:
        if isinstance(g, (int, np.integer)):
            if not 0 <= g < len(lexicon):
                raise ValueError(f"gloss index {g} out of range for a lexicon of {len(lexicon)} signs")
            signs.append(lexicon[int(g)])
        elif g in by_name:
            signs.append(by_name[g])
        else:
            names = ", ".join(by_name) if len(lexicon) <= 40 else f"{len(lexicon)} signs"
            raise ValueError(f"gloss {g!r} is not in the synthetic lexicon ({names})")
    if not signs:
        raise ValueError(f"{caller} needs at least one gloss")
    return signs


def render_phone_sentence(glosses, signer: SignerSpec | int = 0, rng: np.random.Generator | int | None = None, *,
                          lexicon: list[SignSpec] | None = None, framing: PhoneFraming | None = None,
                          coarticulation: float = 0.6, return_segments: bool = False, duration: float = 1.0,
                          return_poses: bool = False):
    """Render one phone-framed signing video (``duration``: as :func:`render_sentence`'s).

    Returns ``(frames uint8 [T, H, W, 3], hands)`` where ``hands[t]`` lists ``(landmarks float32 [21, 3],
    handedness)`` for each hand whose centre is inside frame ``t`` (the renderer's own hand positions, which
    stand in for a hand detector), plus ``[(gloss, start, end)]`` with ``return_segments`` and the per-frame
    poses (as :func:`render_sentence`'s, image positions as fractions of the portrait frame) with ``return_poses``.
    """
    framing = framing or PhoneFraming()
    lexicon = lexicon if lexicon is not None else make_lexicon()
    signs = _lookup_signs(glosses, lexicon)
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

    base = _static_layer(signer, h + 2 * pad, to_px, rng, width=w + 2 * pad, sc=sc)
    dom, nd, shapes, nd_shapes, angles, segments = _timeline(signs, signer, rng, coarticulation, duration)
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
    for i in range(n):
        img = base.copy()
        cv = _Canvas(img)
        for hand, sh, side in ((dom[i], shoulders[0], -1), (nd[i], shoulders[1], 1)):
            s_px, h_px = to_px(sh), to_px(hand)
            elbow = ((s_px[0] + h_px[0]) / 2 + side * 0.09 * sc, max(s_px[1], h_px[1]) + 0.06 * sc)
            cv.capsule(s_px, elbow, arm_w, sleeve)
            cv.capsule(elbow, h_px, arm_w * 0.85, sleeve)
        nd_angle = angles[i] if nd_shapes[i] != "flat" or angles[i] != 180 else 180
        _hand(cv, *to_px(nd[i]), r, nd_shapes[i], nd_angle, signer.skin, mirror=True)
        _hand(cv, *to_px(dom[i]), r, shapes[i], angles[i], signer.skin)
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
    extra = ((segments,) if return_segments else ()) + \
        ((_pose_array(dom, nd, shapes, nd_shapes, angles, image_xy),) if return_poses else ())
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

    The runtime's :class:`slsdk.runtime.hands.HandCropper` does the cropping (box rule, smoothing, hold and
    fallback); only its hand source is replaced by the renderer's hand positions (MediaPipe does not find
    drawn hands).
    """
    from slsdk.runtime.hands import CropConfig, Hand, HandCropper

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


# --------------------------------------------------------------------------------------- the data set
def _sentences(rng, n_glosses: int, count: int, min_len: int, max_len: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    seen = set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 1000 * count:
            raise ValueError(f"cannot draw {count} distinct sentences of {min_len}-{max_len} glosses "
                             f"from {n_glosses} glosses")
        n = int(rng.integers(min_len, max_len + 1))
        seq = [int(rng.integers(n_glosses))]
        while len(seq) < n:
            g = int(rng.integers(n_glosses))
            if g != seq[-1]:
                seq.append(g)
        t = tuple(seq)
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def make_plan(*, seed: int = 0, num_glosses: int = 12, num_signers: int = 8, sentences_per_signer: int = 56,
              num_test_si_signers: int = 2, num_train_sentences: int = 64, num_test_us_sentences: int = 10,
              dev_per_signer: int = 7, test_si_per_signer: int = 20, test_us_per_sentence: int = 4,
              min_len: int = 2, max_len: int = 6) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """The split plan without rendering: ``[(split, signer, sentence_index, gloss_indices)]``.

    Signers ``num_signers - num_test_si_signers ..`` are held out (test_si); sentences
    ``num_train_sentences ..`` are held out (test_us).
    """
    n_train_signers = num_signers - num_test_si_signers
    if n_train_signers < 1 or num_test_si_signers < 0:
        raise ValueError(f"need at least one training signer: num_signers={num_signers}, "
                         f"num_test_si_signers={num_test_si_signers}")
    if sentences_per_signer > num_train_sentences:
        raise ValueError(f"sentences_per_signer ({sentences_per_signer}) > num_train_sentences ({num_train_sentences})")
    if max_len < min_len or min_len < 1:
        raise ValueError(f"bad sentence lengths min_len={min_len}, max_len={max_len}")
    rng = np.random.default_rng([seed, 3])
    for _attempt in range(100):
        pool = _sentences(rng, num_glosses, num_train_sentences + num_test_us_sentences, min_len, max_len)
        train_pool, us_pool = pool[:num_train_sentences], pool[num_train_sentences:]
        if len({g for s in train_pool for g in s}) == num_glosses:
            break
    else:  # pragma: no cover - only with absurd settings
        raise ValueError("could not draw training sentences that cover every gloss; raise num_train_sentences")
    train_signers = list(range(n_train_signers))
    si_signers = list(range(n_train_signers, num_signers))
    plan: list[tuple[str, int, int, tuple[int, ...]]] = []
    perms = [rng.permutation(num_train_sentences) for _ in train_signers]
    seen_set = {int(j) for perm in perms for j in perm[:sentences_per_signer]}
    for s, perm in zip(train_signers, perms):
        for j in sorted(perm[:sentences_per_signer]):
            plan.append(("train", s, int(j), train_pool[j]))
        # dev: sentences seen in training (by other signers), new for this signer
        rest = [j for j in perm[sentences_per_signer:] if int(j) in seen_set]
        for j in sorted(rest[:dev_per_signer]):
            plan.append(("dev", s, int(j), train_pool[j]))
    seen = np.array(sorted(seen_set))  # test_si: sentences seen in training, by held-out signers
    for s in si_signers:
        for j in sorted(rng.permutation(seen)[:test_si_per_signer]):
            plan.append(("test_si", s, int(j), train_pool[j]))
    for k, sent in enumerate(us_pool):
        for s in sorted(rng.choice(train_signers, size=min(test_us_per_sentence, len(train_signers)), replace=False)):
            plan.append(("test_us", int(s), num_train_sentences + k, sent))
    return plan


class SyntheticSettingError(SlsdkError, ValueError):
    """A setting of the synthetic data set is outside its allowed range (the message names it and the range)."""


MAX_SIGNERS = 99          # signer ids are 2 digits (Isharah-style ids: 2-digit signer + 4-digit sentence)
MAX_SENTENCES = 9999      # sentence indices are 4 digits
# name: (integer?, lowest, highest): the numeric settings of generate_synthetic and their allowed ranges
SETTING_RANGES: dict[str, tuple[bool, float, float]] = {
    "seed": (True, 0, 2**63 - 1),
    "num_glosses": (True, 1, MAX_EXTENDED_GLOSSES),
    "num_signers": (True, 1, MAX_SIGNERS),
    "sentences_per_signer": (True, 1, MAX_SENTENCES),
    "num_test_si_signers": (True, 0, MAX_SIGNERS - 1),
    "num_train_sentences": (True, 1, MAX_SENTENCES),
    "num_test_us_sentences": (True, 0, MAX_SENTENCES - 1),
    "dev_per_signer": (True, 0, MAX_SENTENCES),
    "test_si_per_signer": (True, 0, MAX_SENTENCES),
    "test_us_per_sentence": (True, 0, MAX_SIGNERS),
    "image_size": (True, 16, 1024),
    "fps": (False, 1, 240),
    "min_len": (True, 1, 50),
    "max_len": (True, 1, 50),
    "noise": (False, 0, 255),
    "coarticulation": (False, 0, 1),
    "duration": (False, 0, 20),     # > 0 (see _EXCLUSIVE_LOW)
}
_EXCLUSIVE_LOW = {"duration"}


def _setting_error(name: str, value, what: str) -> SyntheticSettingError:
    return SyntheticSettingError(f"synthetic data setting {name} must be {what}, got {value!r}")


def check_setting(name: str, value):
    """``value`` if it is a valid ``name`` setting of :func:`generate_synthetic`, else
    :class:`SyntheticSettingError` naming the setting and its allowed range."""
    integer, lo, hi = SETTING_RANGES[name]
    kind = "an integer" if integer else "a number"
    if name in _EXCLUSIVE_LOW:
        what = f"> {lo:g} ({kind} up to {hi:g})"
    else:
        what = f"{kind} in {lo:g}..{hi:g}" if hi < 1e6 else f"{kind} >= {lo:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _setting_error(name, value, what)
    if integer and not isinstance(value, numbers.Integral):
        if not (isinstance(value, float) and value.is_integer()):
            raise _setting_error(name, value, what)
    if not math.isfinite(float(value)) or not lo <= value <= hi or (name in _EXCLUSIVE_LOW and value == lo):
        raise _setting_error(name, value, what)
    return int(value) if integer else value


def check_settings(**settings) -> dict:
    """Check each numeric setting of :func:`generate_synthetic` in ``settings`` (and the pairs that depend on
    each other, when both are given); returns them (integers as ``int``)."""
    out = dict(settings)
    for k, v in settings.items():
        if k in SETTING_RANGES:
            out[k] = check_setting(k, v)
    g = out.get
    if g("num_signers") is not None and g("num_test_si_signers") is not None \
            and g("num_test_si_signers") >= g("num_signers"):
        raise SyntheticSettingError(f"synthetic data setting num_test_si_signers must be in 0..num_signers-1 "
                                    f"({g('num_signers') - 1}): at least one training signer; got "
                                    f"{g('num_test_si_signers')}")
    if g("sentences_per_signer") is not None and g("num_train_sentences") is not None \
            and g("sentences_per_signer") > g("num_train_sentences"):
        raise SyntheticSettingError(f"synthetic data setting sentences_per_signer must be in 1..num_train_sentences "
                                    f"({g('num_train_sentences')}), got {g('sentences_per_signer')}")
    if g("min_len") is not None and g("max_len") is not None and g("min_len") > g("max_len"):
        raise SyntheticSettingError(f"synthetic data setting min_len must be in 1..max_len ({g('max_len')}), got "
                                    f"{g('min_len')}")
    if g("num_train_sentences") is not None and g("num_test_us_sentences") is not None \
            and g("num_train_sentences") + g("num_test_us_sentences") > MAX_SENTENCES:
        raise SyntheticSettingError(f"synthetic data settings num_train_sentences + num_test_us_sentences must be "
                                    f"at most {MAX_SENTENCES}, got {g('num_train_sentences')} + "
                                    f"{g('num_test_us_sentences')}")
    return out


_MARK = ".slsdk-synthetic"   # the listing of every file of a data set slsdk data synth wrote (its proof of ownership)
_MARK_FORMAT = "slsdk-synthetic-files-1"


def _listing(root: Path) -> dict[str, dict]:
    """``relative path -> {"bytes", "sha256"}`` of every file under ``root`` (the marker itself excepted)."""
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if rel != _MARK:
                files[rel] = {"bytes": p.stat().st_size, "sha256": fileio.sha256_file(p)}
    return dict(sorted(files.items()))


def _write_mark(root: Path) -> None:
    text = json.dumps({"format": _MARK_FORMAT, "about": "a synthetic data set written by slsdk data synth: "
                       "every file it wrote, with its size and SHA-256 (--overwrite replaces the set only "
                       "while it holds exactly these files, unchanged)", "files": _listing(root)}, indent=0)
    fileio.atomic_write_text(root / _MARK, text + "\n", fsync=False)


def _listed(out: Path) -> dict | None:
    """The files the marker of ``out`` lists (None: no marker with a listing, e.g. a set of an older slsdk)."""
    mark = out / _MARK
    try:
        if mark.is_symlink() or mark.stat().st_size > 256 << 20:
            return None
        d = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    listed = d.get("files") if isinstance(d, dict) and d.get("format") == _MARK_FORMAT else None
    return listed if isinstance(listed, dict) else None


def _unproven(out: Path) -> list[str]:
    """Files under ``out`` that the marker does not prove slsdk data synth wrote (all of them when there is no
    listing); empty when the folder holds exactly the set slsdk wrote, unchanged."""
    listed = _listed(out) or {}
    bad = []
    for dirpath, dirs, names in os.walk(out):
        for n in [*names, *(x for x in dirs if (Path(dirpath) / x).is_symlink())]:
            p = Path(dirpath) / n
            rel = p.relative_to(out).as_posix()
            if rel == _MARK:
                continue
            entry = listed.get(rel)
            try:
                ok = (isinstance(entry, dict) and not p.is_symlink() and p.is_file()
                      and entry.get("bytes") == p.stat().st_size and entry.get("sha256") == fileio.sha256_file(p))
            except OSError:
                ok = False
            if not ok:
                bad.append(rel)
    return sorted(bad)


def _claim_folder(out: Path, spec_path: Path, overwrite: bool) -> bool:
    """Whether ``out`` holds a synthetic data set of slsdk's to replace (False: ``out`` is new or empty).

    Refuses a folder holding anything but a synthetic data set slsdk wrote; another settings' set needs
    ``overwrite``, and is replaced only while it holds exactly the files slsdk wrote there, unchanged."""
    from slsdk.fileio import OutputExistsError

    if out.is_symlink():
        raise fileio.OutputExistsError(f"{out}: is a symbolic link; slsdk never replaces links: choose another folder")
    if out.exists() and not out.is_dir():
        raise fileio.OutputExistsError(f"{out}: is a file, not a folder; choose a folder for the data set")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not names:
        return False
    try:
        ours = (out / _MARK).is_file() or json.loads(spec_path.read_text())["format"].startswith("slsdk-synthetic")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ours = False
    if not ours:
        raise fileio.OutputExistsError(f"{out}: holds another data set or other files ({', '.join(names[:5])}"
                                       f"{' ...' if len(names) > 5 else ''}); slsdk data synth writes only into a new or empty "
                                "folder or one it made before: choose another folder")
    if not overwrite:
        raise fileio.OutputExistsError(f"{out}: holds a synthetic data set made with other settings (or an unfinished "
                                "one); pass --overwrite (overwrite=True) to replace it, or choose another folder")
    if _listed(out) is None:
        raise fileio.OutputExistsError(f"{out}: holds a synthetic data set without the list of the files slsdk wrote "
                                f"there ({_MARK}; made by an older slsdk or unfinished), so slsdk cannot prove the "
                                "folder holds nothing else: delete it yourself, or choose another folder")
    bad = _unproven(out)
    if bad:
        raise fileio.OutputExistsError(f"{out}: holds files slsdk data synth did not write or that changed since "
                                f"({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}); slsdk replaces the data "
                                "set only as it wrote it: move those files away (or the folder) or choose another "
                                "folder")
    return True


def generate_synthetic(out_dir: str | Path, seed: int = 0, num_glosses: int = 12, num_signers: int = 8,
                       sentences_per_signer: int = 56, *, num_test_si_signers: int = 2,
                       num_train_sentences: int = 64, num_test_us_sentences: int = 10, dev_per_signer: int = 7,
                       test_si_per_signer: int = 20, test_us_per_sentence: int = 4, image_size: int = 96,
                       fps: int = 25, min_len: int = 2, max_len: int = 6, noise: float = 3.0,
                       video_format: str = "mp4", overwrite: bool = False, phone: dict | None = None,
                       coarticulation: float = 0.0, crop: dict | None = None, keep_raw: bool = True,
                       duration: float = 1.0, progress: bool = False) -> Path:
    """Write the synthetic data set to ``out_dir`` (folder format) and return ``out_dir``.

    Files: ``annotations.csv`` (``id,video,signer,split,glosses``), ``videos/{split}/{id}.mp4`` (or
    PNG frame folders with ``video_format="png"``), ``synthetic.json`` (lexicon, signers, settings) and the
    marker ``.slsdk-synthetic`` (every file written, with its size and SHA-256).
    An existing complete data set with the same settings is reused unless ``overwrite``.

    The set is built beside ``out_dir`` and renamed into place (:func:`slsdk.fileio.atomic_dir`), under
    :func:`slsdk.fileio.output_lock`: a kill leaves the old set or the new one, and a second run into the same
    folder is refused. ``overwrite`` replaces only a synthetic set slsdk made that holds nothing else.
    Numeric settings outside their range (:data:`SETTING_RANGES`) raise :class:`SyntheticSettingError`.

    ``phone`` (:class:`PhoneFraming` fields, as the ``isharah`` preset sets): portrait phone-framed clips;
    the data set's videos are then the signing-space crops (``image_size`` square) that the runtime's
    :class:`~slsdk.runtime.hands.HandCropper` (``crop``: its :class:`CropConfig` fields) makes from the
    renderer's hand positions, and with ``keep_raw`` the portrait clips go to ``raw/{split}/{id}.mp4`` with
    their boxes and stand-in landmarks in ``raw/{split}/{id}.npz``.
    """
    out = Path(out_dir)
    checked = check_settings(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                             sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                             num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                             dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                             test_us_per_sentence=test_us_per_sentence, image_size=image_size, fps=fps,
                             min_len=min_len, max_len=max_len, noise=noise, coarticulation=coarticulation,
                             duration=duration)
    (seed, num_glosses, num_signers, sentences_per_signer, num_test_si_signers, num_train_sentences,
     num_test_us_sentences, dev_per_signer, test_si_per_signer, test_us_per_sentence, image_size, min_len,
     max_len) = (checked[k] for k in ("seed", "num_glosses", "num_signers", "sentences_per_signer",
                                      "num_test_si_signers", "num_train_sentences", "num_test_us_sentences",
                                      "dev_per_signer", "test_si_per_signer", "test_us_per_sentence",
                                      "image_size", "min_len", "max_len"))
    if video_format not in ("mp4", "png"):
        raise SyntheticSettingError(f"synthetic data setting video_format must be 'mp4' or 'png', got "
                                    f"{video_format!r}")
    settings = dict(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                    sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                    num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                    dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                    test_us_per_sentence=test_us_per_sentence, image_size=image_size, fps=fps, min_len=min_len,
                    max_len=max_len, noise=noise, video_format=video_format)
    if phone is not None:  # only when set, so the default data set's settings (and reuse) are unchanged
        framing = PhoneFraming.from_dict(dict(phone))
        from slsdk.runtime.hands import CropConfig

        crop_cfg = CropConfig.from_dict(dict(crop or {}))
        settings.update(phone=asdict(framing), crop=crop_cfg.to_dict(), keep_raw=keep_raw)
    elif crop is not None:
        raise ValueError("crop settings apply to phone-framed data only (pass phone=...)")
    if coarticulation:
        settings["coarticulation"] = float(coarticulation)
    if float(duration) != 1:
        settings["duration"] = float(duration)
    settings = json.loads(json.dumps(settings))   # as synthetic.json stores it (tuples become lists)
    spec_path = out / "synthetic.json"
    with fileio.output_lock(out):
        if spec_path.is_file() and (out / "annotations.csv").is_file() and not overwrite:
            try:
                if json.loads(spec_path.read_text())["settings"] == settings:
                    return out
            except (ValueError, KeyError, TypeError):
                pass
        replace = _claim_folder(out, spec_path, overwrite)   # never writes over data (or files) slsdk did not make
        lexicon = make_lexicon(num_glosses, seed)
        signers = [make_signer(i, seed) for i in range(num_signers)]
        plan = make_plan(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                         sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                         num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                         dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                         test_us_per_sentence=test_us_per_sentence, min_len=min_len, max_len=max_len)
        with fileio.atomic_dir(out, replace=replace) as work:
            _render_set(work, plan, lexicon, signers, settings, seed=seed, image_size=image_size, fps=fps,
                        noise=noise, video_format=video_format, phone=phone,
                        framing=framing if phone is not None else None,
                        crop_cfg=crop_cfg if phone is not None else None, keep_raw=keep_raw,
                        coarticulation=coarticulation, duration=duration, progress=progress)
            if replace and _unproven(out):    # changed while this run rendered: leave it as it is
                raise fileio.OutputExistsError(f"{out}: files were added or changed there while the data set was "
                                               "generated; nothing was replaced: run again")
    return out


def _render_set(work: Path, plan, lexicon, signers, settings: dict, *, seed: int, image_size: int, fps,
                noise: float, video_format: str, phone, framing, crop_cfg, keep_raw: bool, coarticulation: float,
                duration: float, progress: bool) -> None:
    """Render every video of ``plan`` into the folder ``work`` (being built) and write its annotations, spec and
    marker."""
    t0 = time.perf_counter()
    si_signers = sorted({p[1] for p in plan if p[0] == "test_si"})
    samples = []
    num_frames = 0
    bar = _progress(len(plan), "rendering") if progress else None
    for split, s, j, sent in plan:
        vid = f"{s:02d}{j:04d}"
        vrng = np.random.default_rng([seed, 4, s, j])
        if phone is None:
            frames = render_sentence(sent, signers[s], vrng, lexicon=lexicon, image_size=image_size, noise=noise,
                                     coarticulation=coarticulation, duration=duration)
        else:
            raw, hands = render_phone_sentence(sent, signers[s], vrng, lexicon=lexicon, framing=framing,
                                               coarticulation=coarticulation, duration=duration)
            frames, boxes = renderer_crop(raw, hands, image_size, fps, crop_cfg)
            if keep_raw:
                write_video(work / "raw" / split / f"{vid}.mp4", raw, fps, fsync=False)
                lm = np.full((len(hands), 2, 21, 3), np.nan, np.float32)
                for t, found in enumerate(hands):
                    for k, (pts, label) in enumerate(found):
                        lm[t, 0 if label == "Right" else 1] = pts
                fileio.atomic_write(work / "raw" / split / f"{vid}.npz",
                                    lambda f, boxes=boxes, lm=lm: np.savez_compressed(f, boxes=boxes, landmarks=lm),
                                    fsync=False)
        if bar is not None:
            bar(1)
        num_frames += len(frames)
        if video_format == "mp4":
            path = write_video(work / "videos" / split / f"{vid}.mp4", frames, fps, fsync=False)
        else:
            path = write_frames(work / "videos" / split / vid, frames, fsync=False)
        samples.append(Sample(vid, [lexicon[g].name for g in sent], path, signers[s].id, split,
                              {"num_frames": len(frames)}))
    write_folder_annotations(work, samples)
    spec = {"format": "slsdk-synthetic-1", "settings": settings,
            "lexicon": [asdict(x) for x in lexicon], "signers": [asdict(x) for x in signers],
            "splits": {k: sum(1 for p in plan if p[0] == k) for k in ("train", "dev", "test_si", "test_us")},
            "frames": num_frames, "test_si_signers": [signers[s].id for s in si_signers],
            "reference_words": {k: sum(len(p[3]) for p in plan if p[0] == k) for k in ("train", "dev", "test_si",
                                                                                        "test_us")},
            "seconds": round(time.perf_counter() - t0, 2)}
    fileio.atomic_write_text(work / "synthetic.json", json.dumps(spec, indent=1) + "\n")
    _write_mark(work)


def _progress(total: int, what: str):
    """A rich progress bar; returns ``advance(n)`` (the bar closes itself at ``total``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    prog = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())
    prog.start()
    task = prog.add_task(what, total=total)
    done = [0]

    def advance(n: int = 1):
        done[0] += n
        prog.update(task, advance=n)
        if done[0] >= total:
            prog.stop()

    return advance


# Named settings of generate_synthetic. "demo" is the embedded default (small: the 15-minute demo);
# "isharah" is Isharah-500-scale in signers, splits and framing (15 signers, 5 held out for SI; US = unseen
# sentences; 3-8 signs per sentence with co-articulation; portrait phone framing, shake, lighting, blur),
# with 100 of the 388 glosses by default (num_glosses=388 works too) and >= 2,000 reference words per test split.
PRESETS: dict[str, dict] = {
    "demo": {},
    "isharah": dict(num_glosses=100, num_signers=15, num_test_si_signers=5, num_train_sentences=400,
                    sentences_per_signer=60, dev_per_signer=10, test_si_per_signer=80, num_test_us_sentences=100,
                    test_us_per_sentence=4, min_len=3, max_len=8, image_size=160, coarticulation=0.6,
                    phone=asdict(PhoneFraming()), crop={"include_face": True}),
}


# The tiny set of `slsdk data synth --quick` (and of the tests): 6 glosses, 3 signers, 2-3 signs per sentence.
QUICK: dict = dict(num_glosses=6, num_signers=3, sentences_per_signer=6, num_test_si_signers=1, num_train_sentences=8,
                   num_test_us_sentences=2, dev_per_signer=2, test_si_per_signer=3, test_us_per_sentence=1, min_len=2,
                   max_len=3)
QUICK_MIN_GLOSSES = 3    # its 2-3-sign sentences, adjacent signs different: fewer glosses cannot fill the plan


def quick_settings(num_glosses: int | None = None) -> dict:
    """The settings of the tiny ``--quick`` set; with ``num_glosses``, that many glosses (3..900), the training
    sentences scaled so that every gloss is drawn (more glosses: more training videos)."""
    kw = dict(QUICK)
    if num_glosses is None:
        return kw
    n = check_setting("num_glosses", num_glosses)
    if n < QUICK_MIN_GLOSSES:
        raise SyntheticSettingError(f"synthetic data setting num_glosses must be an integer in "
                                    f"{QUICK_MIN_GLOSSES}..{MAX_EXTENDED_GLOSSES} with --quick (its sentences are 2-3 "
                                    f"different signs), got {num_glosses!r}")
    kw["num_glosses"] = n
    if n > QUICK["num_glosses"]:   # enough 2-3-sign sentences to draw every gloss (coupon collector), all seen
        t = max(QUICK["num_train_sentences"], math.ceil(n * (math.log(n) + 2) / 2.5))
        kw.update(num_train_sentences=t, sentences_per_signer=t - QUICK["dev_per_signer"])
    return kw


def preset_settings(name: str, *, quick: bool = False, **overrides) -> dict:
    """The keyword arguments of :func:`generate_synthetic` for preset ``name`` (``overrides`` win).

    ``phone`` overrides are merged into the preset's framing (e.g. ``phone={"width": 108, "height": 192}``).
    ``quick``: the tiny set (:func:`quick_settings`) on top of the preset; an explicit ``num_glosses`` is kept
    (the training sentences scaled to it). Numeric settings outside their range (:data:`SETTING_RANGES`) raise
    :class:`SyntheticSettingError` naming the setting.
    """
    import inspect

    if name not in PRESETS:
        raise SyntheticSettingError(f"unknown synthetic preset {name!r}; presets: {', '.join(PRESETS)}")
    known = set(inspect.signature(generate_synthetic).parameters) - {"out_dir"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SyntheticSettingError(f"unknown synthetic data setting(s) {', '.join(unknown)}; known: "
                                    f"{', '.join(sorted(known))}")
    overrides = check_settings(**overrides)
    kw = {**PRESETS[name]}
    if quick:
        kw.update(quick_settings(overrides.get("num_glosses")))
    for k, v in overrides.items():
        if k in ("phone", "crop") and isinstance(v, dict) and isinstance(kw.get(k), dict):
            kw[k] = {**kw[k], **v}
        else:
            kw[k] = v
    return check_settings(**kw)


def _save_png(fig, png_path: str | Path, overwrite: bool) -> Path:
    """``fig`` as the PNG ``png_path``, written by :mod:`slsdk.fileio` (normal permissions)."""
    png_path = Path(png_path)
    with fileio.atomic_path(png_path, overwrite=overwrite, suffix=png_path.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=80)
    return png_path


def preset_strip(png_path: str | Path, frames: int = 7, seed: int = 0, *, overwrite: bool = False) -> Path:
    """PNG with a strip of frames per preset: ``demo`` (square, centred signer), ``isharah`` as the phone
    records it (portrait, off-centre, shake, lighting) and the signing-space crops its videos hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slsdk.runtime.hands import CropConfig

    demo = render_sentence([0, 3, 5, 7], 0, np.random.default_rng([seed, 20]))
    isk = PRESETS["isharah"]
    lex = make_lexicon(isk["num_glosses"], seed)
    sent = [int(g) for g in np.random.default_rng([seed, 21]).integers(0, len(lex), 6)]
    raw, hands = render_phone_sentence(sent, make_signer(11, seed), np.random.default_rng([seed, 22]), lexicon=lex,
                                       framing=PhoneFraming(**isk["phone"]), coarticulation=isk["coarticulation"])
    crops, boxes = renderer_crop(raw, hands, isk["image_size"], config=CropConfig(**isk["crop"]))
    rows = [("demo (96 px)", demo), ("isharah: phone frame", raw), ("isharah: signing-space crop", crops)]
    fig, axes = plt.subplots(3, frames, figsize=(1.3 * frames, 6.2), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.7, 1]})
    for r, (label, video) in enumerate(rows):
        for c, t in enumerate(np.linspace(0, len(video) - 1, frames).round().astype(int)):
            ax = axes[r][c]
            ax.imshow(video[t])
            if r == 1:
                x0, y0, x1, y1 = boxes[t]
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1))
            ax.set_xticks([]); ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.tight_layout()
    try:
        return _save_png(fig, png_path, overwrite)
    finally:
        plt.close(fig)


def load_spec(out_dir: str | Path) -> tuple[list[SignSpec], list[SignerSpec], dict]:
    """Lexicon, signers and settings of a generated data set (for ``render_sentence``)."""
    path = Path(out_dir) / "synthetic.json"
    if not path.is_file():
        raise FileNotFoundError(f"not a synthetic data set (no synthetic.json): {path}")
    d = json.loads(path.read_text())
    lex = [SignSpec(**x) for x in d["lexicon"]]
    signers = [SignerSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}) for x in d["signers"]]
    return lex, signers, d["settings"]


def preview(out_dir: str | Path | None, png_path: str | Path, *, glosses: int = 6, frames_per_sign: int = 4,
            signer: int = 0, seed: int = 0, overwrite: bool = False) -> Path:
    """Contact sheet PNG: one row per gloss (isolated sign, ``frames_per_sign`` frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if out_dir is not None and (Path(out_dir) / "synthetic.json").is_file():
        lex, signers, settings = load_spec(out_dir)
        size = settings["image_size"]
        sp = signers[signer]
    else:
        lex, sp, size = make_lexicon(seed=seed), make_signer(signer, seed), 96
    lex = lex[:glosses]
    fig, axes = plt.subplots(len(lex), frames_per_sign, figsize=(1.4 * frames_per_sign, 1.5 * len(lex)), squeeze=False)
    for r, sign in enumerate(lex):
        video, segs = render_sentence([sign.name], sp, np.random.default_rng([seed, 9, r]), lexicon=lex,
                                      image_size=size, return_segments=True)
        _, a, b = segs[0]
        for c, t in enumerate(np.linspace(a, b - 1, frames_per_sign).round().astype(int)):
            ax = axes[r][c]
            ax.imshow(video[t])
            ax.set_xticks([]); ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{sign.name}\n{sign.shape}/{sign.movement}", fontsize=7)
    fig.tight_layout()
    try:
        return _save_png(fig, png_path, overwrite)
    finally:
        plt.close(fig)
