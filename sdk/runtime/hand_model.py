"""The MediaPipe Tasks model files (hand, face, pose landmarkers): find them, validate them, download them.

MediaPipe >= 0.10.30 ships no model files, so :func:`resolve_hand_model` finds a ``hand_landmarker.task`` in
this order: the ``path`` argument (``--hand-model PATH`` on the CLI) -> ``$SLSDK_HAND_MODEL`` -> the cache
(``$XDG_CACHE_HOME/slsdk/hand_landmarker.task``, default ``~/.cache/slsdk``) -> a download from Google's model
storage (``$SLSDK_HAND_MODEL_URL`` overrides the address) written atomically into the cache.

The face and pose landmarkers of the 86-point landmark layout (:mod:`slsdk.runtime.pose86_landmarks`) are found
the same way (:func:`resolve_task_model` with :data:`FACE_MODEL` / :data:`POSE_MODEL`): ``--face-model`` /
``$SLSDK_FACE_MODEL`` -> ``face_landmarker.task`` in the cache -> download; ``--pose-model`` /
``$SLSDK_POSE_MODEL`` -> ``pose_landmarker.task`` in the cache -> download.
"""
from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from slsdk import fileio
from slsdk.errors import SlsdkError

DEFAULT_HAND_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/"
    "hand_landmarker.task"
)
HAND_MODEL_FILENAME = "hand_landmarker.task"
HAND_MODEL_MEMBERS = ("hand_detector.tflite", "hand_landmarks_detector.tflite")
ENV_HAND_MODEL = "SLSDK_HAND_MODEL"
ENV_HAND_MODEL_URL = "SLSDK_HAND_MODEL_URL"
MAX_HAND_MODEL_BYTES = 64 << 20   # the model is ~7.5 MB; a larger download is refused (a wrong URL, a portal)


class TaskModelNotFound(SlsdkError, FileNotFoundError):
    """No MediaPipe Tasks model file (hand, face or pose landmarker) could be found or downloaded."""


class InvalidTaskModel(SlsdkError, ValueError):
    """A file was given as a MediaPipe Tasks model but is not that landmarker's .task bundle."""


class HandModelNotFound(TaskModelNotFound):
    """No hand_landmarker.task could be found or downloaded."""


class InvalidHandModel(InvalidTaskModel):
    """A file was given as the hand model but is not a MediaPipe HandLandmarker .task bundle."""


@dataclass(frozen=True)
class TaskModel:
    """One MediaPipe Tasks model file slsdk finds: its task name, file name, the zip members a valid one holds,
    the CLI flag and environment variables that point at it, where it downloads from, and its error types."""

    task: str                   # "HandLandmarker"
    filename: str               # "hand_landmarker.task" (the cache's file name)
    members: tuple[str, ...]
    flag: str                   # "--hand-model"
    env: str
    env_url: str
    url: str
    max_bytes: int
    approx: str                 # "~8 MB" (said when a download is too large)
    not_found: type = TaskModelNotFound
    invalid: type = InvalidTaskModel

    def how_to(self, cache: Path | str) -> str:
        return (f"Provide a MediaPipe {self.task} model: pass {self.flag} PATH or set {self.env}=PATH to a "
                f"{self.filename}, or put one at {cache}. Download it on a machine with network access from "
                f"{self.url}")


HAND_MODEL = TaskModel("HandLandmarker", HAND_MODEL_FILENAME, HAND_MODEL_MEMBERS, "--hand-model", ENV_HAND_MODEL,
                       ENV_HAND_MODEL_URL, DEFAULT_HAND_MODEL_URL, MAX_HAND_MODEL_BYTES, "~8 MB", HandModelNotFound,
                       InvalidHandModel)
# Google's FaceLandmarker bundle also holds face_blendshapes.tflite (not needed for the points); the one built from
# the mediapipe 0.10.14 wheel (shared/data/SOURCES.md) holds the two below.
FACE_MODEL = TaskModel(
    "FaceLandmarker", "face_landmarker.task", ("face_detector.tflite", "face_landmarks_detector.tflite"),
    "--face-model", "SLSDK_FACE_MODEL", "SLSDK_FACE_MODEL_URL",
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/latest/"
    "face_landmarker.task", 64 << 20, "~4 MB")
POSE_MODEL = TaskModel(
    "PoseLandmarker", "pose_landmarker.task", ("pose_detector.tflite", "pose_landmarks_detector.tflite"),
    "--pose-model", "SLSDK_POSE_MODEL", "SLSDK_POSE_MODEL_URL",
    "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/latest/"
    "pose_landmarker_full.task", 64 << 20, "~9 MB")

_HOW_TO = HAND_MODEL.how_to("{cache}")


# --------------------------------------------------------------------------------------------------
# model file
# --------------------------------------------------------------------------------------------------
def task_model_cache_path(spec: TaskModel) -> Path:
    """Where a downloaded model is kept: ``$XDG_CACHE_HOME/slsdk/<filename>`` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slsdk" / spec.filename


def hand_model_cache_path() -> Path:
    """Where a downloaded model is kept: ``$XDG_CACHE_HOME/slsdk/hand_landmarker.task`` (default ~/.cache)."""
    return task_model_cache_path(HAND_MODEL)


def validate_task_model(path: str | Path, spec: TaskModel = HAND_MODEL) -> Path:
    """Check that ``path`` is a zip holding the members of ``spec``'s .task bundle."""
    path = Path(path)
    if not path.is_file():
        raise spec.not_found(f"{spec.task.replace('Landmarker', '').lower()} model {path} does not exist or is not "
                             "a file. " + spec.how_to(task_model_cache_path(spec)))
    _check_task(path, path, spec)
    return path


