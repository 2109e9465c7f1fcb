"""The numeric settings of the synthetic data set: their allowed ranges and checks, and the tiny ``--quick`` set."""
from __future__ import annotations

import math
import numbers

from slsdk.data.synthetic.lexicon import MAX_EXTENDED_GLOSSES
from slsdk.errors import SlsdkError


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
