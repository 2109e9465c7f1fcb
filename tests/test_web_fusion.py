"""Fusion bundles on the web page (issue 31), in real headless Chromium (playwright-core + /usr/bin/chromium, one
browser for the module's pages, as tests/test_web_landmarks.py runs them).

A tiny fusion student (``FusionStudent``: hand-crop RGB + the 86 points; classifier sharpened for a varied gloss
sequence) converted to fp32 ONNX with the hand crop (``crop.policy "hands"``), served with the hand, face and pose
.task files by ``python -m slsdk.demos.web serve``'s ``make_server``:

(a) on the real webcam clip (shared/data/hands/webcam_gestures.mp4, the clip of test_web_landmarks' real-clip
    test) the page (one HandLandmarker pass per frame giving the crop and the hand points, FaceLandmarker,
    PoseLandmarker, MediaPipe Tasks for the web; ONNX Runtime Web) against the Python runtime on the same clip with
    the same model files (``slsdk run BUNDLE CLIP --json`` and the same Recognizer's per-chunk logits). The page
    decodes the H.264 clip with the browser's decoder and MediaPipe's WebAssembly build is not the Python wheel's,
    so the hand points differ by a pixel or two (test_web_landmarks (c)); what agrees is measured (the figures
    above the bounds below) and bounded with room: the model frames and chunks exactly, the crop box per frame
    within a few pixels, the per-chunk log-probs within a few thousandths, and the tokens exactly (the normalised
    points per part are printed, not bounded: one hand found in a frame by one build only changes a whole part).
(b) the page refuses a landmark recording fed directly (``?landmarks=``) to a fusion bundle, saying it needs the
    video's frames; ``serve`` refuses one too; the page's manifest reader reads the fusion manifest (two data
    inputs) and refuses a "fusion" manifest without a frames input.
Skipped, with the reason, without node, demos/web/node_modules, chromium or the shared test material.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_pose86_landmarks import _find  # noqa: E402 - the tests folder is not a package
from test_web import _node_modules, chromium, node  # noqa: E402,F401 - the fixtures
from test_web_landmarks import _pages, _serve, _slsdk, assert_serves_the_three_models  # noqa: E402

from slsdk.landmarks import POSE86  # noqa: E402
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL  # noqa: E402

VOCAB = ["-", "a", "b", "c", "d", "e"]
CLIP = "data/hands/webcam_gestures.mp4"
MODELS = ["--hand-model", "models/hand_landmarker.task", "--face-model", "models/face_landmarker.task",
          "--pose-model", "models/pose_landmarker.task"]
# (a) page vs Python on the real clip, measured on webcam_gestures.mp4 (58 frames at 30 fps -> 49 model frames, 7
# chunks, 13 decoded steps): crop box equal in 15 of 49 frames, largest corner difference median 2.0 px, max 14 px;
# hands found in 20 frames (Python 21); normalised points, median over model frames of the largest |diff|: lips
# 0.0016, body 0.074, right hand 0.12 (a part is scaled to +-0.5, so a pixel of difference on a small hand is
# amplified), left hand 0.5 (Python put a hand on the left-hand side in some frame, the page in none, and the
# look-ahead fills a hand into every frame from where it is found); log-probs: largest |diff| per step median 0.003, max 0.008, argmax equal in 13 of 13
# steps; glosses equal. The bounds keep room for other Chromium / MediaPipe builds:
BOX_MEDIAN_PX = 3.0          # median over frames of the largest box-corner difference (pixels)
BOX_MAX_FRACTION = 0.15      # the largest corner difference over the clip, x the frame's short side (81 px)
LOGIT_MEDIAN = 0.05          # median over the decoded steps of the largest |log-prob difference|
TOKEN_EDITS = 0              # edit distance between the page's tokens and Python's (measured: equal)


def _edit_distance(a: list, b: list) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_file, shared_dir):
    """``fusion/``: a tiny FusionStudent converted to fp32 ONNX with the hand crop; ``models/``: the hand, face and
    pose .task files; ``clip.mp4``: the real webcam clip."""
    pytest.importorskip("onnxruntime")
    import torch

    from slsdk.convert import convert
    from slsdk.models.fusion import FusionStudent, FusionStudentConfig

    root = tmp_path_factory.mktemp("webfusion")
    torch.manual_seed(2)
    m = FusionStudent(FusionStudentConfig(num_classes=len(VOCAB), image_size=32, patch_size=16, width=64, layers=1,
                                          heads=2, feature_dim=64, hidden=64, landmark_width=32,
                                          landmark_feature_dim=32, chunk_frames=8)).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)
    convert(m, "onnx", "fp32", root / "fusion", vocab=VOCAB, crop={"policy": "hands"})
    (root / "models").mkdir()
    for name, src in {"hand_landmarker.task": shared_file("models/hand_landmarker.task"),
                      "face_landmarker.task": _find(FACE_MODEL, shared_dir, "face_landmarker.task"),
                      "pose_landmarker.task": _find(POSE_MODEL, shared_dir, "pose_landmarker.task")}.items():
        shutil.copyfile(src, root / "models" / name)
    shutil.copyfile(shared_file(CLIP), root / "clip.mp4")
    return root


@pytest.fixture(scope="module")
def runs(work, node, chromium, tmp_path_factory):
    """In one Chromium: the fusion bundle's page on the clip (``&debug=1``), the same page told to feed a landmark
    recording (``&landmarks=``), and the page's manifest reader on the fusion manifest and on a "fusion" manifest
    whose model has no frames input."""
    m = work / "models"
    models = dict(hand_model=m / "hand_landmarker.task", face_model=m / "face_landmarker.task",
                  pose_model=m / "pose_landmarker.task")
    video = _serve(work / "fusion", video=work / "clip.mp4", extra_query="debug=1", **models)
    refused = _serve(work / "fusion", video=work / "clip.mp4", extra_query="landmarks=landmarks/recording.json",
                     **models)
    man = json.loads((work / "fusion" / "manifest.json").read_text())
    no_frames = json.loads(json.dumps(man))
    no_frames["streaming"]["inputs"] = [i for i in man["streaming"]["inputs"] if i["name"] != "frames"]
    try:
        got = _pages(node, [video.url, refused.url], [man, no_frames], tmp_path_factory.mktemp("pages"))
    finally:
        video.stop()
        refused.stop()
    return got


@pytest.fixture(scope="module")
def python_run(work):
    """The Python runtime on the clip with the same bundle and model files: ``slsdk run --json``'s records, and the
    same recognizer's per-chunk logits and landmark inputs and the crop box of every extracted frame."""
    from slsdk.runtime.api import recognize_video
    from slsdk.runtime.landmark_frontend import FusionFrontEnd
    from slsdk.runtime.recognizer import Recognizer

    r = _slsdk(work, "run", "fusion", "clip.mp4", "--json", *MODELS)
    records = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    m = work / "models"
    rec = Recognizer(work / "fusion", hand_model=m / "hand_landmarker.task", face_model=m / "face_landmarker.task",
                     pose_model=m / "pose_landmarker.task")
    logits, inputs, boxes = [], [], []
    run = rec.backend.run

    def recording_run(feeds):      # the real backend; the chunk it got and the logits it gave are kept
        outs = run(feeds)
        inputs.append(np.array(feeds["landmarks"][0], np.float32))
        logits.append(np.array(outs[rec.logits_output][0], np.float32))
        return outs

    rec.backend.run = recording_run
    pixels = FusionFrontEnd._pixels

    def recording_pixels(self, frame, res):   # the real crop pass; its box per extracted frame is kept
        boxes.append(list(res.box))
        return pixels(self, frame, res)

    FusionFrontEnd._pixels = recording_pixels
    try:
        got = recognize_video(None, work / "clip.mp4", recognizer=rec)
    finally:
        FusionFrontEnd._pixels = pixels
    return {"records": records, "result": got, "logits": logits, "inputs": np.concatenate(inputs), "boxes": boxes}