def validate_hand_model(path: str | Path) -> Path:
    """Check that ``path`` is a zip holding hand_detector.tflite + hand_landmarks_detector.tflite."""
    return validate_task_model(path, HAND_MODEL)


def _check_task(source, name, spec: TaskModel = HAND_MODEL) -> None:
    """Raise ``spec.invalid`` (naming ``name``) unless ``source`` (a path or a binary file object) is a zip holding
    the members of ``spec``'s .task bundle."""
    members = " + ".join(spec.members)
    if not zipfile.is_zipfile(source):
        raise spec.invalid(
            f"{name} is not a MediaPipe {spec.task} .task file (a .task is a zip archive holding "
            f"{members}; this file is not a zip archive)")
    try:
        with zipfile.ZipFile(source) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
    except zipfile.BadZipFile as e:
        raise spec.invalid(f"{name} is a corrupt zip archive ({e}); expected a {spec.filename}") from None
    missing = [m for m in spec.members if not sizes.get(m)]
    if missing:
        raise spec.invalid(
            f"{name} is a zip archive but lacks {', '.join(missing)} (found: {', '.join(sorted(sizes)) or 'nothing'}); "
            f"a {spec.task} .task holds {members}")


class _FetchFailed(Exception):
    """The network side of a download failed (kept apart from errors writing the file)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _download(url: str, dest: Path, timeout: float, spec: TaskModel = HAND_MODEL) -> Path:
    """Stream ``url`` into ``dest`` through :func:`slsdk.fileio.atomic_write` (a temp file beside it, renamed
    only once the download is complete and is a valid model: a reader never sees a half-written one)."""
    what = spec.task.replace("Landmarker", "").lower()

    def fetch(f) -> None:
        try:
            r = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _FetchFailed(e) from None
        copy = io.BytesIO()      # validated before the rename (the model is small: bounded below)
        with r:
            while True:
                try:
                    chunk = r.read(1 << 20)
                except (OSError, ValueError) as e:
                    raise _FetchFailed(e) from None
                if not chunk:
                    break
                if copy.tell() + len(chunk) > spec.max_bytes:
                    raise spec.invalid(f"the file downloaded from {url} is not a {what} model: more than "
                                       f"{spec.max_bytes >> 20} MiB (a {spec.filename} is {spec.approx})")
                f.write(chunk)
                copy.write(chunk)
        try:
            _check_task(copy, url, spec)
        except InvalidTaskModel as e:
            raise spec.invalid(f"the file downloaded from {url} is not a {what} model: {e}") from None

    try:
        return fileio.atomic_write(dest, fetch)
    except _FetchFailed as e:
        raise e.error from None


def resolve_task_model(spec: TaskModel, path: str | Path | None = None, *, download: bool = True,
                       url: str | None = None, timeout: float = 30.0) -> Path:
    """Find ``spec``'s model file: ``path`` -> ``$<spec.env>`` -> cache -> download into the cache.

    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else ``$<spec.env_url>``, else Google's model storage) is where a download comes from.
    Raises ``spec.not_found`` when offline and ``spec.invalid`` for a wrong file.
    """
    if path is not None:
        return validate_task_model(Path(path).expanduser(), spec)
    env = os.environ.get(spec.env)
    cache = task_model_cache_path(spec)
    if env:
        try:
            return validate_task_model(Path(env).expanduser(), spec)
        except TaskModelNotFound:
            raise spec.not_found(f"${spec.env}={env} does not exist. " + spec.how_to(cache)) from None
    what = spec.task.replace("Landmarker", "").lower()
    if cache.exists():
        try:
            return validate_task_model(cache, spec)
        except InvalidTaskModel as e:
            raise spec.invalid(f"cached {what} model is invalid, delete it to download again: {e}") from None
    how = spec.how_to(cache)
    if not download:
        raise spec.not_found(f"no {what} model found (download disabled). {how}")
    url = url or os.environ.get(spec.env_url) or spec.url
    try:
        return _download(url, cache, timeout, spec)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, (InvalidTaskModel, fileio.WriteError, fileio.OutputExistsError)):
            raise     # a wrong file, or the cache cannot be written: said as it is, not as "offline"
        reason = getattr(e, "reason", None) or e
        raise spec.not_found(f"no {what} model found and downloading {url} failed ({reason}); "
                             f"are you offline? {how}") from None


def resolve_hand_model(path: str | Path | None = None, *, download: bool = True, url: str | None = None,
                       timeout: float = 30.0) -> Path:
    """Find the HandLandmarker model: ``path`` -> $SLSDK_HAND_MODEL -> cache -> download into the cache.

    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else $SLSDK_HAND_MODEL_URL, else Google's model storage) is where a download comes from.
    Raises :class:`HandModelNotFound` when offline and :class:`InvalidHandModel` for a wrong file.
    """
    return resolve_task_model(HAND_MODEL, path, download=download, url=url, timeout=timeout)


__all__ = ["DEFAULT_HAND_MODEL_URL", "HAND_MODEL_FILENAME", "HAND_MODEL_MEMBERS", "ENV_HAND_MODEL",
           "ENV_HAND_MODEL_URL", "HandModelNotFound", "InvalidHandModel", "hand_model_cache_path",
           "validate_hand_model", "resolve_hand_model", "TaskModel", "TaskModelNotFound", "InvalidTaskModel",
           "HAND_MODEL", "FACE_MODEL", "POSE_MODEL", "task_model_cache_path", "validate_task_model",
           "resolve_task_model"]
