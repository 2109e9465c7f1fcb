"""Landmark bundles on the web page (issue 31), in real headless Chromium (playwright-core + /usr/bin/chromium, as
tests/test_web.py runs the page; one browser for every page of the module).

(a) The page's normaliser (demos/web/js/landmarks.js) on the real MediaPipe Holistic recordings in
    shared/data/pose (read by ``slsdk.landmarks.read_pose_file``; hands missing in about half the frames) and on a
    copy with lips, body and a hand dropped in some frames: equal to ``normalize_pose86`` (offline, the page's
    look-ahead stream) and to the causal ``Pose86Normalizer`` within 1e-5 (measured: bit for bit, 0.0).
(b) A landmark bundle (a converted LandmarkStudent, run by ONNX Runtime Web) fed a recording's points directly
    (``serve --landmarks FILE.pose``) gives exactly the tokens of ``slsdk run BUNDLE FILE.pose --json``, and the
    model's input frames are the Python runtime's.
(c) The page's own MediaPipe Tasks extraction (HandLandmarker, FaceLandmarker, PoseLandmarker for the web) on the
    real webcam clip gives 86 points close to what the Python runtime writes for the same frames (``slsdk data
    prepare --landmarks``): the same parts found in nearly every frame, and the points within a few pixels (the
    browser decodes the H.264 clip with its own decoder and colour conversion, and MediaPipe's WebAssembly build is
    not the Python wheel's: the bounds below are measured differences with room, not equality). Measured on
    webcam_gestures.mp4 (58 frames at 30 fps): found/missing state differs in 2 frames (right hand), 0 (lips, body);
    median distance over the points in the frame: right hand 1.9 px, lips 0.18 px, body 4.3 px (1.5% of the
    288-pixel shoulder width; Pose's guesses of joints out of view differ far more and are left out).
Plus: the page's manifest reader reads the landmark manifest (fusion bundles: tests/test_web_fusion.py).
Skipped, with the reason, without node, demos/web/node_modules or chromium (as tests/test_web.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_pose86_landmarks import _find  # noqa: E402 - the tests folder is not a package
from test_web import _node_modules, chromium, node  # noqa: E402,F401 - the fixtures

from slsdk.landmarks import PARTS, POSE86, Pose86Normalizer, normalize_pose86, part_missing, read_pose_file  # noqa: E402
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL  # noqa: E402
from slsdk.runtime.landmark_source import resample_indices  # noqa: E402

VOCAB = ["-", "a", "b", "c", "d", "e"]
RECORDINGS = ["data/pose/pose_repo/holistic_full_example.pose", "data/pose/pose_repo/hand_estimation_6fb01565.pose"]
CLIP = "data/hands/webcam_gestures.mp4"
NORM_TOL = 1e-5
# (c) page vs Python on the real clip, per part over the frames where both found it (measured on webcam_gestures.mp4,
# docs in demos/README.md): median point distance in pixels, and frames whose found/missing state differs
PIXEL_MEDIAN_TOL = {"right_hand": 5.0, "left_hand": 5.0, "lips": 2.0}   # measured 1.9 / (1 frame) / 0.18 px
BODY_MEDIAN_TOL = 0.05      # x the signer's shoulder width (measured 4.3 px of 288 px: 1.5%)
FOUND_DIFF_FRACTION = 0.15  # measured: 2 of 58 frames (the right hand), 0 for the other parts

# One Chromium for a list of page URLs: each page's window.slsdk.done (the page's test hook), and on the first page
# what the page's manifest reader says about the given manifests (parseManifest, a message per manifest).
DRIVER = r"""
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
const pw = pathToFileURL(path.join(process.env.NODE_MODULES, 'playwright-core', 'index.mjs')).href;
const { chromium } = await import(pw);
const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'slsdk-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
const out = { pages: [], manifests: [] };
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  for (const url of job.urls) {
    logs.length = 0;
    await page.goto(url);
    await page.waitForFunction(() => !!(window.slsdk && window.slsdk.done), null, { timeout: 120000 });
    const r = await page.evaluate(() => window.slsdk.done.then((x) => x,
      (e) => ({ error: String(e && e.message || e) })));
    r.console = [...logs];
    r.text = await page.evaluate(() => document.body.innerText);
    out.pages.push(r);
    if (out.manifests.length === 0) {
      for (const m of job.manifests) {
        out.manifests.push(await page.evaluate(async (m) => {
          const { parseManifest } = await import('/js/manifest.js');
          try {
            const c = parseManifest(m, 'manifest.json');
            return { ok: true, modality: c.modality, frameShape: c.frameShape };
          }
          catch (e) { return { ok: false, message: String(e.message) }; }
        }, m));
      }
    }
  }
} finally {
  fs.writeFileSync(process.argv[3], JSON.stringify(out));
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
"""


def _pages(node, urls: list[str], manifests: list[dict], tmp: Path) -> dict:
    job, out, driver = tmp / "job.json", tmp / "pages.json", tmp / "driver.mjs"
    job.write_text(json.dumps({"urls": urls, "manifests": manifests}))
    driver.write_text(DRIVER)
    env = {**os.environ, "NODE_MODULES": str(_node_modules()),
           "CHROMIUM": os.environ.get("SLSDK_CHROMIUM", "/usr/bin/chromium")}
    p = subprocess.run([node, str(driver), str(job), str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0 and out.is_file(), (p.stdout + p.stderr)[-6000:]
    return json.loads(out.read_text())


def _slsdk(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.stdout + r.stderr)[-3000:]
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_file, shared_dir):
    """``lm/``: a LandmarkStudent converted to fp32 ONNX (classifier sharpened: a varied gloss sequence);
    ``models/``: the hand, face and pose .task files; the real recordings, and ``dropped.pose``: the Holistic one
    with the lips gone in frames 0-9, the body in 40-49 and the left hand in 0-29 (a leading gap)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pose_format")
    import torch

    from slsdk.convert import convert
    from slsdk.models.landmark import LandmarkStudent, LandmarkStudentConfig
    from slsdk.runtime.pose86_landmarks import pose86_file_bytes

    root = tmp_path_factory.mktemp("weblm")
    torch.manual_seed(1)
    m = LandmarkStudent(LandmarkStudentConfig(num_classes=len(VOCAB))).eval()
    with torch.no_grad():
        m.head.classifier.weight.mul_(8.0)
    convert(m, "onnx", "fp32", root / "lm", vocab=VOCAB)
    (root / "models").mkdir()
    for name, src in {"hand_landmarker.task": shared_file("models/hand_landmarker.task"),
                      "face_landmarker.task": _find(FACE_MODEL, shared_dir, "face_landmarker.task"),
                      "pose_landmarker.task": _find(POSE_MODEL, shared_dir, "pose_landmarker.task")}.items():
        shutil.copyfile(src, root / "models" / name)
    for rel in RECORDINGS:
        shutil.copyfile(shared_file(rel), root / Path(rel).name)
    k, fps = read_pose_file(root / Path(RECORDINGS[0]).name)
    k = k.copy()
    k[:10, PARTS["lips"].slice] = 0
    k[40:50, PARTS["body"].slice] = 0
    k[:30, PARTS["left_hand"].slice] = 0
    (root / "dropped.pose").write_bytes(pose86_file_bytes(k, fps, 1280, 720))
    return root


def assert_serves_the_three_models(bundle: Path, video: Path, models: Path) -> None:
    """``serve`` hands the page of ``bundle`` the hand, face and pose .task files in ``models``, byte for byte."""
    import urllib.request

    srv = _serve(bundle, video=video, hand_model=models / "hand_landmarker.task",
                 face_model=models / "face_landmarker.task", pose_model=models / "pose_landmarker.task")
    try:
        base, query = srv.url.split("?")
        for what in ("hand", "face", "pose"):
            rel = f"{what}_model/{what}_landmarker.task"
            assert f"{what}_model={rel}" in query, query
            with urllib.request.urlopen(base + rel) as r:
                assert r.read() == (models / f"{what}_landmarker.task").read_bytes()
    finally:
        srv.stop()


def _serve(bundle: Path, **kw):
    from slsdk.demos.web import make_server

    return make_server(bundle, port=0, **kw).start()


@pytest.fixture(scope="module")
def recording_runs(work, node, chromium, tmp_path_factory):
    """Each recording through the page (``?landmarks=``, ``&debug=1``) in one Chromium; the page's manifest reader
    on the landmark manifest."""
    names = [Path(r).name for r in RECORDINGS] + ["dropped.pose"]
    servers = [_serve(work / "lm", landmarks=work / n) for n in names]
    lm = json.loads((work / "lm" / "manifest.json").read_text())
    try:
        got = _pages(node, [f"{s.url}&debug=1" for s in servers], [lm], tmp_path_factory.mktemp("pages"))
    finally:
        for s in servers:
            s.stop()
    for name, page in zip(names, got["pages"]):
        assert "error" not in page, (name, page["error"], page["console"])
    return dict(zip(names, got["pages"])), got["manifests"]


@pytest.mark.parametrize("name", [Path(r).name for r in RECORDINGS] + ["dropped.pose"])
def test_page_normaliser_equals_python(name, work, recording_runs):
    """(a) the page's offline / look-ahead / causal normalisation of the recording = slsdk.landmarks'."""
    page = recording_runs[0][name]
    k, fps = read_pose_file(work / name)
    missing = part_missing(k)
    if name != "hand_estimation_6fb01565.pose":     # the short one has every part in every frame
        assert missing.any(axis=0)[:2].all(), "the recording should have frames with a hand missing"
    offline = normalize_pose86(k)
    c = Pose86Normalizer(np.float32)
    causal = np.stack([c.push(f) for f in k])
    for what, want in (("offline", offline), ("causal", causal)):
        got = np.asarray(page[what], np.float32).reshape(want.shape)
        diff = float(np.abs(got - want).max())
        print(f"{name}: page {what} vs python max |diff| {diff:g} ({missing.sum(axis=0).tolist()} frames missing per "
              f"part of {len(k)})")
        assert diff <= NORM_TOL, (what, diff)
    # the model's input: the look-ahead stream of the page = normalize_pose86 resampled to the bundle's fps
    want = offline[resample_indices(len(k), fps, 30.0)]
    got = np.asarray(page["inputs"], np.float32).reshape(want.shape)
    assert float(np.abs(got - want).max()) <= NORM_TOL


@pytest.mark.parametrize("name", [Path(r).name for r in RECORDINGS] + ["dropped.pose"])
def test_landmark_bundle_on_the_page_gives_the_tokens_of_slsdk_run(name, work, recording_runs):
    """(b) ``slsdk run BUNDLE FILE.pose --json`` and the page fed the same file: the same glosses, frames and
    gloss times."""
    page = recording_runs[0][name]
    r = _slsdk(work, "run", "lm", name, "--json")
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["glosses"], summary
    print(f"{name}: python {summary['glosses']} | page {page['glosses']} ({page['frames']} model frames)")
    assert page["glosses"] == summary["glosses"]
    assert page["frames"] == summary["frames"] and page["source_frames"] == summary["source_frames"]
    assert f"Recognised: {' '.join(summary['glosses'])}" in page["text"].splitlines()
    # and chunk by chunk the page's logits (ONNX Runtime Web) are the Python runtime's (onnxruntime), decoded steps
    from slsdk.runtime.landmark_source import recognize_pose_file
    from slsdk.runtime.recognizer import Recognizer

    rec = Recognizer(work / "lm")
    logits, run = [], rec.backend.run

    def recording_run(feeds):
        outs = run(feeds)
        logits.append(np.array(outs[rec.logits_output][0], np.float32))
        return outs

    rec.backend.run = recording_run
    list(recognize_pose_file(rec, work / name))
    assert len(page["chunk_logits"]) == len(logits)
    for got, want in zip(page["chunk_logits"], logits):
        want = want.reshape(-1)[:len(got)]
        assert len(got) == len(want) and float(np.abs(np.asarray(got) - want).max()) < 1e-4


def test_page_reads_the_landmark_manifest(recording_runs):
    """The page's manifest reader on the landmark bundle's manifest: modality and frame shape (fusion manifests:
    tests/test_web_fusion.py)."""
    assert recording_runs[1] == [{"ok": True, "modality": "landmarks", "frameShape": [86, 2]}]


def test_page_extracts_the_86_points_from_a_real_clip(work, node, chromium, shared_file, tmp_path):
    """(c) the page's MediaPipe Tasks for the web on the real webcam clip vs the Python runtime's points for the
    same frames (``slsdk data prepare --landmarks --fps 30``, the runtime's own extraction code)."""
    from slsdk.data import Sample, write_folder_annotations

    data = work / "data"
    if not (data / "videos" / "clip.pose").is_file():
        (data / "videos").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_file(CLIP), data / "videos" / "clip.mp4")
        write_folder_annotations(data, [Sample("clip", ["a"], data / "videos" / "clip.mp4", "s1", "test")])
        _slsdk(work, "data", "prepare", "data", "--landmarks", "--fps", "30", "--hand-model",
               "models/hand_landmarker.task", "--face-model", "models/face_landmarker.task", "--pose-model",
               "models/pose_landmarker.task")
    want, _ = read_pose_file(data / "videos" / "clip.pose")
    srv = _serve(work / "lm", video=shared_file(CLIP), hand_model=work / "models" / "hand_landmarker.task",
                 face_model=work / "models" / "face_landmarker.task",
                 pose_model=work / "models" / "pose_landmarker.task")
    try:
        page = _pages(node, [f"{srv.url}&debug=1"], [], tmp_path)["pages"][0]
    finally:
        srv.stop()
    assert "error" not in page, (page.get("error"), page["console"])
    got = np.asarray(page["points"], np.float32).reshape(-1, 86, 2)
    assert len(got) == len(want) == page["frames"], (len(got), len(want), page["frames"])
    mg, mw = part_missing(got), part_missing(want)
    ms = page["landmarks"]["ms"]
    print(f"clip: page found per part {(~mg).sum(axis=0).tolist()}, python {(~mw).sum(axis=0).tolist()} of "
          f"{len(got)} frames; page ms per frame hands {ms['hands'] / len(got):.0f}, lips {ms['lips'] / len(got):.0f}, "
          f"body {ms['body'] / len(got):.0f}; glosses {page['glosses']}")
    h, w = 720, 540                                   # the clip's frame (pixels)
    shoulders = float(np.median(np.linalg.norm(want[:, 61 + 11] - want[:, 61 + 12], axis=-1)))
    for j, p in enumerate(POSE86):
        differ = int((mg[:, j] != mw[:, j]).sum())
        both = ~mg[:, j] & ~mw[:, j]
        a, b = got[both, p.slice], want[both, p.slice]
        d = np.linalg.norm(a - b, axis=-1)               # [frames, points] pixels
        # the points in the frame in both (Pose also guesses joints out of view: hips, a hand below the frame)
        inside = ((a >= 0) & (a <= (w, h)) & (b >= 0) & (b <= (w, h))).all(axis=-1)
        med = float(np.median(d[inside])) if inside.any() else 0.0
        print(f"clip {p.name}: found state differs in {differ} of {len(got)} frames; over {int(both.sum())} frames "
              f"found by both, points in the frame: distance median {med:.2f} px, 95th percentile "
              f"{np.percentile(d[inside], 95) if inside.any() else 0:.2f} px (all points: median "
              f"{np.median(d) if d.size else 0:.2f}, max {d.max() if d.size else 0:.2f} px)")
        if p.name == "body":
            per_point = np.median(np.where(inside, d, np.nan), axis=0)
            print("clip body: median px per Pose point 0-24 (points in the frame): "
                  + " ".join(f"{x:.1f}" for x in per_point) + f"; shoulder width {shoulders:.0f} px")
        assert differ <= FOUND_DIFF_FRACTION * len(got), (p.name, differ)
        if (~mw[:, j]).sum() >= 5:                     # a part Python found in at least 5 frames
            assert both.sum() >= 0.5 * (~mw[:, j]).sum(), p.name
            bound = BODY_MEDIAN_TOL * shoulders if p.name == "body" else PIXEL_MEDIAN_TOL[p.name]
            assert med <= bound, (p.name, med, bound)


