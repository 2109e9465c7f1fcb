"""The demo samples: the Python scripts run on a real bundle, and the phone samples (which cannot be built
here) read only manifest keys, tensor names and conventions that a bundle written by the SDK really has."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slsdk.data.video import write_video

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ROOT / "demos"
VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]

# where each sample type reads its keys from: "" is the top level, "[]" every item of a list
SECTIONS = {
    "Manifest": [""], "InputSpec": ["input"], "CropSpec": ["crop"], "StreamingSpec": ["streaming"],
    "TensorSpec": ["streaming.inputs[]", "streaming.outputs[]"], "StateSpec": ["streaming.state[]"],
    "LandmarkSpec": ["input.landmarks"], "LandmarkPart": ["input.landmarks.parts[]"],
}
# what a sample must read to feed the model and decode its output (the brief of the phone samples)
MUST_READ = {
    "": {"vocab", "blank_id", "fps", "model_file", "target", "format_version"},
    "input": {"height", "width", "mean", "std", "value_range", "resize_shorter", "crop", "modality", "landmarks"},
    "input.landmarks": {"tensor", "layout", "points", "dims", "normalisation", "parts"},
    "input.landmarks.parts[]": {"name", "source", "count"},
    "crop": {"policy"},
    "streaming": {"chunk_frames", "shift_frames", "output_stride", "inputs", "outputs", "state"},
    "streaming.inputs[]": {"name", "shape", "dtype"},
    "streaming.outputs[]": {"name", "dtype"},
    "streaming.state[]": {"input", "output", "shape"},
}


# --------------------------------------------------------------------------------------------------
# fixtures: a tiny student, its ONNX bundle and a synthetic video (as tests/test_runtime.py builds them)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def student(tiny_student):
    return tiny_student(len(VOCAB))


@pytest.fixture(scope="module")
def onnx_bundle(student, tmp_path_factory):
    from slsdk.convert import convert

    return convert(student, "onnx", "fp32", tmp_path_factory.mktemp("bundles") / "student-onnx", vocab=VOCAB)


@pytest.fixture(scope="module")
def manifest(onnx_bundle) -> dict:
    return json.loads((onnx_bundle.root / "manifest.json").read_text())


@pytest.fixture(scope="module")
def landmark_bundle(tmp_path_factory):
    """A landmark bundle (input.modality "landmarks"): a LandmarkStudent converted to ONNX."""
    import torch

    from slsdk.convert import convert
    from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig

    torch.manual_seed(0)
    m = LandmarkStudent(LandmarkStudentConfig(num_classes=len(VOCAB))).eval()
    return convert(m, "onnx", "fp32", tmp_path_factory.mktemp("bundles") / "landmark-onnx", vocab=VOCAB)


@pytest.fixture(scope="module")
def landmark_manifest(landmark_bundle) -> dict:
    return json.loads((landmark_bundle.root / "manifest.json").read_text())


@pytest.fixture(scope="module")
def both_manifests(manifest, landmark_manifest) -> dict:
    """The frames manifest with the landmark one's input keys added (``modality``, ``landmarks``): every key a sample
    reads must be in a manifest the SDK writes, of one kind or the other."""
    return {**manifest, "input": {**landmark_manifest["input"], **manifest["input"]}}


def _blob_frames(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for t in range(n):  # a moving bright blob over noise: the model's output changes over time
        frames[t] = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        frames[t, 10:30, 5 + t * 45 // n:17 + t * 45 // n] = (230, 200, 170)
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "clip.mp4", _blob_frames(45), fps=25)


@pytest.fixture(scope="module")
def video30(tmp_path_factory):
    """1.8 s at 30 fps: 54 frames, which a 25 fps model sees as 45."""
    return write_video(tmp_path_factory.mktemp("videos") / "clip30.mp4", _blob_frames(54), fps=30)


def _run(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


# --------------------------------------------------------------------------------------------------
# the Python scripts
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", ["webcam.py", "video_file.py"])
def test_script_help_needs_no_camera(script):
    r = _run(DEMOS / script, "--help", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and "bundle" in r.stdout


def test_video_file_prints_glosses_with_timestamps(onnx_bundle, video):
    from slsdk.runtime.api import recognize_video

    expected = recognize_video(onnx_bundle.root, video).result
    assert len(expected.glosses) >= 2, "the reference should emit glosses for this test to mean anything"
    r = _run(DEMOS / "video_file.py", onnx_bundle.root, video)
    assert r.returncode == 0, r.stderr
    assert f"glosses: {expected.text}" in r.stdout
    rows = re.findall(r"^\s+([\d.]+) -\s+([\d.]+) s\s+(\S+)\s+conf ([\d.]+)$", r.stdout, flags=re.M)
    assert [g for _, _, g, _ in rows] == expected.glosses
    assert [(float(a), float(b)) for a, b, _, _ in rows] == [(e["start"], e["end"]) for e in expected.events]


def test_webcam_loop_over_a_video_file(onnx_bundle, video):
    from slsdk.runtime.api import recognize_video

    expected = recognize_video(onnx_bundle.root, video).result.text
    r = _run(DEMOS / "webcam.py", onnx_bundle.root, "--source", video)
    assert r.returncode == 0, r.stderr
    sentences = re.findall(r"== (.*)$", r.stdout, flags=re.M)  # endpoints + the end of the stream
    assert " ".join(sentences) == expected
    assert "45 frames" in r.stderr


def test_video_file_overlay_with_real_hands(onnx_bundle, shared_file, tmp_path):
    pytest.importorskip("mediapipe")
    clip, model = shared_file("data/hands/webcam_gestures.mp4"), shared_file("models/hand_landmarker.task")
    png = tmp_path / "overlay.png"
    r = _run(DEMOS / "video_file.py", onnx_bundle.root, clip, "--crop", "hands", "--hand-model", model,
             "--overlay", png, "--overlay-frames", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["overlay"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["crop"]["frames_with_hands"] > 0 and out["glosses"]


def test_scripts_rely_on_the_runtime_to_resample_a_30fps_file(onnx_bundle, video30):
    """Both scripts hand the frames' timestamps to the runtime: a 30 fps file gives the 25 fps model 45 frames
    and the times of the video, and the scripts say how the frames were resampled."""
    from slsdk.runtime.api import recognize_video

    expected = recognize_video(onnx_bundle.root, video30)
    assert expected.frames == 45 and expected.resample["dropped"] == 9 and expected.result.glosses
    r = _run(DEMOS / "video_file.py", onnx_bundle.root, video30)
    assert r.returncode == 0, r.stderr
    assert "45 frames (model rate 25 fps, resampled from 54 at 30 fps (9 dropped, 0 repeated))" in r.stdout
    rows = re.findall(r"^\s+([\d.]+) -\s+([\d.]+) s\s+(\S+)\s+conf ([\d.]+)$", r.stdout, flags=re.M)
    assert [(float(a), float(b), g) for a, b, g, _ in rows] == \
        [(e["start"], e["end"], e["gloss"]) for e in expected.result.events]
    assert "every frame is used" not in r.stderr  # the old warning: the runtime resamples now
    r = _run(DEMOS / "webcam.py", onnx_bundle.root, "--source", video30)
    assert r.returncode == 0, r.stderr
    assert " ".join(re.findall(r"== (.*)$", r.stdout, flags=re.M)) == expected.result.text
    assert "45 frames at 25 fps (resampled from 54 frames at 30 fps: 9 dropped, 0 repeated" in r.stderr
    assert "FrameRateGate" not in (DEMOS / "webcam.py").read_text()  # no second resampler in the script


# --------------------------------------------------------------------------------------------------
# the phone samples against a real manifest
# --------------------------------------------------------------------------------------------------
SWIFT = sorted((DEMOS / "ios").glob("*.swift"))
KOTLIN = sorted((DEMOS / "android").glob("*.kt"))
SWIFT_TYPE = re.compile(r"^(?:final\s+)?(?:struct|class|enum)\s+(\w+)", re.M)
SWIFT_KEY = re.compile(r'\bcase\s+\w+\s*=\s*"([^"]+)"')  # CodingKeys: case blankId = "blank_id"
KOTLIN_TYPE = re.compile(r"^(?:data\s+|private\s+)?class\s+(\w+)", re.M)
KOTLIN_KEY = re.compile(r'\.(?:get|opt)(?:String|Int|Long|Double|Boolean|JSONObject|JSONArray)?\(\s*"([^"]+)"')


def keys_by_type(sources: list[Path], type_re: re.Pattern, key_re: re.Pattern) -> dict[str, set[str]]:
    """JSON keys read inside each top-level type declaration of the sources."""
    found: dict[str, set[str]] = {}
    for path in sources:
        text = path.read_text()
        starts = [(m.start(), m.group(1)) for m in type_re.finditer(text)] + [(len(text), None)]
        for (a, name), (b, _) in zip(starts, starts[1:]):
            keys = set(key_re.findall(text[a:b]))
            if keys:
                found.setdefault(name, set()).update(keys)
    return found


def sections(manifest: dict, path: str) -> list[dict]:
    """The manifest objects at ``path`` ("" the top level, "a.b" nested, "a.b[]" every item of a list)."""
    objs = [manifest]
    for part in filter(None, path.split(".")):
        many = part.endswith("[]")
        objs = [o[part.removesuffix("[]")] for o in objs]
        if many:
            objs = [item for o in objs for item in o]
    return objs


def missing_keys(found: dict[str, set[str]], manifest: dict) -> list[str]:
    """Every (type, key) a sample reads that the manifest lacks at that place."""
    errors = []
    for type_name, keys in sorted(found.items()):
        if type_name not in SECTIONS:
            errors.append(f"{type_name} reads {sorted(keys)}: add where it reads from to SECTIONS")
            continue
        for path in SECTIONS[type_name]:
            objs = sections(manifest, path)
            if not objs:
                errors.append(f"{type_name}: the manifest has no items at {path!r} to check against")
            for obj in objs:
                for key in sorted(keys - set(obj)):
                    errors.append(f"{type_name} reads {key!r} but manifest {path or '(top level)'} has only "
                                  f"{sorted(obj)}")
    return sorted(set(errors))


@pytest.mark.parametrize("lang", ["swift", "kotlin"])
def test_phone_sample_reads_only_manifest_keys(lang, both_manifests):
    sources, type_re, key_re = (SWIFT, SWIFT_TYPE, SWIFT_KEY) if lang == "swift" else (KOTLIN, KOTLIN_TYPE, KOTLIN_KEY)
    assert sources, f"no {lang} sources under demos/"
    found = keys_by_type(sources, type_re, key_re)
    assert missing_keys(found, both_manifests) == []
    read: dict[str, set[str]] = {}
    for type_name, keys in found.items():
        for path in SECTIONS[type_name]:
            read.setdefault(path, set()).update(keys)
    for path, keys in MUST_READ.items():
        assert keys <= read.get(path, set()), f"{lang} sample does not read {sorted(keys - read.get(path, set()))} " \
                                              f"from {path or 'the top level'}"


def test_key_check_fails_for_a_key_the_manifest_lacks(manifest):
    """The check above can fail: a sample reading a misspelt or nested-elsewhere key is reported."""
    swift = 'struct StreamingSpec: Decodable {\n  enum CodingKeys: String, CodingKey {\n' \
            '    case chunkFrames = "chunk_frame"\n    case fps = "fps"\n  }\n}\n'
    found = {}
    for m in SWIFT_TYPE.finditer(swift):
        found[m.group(1)] = set(SWIFT_KEY.findall(swift))
    errors = missing_keys(found, manifest)
    assert any("'chunk_frame'" in e for e in errors) and any("'fps'" in e for e in errors)
    kotlin = 'data class StateSpec(val x: Int) {\n  fun from(o: JSONObject) = StateSpec(o.getInt("size"))\n}\n'
    found = {m.group(1): set(KOTLIN_KEY.findall(kotlin)) for m in KOTLIN_TYPE.finditer(kotlin)}
    assert any("'size'" in e for e in missing_keys(found, manifest))


def test_tensor_names_come_from_the_manifest_and_match_the_model(onnx_bundle, manifest):
    import onnxruntime as ort

    s = manifest["streaming"]
    sess = ort.InferenceSession(str(onnx_bundle.model_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [t["name"] for t in s["inputs"]]
    assert [o.name for o in sess.get_outputs()] == [t["name"] for t in s["outputs"]]
    # the samples' conventions: inputs[0] = frames, outputs[0] = log-probs, state fed back by name
    c, stride, size = s["chunk_frames"], s["output_stride"], manifest["input"]["height"]
    assert s["inputs"][0]["shape"] == [1, c, 3, size, manifest["input"]["width"]]
    assert s["outputs"][0]["shape"] == [1, c // stride, len(manifest["vocab"])]
    # one chunk fed exactly as the samples feed it: names and shapes from the manifest only
    feeds = {s["inputs"][0]["name"]: np.zeros(s["inputs"][0]["shape"], np.float32),
             **{st["input"]: np.zeros(st["shape"], np.float32) for st in s["state"]}}
    outs = dict(zip([o["name"] for o in s["outputs"]], sess.run(None, feeds)))
    assert list(outs[s["outputs"][0]["name"]].shape) == s["outputs"][0]["shape"]
    for st in s["state"]:
        assert list(outs[st["output"]].shape) == st["shape"]
    # and no sample hard-codes a tensor name (they must follow the manifest); the input.modality values the samples
    # compare with ("frames", the default, is also the frames tensor's name) are not tensor names
    from slsdk.bundle.limits import INPUT_MODALITIES

    names = {t["name"] for t in s["inputs"] + s["outputs"]} | {st["name"] for st in s["state"]}
    literals = {lit for p in SWIFT + KOTLIN for lit in re.findall(r'"([^"\\\n]*)"', p.read_text())}
    literals -= set(INPUT_MODALITIES)
    assert not (literals & names), f"hard-coded tensor names {sorted(literals & names)}: read them from the manifest"


RULE = re.compile(r"EndpointRule\(\s*mustContainNonsilence\s*[:=]\s*(true|false),\s*minTrailingSilence\s*[:=]\s*"
                  r"([\d.]+),\s*minUtteranceLength\s*[:=]\s*([\d.]+)\s*\)")


@pytest.mark.parametrize("source", ["ios/CTCGreedyDecoder.swift", "android/CtcGreedyDecoder.kt"])
def test_phone_endpoint_rules_match_the_python_decoder(source):
    from slsdk.decode.ctc import EndpointConfig

    got = [(m[0] == "true", float(m[1]), float(m[2])) for m in RULE.findall((DEMOS / source).read_text())]
    want = [(r.must_contain_nonsilence, r.min_trailing_silence, r.min_utterance_length)
            for r in EndpointConfig().rules()]
    assert got == want


@pytest.mark.parametrize("source,field", [("ios/FramePreprocessor.swift", "input.resizeShorter"),
                                          ("android/FramePreprocessor.kt", "input.resizeShorter")])
def test_phone_resize_comes_from_the_manifest(source, field, manifest):
    """The resize before the centre crop is the manifest's input.resize_shorter (what training used), not a
    ratio built into the samples."""
    from slsdk.data.transforms import eval_transform

    assert manifest["input"]["resize_shorter"] == eval_transform(manifest["input"]["height"]).resize_to
    assert manifest["input"]["crop"] == "center"
    text = (DEMOS / source).read_text()
    assert field in text and '"center"' in text
    assert not re.search(r"\b256(\.0)?\s*/\s*224\b|resize_?ratio", text, flags=re.I), f"{source} hard-codes the ratio"


@pytest.mark.parametrize("source,pattern", [("ios/Manifest.swift", r"formatVersion == (\d+)"),
                                            ("android/Manifest.kt", r"formatVersion == (\d+)")])
def test_phone_samples_read_the_sdk_format_version(source, pattern, manifest):
    from slsdk.bundle import FORMAT_VERSION

    assert [int(v) for v in re.findall(pattern, (DEMOS / source).read_text())] == [FORMAT_VERSION]
    assert manifest["format_version"] == FORMAT_VERSION


def swift_dtypes() -> dict[str, str]:
    """manifest dtype -> MLMultiArrayDataType case that the Swift sample maps."""
    return dict(re.findall(r'case "(\w+)": return \.(\w+)', (DEMOS / "ios/SignRecognizer.swift").read_text()))


def test_phone_samples_handle_the_dtypes_the_manifest_states(manifest):
    # Swift (Core ML): float32 and float16, each to its own Core ML element type
    assert swift_dtypes() == {"float32": "float32", "float16": "float16"}
    # Kotlin (ONNX Runtime): float32 only, refusing anything else; ONNX bundles state float32 throughout
    kotlin = (DEMOS / "android/SignRecognizer.kt").read_text()
    assert re.search(r'\.filter \{ it\.dtype != "float32" \}', kotlin)
    s = manifest["streaming"]
    assert {t["dtype"] for t in s["inputs"] + s["outputs"]} == {"float32"}


@pytest.mark.slow
def test_coreml_package_names_match_the_manifest(student, tmp_path):
    """The iOS sample feeds the .mlpackage by the manifest's names; fp16 packages return Float16 outputs."""
    pytest.importorskip("coremltools")
    import coremltools as ct

    from slsdk.convert import convert

    bundle = convert(student, "coreml", "fp16", tmp_path / "student-coreml", vocab=VOCAB)
    s = bundle.manifest.streaming
    spec = ct.utils.load_spec(str(bundle.model_path))
    assert [d.name for d in spec.description.input] == [t.name for t in s.inputs]
    assert [d.name for d in spec.description.output] == [t.name for t in s.outputs]
    # the manifest states the package's real element types, and the Swift sample maps each of them
    array = ct.proto.FeatureTypes_pb2.ArrayFeatureType
    for descs, group in ((spec.description.input, s.inputs), (spec.description.output, s.outputs)):
        for d, t in zip(descs, group):
            assert array.ArrayDataType.Name(d.type.multiArrayType.dataType).lower() == t.dtype
            assert t.dtype in swift_dtypes()
    assert {t.dtype for t in s.inputs} == {"float32"} and {t.dtype for t in s.outputs} == {"float16"}


