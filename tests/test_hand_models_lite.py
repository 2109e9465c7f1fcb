"""MediaPipe's lite hand models as a hand-model choice (issue #32): `hand_landmarker_lite.task` built from a
mediapipe wheel (`slsdk import hand-lite WHEEL`, `build_lite_hand_model`), found by `--hand-model lite`, run
through the real HandLandmarker on the real photos and clip against the full models.

The wheel is looked for at $SLSDK_MEDIAPIPE_WHEEL, under the shared test material and in ~/.cache/slsdk/wheels,
and else fetched there once from PyPI as a user would (``pip download mediapipe==0.10.14 --no-deps``); where none
can be had, the tests that run the lite models use the cached task (``--hand-model lite``'s own search:
$SLSDK_HAND_MODEL_LITE, ~/.cache/slsdk/hand_landmarker_lite.task) and skip when there is none.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import find_mediapipe_wheel
from slsdk.data.video import read_image
from slsdk.fileio import OutputExistsError
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.geometry import box_iou, hands_box_params, square_box
from slsdk.runtime.hand_model import (HAND_MODEL_LITE, LITE_WHEEL_MEMBERS, HandModelNotFound, MediaPipeWheelError,
                                      build_lite_hand_model, resolve_hand_model, task_model_cache_path)
from slsdk.runtime.landmarker import HandDetector

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]
CLIP = "data/hands/webcam_gestures.mp4"
_find_wheel = find_mediapipe_wheel


# the lite task a user built earlier (looked up before any test points XDG_CACHE_HOME elsewhere)
CACHED_LITE = Path(os.environ.get("SLSDK_HAND_MODEL_LITE") or task_model_cache_path(HAND_MODEL_LITE))
NO_WHEEL = ("no mediapipe wheel with the lite hand models: set SLSDK_MEDIAPIPE_WHEEL to the file `pip download "
            "mediapipe==0.10.14 --no-deps` writes")


@pytest.fixture(scope="module")
def wheel() -> Path:
    if _find_wheel() is None:
        pytest.skip(NO_WHEEL)
    return _find_wheel()


@pytest.fixture(scope="module")
def lite_task(tmp_path_factory) -> Path:
    """The lite .task: built from the wheel here, else the cached one, else skip."""
    pytest.importorskip("mediapipe")
    if _find_wheel() is not None:
        return build_lite_hand_model(_find_wheel(), tmp_path_factory.mktemp("lite") / "hand_landmarker_lite.task")
    if CACHED_LITE.is_file():
        return CACHED_LITE
    pytest.skip(f"{NO_WHEEL}, and no {CACHED_LITE} (slsdk import hand-lite WHEEL builds it)")


@pytest.fixture(scope="module")
def full_task(shared_file) -> Path:
    return shared_file("models/hand_landmarker.task")


@pytest.fixture
def empty_cache(monkeypatch, tmp_path) -> Path:
    for var in ("SLSDK_HAND_MODEL", "SLSDK_HAND_MODEL_LITE", "SLSDK_HAND_MODEL_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "slsdk"


def _tflite(data: bytes):
    from mediapipe.tasks.metadata import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _normalisation(data: bytes) -> tuple[list, list, list, list]:
    """(mean, std, min, max) of a .tflite's image input, read from its TFLITE_METADATA."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta

    m = _tflite(data)
    (entry,) = [x for x in m.metadata if x.name == b"TFLITE_METADATA"]
    md = meta.ModelMetadataT.InitFromPackedBuf(bytearray(m.buffers[entry.buffer].data.tobytes()), 0)
    t = md.subgraphMetadata[0].inputTensorMetadata[0]
    (unit,) = [u for u in t.processUnits if u.optionsType == meta.ProcessUnitOptions.NormalizationOptions]
    return [list(np.asarray(x, float)) for x in (unit.options.mean, unit.options.std, t.stats.min, t.stats.max)]


