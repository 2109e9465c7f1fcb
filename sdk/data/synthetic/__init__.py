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

The modules, one job each: ``lexicon`` (signs and signers), ``canvas`` (drawing), ``timeline`` (hand poses per
frame), ``render`` (square videos), ``phone`` (phone-framed clips and their crops), ``plan`` (the splits),
``settings`` (allowed ranges, :class:`SyntheticSettingError`, ``--quick``), ``ownership`` (the folder marker),
``generate`` (writing the data set), ``presets`` (named settings) and ``preview`` (PNG pictures).
"""
from __future__ import annotations

from slsdk.data.synthetic.generate import generate_synthetic, load_spec
from slsdk.data.synthetic.lexicon import (ANGLES, EXT_LOCATIONS, EXT_MOVEMENTS, EXT_SHAPES, GLOSS_NAMES, LOCATIONS,
                                          MAX_EXTENDED_GLOSSES, MOVEMENTS, SHAPES, SignerSpec, SignSpec, gloss_names,
                                          make_lexicon, make_signer)
from slsdk.data.synthetic.phone import (PhoneFraming, poses_in_crops, render_phone_sentence, renderer_crop,
                                        renderer_hand_landmarks)
from slsdk.data.synthetic.plan import make_plan
from slsdk.data.synthetic.presets import PRESETS, preset_settings
from slsdk.data.synthetic.preview import preset_strip, preview
from slsdk.data.synthetic.render import render_sentence
from slsdk.data.synthetic.settings import (QUICK, SETTING_RANGES, SyntheticSettingError, check_setting, check_settings,
                                           quick_settings)
from slsdk.data.synthetic.timeline import EXT_POSE_SHAPES, POSE_SHAPES, pose_shapes

__all__ = ["ANGLES", "EXT_LOCATIONS", "EXT_MOVEMENTS", "EXT_POSE_SHAPES", "EXT_SHAPES", "GLOSS_NAMES", "LOCATIONS",
           "MAX_EXTENDED_GLOSSES", "MOVEMENTS", "POSE_SHAPES", "PRESETS", "QUICK", "SETTING_RANGES", "SHAPES",
           "PhoneFraming", "SignSpec", "SignerSpec", "SyntheticSettingError", "check_setting", "check_settings",
           "generate_synthetic", "gloss_names", "load_spec", "make_lexicon", "make_plan", "make_signer",
           "pose_shapes", "poses_in_crops", "preset_settings", "preset_strip", "preview", "quick_settings",
           "render_phone_sentence", "render_sentence", "renderer_crop", "renderer_hand_landmarks"]
