"""The MediaPipe Tasks model files (hand, face, pose landmarkers): find them, validate them, download them.

MediaPipe >= 0.10.30 ships no model files, so :func:`resolve_hand_model` finds a ``hand_landmarker.task`` in
this order: the ``path`` argument (``--hand-model PATH`` on the CLI) -> ``$SLSDK_HAND_MODEL`` -> the cache
(``$XDG_CACHE_HOME/slsdk/hand_landmarker.task``, default ``~/.cache/slsdk``) -> a download from Google's model
storage (``$SLSDK_HAND_MODEL_URL`` overrides the address) written atomically into the cache.

``--hand-model lite`` (or ``$SLSDK_HAND_MODEL=lite``) takes MediaPipe's lite hand models instead:
``hand_landmarker_lite.task`` (``$SLSDK_HAND_MODEL_LITE`` -> the cache), which Google publishes only inside the
mediapipe 0.10.14 wheel as two bare .tflite files; :func:`build_lite_hand_model` (``slsdk import hand-lite WHEEL``)
zips them into a .task in the cache, writing the image-normalisation metadata the palm detector lacks.
``--hand-model full`` is the default search above. Measured against the full models on the real clips and photos:
``benchmarks/bench_hands.py --lite``, docs/results.md "Lite hand models (issue #32)".

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

import numpy as np

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
    build: str = ""             # how to make one where Google publishes no .task (url is then empty: no download)

    def how_to(self, cache: Path | str) -> str:
        if self.build and not self.url:
            return (f"Build the {self.filename} into the cache ({cache}) with `{self.build}`, or set "
                    f"{self.env}=PATH to one")
        built = f", or build one into the cache offline with `{self.build}`" if self.build else ""
        return (f"Provide a MediaPipe {self.task} model: pass {self.flag} PATH or set {self.env}=PATH to a "
                f"{self.filename}, or put one at {cache}. Download it on a machine with network access from "
                f"{self.url}{built}")


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
    "pose_landmarker_full.task", 64 << 20, "~9 MB",
    build="pip download mediapipe==0.10.14 --no-deps -d wheels && slsdk import pose wheels/mediapipe-0.10.14-*.whl")

# MediaPipe's lite hand models: Google publishes no .task of them, only the two .tflite files inside the mediapipe
# wheels (0.10.14 here); build_lite_hand_model zips them as the HandLandmarker expects (same members as the full).
LITE_WHEEL = "mediapipe==0.10.14"
LITE_WHEEL_MEMBERS = {"hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
                      "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite"}
HAND_MODEL_LITE = TaskModel(
    "HandLandmarker", "hand_landmarker_lite.task", HAND_MODEL_MEMBERS, "--hand-model lite", "SLSDK_HAND_MODEL_LITE",
    "", "", MAX_HAND_MODEL_BYTES, "~4 MB", HandModelNotFound, InvalidHandModel,
    build=f"pip download {LITE_WHEEL} --no-deps -d wheels && slsdk import hand-lite wheels/mediapipe-0.10.14-*.whl")
# the names --hand-model takes besides a path ("full": the default search, HAND_MODEL)
HAND_MODELS = {"full": HAND_MODEL, "lite": HAND_MODEL_LITE}

_HOW_TO = HAND_MODEL.how_to("{cache}")


class MediaPipeWheelError(SlsdkError, ValueError):
    """The file given to build a .task from (the lite hand or the pose model) is not a mediapipe wheel holding its .tflite files."""


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
                       url: str | None = None, timeout: float = 30.0, env: bool = True) -> Path:
    """Find ``spec``'s model file: ``path`` -> ``$<spec.env>`` -> cache -> download into the cache.

    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else ``$<spec.env_url>``, else Google's model storage) is where a download comes from; a spec
    without one (the lite hand model) is never downloaded: the error says how to build it. ``env=False`` skips
    ``$<spec.env>``. Raises ``spec.not_found`` when offline and ``spec.invalid`` for a wrong file.
    """
    if path is not None:
        return validate_task_model(Path(path).expanduser(), spec)
    env = os.environ.get(spec.env) if env else None
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
            again = f"build it again (`{spec.build}`)" if spec.build else "download it again"
            raise spec.invalid(f"cached {what} model is invalid, delete it to {again}: {e}") from None
    how = spec.how_to(cache)
    if not spec.url and not url:
        raise spec.not_found(f"no {spec.filename} found. {how}")
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

    ``path`` (else $SLSDK_HAND_MODEL) may also name a model of :data:`HAND_MODELS`: ``"full"`` is this search
    (the variable read only when it holds a path), ``"lite"`` MediaPipe's lite models (``$SLSDK_HAND_MODEL_LITE`` -> the cache's
    ``hand_landmarker_lite.task``; never downloaded: :func:`build_lite_hand_model` makes it). A file named
    ``lite`` or ``full`` is given with a folder (``models/lite``, an absolute path: ``Path("./lite")`` is
    ``Path("lite")``).
    An explicit ``path`` or env var that does not exist is an error (never silently replaced by another
    model). ``url`` (else $SLSDK_HAND_MODEL_URL, else Google's model storage) is where a download comes from.
    Raises :class:`HandModelNotFound` when offline and :class:`InvalidHandModel` for a wrong file.
    """
    name = path if path is not None else os.environ.get(ENV_HAND_MODEL)
    spec = HAND_MODELS.get(os.fspath(name)) if name is not None else None    # the CLI's Path("lite") included
    if spec is not None:
        use_env = spec is not HAND_MODEL or os.environ.get(ENV_HAND_MODEL) not in HAND_MODELS   # a path, or unset
        return resolve_task_model(spec, None, download=download, url=url, timeout=timeout, env=use_env)
    return resolve_task_model(HAND_MODEL, path, download=download, url=url, timeout=timeout)


