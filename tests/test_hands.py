"""Hand cropping (MediaPipe HandLandmarker) on real photos and a real webcam clip, model resolution,
frame sources and the drop-oldest frame buffer."""
from __future__ import annotations

import functools
import http.server
import pickle
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slsdk import fileio

pytest.importorskip("mediapipe")

from slsdk.runtime.crop import CropConfig  # noqa: E402
from slsdk.runtime.geometry import box_iou, center_box, hands_box_params, resize_square, square_box  # noqa: E402
from slsdk.runtime.hand_model import HandModelNotFound, InvalidHandModel, resolve_hand_model  # noqa: E402
from slsdk.runtime.hand_tracker import CropFn, HandCropper  # noqa: E402
from slsdk.runtime.landmarker import HandDetector  # noqa: E402
from slsdk.runtime.overlay import draw_overlay, save_overlay_png  # noqa: E402
from slsdk.runtime.sources import BackgroundReader, CameraError, CameraSource, FrameDropper, VideoFileSource  # noqa: E402

CLIP = "data/hands/webcam_gestures.mp4"


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_path(shared_file) -> Path:
    return shared_file("models/hand_landmarker.task")


@pytest.fixture(scope="module")
def detector(model_path):
    with HandDetector(model_path) as d:
        yield d


@pytest.fixture(scope="module")
def photos(shared_dir) -> list[Path]:
    files = sorted((shared_dir / "data/hands/gestures").glob("*/*.jpg"))
    if len(files) != 40:
        pytest.skip(f"expected 40 gesture photos under {shared_dir}/data/hands/gestures, found {len(files)}")
    return files


@pytest.fixture(scope="module")
def photo_hands(detector, photos):
    return {p: detector.detect(p) for p in photos}


@pytest.fixture(scope="module")
def clip(shared_file):
    from slsdk.data.video import read_video, video_info

    path = shared_file(CLIP)
    return read_video(path), video_info(path).fps


