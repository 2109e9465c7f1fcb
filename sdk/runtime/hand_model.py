"""The MediaPipe HandLandmarker model file: find it, validate it, download it.

MediaPipe >= 0.10.30 ships no model files, so :func:`resolve_hand_model` finds a ``hand_landmarker.task`` in
this order: the ``path`` argument (``--hand-model PATH`` on the CLI) -> ``$SLSDK_HAND_MODEL`` -> the cache
(``$XDG_CACHE_HOME/slsdk/hand_landmarker.task``, default ``~/.cache/slsdk``) -> a download from Google's model
storage (``$SLSDK_HAND_MODEL_URL`` overrides the address) written atomically into the cache.
"""
from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
import zipfile
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


class HandModelNotFound(SlsdkError, FileNotFoundError):
    """No hand_landmarker.task could be found or downloaded."""


class InvalidHandModel(SlsdkError, ValueError):
    """A file was given as the hand model but is not a MediaPipe HandLandmarker .task bundle."""


_HOW_TO = (
    f"Provide a MediaPipe HandLandmarker model: pass --hand-model PATH or set "
    f"{ENV_HAND_MODEL}=PATH to a hand_landmarker.task, or put one at {{cache}}. Download it on a machine "
    f"with network access from {DEFAULT_HAND_MODEL_URL}"
)


# --------------------------------------------------------------------------------------------------
# model file
# --------------------------------------------------------------------------------------------------
def hand_model_cache_path() -> Path:
    """Where a downloaded model is kept: ``$XDG_CACHE_HOME/slsdk/hand_landmarker.task`` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slsdk" / HAND_MODEL_FILENAME


def validate_hand_model(path: str | Path) -> Path:
    """Check that ``path`` is a zip holding hand_detector.tflite + hand_landmarks_detector.tflite."""
    path = Path(path)
    if not path.is_file():
        raise HandModelNotFound(f"hand model {path} does not exist or is not a file. "
                                + _HOW_TO.format(cache=hand_model_cache_path()))
    _check_task(path, path)
    return path


def _check_task(source, name) -> None:
    """Raise :class:`InvalidHandModel` (naming ``name``) unless ``source`` (a path or a binary file object) is a
    zip holding the two HandLandmarker models."""
    if not zipfile.is_zipfile(source):
        raise InvalidHandModel(
            f"{name} is not a MediaPipe HandLandmarker .task file (a .task is a zip archive holding "
            f"{' + '.join(HAND_MODEL_MEMBERS)}; this file is not a zip archive)")
    try:
        with zipfile.ZipFile(source) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
    except zipfile.BadZipFile as e:
        raise InvalidHandModel(f"{name} is a corrupt zip archive ({e}); expected a hand_landmarker.task") from None
    missing = [m for m in HAND_MODEL_MEMBERS if not sizes.get(m)]
    if missing:
        raise InvalidHandModel(
            f"{name} is a zip archive but lacks {', '.join(missing)} (found: {', '.join(sorted(sizes)) or 'nothing'}); "
            f"a HandLandmarker .task holds {' + '.join(HAND_MODEL_MEMBERS)}")


class _FetchFailed(Exception):
    """The network side of a download failed (kept apart from errors writing the file)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _download(url: str, dest: Path, timeout: float) -> Path:
    """Stream ``url`` into ``dest`` through :func:`slsdk.fileio.atomic_write` (a temp file beside it, renamed
    only once the download is complete and is a valid model: a reader never sees a half-written one)."""

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
                if copy.tell() + len(chunk) > MAX_HAND_MODEL_BYTES:
                    raise InvalidHandModel(f"the file downloaded from {url} is not a hand model: more than "
                                           f"{MAX_HAND_MODEL_BYTES >> 20} MiB (a hand_landmarker.task is ~8 MB)")
                f.write(chunk)
                copy.write(chunk)
        try:
            _check_task(copy, url)
        except InvalidHandModel as e:
            raise InvalidHandModel(f"the file downloaded from {url} is not a hand model: {e}") from None

    try:
        return fileio.atomic_write(dest, fetch)
    except _FetchFailed as e:
        raise e.error from None


def resolve_hand_model(path: str | Path | None = None, *, download: bool = True, url: str | None = None,
                       timeout: float = 30.0) -> Path:
    """Find the HandLandmarker model: ``path`` -> $SLSDK_HAND_MODEL -> cache -> download into the cache.

    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else $SLSDK_HAND_MODEL_URL, else Google's model storage) is where a download comes from.
    Raises :class:`HandModelNotFound` when offline and :class:`InvalidHandModel` for a wrong file.
    """
    if path is not None:
        return validate_hand_model(Path(path).expanduser())
    env = os.environ.get(ENV_HAND_MODEL)
    if env:
        try:
            return validate_hand_model(Path(env).expanduser())
        except HandModelNotFound:
            raise HandModelNotFound(f"${ENV_HAND_MODEL}={env} does not exist. "
                                    + _HOW_TO.format(cache=hand_model_cache_path())) from None
    cache = hand_model_cache_path()
    if cache.exists():
        try:
            return validate_hand_model(cache)
        except InvalidHandModel as e:
            raise InvalidHandModel(f"cached hand model is invalid, delete it to download again: {e}") from None
    how = _HOW_TO.format(cache=cache)
    if not download:
        raise HandModelNotFound(f"no hand model found (download disabled). {how}")
    url = url or os.environ.get(ENV_HAND_MODEL_URL) or DEFAULT_HAND_MODEL_URL
    try:
        return _download(url, cache, timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, (InvalidHandModel, fileio.WriteError, fileio.OutputExistsError)):
            raise     # a wrong file, or the cache cannot be written: said as it is, not as "offline"
        reason = getattr(e, "reason", None) or e
        raise HandModelNotFound(f"no hand model found and downloading {url} failed ({reason}); "
                                f"are you offline? {how}") from None


__all__ = ["DEFAULT_HAND_MODEL_URL", "HAND_MODEL_FILENAME", "HAND_MODEL_MEMBERS", "ENV_HAND_MODEL",
           "ENV_HAND_MODEL_URL", "HandModelNotFound", "InvalidHandModel", "hand_model_cache_path",
           "validate_hand_model", "resolve_hand_model"]
