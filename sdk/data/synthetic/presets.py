"""The named settings of :func:`~slsdk.data.synthetic.generate.generate_synthetic` (``demo``, ``isharah``) and
the keyword arguments a preset, ``--quick`` and overrides make together."""
from __future__ import annotations

import inspect
from dataclasses import asdict

from slsdk.data.synthetic.generate import generate_synthetic
from slsdk.data.synthetic.phone import PhoneFraming
from slsdk.data.synthetic.settings import SyntheticSettingError, check_settings, quick_settings


# Named settings of generate_synthetic. "demo" is the embedded default (small: the 15-minute demo);
# "isharah" is Isharah-500-scale in signers, splits and framing (15 signers, 5 held out for SI; US = unseen
# sentences; 3-8 signs per sentence with co-articulation; portrait phone framing, shake, lighting, blur),
# with 100 of the 388 glosses by default (num_glosses=388 works too) and >= 2,000 reference words per test split;
# its videos carry landmarks (a .pose beside each: the signer's true pose in the 86-point layout, as MediaPipe
# would give it), as the public Isharah data is keypoints.
PRESETS: dict[str, dict] = {
    "demo": {},
    "isharah": dict(num_glosses=100, num_signers=15, num_test_si_signers=5, num_train_sentences=400,
                    sentences_per_signer=60, dev_per_signer=10, test_si_per_signer=80, num_test_us_sentences=100,
                    test_us_per_sentence=4, min_len=3, max_len=8, image_size=160, coarticulation=0.6,
                    phone=asdict(PhoneFraming()), crop={"include_face": True}, landmarks=True),
}


def preset_settings(name: str, *, quick: bool = False, **overrides) -> dict:
    """The keyword arguments of :func:`generate_synthetic` for preset ``name`` (``overrides`` win).

    ``phone`` overrides are merged into the preset's framing (e.g. ``phone={"width": 108, "height": 192}``).
    ``quick``: the tiny set (:func:`quick_settings`) on top of the preset; an explicit ``num_glosses`` is kept
    (the training sentences scaled to it). Numeric settings outside their range (:data:`SETTING_RANGES`) raise
    :class:`SyntheticSettingError` naming the setting.
    """
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
