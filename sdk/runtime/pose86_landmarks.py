"""The 86-point landmark layout (:data:`slsdk.landmarks.POSE86`) per video frame, with MediaPipe Tasks.

:class:`Pose86Landmarker` makes, per RGB frame, the ``[86, 2]`` pixel keypoints of the Isharah challenge kit's
layout: both hands from the HandLandmarker the runtime already runs for the signing-space crop (the hands of the
frame's :class:`~slsdk.runtime.crop.CropResult`: no second hand pass), the 19 outer-lip points from FaceLandmarker
(its 468/478-point FaceMesh, :data:`~slsdk.landmarks.LIPS_FACEMESH`) and MediaPipe Pose points 0-24 from
PoseLandmarker. A part not found in a frame is all zeros, as in the kit; a part not asked for (``parts``) is
declared missing the same way.

Which hand is the right hand: the kit's files come from MediaPipe Holistic, whose ``RIGHT_HAND_LANDMARKS`` is the
signer's own right hand, the one at Pose's ``RIGHT_WRIST`` (measured on shared/data/pose/pose_repo/
holistic_full_example.pose: the right hand's wrist lies 8 px from Pose's right wrist and 118 px from the left one;
in that upright, unmirrored recording the signer's right shoulder is on the image's left). MediaPipe Tasks'
HandLandmarker (mediapipe 1.2) labels the hands the same way on unmirrored frames (slsdk never mirrors them):
measured on the 40 photos in shared/data/hands/gestures, generated_signer.png and the 58 frames of
webcam_gestures.mp4, its label named the side of the nearer PoseLandmarker wrist for 54 of 60 hands (6 disagree:
hands held across the body or a wrong label). :func:`assign_hands` therefore puts each hand on the nearer Pose
wrist when the body is found (Holistic's own rule: it crops each hand from the pose's wrist), else takes the label
(``"Right"`` -> right hand), and when both hands carry the same label the one further left in the image is the
right hand.

The models are found as the hand model is (:mod:`slsdk.runtime.hand_model`): ``--face-model`` /
``$SLSDK_FACE_MODEL`` / the cache's ``face_landmarker.task`` / a download, and the same for ``pose_landmarker.task``.
Serving layer: numpy only at import; MediaPipe is imported by the first landmarker.
"""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from slsdk.landmarks import (BODY_POSE_NAMES, HAND_NAMES, LIPS_FACEMESH, NUM_POINTS, PARTS, POSE86,
                            part_missing)
from slsdk.quiet import native_stderr
from slsdk.runtime.crop import CropConfig, CropResult
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL, resolve_task_model
from slsdk.runtime.hand_tracker import HandCropper
from slsdk.runtime.landmarker import (Hand, as_mp_image, close_pending, close_task_landmarker, open_task_landmarker,
                                      release_later, track_owner)

__all__ = ["PARTS_ALL", "FACE_MODE", "TaskLandmarker", "Pose86Landmarker", "assign_hands", "assemble_pose86",
           "pose86_file_bytes"]

PARTS_ALL = ("hands", "lips", "body")      # what Pose86Landmarker can extract (hands = right_hand + left_hand)
_RIGHT_WRIST, _LEFT_WRIST = 16, 15        # MediaPipe Pose indices
# The face is found anew in every frame (IMAGE mode): in VIDEO mode the FaceLandmarker built from the mediapipe
# 0.10.14 wheel (shared/models/face_landmarker.task) loses the face on every second frame (its tracking step fails
# and the next frame detects again: measured on webcam_gestures.mp4, found in 29 of 58 frames vs 58 of 58 in IMAGE
# mode). The pose landmarker tracks (VIDEO mode: 58 of 58 either way).
FACE_MODE = "IMAGE"


def _vision():
    # mediapipe is heavy and optional (slsdk[hands]): imported on the first face / pose landmarker
    try:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python import vision
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"landmark extraction needs mediapipe: pip install 'slsdk[hands]' ({e})") from None
    return BaseOptions, vision