def test_serve_gives_a_landmark_bundle_its_three_models_and_refuses_a_recording_for_a_frames_bundle(
        work, tmp_path, tiny_student):
    """A landmark bundle's page gets the hand, face and pose .task files (as the page's URL names them); a recording
    served instead of a video needs none; a frames bundle with a recording is a named error."""
    import urllib.request

    from slsdk.convert import convert
    from slsdk.demos.web import WebDemoError

    assert_serves_the_three_models(work / "lm", shared_clip(work), work / "models")
    srv = _serve(work / "lm", landmarks=work / Path(RECORDINGS[0]).name)
    try:
        base, query = srv.url.split("?")
        assert "landmarks=landmarks/recording.json" in query and "face_model" not in query, query
        with urllib.request.urlopen(base + "landmarks/recording.json") as r:
            rec = json.loads(r.read())
        k, fps = read_pose_file(work / Path(RECORDINGS[0]).name)
        assert rec["fps"] == fps and np.array_equal(np.asarray(rec["frames"], np.float32), k)
    finally:
        srv.stop()
    rgb = convert(tiny_student(len(VOCAB)), "onnx", "fp32", tmp_path / "rgb", vocab=VOCAB).root
    with pytest.raises(WebDemoError, match="takes video frames"):
        _serve(rgb, landmarks=work / Path(RECORDINGS[0]).name)
    with pytest.raises(ValueError, match="not_a.pose"):
        _serve(work / "lm", landmarks=tmp_path / "not_a.pose")