def test_fusion_bundle_on_the_page_agrees_with_slsdk_run(work, runs, python_run):
    """(a) the page's fusion stream on the real clip vs ``slsdk run BUNDLE CLIP --json`` (see the module doc)."""
    page = runs["pages"][0]
    assert "error" not in page, (page.get("error"), page["console"])
    summary = python_run["records"][-1]
    assert summary["type"] == "summary" and summary["input"] == "hand crops and landmarks from video", summary
    got = python_run["result"]
    assert got.result.glosses == summary["glosses"] and got.frames == summary["frames"]   # the API = the CLI
    # resampling, pairing and chunking: the same model frames, source frames and chunks
    assert page["frames"] == summary["frames"] and page["source_frames"] == summary["source_frames"]
    assert page["crop"]["policy"] == "fusion" and page["crop"]["chunks"] == len(python_run["logits"])
    assert len(page["chunk_logits"]) == len(python_run["logits"])
    # one hand pass per frame: the page's hand landmarker ran on the schedule of the bundle's crop settings
    # (detect_every 2, "search"), and its hands gave both the crop boxes and the hand points
    boxes = np.asarray(page["boxes"], np.float64)
    want_boxes = np.asarray(python_run["boxes"], np.float64)
    assert boxes.shape == want_boxes.shape, (boxes.shape, want_boxes.shape)
    corner = np.abs(boxes - want_boxes).max(axis=1)
    short = 540                                  # the clip is 540 x 720
    # the landmark input (normalised points) per model frame, per part
    lm = np.asarray(page["inputs"], np.float32).reshape(-1, 86, 2)
    want_lm = python_run["inputs"][:len(lm)]
    assert len(lm) == page["frames"] and len(want_lm) == len(lm)
    parts = {p.name: float(np.median(np.abs(lm[:, p.slice] - want_lm[:, p.slice]).max(axis=(1, 2)))) for p in POSE86}
    # logits over the decoded steps of each chunk
    a = np.concatenate([np.asarray(x, np.float32).reshape(-1, len(VOCAB)) for x in page["chunk_logits"]])
    b = np.concatenate([y.reshape(-1, len(VOCAB))[:len(x) // len(VOCAB)]
                        for x, y in zip(page["chunk_logits"], python_run["logits"])])
    steps = np.abs(a - b).max(axis=1)
    tokens_py = [VOCAB.index(g) for g in summary["glosses"]]
    tokens_page = [VOCAB.index(g) for g in page["glosses"]]
    edits = _edit_distance(tokens_page, tokens_py)
    print(f"fusion, real clip: {page['frames']} model frames, {len(steps)} decoded steps, hands in "
          f"{page['frames_with_hands']} frames (python {got.crop_stats['frames_with_hands']})\n"
          f"  crop box: equal in {int((corner == 0).sum())} of {len(corner)} frames, largest corner difference "
          f"median {np.median(corner):.1f} px, max {corner.max():.0f} px\n"
          f"  normalised points, median over model frames of the largest |diff| per part: "
          + ", ".join(f"{k} {v:.4f}" for k, v in parts.items())
          + f"\n  log-probs: largest |diff| per step median {np.median(steps):.3f}, max {steps.max():.3f}; "
          f"argmax equal in {int((a.argmax(axis=1) == b.argmax(axis=1)).sum())} "
          f"of {len(steps)} steps\n  glosses: page {page['glosses']} | python {summary['glosses']} "
          f"(edit distance {edits})")
    assert np.median(corner) <= BOX_MEDIAN_PX and corner.max() <= BOX_MAX_FRACTION * short, corner.tolist()
    assert float(np.median(steps)) <= LOGIT_MEDIAN, steps.tolist()
    assert summary["glosses"] and edits <= TOKEN_EDITS, (page["glosses"], summary["glosses"])
    assert f"Recognised: {' '.join(page['glosses'])}" in page["text"].splitlines()


def test_a_landmark_recording_for_a_fusion_bundle_is_refused(work, runs, tmp_path):
    """(b) the page told to feed a recording (``?landmarks=``) to the fusion bundle stops with a message naming the
    fusion bundle and what to give it; ``serve --landmarks`` refuses it; the manifest reader reads the fusion
    manifest's two data inputs and refuses a fusion manifest without a frames tensor."""
    from slsdk.demos.web import WebDemoError, make_server

    page = runs["pages"][1]
    assert "fusion bundle" in page.get("error", ""), page
    assert "has no frames" in page["error"] and "give it the video" in page["error"], page["error"]
    assert "Stopped by an error:" in page["text"].splitlines(), page["text"]
    ok, no_frames = runs["manifests"]
    assert ok == {"ok": True, "modality": "fusion", "frameShape": [3, 32, 32]}, ok
    assert not no_frames["ok"] and "frames tensor" in no_frames["message"], no_frames
    pose = tmp_path / "any.pose"
    pose.write_bytes(b"not read: refused before")
    with pytest.raises(WebDemoError, match="fusion bundle.*has no frames"):
        make_server(work / "fusion", port=0, landmarks=pose)


def test_serve_gives_a_fusion_bundle_the_hand_face_and_pose_models(work):
    """``serve`` gives a fusion bundle's page the three .task files (as for a landmark bundle)."""
    assert_serves_the_three_models(work / "fusion", work / "clip.mp4", work / "models")