class TaskLandmarker:
    """One open MediaPipe FaceLandmarker (``kind="face"``) or PoseLandmarker (``kind="pose"``) for one person, in
    VIDEO mode (tracks between frames; timestamps must increase: a repeated or earlier one is moved to 1 ms after
    the previous one) or IMAGE mode. Closed as the hand landmarker is (never in a finalizer)."""

    def __init__(self, kind: str, model_path: str | Path, mode: str = "VIDEO", min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        if kind not in ("face", "pose"):
            raise ValueError(f"kind must be 'face' or 'pose', got {kind!r}")
        spec = FACE_MODEL if kind == "face" else POSE_MODEL
        BaseOptions, vision = _vision()
        base = BaseOptions(model_asset_path=str(model_path))
        conf = dict(running_mode=getattr(vision.RunningMode, mode), min_tracking_confidence=min_tracking_confidence)
        if kind == "face":
            opts = vision.FaceLandmarkerOptions(base_options=base, num_faces=1,
                                                min_face_detection_confidence=min_detection_confidence,
                                                min_face_presence_confidence=min_presence_confidence, **conf)
            create = vision.FaceLandmarker.create_from_options
        else:
            opts = vision.PoseLandmarkerOptions(base_options=base, num_poses=1,
                                                min_pose_detection_confidence=min_detection_confidence,
                                                min_pose_presence_confidence=min_presence_confidence, **conf)
            create = vision.PoseLandmarker.create_from_options
        self.kind, self.mode, self.model_path = kind, mode, Path(model_path)
        self._lm = open_task_landmarker(lambda: create(opts), self.model_path, spec.invalid)
        self._last_ts = -1
        self._first_call = True
        track_owner(self)

    @property
    def closed(self) -> bool:
        return self._lm is None

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> np.ndarray | None:
        """The first face's / pose's points in one RGB frame ``uint8 [H, W, 3]``: ``float32 [N, 3]`` (x, y in pixels,
        z as MediaPipe gives it; N = 478 face or 33 pose points), or None when none is found. ``timestamp_ms`` is
        needed in VIDEO mode."""
        if self._lm is None:
            raise RuntimeError(f"the {self.kind} landmarker is closed")
        close_pending()
        image = as_mp_image(frame)
        quiet = native_stderr() if self._first_call else contextlib.nullcontext()   # native warnings print once
        self._first_call = False
        with quiet:
            if self.mode == "VIDEO":
                ts = max(int(timestamp_ms if timestamp_ms is not None else self._last_ts + 1), self._last_ts + 1)
                self._last_ts = ts
                result = self._lm.detect_for_video(image, ts)
            else:
                result = self._lm.detect(image)
        people = result.face_landmarks if self.kind == "face" else result.pose_landmarks
        if not people:
            return None
        h, w = frame.shape[:2]
        return np.array([[p.x * w, p.y * h, p.z] for p in people[0]], dtype=np.float32)

    def close(self) -> None:
        lm, self._lm = getattr(self, "_lm", None), None
        if lm is not None:
            close_task_landmarker(lm)

    def __del__(self):  # never closes here (a finalizer may run inside another MediaPipe call): see landmarker
        release_later(getattr(self, "_lm", None))
        self._lm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def assign_hands(hands: Sequence[tuple[np.ndarray, str]], body: np.ndarray | None = None
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(right, left)``: which of HandLandmarker's hands (``(points [21, >=2] pixels, handedness label)``) is the
    signer's right and left hand as Holistic has them (see the module doc): by the nearer Pose wrist when ``body``
    (Pose points ``[>=17, >=2]``) is given, else by the label, ties broken by image x. At most one each."""
    hands = [(np.asarray(p, np.float32)[:, :2], str(label)) for p, label in hands][:2]
    if not hands:
        return None, None
    if body is not None:
        wr, wl = body[_RIGHT_WRIST, :2], body[_LEFT_WRIST, :2]
        d = [(float(np.linalg.norm(p[0] - wr)), float(np.linalg.norm(p[0] - wl))) for p, _ in hands]
        if len(hands) == 1:
            return (hands[0][0], None) if d[0][0] <= d[0][1] else (None, hands[0][0])
        if d[0][0] + d[1][1] <= d[0][1] + d[1][0]:
            return hands[0][0], hands[1][0]
        return hands[1][0], hands[0][0]
    if len(hands) == 1:
        p, label = hands[0]
        return (p, None) if label == "Right" else (None, p)
    (p0, l0), (p1, l1) = hands
    if l0 != l1:
        return (p0, p1) if l0 == "Right" else (p1, p0)
    return (p0, p1) if p0[0, 0] <= p1[0, 0] else (p1, p0)


def assemble_pose86(right: np.ndarray | None, left: np.ndarray | None, face: np.ndarray | None,
                    body: np.ndarray | None) -> np.ndarray:
    """One frame's ``[86, 2]`` float32 pixel keypoints from the parts found (None: missing, all zeros): hands
    ``[21, >=2]``, the face mesh ``[>=468, >=2]`` (the lips are taken from it), Pose ``[>=25, >=2]``."""
    out = np.zeros((NUM_POINTS, 2), np.float32)
    if right is not None:
        out[PARTS["right_hand"].slice] = right[:21, :2]
    if left is not None:
        out[PARTS["left_hand"].slice] = left[:21, :2]
    if face is not None:
        out[PARTS["lips"].slice] = face[list(LIPS_FACEMESH), :2]
    if body is not None:
        out[PARTS["body"].slice] = body[:25, :2]
    return out


class Pose86Landmarker:
    """Per frame of a video, the 86-point layout ``[86, 2]`` (pixels; a missing part all zeros).

    ``frame(image, timestamp_ms, hands)`` takes the hands from the runtime's crop pass (a
    :class:`~slsdk.runtime.crop.CropResult` or a list of :class:`~slsdk.runtime.landmarker.Hand`); without them it
    runs its own :class:`~slsdk.runtime.hand_tracker.HandCropper` (the runtime's, ``crop_config``), so a caller
    that crops anyway never runs a second hand pass. ``parts`` picks what is extracted (:data:`PARTS_ALL`); a part
    left out is zeros in every frame and its model is not needed. ``video(frames, fps)`` does a whole clip from a
    fresh tracker. Models: ``face_model`` / ``pose_model`` / ``hand_model`` paths, else found as
    :mod:`slsdk.runtime.hand_model` says. ``seconds``: time spent per part since the last reset (``hands``: its own
    hand tracker only; the crop pass's time is the caller's), for the serving cost per frame.
    """

    def __init__(self, *, parts: Iterable[str] = PARTS_ALL, face_model: str | Path | None = None,
                 pose_model: str | Path | None = None, hand_model: str | Path | None = None,
                 crop_config: CropConfig | None = None, download: bool = True):
        self.parts = tuple(p for p in PARTS_ALL if p in set(parts))
        unknown = set(parts) - set(PARTS_ALL)
        if unknown:
            raise ValueError(f"unknown landmark parts {sorted(unknown)}; choose from {', '.join(PARTS_ALL)}")
        self.face_model = resolve_task_model(FACE_MODEL, face_model, download=download) if "lips" in self.parts \
            else None
        self.pose_model = resolve_task_model(POSE_MODEL, pose_model, download=download) if "body" in self.parts \
            else None
        self.hand_model, self.crop_config = hand_model, crop_config or CropConfig()
        self._face: TaskLandmarker | None = None
        self._pose: TaskLandmarker | None = None
        self._cropper = None
        # seconds spent per part over the frames so far ("hands": only this landmarker's own hand tracker)
        self.seconds = {"hands": 0.0, "lips": 0.0, "body": 0.0}
        self._open()

    def _open(self) -> None:
        self._close_models()
        if self.face_model is not None:
            self._face = TaskLandmarker("face", self.face_model, FACE_MODE)
        if self.pose_model is not None:
            self._pose = TaskLandmarker("pose", self.pose_model)
        self._last_ts = -1

    def reset(self) -> None:
        """Start over as for a new video (fresh trackers, timestamps and :attr:`seconds`)."""
        self._open()
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        if self._cropper is not None:
            self._cropper.reset()

    def _own_hands(self, image: np.ndarray, ts: int) -> CropResult:
        if self._cropper is None:
            self._cropper = HandCropper(self.crop_config, self.hand_model, size=8)
        return self._cropper.crop(image, ts)

    def frame(self, image: np.ndarray, timestamp_ms: int, hands: CropResult | Sequence[Hand] | None = None
              ) -> np.ndarray:
        """The ``[86, 2]`` float32 pixel keypoints of one RGB frame ``uint8 [H, W, 3]`` at ``timestamp_ms`` (the
        next frame of the video: timestamps increase). ``hands``: the crop pass's result for this frame (or its
        hands); None runs this landmarker's own hand tracker."""
        image = np.asarray(image)
        ts = max(int(timestamp_ms), self._last_ts + 1)
        self._last_ts = ts
        found: list[tuple[np.ndarray, str]] = []
        if "hands" in self.parts:
            if hands is None:
                t0 = time.perf_counter()
                hands = self._own_hands(image, ts)
                self.seconds["hands"] += time.perf_counter() - t0
            if isinstance(hands, CropResult):
                found = list(zip(hands.landmarks, hands.handedness))
            else:
                found = [(h.landmarks, h.handedness) for h in hands]
        t1 = time.perf_counter()
        body = self._pose.detect(image, ts) if self._pose is not None else None
        t2 = time.perf_counter()
        face = self._face.detect(image, ts) if self._face is not None else None
        t3 = time.perf_counter()
        self.seconds["body"] += t2 - t1
        self.seconds["lips"] += t3 - t2
        right, left = assign_hands(found, body)
        return assemble_pose86(right, left, face, body)

    def video(self, frames: Iterable[np.ndarray], fps: float = 25.0) -> np.ndarray:
        """``[T, 86, 2]`` float32 of a whole clip (any iterable of RGB frames at ``fps``), from fresh trackers."""
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.reset()
        out = [self.frame(f, int(round(i * 1000.0 / fps))) for i, f in enumerate(frames)]
        return np.stack(out) if out else np.zeros((0, NUM_POINTS, 2), np.float32)

    def _close_models(self) -> None:
        for name in ("_face", "_pose"):
            lm = getattr(self, name, None)
            setattr(self, name, None)
            if lm is not None:
                lm.close()

    def close(self) -> None:
        self._close_models()
        cropper, self._cropper = getattr(self, "_cropper", None), None
        if cropper is not None:
            cropper.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------------------------------- .pose
POSE_FILE_VERSION = 0.1


def pose86_file_bytes(keypoints, fps: float, width: int, height: int) -> bytes:
    """The bytes of a ``.pose`` file (the pose-format package's format, version 0.1) holding ``keypoints``
    ``[T, 86, 2]`` pixels: one person, MediaPipe Holistic's component names and point names (``POSE_LANDMARKS``
    points 0-24 by name, ``FACE_LANDMARKS`` the 19 lip points named by their FaceMesh index, ``LEFT_HAND_LANDMARKS``
    and ``RIGHT_HAND_LANDMARKS`` 21 each), point format ``XYC``: a part missing in a frame has confidence 0 there
    (and zeros), a found one 1. :func:`slsdk.landmarks.read_pose_file` reads it back exactly (float32)."""
    try:
        from pose_format import Pose
        from pose_format.numpy.pose_body import NumPyPoseBody
        from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
    except ImportError:
        raise ImportError("writing .pose files needs the pose-format package: pip install 'slsdk[landmarks]' "
                          "(or pip install pose-format)") from None
    k = np.asarray(keypoints, np.float32)
    if k.ndim != 3 or k.shape[1:] != (NUM_POINTS, 2):
        raise ValueError(f"keypoints must be [T, {NUM_POINTS}, 2], got {list(k.shape)}")
    order = (("POSE_LANDMARKS", "body", list(BODY_POSE_NAMES)),
             ("FACE_LANDMARKS", "lips", [str(i) for i in LIPS_FACEMESH]),
             ("LEFT_HAND_LANDMARKS", "left_hand", list(HAND_NAMES)),
             ("RIGHT_HAND_LANDMARKS", "right_hand", list(HAND_NAMES)))
    comps = [PoseHeaderComponent(name, points, [], [(255, 255, 255)], "XYC") for name, _, points in order]
    header = PoseHeader(POSE_FILE_VERSION, PoseHeaderDimensions(int(width), int(height), 0), comps)
    missing = part_missing(k)
    names = [p.name for p in POSE86]
    data = np.concatenate([k[:, PARTS[part].slice] for _, part, _ in order], axis=1)[:, None]   # [T, 1, 86, 2]
    conf = np.concatenate([np.repeat((~missing[:, names.index(part)])[:, None], PARTS[part].size, axis=1)
                           for _, part, _ in order], axis=1)[:, None].astype(np.float32)
    body = NumPyPoseBody(float(fps), np.ma.masked_array(data, mask=np.repeat((conf == 0)[..., None], 2, -1)), conf)
    buf = io.BytesIO()
    Pose(header, body).write(buf)
    return buf.getvalue()