# --------------------------------------------------------------------------------------------------
# the lite hand and the pose models, built from a mediapipe wheel
# --------------------------------------------------------------------------------------------------
# The Tasks graph reads an image model's input normalisation from its TFLite metadata; the wheel's bare .tflite files
# have none ("requires specifying NormalizationOptions metadata"). What each one's input takes: the hand models of the
# full .task (and the lite ones) RGB in [0, 1] (mean 0, std 255); MediaPipe's pose detector [-1, 1] (mean 127.5, std
# 127.5, as its own metadata writer's example sets it), its pose landmark model [0, 1].
@dataclass(frozen=True)
class WheelModel:
    """A .tflite in the mediapipe wheel that becomes one member of a .task: where it is in the wheel, the input
    normalisation written into its metadata, and the title and output names the metadata gives it."""

    path: str
    mean: float
    std: float
    title: str
    outputs: tuple[str, ...] = ()


# name (``slsdk import NAME WHEEL``) -> the .task it builds and its members
WHEEL_BUILDS: dict[str, tuple[TaskModel, dict[str, WheelModel]]] = {
    "hand-lite": (HAND_MODEL_LITE, {
        "hand_detector.tflite": WheelModel(LITE_WHEEL_MEMBERS["hand_detector.tflite"], 0.0, 255.0,
                                           "Multi Hand Detection (lite)", ("palm detection", "scores")),
        "hand_landmarks_detector.tflite": WheelModel(
            LITE_WHEEL_MEMBERS["hand_landmarks_detector.tflite"], 0.0, 255.0, "HandLandmarkDetector (lite)",
            ("handedness", "presence score", "landmarks", "world landmarks"))}),
    "pose": (POSE_MODEL, {
        "pose_detector.tflite": WheelModel("mediapipe/modules/pose_detection/pose_detection.tflite", 127.5, 127.5,
                                           "Pose Detection"),
        "pose_landmarks_detector.tflite": WheelModel("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                                                     0.0, 255.0, "Pose Landmark (full)")}),
}


def _read_wheel(wheel: Path, members: dict[str, WheelModel], what: str) -> dict[str, bytes]:
    """``members``' bytes from a mediapipe wheel, by .task member name (named errors for a wrong file)."""
    get = f"`pip download {LITE_WHEEL} --no-deps` (wheels from 0.10.30 on hold no model files)"
    if not wheel.is_file():
        raise MediaPipeWheelError(f"{wheel} does not exist or is not a file; get the mediapipe wheel with {get}")
    if not zipfile.is_zipfile(wheel):
        raise MediaPipeWheelError(f"{wheel} is not a wheel (a zip archive); get the mediapipe wheel with {get}")
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            missing = [m.path for m in members.values() if m.path not in names]
            if missing:
                raise MediaPipeWheelError(f"{wheel} lacks {', '.join(missing)}: not a mediapipe wheel with the "
                                          f"{what} models; get one with {get}")
            return {k: z.read(m.path) for k, m in members.items()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise MediaPipeWheelError(f"{wheel} is a corrupt zip archive ({e}); get the mediapipe wheel with {get}") from None


def _with_image_metadata(model: bytes, spec: WheelModel, where: str) -> bytes:
    """``model`` (a .tflite) with image-normalisation metadata (RGB, ``(x - spec.mean) / spec.std``) written in,
    unless it has metadata already (then it is returned unchanged)."""
    import flatbuffers  # noqa: PLC0415  (MediaPipe's dependency: present where mediapipe is)
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as schema

    if model[4:8] != b"TFL3":
        raise MediaPipeWheelError(f"{where} is not a TFLite model (no TFL3 identifier)")
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    if any(x.name == b"TFLITE_METADATA" for x in m.metadata or []):
        return model
    sub = m.subgraphs[0]
    shape = list(sub.tensors[sub.inputs[0]].shape)
    if len(sub.inputs) != 1 or len(shape) != 4 or shape[3] != 3:
        raise MediaPipeWheelError(f"{where} is not an image model (its input is {shape}, expected [1, H, W, 3])")
    title, outs = spec.title, spec.outputs

    def tensor(name: str, image: bool = False):
        t = meta.TensorMetadataT()
        t.name = name
        if image:
            t.content = meta.ContentT()
            t.content.contentPropertiesType = meta.ContentProperties.ImageProperties
            t.content.contentProperties = meta.ImagePropertiesT()
            t.content.contentProperties.colorSpace = meta.ColorSpaceType.RGB
            norm = meta.NormalizationOptionsT()
            norm.mean, norm.std = [float(spec.mean)], [float(spec.std)]
            unit = meta.ProcessUnitT()
            unit.optionsType, unit.options = meta.ProcessUnitOptions.NormalizationOptions, norm
            t.processUnits = [unit]
            t.stats = meta.StatsT()
            t.stats.min, t.stats.max = [(0.0 - spec.mean) / spec.std], [(255.0 - spec.mean) / spec.std]
        return t

    graph = meta.SubGraphMetadataT()
    graph.inputTensorMetadata = [tensor("image", image=True)]
    n = len(sub.outputs)
    graph.outputTensorMetadata = [tensor(x) for x in (outs if len(outs) == n else [f"out{i}" for i in range(n)])]
    md = meta.ModelMetadataT()
    md.name, md.description = title, f"from the {LITE_WHEEL} wheel, metadata written by slsdk"
    md.minParserVersion, md.subgraphMetadata = "1.0.0", [graph]
    b = flatbuffers.Builder(1024)
    b.Finish(md.Pack(b), file_identifier=b"M001")
    buf = schema.BufferT()
    buf.data = np.frombuffer(bytes(b.Output()), np.uint8)
    m.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(m.buffers) - 1
    m.metadata = [*(m.metadata or []), entry]
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def build_task_model(name: str, wheel: str | Path, dest: str | Path | None = None, *,
                     overwrite: bool = False) -> Path:
    """Build the .task of :data:`WHEEL_BUILDS` ``name`` from a mediapipe wheel (``pip download mediapipe==0.10.14
    --no-deps``): each member's .tflite from the wheel, given the image-normalisation metadata the Tasks API needs
    where it has none, zipped (stored, as Google's .task). Written atomically (:func:`slsdk.fileio.atomic_write`) at
    ``dest``, default the cache where the model's search finds it; an existing file is replaced only with
    ``overwrite`` and if slsdk wrote it. Needs mediapipe (its TFLite schema modules) installed."""
    if name not in WHEEL_BUILDS:
        raise ValueError(f"no wheel build named {name!r}; known: {', '.join(WHEEL_BUILDS)}")
    spec, members = WHEEL_BUILDS[name]
    wheel = Path(wheel)
    dest = Path(dest) if dest is not None else task_model_cache_path(spec)
    models = _read_wheel(wheel, members, spec.task.replace("Landmarker", "").lower())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for member, data in models.items():
            z.writestr(member, _with_image_metadata(data, members[member], f"{wheel}:{members[member].path}"))
    _check_task(out, dest, spec)
    return fileio.atomic_write(dest, out.getvalue(), overwrite=overwrite)


def build_lite_hand_model(wheel: str | Path, dest: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """``hand_landmarker_lite.task`` (``slsdk import hand-lite``): the wheel's ``palm_detection_lite.tflite`` and
    ``hand_landmark_lite.tflite`` as the HandLandmarker's detector and landmark model (mean 0, std 255, the full
    models' normalisation), by default into the cache where ``--hand-model lite`` finds it."""
    return build_task_model("hand-lite", wheel, dest, overwrite=overwrite)


def build_pose_model(wheel: str | Path, dest: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """``pose_landmarker.task`` (``slsdk import pose``) where Google's cannot be downloaded: the wheel's
    ``pose_detection.tflite`` (mean 127.5, std 127.5) and ``pose_landmark_full.tflite`` (mean 0, std 255) as the
    PoseLandmarker's detector and landmark model, by default into the cache where ``--pose-model``'s search finds
    it."""
    return build_task_model("pose", wheel, dest, overwrite=overwrite)


__all__ = ["DEFAULT_HAND_MODEL_URL", "HAND_MODEL_FILENAME", "HAND_MODEL_MEMBERS", "ENV_HAND_MODEL",
           "ENV_HAND_MODEL_URL", "HandModelNotFound", "InvalidHandModel", "hand_model_cache_path",
           "validate_hand_model", "resolve_hand_model", "TaskModel", "TaskModelNotFound", "InvalidTaskModel",
           "HAND_MODEL", "FACE_MODEL", "POSE_MODEL", "task_model_cache_path", "validate_task_model",
           "resolve_task_model", "HAND_MODEL_LITE", "HAND_MODELS", "LITE_WHEEL", "LITE_WHEEL_MEMBERS",
           "MediaPipeWheelError", "WheelModel", "WHEEL_BUILDS", "build_task_model", "build_lite_hand_model",
           "build_pose_model"]