# ------------------------------------------------------------------------------------------------
# building the .task
# ------------------------------------------------------------------------------------------------
def test_build_from_the_wheel_writes_the_metadata_the_tasks_api_needs(wheel, full_task, tmp_path):
    pytest.importorskip("mediapipe")
    out = build_lite_hand_model(wheel, tmp_path / "lite.task")
    with zipfile.ZipFile(out) as z, zipfile.ZipFile(wheel) as w, zipfile.ZipFile(full_task) as f:
        assert sorted(z.namelist()) == sorted(LITE_WHEEL_MEMBERS)
        raw = {k: w.read(m) for k, m in LITE_WHEEL_MEMBERS.items()}
        det, raw_det = z.read("hand_detector.tflite"), raw["hand_detector.tflite"]
        # the wheel's lite detector has no metadata (why it does not load as it is); the built one has the full
        # detector's input normalisation
        assert not any(x.name == b"TFLITE_METADATA" for x in _tflite(raw_det).metadata or [])
        assert _normalisation(det) == _normalisation(f.read("hand_detector.tflite"))
        # weights and graph unchanged: every tensor's buffer bytes are the wheel's
        a, b = _tflite(raw_det), _tflite(det)
        assert len(a.subgraphs[0].tensors) == len(b.subgraphs[0].tensors)
        for ta, tb in zip(a.subgraphs[0].tensors, b.subgraphs[0].tensors):
            da, db = a.buffers[ta.buffer].data, b.buffers[tb.buffer].data
            assert ta.name == tb.name and (da is None) == (db is None)
            assert da is None or np.array_equal(da, db), ta.name
        # the lite landmark model carries its metadata already: kept byte for byte
        assert z.read("hand_landmarks_detector.tflite") == raw["hand_landmarks_detector.tflite"]
    (tmp_path / "yours.task").write_bytes(b"a file slsdk did not write")
    for overwrite in (False, True):              # never replaced (the CLI test refuses slsdk's own without --overwrite)
        with pytest.raises(OutputExistsError):
            build_lite_hand_model(wheel, tmp_path / "yours.task", overwrite=overwrite)
    assert (tmp_path / "yours.task").read_bytes() == b"a file slsdk did not write"


def test_a_wrong_wheel_is_named(tmp_path):
    with pytest.raises(MediaPipeWheelError, match="nothere.whl does not exist.*pip download mediapipe==0.10.14"):
        build_lite_hand_model(tmp_path / "nothere.whl", tmp_path / "x.task")
    (tmp_path / "text.whl").write_text("not a zip")
    with pytest.raises(MediaPipeWheelError, match="text.whl is not a wheel"):
        build_lite_hand_model(tmp_path / "text.whl", tmp_path / "x.task")
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as z:      # a wheel from 0.10.30 on: no model files
        z.writestr("mediapipe/__init__.py", "")
    with pytest.raises(MediaPipeWheelError, match="other.whl lacks .*palm_detection_lite.tflite"):
        build_lite_hand_model(tmp_path / "other.whl", tmp_path / "x.task")
    assert not (tmp_path / "x.task").exists()


# ------------------------------------------------------------------------------------------------
# finding it: --hand-model lite | full | PATH
# ------------------------------------------------------------------------------------------------
def test_lite_is_never_downloaded_and_the_error_says_how_to_build_it(empty_cache):
    for name in ("lite", Path("lite")):
        with pytest.raises(HandModelNotFound) as e:
            resolve_hand_model(name)
        msg = str(e.value)
        assert "hand_landmarker_lite.task" in msg and "slsdk import hand-lite" in msg
        assert "pip download mediapipe==0.10.14" in msg and str(empty_cache) in msg
    assert not empty_cache.exists()                 # nothing was fetched or written


def test_names_resolve_to_their_models(empty_cache, lite_task, full_task, monkeypatch):
    empty_cache.mkdir(parents=True)
    shutil.copy(lite_task, empty_cache / "hand_landmarker_lite.task")
    want = empty_cache / "hand_landmarker_lite.task"
    assert resolve_hand_model("lite") == resolve_hand_model(Path("lite")) == want
    monkeypatch.setenv("SLSDK_HAND_MODEL", str(full_task))
    assert resolve_hand_model("full") == resolve_hand_model() == full_task     # "full": the default search
    assert resolve_hand_model("lite") == want
    monkeypatch.setenv("SLSDK_HAND_MODEL", "lite")                           # a name in the variable too
    assert resolve_hand_model() == want
    monkeypatch.setenv("SLSDK_HAND_MODEL_LITE", str(full_task))              # the lite model's own variable
    assert resolve_hand_model("lite") == full_task
    monkeypatch.setenv("SLSDK_HAND_MODEL_LITE", str(empty_cache / "gone.task"))
    with pytest.raises(HandModelNotFound, match="SLSDK_HAND_MODEL_LITE=.*gone.task does not exist"):
        resolve_hand_model("lite")


# ------------------------------------------------------------------------------------------------
# what it finds: the real HandLandmarker on the real photos and clip
# ------------------------------------------------------------------------------------------------
def _photo_boxes(model, photos):
    out = []
    with HandDetector(model) as d:
        for p in photos:
            img = read_image(p)
            h, w = img.shape[:2]
            hands = d.detect(img)
            out.append((square_box(*hands_box_params(hands, w, h, CropConfig()), w, h) if hands else None,
                        [x.landmarks for x in hands]))
    return out