@pytest.fixture(scope="module")
def clip_run(model_path, clip):
    frames, fps = clip
    with HandCropper(CropConfig(), model_path) as c:
        crops, stats, results = c.crop_video(frames, fps, size=112, return_results=True)
    return crops, stats, results


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No model in env or cache: XDG_CACHE_HOME points at an empty temporary folder."""
    monkeypatch.delenv("SLSDK_HAND_MODEL", raising=False)
    monkeypatch.delenv("SLSDK_HAND_MODEL_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "slsdk" / "hand_landmarker.task"


def _unused_port_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hand_landmarker.task"


def _jitter(boxes) -> float:
    b = np.asarray(boxes, dtype=np.float64)
    c = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0]], axis=1)
    return float(np.abs(np.diff(c, axis=0)).sum(axis=1).mean())


# ------------------------------------------------------------------------------------------------
# IMAGE mode on the 40 photos and the generated signer
# ------------------------------------------------------------------------------------------------
def test_photos_hands_found(photo_hands):
    found = sum(bool(h) for h in photo_hands.values())
    per_class: dict[str, int] = {}
    for p, h in photo_hands.items():
        per_class[p.parent.name] = per_class.get(p.parent.name, 0) + bool(h)
    print(f"hands found in {found}/40 photos {per_class} (SOURCES.md: 36)")
    assert found >= 33
    for hands in photo_hands.values():
        for h in hands:
            assert h.landmarks.shape == (21, 3) and h.landmarks.dtype == np.float32
            assert h.handedness in ("Left", "Right") and 0.0 < h.score <= 1.0


def test_photo_crops_contain_the_hands(photo_hands):
    from slsdk.data.video import read_image

    cfg = CropConfig()
    checked = 0
    for p, hands in photo_hands.items():
        if not hands:
            continue
        img = read_image(p)
        h, w = img.shape[:2]
        cx, cy, side = hands_box_params(hands, w, h, cfg)
        x0, y0, x1, y1 = square_box(cx, cy, side, w, h)
        assert x1 - x0 == y1 - y0 and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 >= int(cfg.min_size * min(w, h))
        for hand in hands:
            xy = hand.landmarks[:, :2].copy()
            xy[:, 0] = np.clip(xy[:, 0], 0, w)
            xy[:, 1] = np.clip(xy[:, 1], 0, h)
            assert (xy[:, 0] >= x0 - 1).all() and (xy[:, 0] <= x1 + 1).all(), p
            assert (xy[:, 1] >= y0 - 1).all() and (xy[:, 1] <= y1 + 1).all(), p
        checked += 1
    assert checked >= 33


def test_generated_signer_two_hands(detector, shared_file):
    hands = detector.detect(shared_file("data/hands/generated_signer.png"))
    assert len(hands) == 2
    assert {h.handedness for h in hands} == {"Left", "Right"}


# ------------------------------------------------------------------------------------------------
# VIDEO mode on the webcam clip
# ------------------------------------------------------------------------------------------------
def test_clip_all_frames_hands_and_boxes(clip, clip_run):
    frames, fps = clip
    crops, stats, results = clip_run
    t, h, w = frames.shape[:3]
    print(f"clip: {t} frames @ {fps:.2f} fps, hands in {stats.frames_with_hands} frames, "
          f"mean hands {stats.mean_hands:.2f}, held {stats.held_frames}, fallback {stats.fallback_frames}")
    assert t == 58 and stats.frames == 58 and len(results) == 58
    assert crops.shape == (58, 112, 112, 3) and crops.dtype == np.uint8
    assert 12 <= stats.frames_with_hands <= 40
    assert stats.frames_with_hands == sum(r.hands_found > 0 for r in results)
    for r in results:
        x0, y0, x1, y1 = r.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == y1 - y0  # square
        assert (r.hands_found > 0) == (r.status == "hands") == (r.raw_box is not None)
        assert len(r.landmarks) == r.hands_found
    assert stats.boxes == [r.box for r in results]


def test_clip_crop_matches_the_box(clip, clip_run):
    frames, _ = clip
    _, _, results = clip_run
    i = next(i for i, r in enumerate(results) if r.hands_found)
    r = results[i]
    x0, y0, x1, y1 = r.box
    expected = resize_square(frames[i, y0:y1, x0:x1], 112)
    np.testing.assert_array_equal(r.image, expected)


def test_clip_smoothing_reduces_jitter(model_path, clip, clip_run):
    frames, fps = clip
    _, _, smooth = clip_run
    with HandCropper(CropConfig(smoothing=1.0), model_path) as c:
        _, _, raw = c.crop_video(frames, fps, return_results=True)
    # same tracker and detections whatever the smoothing: only the boxes differ
    assert [r.hands_found for r in raw] == [r.hands_found for r in smooth]
    idx = [i for i in range(len(smooth)) if smooth[i].raw_box is not None]
    runs = [(i, j) for i, j in zip(idx, idx[1:]) if j == i + 1]
    assert len(runs) >= 5
    raw_j = np.mean([_jitter([smooth[i].raw_box, smooth[j].raw_box]) for i, j in runs])
    smooth_j = np.mean([_jitter([smooth[i].box, smooth[j].box]) for i, j in runs])
    print(f"mean box change per frame: raw {raw_j:.1f} px, smoothed {smooth_j:.1f} px")
    assert smooth_j < raw_j
    # with smoothing=1.0 the box is this frame's hands box
    for r in raw:
        if r.raw_box is not None:
            assert r.box == r.raw_box


def test_crop_video_is_deterministic(model_path, clip, clip_run):
    frames, fps = clip
    with HandCropper(CropConfig(), model_path) as c:
        _, stats = c.crop_video(iter(frames[:20]), fps)  # any iterable of frames
    assert stats.boxes == clip_run[1].boxes[:20]


def test_no_hands_centre_fallback_and_hold(model_path, clip, clip_run):
    frames, fps = clip
    h, w = frames.shape[1:3]
    blank = np.zeros((h, w, 3), np.uint8)
    with HandCropper(CropConfig(hold_frames=2, fallback="center"), model_path, size=64) as c:
        r = c.crop(blank, 0)
        assert r.hands_found == 0 and r.status == "fallback" and r.box == center_box(w, h)
        assert r.image.shape == (64, 64, 3)
        # a frame with hands, then blanks: held for hold_frames, then drifts to the centre
        k = next(i for i, x in enumerate(clip_run[2]) if x.hands_found)
        c.reset()
        with_hands = c.crop(frames[k], 0)
        assert with_hands.hands_found > 0
        held = [c.crop(blank, 100 + 33 * i) for i in range(2)]
        assert all(x.status == "held" and x.box == with_hands.box for x in held)
        after = [c.crop(blank, 200 + 33 * i) for i in range(40)]
        assert all(x.status == "fallback" and x.hands_found == 0 for x in after)
        assert after[-1].box == center_box(w, h)
    with HandCropper(CropConfig(hold_frames=0, fallback="last"), model_path) as c:
        with_hands = c.crop(frames[k], 0)
        later = [c.crop(blank, 40 * (i + 1)) for i in range(5)]
        assert all(x.box == with_hands.box and x.status == "fallback" for x in later)


def test_repeated_timestamps_do_not_crash(model_path, clip):
    frames, _ = clip
    with HandCropper(CropConfig(), model_path) as c:
        for f in frames[:3]:
            c.crop(f, 0)  # MediaPipe needs increasing timestamps: the cropper bumps them
        assert c.stats.frames == 3


def test_full_policy_needs_no_model(clip):
    frames, fps = clip
    h, w = frames.shape[1:3]
    with HandCropper(CropConfig(policy="full"), model_path="/nonexistent/never/read.task") as c:
        crops, stats = c.crop_video(frames[:4], fps, size=96)
    assert crops.shape == (4, 96, 96, 3) and stats.boxes == [(0, 0, w, h)] * 4
    # letterboxed: the padded side columns are black, the middle is the frame
    assert crops[:, :, :2].max() == 0 and crops[:, 40:56, 40:56].max() > 0


def test_crop_fn_hook_is_picklable(model_path, clip):
    frames, fps = clip
    fn = CropFn(CropConfig(), size=64, fps=fps, model_path=model_path)
    out = fn(frames[:6])
    assert out.shape == (6, 64, 64, 3) and out.dtype == np.uint8
    fn2 = pickle.loads(pickle.dumps(fn))
    assert fn2._cropper is None
    np.testing.assert_array_equal(fn2(frames[:6]), out)
    fn.close()
    fn2.close()


def _runtime_frames(path):
    """The frames the runtime crops from a file: resampled to 25 fps by timestamp."""
    from slsdk.data.video import VideoReader
    from slsdk.runtime.sources import FrameResampler

    rs, held, out = FrameResampler(25.0), None, []
    for f, t in VideoReader(path):
        out += [held] * (rs.push(t) or 0)
        held = f
    return out + [held] * (rs.finish() or 0)


def _boxes(frames, model_path, **cfg):
    with HandCropper(CropConfig(**cfg), model_path, size=64) as c:
        res = [c.crop(f, i * 40) for i, f in enumerate(frames)]
        return res, c.stats


def test_detect_every_search_policy_keeps_every_frame_boxes(model_path, shared_file):
    """The default (detect_every=2, "search"): fewer landmarker calls, crop boxes IoU >= 0.9 vs every frame."""
    frames = _runtime_frames(shared_file(CLIP))
    ref, ref_stats = _boxes(frames, model_path, detect_every=1)
    got, stats = _boxes(frames, model_path)
    assert CropConfig().detect_every == 2 and CropConfig().detect_policy == "search"
    assert ref_stats.detections == len(frames) and stats.detections < 0.8 * len(frames)
    ious = [box_iou(a.box, b.box) for a, b in zip(ref, got)]
    print(f"search, every 2: {stats.detections}/{len(frames)} landmarker calls, IoU mean {np.mean(ious):.3f} "
          f"min {min(ious):.3f}, hands in {stats.frames_with_hands} vs {ref_stats.frames_with_hands} frames")
    assert np.mean(ious) >= 0.9 and stats.frames_with_hands >= ref_stats.frames_with_hands - 2
    # skipped only while nothing is tracked: a frame with hands is always followed by a detection
    for prev, cur in zip(got, got[1:]):
        if prev.detected and prev.hands_found:
            assert cur.detected
    # "hold" skips regardless: the held hands stand in for the skipped frames
    held, hstats = _boxes(frames, model_path, detect_every=3, detect_policy="hold")
    assert hstats.detections == len(range(0, len(frames), 3))
    assert all(r.detected == (i % 3 == 0) for i, r in enumerate(held))
    assert all(r.hands_found == held[i - i % 3].hands_found for i, r in enumerate(held))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_hand_modules_one_job_each_without_a_shim():
    """Each public hand name is defined in exactly one module (no re-export shim, no private names across)."""
    import importlib

    mods = ["crop", "geometry", "hand_model", "hand_tracker", "landmarker", "overlay"]
    owner: dict[str, str] = {}
    for m in mods:
        mod = importlib.import_module(f"slsdk.runtime.{m}")
        for name in mod.__all__:
            assert not name.startswith("_") and name not in owner, (m, name, owner.get(name))
            owner[name] = m
            obj = getattr(mod, name)
            defined_in = getattr(obj, "__module__", None) if callable(obj) else None
            if defined_in and defined_in.startswith("slsdk.runtime."):  # not re-exported from another runtime module
                assert defined_in == f"slsdk.runtime.{m}", (m, name, defined_in)
    with pytest.raises(ImportError):
        importlib.import_module("slsdk.runtime.hands")


def test_crop_config_roundtrip_and_validation():
    cfg = CropConfig(margin=2.0, include_face=True, hold_frames=3)
    d = cfg.to_dict()
    assert CropConfig.from_dict(d) == cfg and d["policy"] == "hands"
    with pytest.raises(ValueError, match="policy"):
        CropConfig(policy="face")
    with pytest.raises(ValueError, match="unknown CropConfig keys"):
        CropConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="smoothing"):
        CropConfig(smoothing=0.0)
    with pytest.raises(ValueError, match="detect_every"):
        CropConfig(detect_every=0)
    with pytest.raises(ValueError, match="detect_policy"):
        CropConfig(detect_policy="sometimes")
    assert CropConfig.from_dict({"policy": "hands"}).detect_every == 2  # a manifest without it gets the default


def test_include_face_extends_upwards(detector, shared_file):
    from slsdk.data.video import read_image

    img = read_image(shared_file("data/hands/generated_signer.png"))
    hands = detector.detect(img)
    h, w = img.shape[:2]
    cfg = CropConfig(min_size=0.0, margin=1.0)
    _, cy0, s0 = hands_box_params(hands, w, h, cfg)
    _, cy1, s1 = hands_box_params(hands, w, h, CropConfig(min_size=0.0, margin=1.0, include_face=True))
    assert cy1 < cy0 and s1 >= s0


# ------------------------------------------------------------------------------------------------
# resize and drawing
# ------------------------------------------------------------------------------------------------
def test_resize_square_matches_torch_antialias():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for shape, size in [((96, 72, 3), 32), ((50, 50, 3), 80), ((61, 61, 3), 61)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        out = resize_square(img, size)
        s = max(shape[:2])
        padded = np.zeros((s, s, 3), np.uint8)
        top, left = (s - shape[0]) // 2, (s - shape[1]) // 2
        padded[top:top + shape[0], left:left + shape[1]] = img
        ref = torch.nn.functional.interpolate(torch.from_numpy(padded).permute(2, 0, 1)[None].float(), size=(size, size),
                                              mode="bilinear", antialias=True, align_corners=False)
        ref = ref[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        assert out.shape == (size, size, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    video = rng.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    assert resize_square(video, 20).shape == (3, 20, 20, 3)
    np.testing.assert_array_equal(resize_square(video, 20)[1], resize_square(video[1], 20))


def test_overlay_and_contact_sheet(tmp_path, clip, clip_run):
    frames, _ = clip
    _, _, results = clip_run
    k = next(i for i, r in enumerate(results) if r.hands_found)
    over = draw_overlay(frames[k], results[k], text="HELLO 1")
    assert over.shape == frames[k].shape and over.dtype == np.uint8
    assert not np.array_equal(over, frames[k]) and np.array_equal(frames[k], clip[0][k])  # input untouched
    x0, y0, x1, y1 = results[k].box
    assert (over[y0 + 1, x0 + 10:x1 - 10] == (0, 255, 0)).all()  # box edge drawn
    lx, ly = np.rint(results[k].landmarks[0][0, :2]).astype(int)
    assert (over[ly, lx] == (255, 0, 0)).all()  # wrist landmark drawn
    png = save_overlay_png(tmp_path / "sheet.png", [(frames[i], results[i]) for i in range(0, 58, 8)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------
# model resolution
# ------------------------------------------------------------------------------------------------
def test_resolve_order_arg_env_cache(clean_env, model_path, tmp_path, monkeypatch):
    cache = clean_env
    cache.parent.mkdir(parents=True)
    shutil.copy(model_path, cache)
    env_copy = tmp_path / "env.task"
    arg_copy = tmp_path / "arg.task"
    shutil.copy(model_path, env_copy)
    shutil.copy(model_path, arg_copy)
    assert resolve_hand_model() == cache
    monkeypatch.setenv("SLSDK_HAND_MODEL", str(env_copy))
    assert resolve_hand_model() == env_copy
    assert resolve_hand_model(arg_copy) == arg_copy
    monkeypatch.setenv("SLSDK_HAND_MODEL", str(tmp_path / "missing.task"))
    with pytest.raises(HandModelNotFound, match="SLSDK_HAND_MODEL"):
        resolve_hand_model()
    with pytest.raises(HandModelNotFound, match="--hand-model"):
        resolve_hand_model(tmp_path / "also-missing.task")


def test_offline_error_says_how_to_provide_it(clean_env, monkeypatch):
    url = _unused_port_url()
    monkeypatch.setenv("SLSDK_HAND_MODEL_URL", url)
    t = time.monotonic()
    with pytest.raises(HandModelNotFound) as e:
        resolve_hand_model(timeout=5)
    msg = str(e.value)
    assert url in msg and "--hand-model" in msg and "SLSDK_HAND_MODEL" in msg
    assert time.monotonic() - t < 10
    assert not clean_env.exists() and not any(clean_env.parent.glob("*.part"))  # no partial file left
    with pytest.raises(HandModelNotFound, match="download disabled"):
        resolve_hand_model(download=False)


def test_download_into_cache_from_local_server(clean_env, model_path, tmp_path):
    served = tmp_path / "srv"
    served.mkdir()
    shutil.copy(model_path, served / "hand_landmarker.task")
    (served / "junk.task").write_bytes(b"<html>captive portal</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(InvalidHandModel, match="downloaded from"):
            resolve_hand_model(url=f"{base}/junk.task")
        assert not clean_env.exists()
        got = resolve_hand_model(url=f"{base}/hand_landmarker.task")
    finally:
        server.shutdown()
        server.server_close()
    assert got == clean_env and got.read_bytes() == model_path.read_bytes()
    assert [p.name for p in got.parent.iterdir() if p.name != fileio.LEDGER] == ["hand_landmarker.task"]
    assert resolve_hand_model(url=_unused_port_url()) == clean_env  # cached now: no network needed


def test_invalid_task_files(tmp_path, clean_env):
    not_zip = tmp_path / "not_zip.task"
    not_zip.write_bytes(b"definitely not a model")
    with pytest.raises(InvalidHandModel, match="not a zip"):
        resolve_hand_model(not_zip)
    wrong_zip = tmp_path / "wrong.task"
    with zipfile.ZipFile(wrong_zip, "w") as z:
        z.writestr("hand_detector.tflite", b"x" * 10)
        z.writestr("face.tflite", b"x")
    with pytest.raises(InvalidHandModel, match="hand_landmarks_detector.tflite"):
        resolve_hand_model(wrong_zip)
    with pytest.raises(InvalidHandModel, match="hand_landmarks_detector.tflite"):
        HandCropper(CropConfig(), wrong_zip)
    # right names, garbage contents: MediaPipe refuses it and the error names the file
    garbage = tmp_path / "garbage.task"
    with zipfile.ZipFile(garbage, "w") as z:
        z.writestr("hand_detector.tflite", b"x" * 100)
        z.writestr("hand_landmarks_detector.tflite", b"y" * 100)
    with pytest.raises(InvalidHandModel, match="garbage.task"):
        HandCropper(CropConfig(), garbage)


# ------------------------------------------------------------------------------------------------
# frame sources and the drop-oldest buffer
# ------------------------------------------------------------------------------------------------
def test_frame_dropper_drops_oldest_deterministically():
    buf = FrameDropper(capacity=3)
    for i in range(10):
        assert buf.put(i)
    assert buf.dropped == 7 and len(buf) == 3 and buf.max_len == 3 and buf.put_count == 10
    buf.close()
    assert list(buf) == [7, 8, 9]
    assert not buf.put(10)  # closed
    with pytest.raises(FrameDropper.Closed):
        buf.get()
    with pytest.raises(TimeoutError):
        FrameDropper(2).get(timeout=0.05)
    with pytest.raises(ValueError):
        FrameDropper(2, policy="drop-newest")


def test_background_reader_without_consumer_keeps_newest():
    reader = BackgroundReader(range(50), capacity=4)
    assert reader.join(timeout=10)  # producer finished while nobody consumed
    assert reader.dropped == 46
    assert list(reader) == [46, 47, 48, 49]


def test_background_reader_slow_consumer_bounded():
    def camera(n=60):
        for i in range(n):
            time.sleep(0.002)
            yield np.full((4, 4, 3), i % 256, np.uint8), i / 500

    reader = BackgroundReader(camera(), capacity=2)
    got = []
    for frame, ts in reader:
        got.append(ts)
        time.sleep(0.01)  # consumer ~5x slower than the camera
    assert reader.dropped > 0 and len(got) + reader.dropped == 60
    assert reader.buffer.max_len <= 2 and got == sorted(got) and got[-1] == 59 / 500


def test_background_reader_block_policy_and_errors():
    assert list(BackgroundReader(range(20), capacity=2, policy="block")) == list(range(20))

    def broken():
        yield 1
        raise OSError("device unplugged")

    with pytest.raises(OSError, match="unplugged"):
        list(BackgroundReader(broken(), capacity=2))


def test_video_file_source(shared_file, clip):
    frames, fps = clip
    src = VideoFileSource(shared_file(CLIP))
    assert src.fps == pytest.approx(fps) and len(src) == 58
    items = list(src)
    assert len(items) == 58
    np.testing.assert_array_equal(items[5][0], frames[5])
    assert items[0][1] == 0.0 and items[30][1] == pytest.approx(30 / fps)
    limited = list(VideoFileSource(shared_file(CLIP), max_frames=5, fps=10))
    assert [t for _, t in limited] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    with pytest.raises(FileNotFoundError):
        VideoFileSource("/nonexistent/clip.mp4")


def test_camera_that_cannot_be_opened_gives_clear_error():
    with pytest.raises(CameraError, match="cannot open camera"):
        CameraSource(device="/dev/video_slsdk_missing_99")


def test_a_cropper_in_a_reference_cycle_is_collected_without_hanging(model_path):
    """MediaPipe runs a landmarker's calls on its own one-thread executor, and submitting holds concurrent.futures'
    module-wide lock. A finalizer that closed a landmarker could run inside another landmarker's submit (the cycle
    collector runs when submit allocates its thread) and deadlock on that lock: seen as a hung process. Finalizers
    only hand the landmarker on; the next safe point closes it. Here the collection runs with that lock held, as
    inside a submit, in a child process with a deadline (the old finalizer hangs it: the timeout fails the test)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import concurrent.futures.thread as cft, gc
        import numpy as np
        import slsdk.runtime.landmarker as L
        from slsdk.runtime.hand_tracker import HandCropper
        from slsdk.runtime.landmarker import HandDetector
        L._mediapipe()  # imported first: MediaPipe's import keeps the importing frames (and what they hold) alive
        M = {str(model_path)!r}
        frame = np.zeros((64, 64, 3), np.uint8)
        for make, use in ((lambda: HandCropper(model_path=M), lambda o: o.crop(frame, 0)),
                          (lambda: HandDetector(M), lambda o: o.detect(frame))):
            obj = make(); use(obj)
            obj.cycle = obj; del obj  # cyclic garbage that owns an open landmarker
            with cft._global_shutdown_lock:  # held, as inside another landmarker's executor.submit
                gc.collect()
            assert len(L._PENDING) == 1, L._PENDING  # handed on, not closed in the finalizer
            fresh = make(); use(fresh); fresh.close()  # safe points: the finalized owner's landmarker is closed
            assert not L._PENDING and not L._LIVE, (L._PENDING, L._LIVE)
        print("collected")
    """)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("collecting a cropper in a reference cycle hung the process (a finalizer closed its landmarker)")
    assert r.returncode == 0 and "collected" in r.stdout, r.stderr[-2000:]