def shared_clip(work: Path) -> Path:
    """Any file stands for the video here (the server only serves it)."""
    p = work / "any_video.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return p


def test_landmark_bundle_on_the_camera_path(work, node, chromium, shared_file, tmp_path):
    """The camera path of a landmark bundle (causal normalisation, live resampling, endpoints) with Chromium playing
    the real clip as its camera: the three landmarkers run per frame, find the parts, and glosses are decoded."""
    import av

    from slsdk.data.video import iter_video_timed

    y4m = tmp_path / "camera.y4m"  # Chromium's fake camera reads raw YUV4MPEG2
    with av.open(str(y4m), "w", format="yuv4mpegpipe") as out:
        st = out.add_stream("rawvideo", rate=30)
        st.width, st.height, st.pix_fmt = 540, 720, "yuv420p"
        for frame, _ in iter_video_timed(shared_file(CLIP)):
            for p in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    m = work / "models"
    srv = _serve(work / "lm", video=y4m, hand_model=m / "hand_landmarker.task", face_model=m / "face_landmarker.task",
                 pose_model=m / "pose_landmarker.task")
    out = tmp_path / "camera.json"
    try:
        p = subprocess.run([node, str(ROOT / "tests" / "web" / "run_page.mjs"), f"{srv.url}&camera=6", str(out)],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "SLSDK_FAKE_CAMERA": str(y4m)})
    finally:
        srv.stop()
    assert p.returncode == 0 and out.is_file(), (p.stdout + p.stderr)[-6000:]
    got = json.loads(out.read_text())
    print(f"camera, landmark bundle: {got['source_frames']} frames taken, {got['camera_dropped']} dropped while busy, "
          f"parts found {got['crop']['found']}, {got['timing']['frames_per_s']:.1f} frames/s, {got['sentences']}")
    assert got["crop"]["policy"] == "landmarks" and got["source_frames"] >= 5
    assert got["crop"]["found"]["body"] > 0 and got["crop"]["found"]["lips"] > 0
    assert got["glosses"] and set(got["glosses"]) <= set(VOCAB[1:])