def test_lite_finds_the_hands_the_full_model_finds_on_the_photos(lite_task, full_task, shared_dir):
    photos = [*sorted((shared_dir / "data/hands/gestures").glob("*/*.jpg")), shared_dir / "data/hands/generated_signer.png"]
    if len(photos) != 41:
        pytest.skip(f"expected 40 gesture photos and the generated signer under {shared_dir}/data/hands")
    full, lite = _photo_boxes(full_task, photos), _photo_boxes(lite_task, photos)
    clear = [i for i, (box, _) in enumerate(full) if box is not None]      # the photos the full model finds hands in
    assert len(clear) >= 30
    both = [i for i in clear if lite[i][0] is not None]
    assert len(both) >= 0.85 * len(clear), f"lite found hands in {len(both)} of the {len(clear)} photos full does"
    ious = [box_iou(full[i][0], lite[i][0]) for i in both]
    assert np.median(ious) >= 0.8, ious
    # the generated signer: both hands, in the same place
    assert len(lite[-1][1]) == len(full[-1][1]) == 2 and box_iou(full[-1][0], lite[-1][0]) >= 0.8
    # and it is another model (not the full one under another name): its landmarks differ
    one = [i for i in both if len(lite[i][1]) == len(full[i][1]) == 1]
    assert one and max(float(np.abs(lite[i][1][0] - full[i][1][0])[:, :2].max()) for i in one) > 0.5   # pixels


# ------------------------------------------------------------------------------------------------
# the CLI: slsdk import hand-lite, slsdk run --crop hands --hand-model lite
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tiny_student, tmp_path_factory, shared_file):
    """A working folder holding an ONNX bundle (``bundle``) and the real webcam clip (``clip.mp4``)."""
    pytest.importorskip("mediapipe")
    from slsdk.convert import convert

    cwd = tmp_path_factory.mktemp("lite_cli")
    convert(tiny_student(len(VOCAB)), "onnx", "fp32", cwd / "bundle", vocab=VOCAB)
    shutil.copy(shared_file(CLIP), cwd / "clip.mp4")
    return cwd


def _slsdk(cwd: Path, cache: Path, *args, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLSDK_HAND_MODEL")}
    e.update(XDG_CACHE_HOME=str(cache), **env)
    return subprocess.run([sys.executable, "-m", "slsdk.cli", *map(str, args)], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=300)


def _summary(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return next(x for x in lines if x["type"] == "summary")


def test_cli_without_the_lite_model_says_how_to_build_it(workdir, tmp_path):
    r = _slsdk(workdir, tmp_path / "cache", "run", "bundle", "clip.mp4", "--crop", "hands", "--hand-model", "lite")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    err = " ".join(r.stderr.split())
    assert err.startswith("error: no hand_landmarker_lite.task found") and "slsdk import hand-lite" in err


def test_cli_import_then_run_with_the_lite_model(workdir, lite_task, full_task, tmp_path):
    cwd = Path(shutil.copytree(workdir, tmp_path / "cwd"))
    cache = tmp_path / "cache"
    if _find_wheel() is not None:        # the CLI builds it into the cache, from a relative path
        (cwd / "mediapipe.whl").symlink_to(_find_wheel())
        r = _slsdk(cwd, cache, "import", "hand-lite", "mediapipe.whl")
        assert r.returncode == 0, r.stderr[-2000:]
        assert "use it with --hand-model lite" in r.stdout
        r = _slsdk(cwd, cache, "import", "hand-lite", "mediapipe.whl")
        assert r.returncode == 1 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    else:
        (cache / "slsdk").mkdir(parents=True)
        shutil.copy(lite_task, cache / "slsdk" / "hand_landmarker_lite.task")
    assert (cache / "slsdk" / "hand_landmarker_lite.task").is_file()
    run = ("run", "bundle", "clip.mp4", "--crop", "hands", "--json", "--hand-model")
    lite = _summary(_slsdk(cwd, cache, *run, "lite"))
    full = _summary(_slsdk(cwd, cache, *run, "full", SLSDK_HAND_MODEL=str(full_task)))
    assert lite["frames"] == full["frames"] > 0
    # the lite models track the hand through most of the frames the full ones do
    assert full["crop"]["frames_with_hands"] > 0
    assert lite["crop"]["frames_with_hands"] >= 0.6 * full["crop"]["frames_with_hands"], (lite["crop"], full["crop"])
