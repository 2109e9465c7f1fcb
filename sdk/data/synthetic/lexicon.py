"""The signs and signers of the synthetic data set: gloss names, sign parameters (hand shape, finger direction,
location, movement, hands), lexicons whose signs differ in at least two parameters, and signer looks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def lookup_signs(glosses, lexicon: list[SignSpec], caller: str = "render_phone_sentence") -> list[SignSpec]:
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
