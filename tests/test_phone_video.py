"""Smartphone video as it arrives: rotation metadata, variable frame rate, HEVC, 4K, audio, odd sizes, broken files.

Every file is made here with PyAV (``slsdk.data.video.write_video``), the way a phone stores it (frames as the
sensor gives them plus a display matrix; timestamps with jitter), and read back against the upright original.
"""
from __future__ import annotations

import itertools
import tracemalloc
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

import slsdk
from slsdk.data.video import VideoError, VideoReader, iter_video_timed, load_video, video_info, write_video

CLIP = "data/hands/webcam_gestures.mp4"
HAS_X265 = "libx265" in av.codecs_available


def _marker_clip(t: int = 3, h: int = 48, w: int = 32) -> np.ndarray:
    """An asymmetric picture (distinct corners), so any wrong rotation or mirror shows."""
    u = np.zeros((t, h, w, 3), np.uint8)
    u[:, :10, :6] = (255, 0, 0)
    u[:, -8:, -12:] = (0, 255, 0)
    u[:, 20:24, :] = (0, 0, 255)
    for i in range(t):
        u[i, 30:34, 2 + 3 * i: 6 + 3 * i] = 200
    return u


def _same_picture(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the RGB -> YUV -> RGB rounding of a lossless yuv444p encode (1 grey level)."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def _stored(upright: np.ndarray, ccw: int, hflip: bool, vflip: bool) -> np.ndarray:
    """What a camera stores so that display = flips(rotate_ccw(stored, ccw)) is ``upright``."""
    d = upright
    if vflip:
        d = d[:, ::-1]
    if hflip:
        d = d[:, :, ::-1]
    return np.ascontiguousarray(np.rot90(d, (-ccw // 90) % 4, axes=(1, 2)))


# ------------------------------------------------------------------------------------------------ orientation
@pytest.mark.parametrize("ccw,hflip,vflip", list(itertools.product((0, 90, 180, 270), (False, True), (False, True))))
def test_display_matrix_gives_upright_frames(tmp_path, ccw, hflip, vflip):
    upright = _marker_clip()
    p = write_video(tmp_path / "phone.mp4", _stored(upright, ccw, hflip, vflip), rotation=ccw if ccw <= 180 else ccw - 360,
                    hflip=hflip, vflip=vflip, crf=0, pix_fmt="yuv444p")
    # the display matrix is in the file as side data (what ffprobe shows as "displaymatrix: rotation of ...")
    from av.sidedata.sidedata import Type

    with av.open(str(p)) as c:
        f = next(c.decode(video=0))
        identity = (ccw, hflip, vflip) in ((0, False, False), (180, True, True))
        assert (f.side_data.get(Type.DISPLAYMATRIX) is None) == identity
        if not (hflip or vflip):
            assert f.rotation % 360 == ccw
    frames, times = load_video(p)
    _same_picture(frames, upright)
    info = video_info(p)
    assert (info.width, info.height) == (32, 48)
    assert (info.coded_height, info.coded_width) == ((32, 48) if ccw in (90, 270) else (48, 32))
    assert np.allclose(times, [0, 0.04, 0.08])


def test_portrait_phone_clip_reports_its_rotation(tmp_path):
    upright = _marker_clip()
    p = write_video(tmp_path / "portrait.mp4", _stored(upright, 90, False, False), rotation=90)
    info = video_info(p)
    assert (info.coded_width, info.coded_height) == (48, 32)  # stored landscape
    assert (info.width, info.height) == (32, 48) and info.rotation == 270  # shown portrait: 270 cw = 90 ccw
    # every entry point decodes upright: the streaming iterator, the runtime source, the public reader
    from slsdk.runtime.sources import VideoFileSource

    assert next(iter_video_timed(p))[0].shape == (48, 32, 3)
    assert next(iter(VideoFileSource(p)))[0].shape == (48, 32, 3)
    assert slsdk.read_video(p)[0].shape == (3, 48, 32, 3)
    assert next(iter(slsdk.iter_frames(p)))[0].shape == (48, 32, 3)


def test_rotate_tag_without_display_matrix(tmp_path):
    """Older muxers (and mkv) carry a ``rotate`` stream tag (clockwise degrees) instead of a display matrix."""
    upright = _marker_clip()
    p = tmp_path / "tagged.mkv"
    stored = np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2)))  # stored rotated 90 ccw: show it 90 cw
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = stored.shape[2], stored.shape[1], "yuv444p"
        s.options = {"crf": "0"}
        s.metadata["rotate"] = "90"
        for f in stored:
            for pk in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    frames, _ = load_video(p)
    _same_picture(frames, upright)
    assert video_info(p).rotation == 90


# ------------------------------------------------------------------------------------------------ timing
def test_60fps_jittered_timestamps_are_kept_and_resampled_by_time(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    times = np.arange(n) / 60.0 + np.r_[0, rng.uniform(-0.003, 0.003, n - 1)]
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(n) * 8)[:, None, None]
    p = write_video(tmp_path / "vfr.mp4", frames, fps=60, times=times, crf=0, pix_fmt="yuv444p")
    got, t = load_video(p)
    np.testing.assert_allclose(t, times - times[0], atol=1.5 / 90000)
    _same_picture(got[:, 0, 0, 0], frames[:, 0, 0, 0])
    # the runtime's resampler maps it to 25 fps by presentation time: nearest source frame per slot
    from slsdk.runtime.sources import FrameResampler

    rs, picked, held = FrameResampler(25), [], None
    for i, ti in enumerate(t):
        c = rs.push(ti)
        picked += [held] * (c or 0)
        held = i
    picked += [held] * (rs.finish() or 0)
    want = [int(np.argmin(np.abs(t - k / 25))) for k in range(len(picked))]
    assert picked == want and len(picked) == 13


def test_timestamp_jump_is_cut_not_filled(tmp_path):
    """36 frames with a +10 min jump: 36 frames spanning 1.44 s, the gap counted and warned about."""
    frames = np.random.default_rng(1).integers(0, 255, (36, 32, 32, 3), np.uint8)
    times = [i / 25 for i in range(18)] + [600 + i / 25 for i in range(18)]
    p = write_video(tmp_path / "jump.mp4", frames, times=times)
    r = VideoReader(p)
    with pytest.warns(UserWarning, match="jump.mp4: 1 timestamp gap"):
        t = [ti for _, ti in r]
    assert len(t) == 36 and t[-1] == pytest.approx(35 / 25) and r.stats["gaps"] == 1
    assert r.stats["gap_s"] == pytest.approx(600 - 18 / 25 + 1 / 25 - 1 / 25, abs=0.01)
    # the recognizer then sees 36 model frames, not 15,036
    from slsdk.runtime.sources import VideoFileSource

    src = VideoFileSource(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sum(1 for _ in src) == 36
    # the raw timestamps stay available
    _, raw = load_video(p, max_gap=None)
    assert raw[18] == pytest.approx(600.0)


def test_resolution_change_mid_stream_keeps_one_frame_size(tmp_path):
    parts = []
    for k, (w, h) in enumerate(((64, 48), (96, 64))):
        q = tmp_path / f"part{k}.ts"
        with av.open(str(q), "w") as c:
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for _ in range(5):
                for pk in s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 60 + 120 * k, np.uint8), format="rgb24")):
                    c.mux(pk)
            for pk in s.encode():
                c.mux(pk)
        parts.append(q.read_bytes())
    p = tmp_path / "joined.ts"
    p.write_bytes(b"".join(parts))  # MPEG-TS concatenates byte-wise: the stream changes size at frame 5
    r = VideoReader(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = np.stack([f for f, _ in r])
    assert frames.shape == (10, 48, 64, 3) and r.stats["resized_frames"] == 5
    assert abs(int(frames[7].mean()) - 180) <= 3 and abs(int(frames[2].mean()) - 60) <= 3


# ------------------------------------------------------------------------------------------------ codecs, sizes, streams
@pytest.mark.skipif(not HAS_X265, reason="this PyAV build has no libx265 encoder")
def test_hevc_decodes_like_h264(tmp_path):
    upright = _marker_clip(5)
    a, _ = load_video(write_video(tmp_path / "h264.mp4", upright, crf=0, pix_fmt="yuv444p"))
    p = write_video(tmp_path / "hevc.mp4", _stored(upright, 90, False, False), codec="libx265", crf=0,
                    pix_fmt="yuv444p", rotation=90)
    assert video_info(p).codec == "hevc"
    b, t = load_video(p)
    _same_picture(a, b)
    assert np.allclose(t, np.arange(5) / 25)


def test_4k_clip_is_scaled_in_the_decoder(tmp_path):
    """A 3840x2160 clip read at the size the next stage needs: no full-resolution numpy frames."""
    t, h, w = 4, 2160, 3840
    big = np.zeros((t, h, w, 3), np.uint8)
    big[:, : h // 2, : w // 2] = (200, 40, 40)
    big[:, h // 2:, w // 2:] = (40, 200, 40)
    p = write_video(tmp_path / "uhd.mp4", big, crf=28)
    del big
    tracemalloc.start()
    try:
        frames, _ = load_video(p, shorter=224)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames.shape == (t, 224, 398, 3)
    assert peak < 4e6, f"peak Python/numpy allocation {peak / 1e6:.1f} MB (one 4K RGB frame is 24.9 MB)"
    # and it is the picture: top-left red, bottom-right green
    assert frames[0, 10, 10, 0] > 150 and frames[0, -10, -10, 1] > 150
    # scaling in the decoder agrees with the torch antialiased resize of the RGB frame (the training path)
    from slsdk.data.transforms import resize_shorter
    from slsdk.data.video import SCALE_TOLERANCE

    ref = resize_shorter(load_video(p, max_frames=1)[0], 224)
    assert np.abs(ref.astype(int) - frames[:1].astype(int)).mean() < SCALE_TOLERANCE
    # the runtime's file source brings phone resolutions down to DECODE_MAX_SHORTER in the decoder
    from slsdk.runtime.sources import DECODE_MAX_SHORTER, VideoFileSource

    f0, _ = next(iter(VideoFileSource(p)))
    assert f0.shape == (DECODE_MAX_SHORTER, DECODE_MAX_SHORTER * 16 // 9, 3)


def test_odd_sizes_and_sample_aspect_ratio(tmp_path):
    p = tmp_path / "odd.mp4"
    img = np.random.default_rng(0).integers(0, 255, (2, 47, 63, 3), np.uint8)
    write_video(p, img, crf=0, pix_fmt="yuv444p")
    frames, _ = load_video(p)
    assert frames.shape == (2, 47, 63, 3)
    assert load_video(p, shorter=37)[0].shape == (2, 37, 50, 3)  # odd output sizes too
    # anamorphic: 64x48 coded with SAR 2:1 is shown 128x48
    q = tmp_path / "sar.mp4"
    with av.open(str(q), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.sample_aspect_ratio = Fraction(2, 1)
        for _ in range(2):
            for pk in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    info = video_info(q)
    assert info.sample_aspect_ratio == 2.0 and (info.width, info.height) == (128, 48)
    assert load_video(q)[0].shape == (2, 48, 128, 3)


def test_audio_is_ignored(tmp_path):
    clip = _marker_clip(6)
    # lossless encodes: a lossy x264 encode is not bit-reproducible across runs (threaded rate control), so
    # both files are compared with the clip itself, up to the YUV rounding
    a = load_video(write_video(tmp_path / "silent.mp4", clip, crf=0, pix_fmt="yuv444p"))
    p = write_video(tmp_path / "with_audio.mp4", clip, audio=True, crf=0, pix_fmt="yuv444p")
    with av.open(str(p)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    b = load_video(p)
    _same_picture(a[0], clip)
    _same_picture(b[0], clip)
    np.testing.assert_allclose(a[1], b[1])


def test_second_video_stream_by_name(tmp_path):
    p = tmp_path / "two.mkv"
    with av.open(str(p), "w") as c:
        ss = []
        for k in range(2):
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = 32 + 16 * k, 32, "yuv420p"
            ss.append(s)
        for _ in range(3):
            for k, s in enumerate(ss):
                f = av.VideoFrame.from_ndarray(np.full((32, 32 + 16 * k, 3), 40 + 160 * k, np.uint8), format="rgb24")
                for pk in s.encode(f):
                    c.mux(pk)
        for s in ss:
            for pk in s.encode():
                c.mux(pk)
    assert load_video(p)[0].shape == (3, 32, 32, 3)
    second = load_video(p, stream=1)[0]
    assert second.shape == (3, 32, 48, 3) and second.mean() > 150
    with pytest.raises(VideoError, match="two.mkv: has 2 video stream"):
        load_video(p, stream=2)


# ------------------------------------------------------------------------------------------------ broken files
def test_no_video_stream_is_named(tmp_path):
    p = tmp_path / "voice.m4a"
    with av.open(str(p), "w") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 16000, 0
        for pk in a.encode(f):
            c.mux(pk)
        for pk in a.encode():
            c.mux(pk)
    with pytest.raises(VideoError, match=r"voice.m4a: contains no video stream \(streams: audio aac\)"):
        load_video(p)


def test_unsupported_codec_is_named(tmp_path):
    """A video stream FFmpeg has no decoder for (an mkv whose codec id we overwrite) is refused, not skipped."""
    p = write_video(tmp_path / "ok.mkv", _marker_clip())
    data = p.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    q = tmp_path / "odd_codec.mkv"
    q.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    with pytest.raises(VideoError, match="odd_codec.mkv: unsupported codec"):
        load_video(q)


def test_truncated_mp4_with_index_at_the_front_is_refused(tmp_path):
    """The moov box at the front lists 58 frames; the copy was cut: no 13-of-58 clip, an error naming the file."""
    frames = np.random.default_rng(0).integers(0, 255, (58, 48, 64, 3), np.uint8)
    data = write_video(tmp_path / "whole.mp4", frames, faststart=True).read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: int(len(data) * 0.25)])
    with pytest.raises(VideoError, match=r"cut.mp4: truncated: its index lists 58 frames"):
        load_video(p)
    from slsdk.runtime.sources import VideoFileSource

    with pytest.raises(VideoError, match="cut.mp4: truncated"):
        VideoFileSource(p)  # refused on open, before any frame reaches the recognizer
    q = tmp_path / "cut_end.mp4"  # index at the end (the default): the cut removes it
    q.write_bytes(write_video(tmp_path / "w2.mp4", frames).read_bytes()[:20000])
    with pytest.raises(VideoError, match="cut_end.mp4: truncated or unfinished mp4"):
        load_video(q)


def test_fewer_frames_than_the_header_says_is_an_error(tmp_path):
    """Damage inside the stream (the index is whole): the shortfall is found and nothing partial is returned."""
    frames = np.random.default_rng(0).integers(0, 255, (40, 48, 64, 3), np.uint8)
    p = write_video(tmp_path / "ok.mp4", frames, faststart=True)
    data = bytearray(p.read_bytes())
    with av.open(str(p)) as c:
        e = c.streams.video[0].index_entries
        lo, hi = e[10].pos, e[30].pos + e[30].size
    data[lo:hi] = bytes(hi - lo)  # zero out frames 10..30 of mdat
    q = tmp_path / "damaged.mp4"
    q.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="damaged.mp4"):
        load_video(q)


# ------------------------------------------------------------------------------------------------ acceptance
VOCAB = ["<blank>", "a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def hands_bundle(tiny_student, tmp_path_factory):
    from slsdk.convert import convert

    out = tmp_path_factory.mktemp("bundle") / "student-hands"
    return convert(tiny_student(len(VOCAB)), "onnx", "fp32", out, vocab=VOCAB, crop={"policy": "hands"}).root


@pytest.fixture(scope="module")
def phone_variants(shared_file, tmp_path_factory):
    """The real webcam clip as an upright 25 fps original, and as a phone would store it: portrait frames
    stored landscape with a display matrix, 60 fps with jittered timestamps, HEVC (lossless, so only
    orientation and timing differ)."""
    src, _ = load_video(shared_file(CLIP))
    d = tmp_path_factory.mktemp("phone")
    n = len(src)
    out = {"upright": write_video(d / "upright.mp4", src, fps=25, crf=0, pix_fmt="yuv444p"),
           "rotated": write_video(d / "rotated.mp4", _stored(src, 90, False, False), fps=25, rotation=90, crf=0,
                                  pix_fmt="yuv444p")}
    rng = np.random.default_rng(0)
    k = np.arange(int((n - 1) / 25 * 60 + 0.5) + 1)
    t60 = k / 60 + np.r_[0, rng.uniform(-0.002, 0.002, len(k) - 1)]
    idx = np.clip(np.round(t60 * 25).astype(int), 0, n - 1)  # each 60 fps frame shows the nearest original one
    out["60fps"] = write_video(d / "jitter60.mp4", src[idx], fps=60, times=t60, crf=0, pix_fmt="yuv444p")
    if HAS_X265:
        out["hevc"] = write_video(d / "hevc.mp4", _stored(src, 90, False, False), fps=25, codec="libx265", crf=0,
                                  pix_fmt="yuv444p", rotation=90)
    return out


def test_phone_variants_give_the_same_glosses_and_hands(hands_bundle, phone_variants, shared_file):
    from slsdk.runtime import Recognizer, recognize_video

    rec = Recognizer(hands_bundle, hand_model=shared_file("models/hand_landmarker.task"))
    got = {k: recognize_video(hands_bundle, p, recognizer=rec) for k, p in phone_variants.items()}
    ref = got["upright"]
    assert ref.crop_stats["frames_with_hands"] > 10 and ref.frames == 58
    for k, r in got.items():
        assert r.frames == ref.frames, k
        assert r.crop_stats["frames_with_hands"] == ref.crop_stats["frames_with_hands"], k
        assert r.result.glosses == ref.result.glosses, k
    assert got["60fps"].source_frames > 2 * ref.source_frames


def test_slsdk_run_reads_the_rotated_clip_upright(hands_bundle, phone_variants, shared_file, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from slsdk.cli import app

    monkeypatch.chdir(tmp_path)
    rows = {}
    for k, extra in (("upright", []), ("rotated", []), ("upright", ["--hand-every", "1"])):
        r = CliRunner().invoke(app, ["run", str(hands_bundle), str(phone_variants[k]), "--crop", "hands", "--json",
                                     "--hand-model", str(shared_file("models/hand_landmarker.task")), *extra])
        assert r.exit_code == 0, r.output
        rows[k + "".join(extra)] = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")][-1]
    assert rows["rotated"]["glosses"] == rows["upright"]["glosses"]
    assert rows["rotated"]["crop"]["frames_with_hands"] == rows["upright"]["crop"]["frames_with_hands"]
    # the landmarker schedule: every frame with --hand-every 1, fewer calls with the default (search, 2)
    every = rows["upright--hand-every1"]["crop"]
    assert every["detections"] == every["frames"] == 58
    assert rows["upright"]["crop"]["detections"] < 58
