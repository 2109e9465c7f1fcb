"""Hand detection and signing-space cropping with MediaPipe Tasks HandLandmarker: the public names in one place.

The work is split by job; this module re-exports them (``slsdk.runtime.hands.X`` keeps working):

* :mod:`slsdk.runtime.hand_model`  finding / validating / downloading ``hand_landmarker.task``
* :mod:`slsdk.runtime.landmarker`  MediaPipe wrappers: :class:`Hand`, :class:`HandDetector` (photos)
* :mod:`slsdk.runtime.crop`        :class:`CropConfig`, :class:`HandCropper`, :class:`CropFn`, box geometry, resizing
* :mod:`slsdk.runtime.overlay`     drawing boxes / skeletons / text, contact sheets

Boxes are ``(x0, y0, x1, y1)`` integer pixels, half-open (``image[y0:y1, x0:x1]``). Landmarks are
``float32 [21, 3]`` per hand: x and y in pixels of the full frame, z as MediaPipe gives it.
"""
from __future__ import annotations

from slsdk.runtime.crop import (SPEED_KEYS, CropConfig, CropFn, CropResult, CropStats, HandCropper, _square_box,
                                box_iou, center_box, extract_crop, hands_box_params, make_crop_fn, pad_to_square,
                                preparation_mismatch, resize_square)
from slsdk.runtime.hand_model import (DEFAULT_HAND_MODEL_URL, ENV_HAND_MODEL, ENV_HAND_MODEL_URL,
                                      HAND_MODEL_FILENAME, HAND_MODEL_MEMBERS, HandModelNotFound, InvalidHandModel,
                                      _download, hand_model_cache_path, resolve_hand_model, validate_hand_model)
from slsdk.runtime.landmarker import Hand, HandDetector, detect_hands
from slsdk.runtime.overlay import HAND_CONNECTIONS, draw_overlay, save_overlay_png

__all__ = [
    "DEFAULT_HAND_MODEL_URL", "HAND_MODEL_FILENAME", "HAND_MODEL_MEMBERS", "ENV_HAND_MODEL", "ENV_HAND_MODEL_URL",
    "HandModelNotFound", "InvalidHandModel", "hand_model_cache_path", "validate_hand_model", "resolve_hand_model",
    "CropConfig", "Hand", "CropResult", "CropStats", "HandDetector", "detect_hands", "HandCropper", "CropFn",
    "make_crop_fn", "resize_square", "pad_to_square", "extract_crop", "center_box", "hands_box_params", "box_iou",
    "HAND_CONNECTIONS", "draw_overlay", "save_overlay_png", "_square_box", "_download", "preparation_mismatch",
    "SPEED_KEYS",
]