# --------------------------------------------------------------------------------------------------
# landmark bundles (input.modality "landmarks"): the phone samples refuse them, naming what they lack; the web page
# runs them (tests/test_web_landmarks.py)
# --------------------------------------------------------------------------------------------------
REFUSAL = {"android/Manifest.kt": r'require\(m\.input\.modality == "frames"\) \{ unsupportedModality\(m\.input\) \}',
           "ios/Manifest.swift": r'guard m\.input\.inputModality == "frames" else \{\s*'
                                 r'throw ManifestError\.unsupported\(unsupportedModality\(m\.input\)\)'}


def test_landmark_manifest_declares_what_the_samples_read(landmark_bundle, landmark_manifest):
    """The landmark manifest has the keys the samples read (input.modality, input.landmarks: tensor, layout, points,
    dims, normalisation, parts), its tensor is the model's input [1, chunk, 86, 2], and the layout is POSE86."""
    import onnxruntime as ort

    from slsdk.landmarks import POSE86

    inp, s = landmark_manifest["input"], landmark_manifest["streaming"]
    assert inp["modality"] == "landmarks"
    lm = inp["landmarks"]
    for path, keys in MUST_READ.items():
        if path.startswith("input.landmarks"):
            for obj in sections(landmark_manifest, path):
                assert keys <= set(obj), (path, sorted(keys - set(obj)))
    assert [(p["name"], p["source"], p["count"]) for p in lm["parts"]] == [(p.name, p.source, p.size) for p in POSE86]
    assert sum(p["count"] for p in lm["parts"]) == lm["points"] == 86 and lm["dims"] == 2
    tensor = next(t for t in s["inputs"] if t["name"] == lm["tensor"])
    assert tensor["shape"] == [1, s["chunk_frames"], lm["points"], lm["dims"]]
    sess = ort.InferenceSession(str(landmark_bundle.model_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [t["name"] for t in s["inputs"]]


@pytest.mark.parametrize("source", sorted(REFUSAL))
def test_phone_samples_refuse_landmark_bundles_naming_what_is_missing(source):
    """Manifest.kt / Manifest.swift read input.modality (absent: frames) and refuse any other with a message that
    names the landmark input (layout, parts, normalisation, tensor: from input.landmarks) and what the sample
    lacks (MediaPipe's three landmarkers, a port of the normalisation), and where such a bundle runs."""
    text = (DEMOS / source).read_text()
    assert re.search(REFUSAL[source], text), f"{source} does not refuse a bundle whose input.modality is not frames"
    fn = text[text.index("unsupportedModality("):]
    for words in ("HandLandmarker", "FaceLandmarker", "PoseLandmarker", "normalisation", "web page", "slsdk run"):
        assert words in fn, (source, words)
    for field in ("lm.layout", "lm.normalisation", "lm.tensor", "lm.points", "lm.dims", ".source", ".count"):
        assert field in fn, (source, field)
    assert re.search(r'modality.*"frames"', text), "a manifest without input.modality (older bundles) is frames"


def test_web_page_landmark_constants_match_python():
    """demos/web/js/landmarks.js: the layout, normalisation, part boundaries and lip indices of slsdk.landmarks and
    the layouts the runtime serves."""
    from slsdk.landmarks import LIPS_FACEMESH, NUM_POINTS, POSE86
    from slsdk.runtime.landmark_source import SERVED_LAYOUTS

    js = (DEMOS / "web" / "js" / "landmarks.js").read_text()
    layout = re.search(r"LAYOUT = '(\w+)'", js)[1]
    norm = re.search(r"NORMALISATION = '([\w-]+)'", js)[1]
    assert SERVED_LAYOUTS == {(layout, norm): NUM_POINTS}
    assert int(re.search(r"NUM_POINTS = (\d+)", js)[1]) == NUM_POINTS
    parts = re.findall(r"\['(\w+)', (\d+), (\d+)\]", re.search(r"PARTS = \[(.*?)\];", js)[1])
    assert [(n, int(a), int(b)) for n, a, b in parts] == [(p.name, p.start, p.stop) for p in POSE86]
    lips = [int(x) for x in re.search(r"LIPS_FACEMESH = \[([\d, ]+)\]", js)[1].split(",")]
    assert tuple(lips) == LIPS_FACEMESH
