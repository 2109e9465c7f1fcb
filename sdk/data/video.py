"""Video I/O for the whole SDK (training data, preparation and the runtime): PyAV only, no OpenCV.

Frames are ``uint8`` numpy arrays ``[T, H, W, 3]`` in RGB, *as they are meant to be seen*: a phone clip stored
as landscape frames plus a rotation in the container comes out upright. A "video" is either a file PyAV can
demux (mp4, mov, mkv, avi, webm, ts, ...) or a folder of images (png/jpg/jpeg/bmp) read in sorted order
(natural sort, so ``2.png`` comes before ``10.png``).

:class:`VideoReader` is the one decoder; everything else wraps it:

* ``load_video(path) -> (frames, times)`` (public as ``slsdk.read_video``) and ``iter_frames(path)`` (the
  streaming iterator of ``(frame, t)``, for long files); ``read_video`` / ``iter_video`` /
  ``iter_video_timed`` / ``video_info`` are the older frame-only / info entry points, same decoder.
* Orientation: the display matrix (frame side data, as ffmpeg exports an mp4/mov ``tkhd`` matrix) or, when
  there is none, a ``rotate`` stream tag (older muxers, mkv) is applied exactly as ``ffmpeg``'s autorotate does
  (90/180/270 and horizontal/vertical flips). The sample aspect ratio is applied (the width is scaled), so
  anamorphic clips are not squeezed.
* Streams: the first video stream, or ``stream=N`` (the N-th video stream); audio, subtitle and data
  streams are discarded at the demuxer.
* Timing: ``t`` is the presentation time in seconds from the first frame, so variable frame rate shows. Gap
  policy (``max_gap``, default :data:`MAX_GAP_S`): a jump between consecutive timestamps longer than
  ``max_gap`` (an edit, a broken muxer, a camera pause), or a timestamp going backwards, is cut to one nominal
  frame period; ``reader.stats`` counts the gaps and the seconds removed, and a warning names the file. So a
  36-frame file with a +10 min jump stays 36 frames, not 15,000 repeats. ``max_gap=None`` keeps the raw
  timestamps.
* Size: ``shorter=N`` / ``max_shorter=N`` / ``size=(W, H)`` scale *in the decoder* (libswscale's YUV -> RGB,
  then :func:`slsdk.preprocess.resize_image`: Pillow's antialiased bilinear, the serving and training resize)
  before anything becomes numpy, so a 4K clip never exists as full-resolution RGB arrays. A mid-stream resolution change is scaled to the first frame's output
  size (counted in ``stats["resized_frames"]``), so every frame has the same shape.
* Threads: frame + slice threading in the decoder (``threads``, default 0 = FFmpeg's choice). PyAV releases
  the GIL while decoding and scaling.
* Errors name the file and the reason (:class:`VideoError`): not a video, no video stream, unsupported codec,
  corrupt data, and truncation: an index (moov at the front) pointing past the end of the file is refused at
  open, and a stream that yields fewer frames than its header lists raises at the end (``load_video`` /
  ``read_video`` then return nothing partial).
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from slsdk import fileio
from slsdk.errors import SlsdkError
from slsdk.preprocess import resize_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MAX_GAP_S = 1.0  # files: a longer jump between timestamps is cut to one frame period (see the module doc)
TRUNCATION_TOLERANCE = 1  # frames a stream may come up short of its header's count (edit lists) before it is truncation
INTERPOLATION = "BILINEAR"  # antialiased bilinear (slsdk.preprocess.resize_image: Pillow, as serving and training)
SCALE_TOLERANCE = 1.0  # stated: decoder scaling vs torch antialiased resize of the RGB frame, mean |diff| in grey levels


class VideoError(SlsdkError, ValueError):
    """A video exists but cannot be used: unreadable, corrupt, truncated, empty, or inconsistent."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says. ``width``/``height`` are the display size (rotation and aspect ratio applied)."""

    path: Path
    fps: float | None  # None for a frame folder (no timing information)
    frames: int
    width: int
    height: int
    is_folder: bool
    rotation: int = 0  # clockwise degrees applied for display (0/90/180/270)
    hflip: bool = False
    vflip: bool = False
    codec: str | None = None
    stream: int = 0  # index among the video streams
    coded_width: int = 0
    coded_height: int = 0
    sample_aspect_ratio: float = 1.0
    duration: float | None = None  # seconds, as the container says


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")


def read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image, ImageOps  # ships with matplotlib

        with Image.open(path) as im:
            arr = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # EXIF orientation, as for videos
    except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise VideoError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# orientation and size
# --------------------------------------------------------------------------------------------------
def display_transform(matrix) -> tuple[int, bool, bool, bool]:
    """``(rotation_cw, transpose_flip, hflip, vflip)`` for an FFmpeg display matrix (9 int32, 16.16).

    Follows ffmpeg's autorotate: the clockwise angle from ``av_display_rotation_get``, then for 90/270 a
    transpose whose direction depends on the matrix's mirror, for 180/0 flips from the diagonal's signs.
    Returned as the rotation (multiple of 90) and the flips applied *after* it.
    """
    m = [float(v) / 65536.0 for v in matrix]
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return 0, False, False, False
    ccw = -math.degrees(math.atan2(m[1] / s1, m[0] / s0))
    theta = -round(ccw)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        # "clock" (plain 90 cw) when m[3] <= 0, else "cclock_flip" = transpose = 90 ccw then vertical flip
        return (90, False, False, False) if matrix[3] <= 0 else (270, True, False, False)
    if abs(theta - 270) < 1:
        # "cclock" (90 ccw) when m[3] >= 0, else "clock_flip" = 90 cw then vertical flip
        return (270, False, False, False) if matrix[3] >= 0 else (90, True, False, False)
    if abs(theta - 180) < 1:
        return 0, False, matrix[0] < 0, matrix[4] < 0
    if abs(theta) < 1:
        return 0, False, False, matrix[4] < 0
    # an arbitrary angle: nearest quarter turn (ffmpeg would rotate by any angle with black corners)
    q = int(round(theta / 90.0)) % 4 * 90
    return q, False, False, False


def _orient(img: np.ndarray, rot: int, tflip: bool, hflip: bool, vflip: bool) -> np.ndarray:
    if rot == 90:
        img = np.rot90(img, -1)
    elif rot == 180:
        img = img[::-1, ::-1]
    elif rot == 270:
        img = np.rot90(img, 1)
    if tflip or vflip:
        img = img[::-1]
    if hflip:
        img = img[:, ::-1]
    return img


def rgb_image(frame):
    """A decoded PyAV frame as an RGB PIL image over swscale's output (no copy, unlike PyAV's ``to_image``)."""
    from PIL import Image

    plane = frame.reformat(format="rgb24").planes[0]
    return Image.frombuffer("RGB", (plane.width, plane.height), plane, "raw", "RGB", plane.line_size, 1)


def target_size(width: int, height: int, *, shorter: int | None = None, max_shorter: int | None = None,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output ``(w, h)`` for a ``width x height`` display frame: ``size`` exactly, else the shorter side to
    ``shorter`` (or down to ``max_shorter`` when larger), the other side rounded as ``resize_shorter`` does."""
    if size is not None:
        w, h = int(size[0]), int(size[1])
        if w < 1 or h < 1:
            raise ValueError(f"size must be positive (w, h), got {size}")
        return w, h
    s = shorter
    if s is None and max_shorter is not None and min(width, height) > max_shorter:
        s = max_shorter
    if s is None:
        return width, height
    s = int(s)
    if s < 1:
        raise ValueError(f"shorter side must be >= 1, got {s}")
    if height <= width:
        return max(s, int(round(width * s / height))), s
    return s, max(s, int(round(height * s / width)))


# --------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------
class VideoReader:
    """Decode one video file or frame folder; iterate for ``(frame uint8 [H, W, 3], t seconds)``.

    Opening probes the file (errors come here, not mid-iteration): ``info`` is a :class:`VideoInfo`.
    ``shorter`` / ``max_shorter`` / ``size`` choose the output size (scaled in the decoder), ``stream`` the
    video stream, ``max_gap`` the gap policy (see the module doc), ``threads`` the decoder threads (0: auto).
    Frame folders have no timing: ``t`` is ``i / fps`` with ``fps`` (default 25) and ``timed`` is False.
    After iterating, ``stats`` holds frames, gaps, gap_s, resized_frames and the source fps measured.
    """

    def __init__(self, path: str | Path, *, shorter: int | None = None, max_shorter: int | None = None,
                 size: tuple[int, int] | None = None, stream: int | None = None, max_frames: int | None = None,
                 max_gap: float | None = MAX_GAP_S, threads: int = 0, fps: float | None = None):
        self.path = Path(path)
        _check_path(self.path)
        if max_gap is not None and not max_gap > 0:
            raise ValueError(f"max_gap must be positive seconds or None, got {max_gap!r}")
        self.shorter, self.max_shorter, self.size = shorter, max_shorter, size
        self.stream_index = int(stream or 0)
        self.max_frames, self.max_gap, self.threads = max_frames, max_gap, int(threads)
        self.folder_fps = float(fps or 25.0)
        self.stats = {"frames": 0, "gaps": 0, "gap_s": 0.0, "resized_frames": 0, "corrupt_frames": 0}
        self.timed = not self.path.is_dir()
        self.info = self._probe_folder() if self.path.is_dir() else self._probe_file()
        self.out_size = target_size(self.info.width, self.info.height, shorter=shorter, max_shorter=max_shorter,
                                    size=size)

    # -- probing ----------------------------------------------------------------------------------
    def _probe_folder(self) -> VideoInfo:
        files = list_frame_files(self.path)
        if not files:
            raise VideoError(f"{self.path}: frame folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
        self._files = files
        h, w = read_image(files[0]).shape[:2]
        return VideoInfo(self.path, None, len(files), w, h, True, coded_width=w, coded_height=h)

    def _open(self):
        import av

        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            with open(self.path, "rb") as f:
                head = f.read(12)
            if head[4:8] == b"ftyp":  # an mp4/mov whose index (moov, written last) is missing
                raise VideoError(f"{self.path}: truncated or unfinished mp4/mov: it has no readable index (moov "
                                 f"box), as when a recording or copy was cut off ({e})") from None
            raise VideoError(f"{self.path}: not a readable video ({e})") from None
        vids = container.streams.video
        if not vids:
            kinds = ", ".join(f"{s.type} {getattr(s.codec_context, 'name', '?')}" for s in container.streams) or "none"
            container.close()
            raise VideoError(f"{self.path}: contains no video stream (streams: {kinds})")
        if self.stream_index >= len(vids) or self.stream_index < 0:
            container.close()
            raise VideoError(f"{self.path}: has {len(vids)} video stream(s), stream={self.stream_index} asked")
        stream = vids[self.stream_index]
        for s in container.streams:
            if s is not stream:
                try:
                    s.discard = "all"  # audio / data / other video streams: dropped at the demuxer
                except Exception:  # noqa: BLE001 - older PyAV without Stream.discard
                    pass
        return container, stream

    def _probe_file(self) -> VideoInfo:
        container, stream = self._open()
        try:
            cc = stream.codec_context
            name = getattr(cc, "name", None) or "unknown"
            if cc is None or not cc.width or not cc.height:
                raise VideoError(f"{self.path}: unsupported codec {name!r} (no decoder in this FFmpeg build, or "
                                 "the stream gives no frame size)")
            self._check_index(stream)
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            nominal = stream.base_rate or stream.guessed_rate or rate  # r_frame_rate: not skewed by a gap
            self._period = 1.0 / float(nominal) if nominal and 1 <= float(nominal) <= 1000 else 1.0 / 25.0
            sar = float(stream.sample_aspect_ratio or cc.sample_aspect_ratio or 1) or 1.0
            rot, tflip, hflip, vflip = self._orientation(container, stream)
            if hflip and vflip:  # both mirrors are half a turn
                rot, hflip, vflip = (rot + 180) % 360, False, False
            self._orient_args = (rot, tflip, hflip, vflip)
            w, h = cc.width, cc.height
            dw, dh = (int(round(w * sar)) if abs(sar - 1.0) > 1e-3 else w), h
            if rot in (90, 270):
                dw, dh = dh, dw
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            self._header_frames = int(stream.frames or 0)
            frames = self._header_frames or (int(round(duration * fps)) if duration and fps else 0)
            return VideoInfo(self.path, fps, frames, dw, dh, False, rot, hflip, bool(vflip or tflip), name,
                             self.stream_index, w, h, sar, duration)
        finally:
            container.close()

    def _check_index(self, stream) -> None:
        """Refuse a file whose sample index (an mp4 moov at the front) points past its end: truncated."""
        try:
            entries = stream.index_entries
            n = len(entries)
        except Exception:  # noqa: BLE001 - older PyAV or a format without an index
            return
        if n == 0:
            return
        end = max(entries[i].pos + entries[i].size for i in range(max(0, n - 8), n))
        size = self.path.stat().st_size
        if end > size:
            inside = sum(1 for i in range(n) if entries[i].pos + entries[i].size <= size)
            raise VideoError(f"{self.path}: truncated: its index lists {n} frames up to byte {end:,} but the file "
                             f"has {size:,} bytes (only {inside} frames are present); re-copy or re-export it")

    def _orientation(self, container, stream) -> tuple[int, bool, bool, bool]:
        """Rotation from the first frame's display matrix, else a ``rotate`` stream tag."""
        import av

        try:
            from av.sidedata.sidedata import Type

            for frame in container.decode(stream):
                sd = frame.side_data.get(Type.DISPLAYMATRIX)
                if sd is not None:
                    return display_transform(np.frombuffer(bytes(sd), "<i4")[:9].tolist())
                break
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: decoding the first frame failed ({e}); corrupt file or unsupported "
                             f"codec {getattr(stream.codec_context, 'name', '?')!r}") from None
        except ImportError:  # pragma: no cover - PyAV without side data
            pass
        tags = {k.lower(): v for k, v in (stream.metadata or {}).items()}
        if "rotate" in tags:
            try:
                cw = int(float(tags["rotate"])) % 360
            except ValueError:
                return 0, False, False, False
            return (cw if cw in (0, 90, 180, 270) else int(round(cw / 90.0)) % 4 * 90), False, False, False
        return 0, False, False, False

    # -- iteration --------------------------------------------------------------------------------
    def __len__(self) -> int:
        n = self.info.frames
        return min(n, self.max_frames) if self.max_frames is not None else n

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        self.stats = {"frames": 0, "gaps": 0, "gap_s": 0.0, "resized_frames": 0, "corrupt_frames": 0}
        return self._iter_folder() if self.info.is_folder else self._iter_file()

    def _iter_folder(self) -> Iterator[tuple[np.ndarray, float]]:
        first = None
        for i, f in enumerate(self._files):
            if self.max_frames is not None and i >= self.max_frames:
                return
            arr = read_image(f)
            if first is None:
                first = arr.shape
            elif arr.shape != first:
                raise VideoError(f"{f}: frame size {arr.shape[1]}x{arr.shape[0]} differs from the first frame's "
                                 f"{first[1]}x{first[0]} in {self.path}")
            if self.out_size != (arr.shape[1], arr.shape[0]):
                arr = resize_image(arr, self.out_size[1], self.out_size[0])
            self.stats["frames"] += 1
            yield arr, i / self.folder_fps

    def _iter_file(self) -> Iterator[tuple[np.ndarray, float]]:
        import av

        container, stream = self._open()
        cc = stream.codec_context
        try:
            stream.thread_type = "AUTO"  # frame + slice threads
            cc.thread_count = self.threads
        except Exception:  # noqa: BLE001 - a codec without threading
            pass
        rot, tflip, hflip, vflip = self._orient_args
        ow, oh = self.out_size
        sw, sh = (oh, ow) if rot in (90, 270) else (ow, oh)  # the size in the stored (unrotated) orientation
        n, t0, prev_raw, t_out, last_d, shift = 0, None, None, 0.0, None, 0.0
        first_shape = None
        try:
            try:
                for frame in container.decode(stream):
                    if self.max_frames is not None and n >= self.max_frames:
                        return
                    if getattr(frame, "is_corrupt", False):
                        self.stats["corrupt_frames"] += 1
                        raise VideoError(f"{self.path}: frame {n} is corrupt (damaged data in the stream)")
                    shape = (frame.width, frame.height)
                    if first_shape is None:
                        first_shape = shape
                    elif shape != first_shape:
                        self.stats["resized_frames"] += 1
                    if (frame.width, frame.height) == (sw, sh):
                        arr = frame.to_ndarray(format="rgb24")
                    else:
                        # YUV -> RGB at the coded size (swscale), then the RGB frame scaled by the preprocessing's
                        # own resize (Pillow, antialiased bilinear): the frames equal resize_shorter of the
                        # full-size frame exactly. Scaling in swscale's YUV pass would scale the subsampled chroma
                        # separately (measured: mean 2, max 57 grey levels off); swscale's RGB bilinear is as fast
                        # as Pillow but up to 16 grey levels off at 37 px (docs/results.md, issue #32)
                        arr = resize_image(rgb_image(frame), sh, sw)  # never a full-size numpy frame
                    if rot or tflip or hflip or vflip:
                        arr = np.ascontiguousarray(_orient(arr, rot, tflip, hflip, vflip))
                    raw = frame.time
                    if raw is None:
                        raw = (prev_raw + self._period) if prev_raw is not None else 0.0
                    raw = float(raw)
                    if t0 is None:
                        t0 = prev_raw = raw
                    else:
                        d = raw - prev_raw
                        if self.max_gap is not None and (d > self.max_gap or d < 0):
                            step = last_d if last_d is not None else self._period
                            self.stats["gaps"] += 1
                            self.stats["gap_s"] += abs(d) - step
                            shift += d - step  # later frames move back by the cut (forward for a backward jump)
                        elif d > 0:
                            last_d = d
                        prev_raw = raw
                    t_out = raw - t0 - shift
                    n += 1
                    self.stats["frames"] = n
                    yield arr, t_out
            except av.error.FFmpegError as e:
                raise VideoError(f"{self.path}: decoding failed after {n} frames ({e}); the file is corrupt or "
                                 "truncated") from None
        finally:
            container.close()
        if self.stats["gaps"]:
            warnings.warn(f"{self.path}: {self.stats['gaps']} timestamp gap(s) longer than {self.max_gap} s (or "
                          f"going backwards), {self.stats['gap_s']:.2f} s in all, cut to one frame period each",
                          stacklevel=2)
        if n == 0 and self.max_frames != 0:
            raise VideoError(f"{self.path}: video has 0 decodable frames (empty, truncated or corrupt)")
        expected = self._header_frames
        if self.max_frames is None and expected and n < expected - TRUNCATION_TOLERANCE:
            raise VideoError(f"{self.path}: truncated or corrupt: its header lists {expected} frames but only {n} "
                             "could be decoded")


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------
def iter_frames(path: str | Path, **kwargs) -> VideoReader:
    """The streaming reader: iterate for ``(frame, t)`` (see :class:`VideoReader` for the options)."""
    return VideoReader(path, **kwargs)


def load_video(path: str | Path, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole video as ``(frames uint8 [T, H, W, 3] RGB upright, times float64 [T] seconds)``.

    Public as ``slsdk.read_video``. Options as :class:`VideoReader` (``shorter``, ``max_shorter``, ``size``,
    ``stream``, ``max_frames``, ``max_gap``, ``threads``). Raises :class:`VideoError` rather than returning a
    partial clip. For long files use :func:`iter_frames` and a ``shorter`` size.
    """
    reader = VideoReader(path, **kwargs)
    frames, times = [], []
    for f, t in reader:
        frames.append(f)
        times.append(t)
    if not frames:
        raise VideoError(f"{path}: video has 0 frames")
    return np.stack(frames), np.asarray(times, np.float64)


def iter_video(path: str | Path, max_frames: int | None = None, **kwargs) -> Iterator[np.ndarray]:
    """Yield ``uint8 [H, W, 3]`` RGB frames of a video file or frame folder, one at a time."""
    for frame, _ in VideoReader(path, max_frames=max_frames, **kwargs):
        yield frame


def iter_video_timed(path: str | Path, max_frames: int | None = None,
                     **kwargs) -> Iterator[tuple[np.ndarray, float | None]]:
    """Yield ``(frame, t)``: ``t`` the presentation time in seconds from the first frame, None for a frame
    folder (which has no timing)."""
    reader = VideoReader(path, max_frames=max_frames, **kwargs)
    for frame, t in reader:
        yield frame, (t if reader.timed else None)


def read_video(path: str | Path, max_frames: int | None = None, **kwargs) -> np.ndarray:
    """Read a whole video (file or frame folder) as ``uint8 [T, H, W, 3]`` RGB (``load_video`` without times)."""
    return load_video(path, max_frames=max_frames, **kwargs)[0]


def video_info(path: str | Path, *, stream: int | None = None) -> VideoInfo:
    """Frame rate, frame count, display size and orientation. Counts frames by decoding when the container
    doesn't say."""
    reader = VideoReader(path, stream=stream)
    info = reader.info
    if info.frames <= 0:
        info = VideoInfo(**{**info.__dict__, "frames": sum(1 for _ in VideoReader(path, stream=stream,
                                                                                    size=(16, 16)))})
    return info


# --------------------------------------------------------------------------------------------------
# writing (tests, synthetic data)
# --------------------------------------------------------------------------------------------------
def _encoder() -> str:
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001
            continue
    raise VideoError("PyAV has no H.264 or MPEG-4 encoder in this build")  # pragma: no cover


def write_video(path: str | Path, frames, fps: float = 25, *, crf: int = 17, codec: str | None = None,
                times=None, rotation: int = 0, hflip: bool = False, vflip: bool = False,
                audio: bool = False, faststart: bool = False, pix_fmt: str = "yuv420p", overwrite: bool = False,
                fsync: bool = True) -> Path:
    """Write ``uint8 [T, H, W, 3]`` RGB frames as an mp4 (H.264 via libx264 when present, else MPEG-4).

    ``codec``: e.g. ``"libx265"`` for HEVC. ``times``: presentation times in seconds (variable frame rate;
    default ``i / fps``). ``rotation`` (counter-clockwise degrees, as ``VideoFrame.rotation`` reads back) and
    the flips are written as the container's display matrix, as a phone does: the frames are stored as given
    and a player (or :class:`VideoReader`) applies it. ``audio`` adds a silent AAC track; ``faststart`` puts the
    index at the front. ``pix_fmt="yuv444p"`` with ``crf=0`` is lossless (x264 / x265). yuv420p needs even
    sizes: an odd height/width is padded by repeating the last row/column.
    Encoding is single-threaded, but libx264 (as PyAV 18 ships it) is not bit-reproducible across processes: the
    same frames can encode to slightly different files depending on memory layout (decoded pixels differ by a
    few levels). Do not compare encoded files byte for byte. The file is written by :mod:`slsdk.fileio`
    (temp name, then renamed): an existing ``path`` is replaced only with ``overwrite`` and only if slsdk
    wrote it; ``fsync=False`` skips the sync (a caller that syncs a whole folder at the end).
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video({path}): frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if len(frames) == 0:
        raise ValueError(f"write_video({path}): no frames to write")
    t, h, w, _ = frames.shape
    if (h % 2 or w % 2) and pix_fmt == "yuv420p":
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    name = codec or _encoder()
    rate = Fraction(fps).limit_denominator(1001)
    opts = {"movflags": "+faststart"} if faststart else {}
    # the temp name keeps the suffix: the muxer (mp4, mkv, webm ...) is chosen by it
    with fileio.atomic_path(path, overwrite=overwrite, fsync=fsync, suffix=path.suffix) as tmp:
        with av.open(str(tmp), "w", options=opts) as container:
            _mux(container, frames, t, name, rate, crf=crf, times=times, rotation=rotation, hflip=hflip,
                 vflip=vflip, audio=audio, fps=fps, pix_fmt=pix_fmt)
    return path


def _mux(container, frames: np.ndarray, t: int, name: str, rate: Fraction, *, crf: int, times, rotation: int,
         hflip: bool, vflip: bool, audio: bool, fps: float, pix_fmt: str) -> None:
    """Encode ``frames`` into the open output ``container``."""
    import av

    stream = container.add_stream(name, rate=rate)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = pix_fmt
    stream.codec_context.thread_count = 1
    tb = Fraction(1, 90000)
    if times is not None:
        stream.codec_context.time_base = tb
    if rotation or hflip or vflip:
        stream.set_display_rotation(int(rotation), hflip=hflip, vflip=vflip)
    if name in ("libx264", "h264"):
        stream.options = {"crf": str(crf), "preset": "veryfast"}
    elif name == "libx265":
        params = "log-level=error:pools=1" + (":lossless=1" if crf == 0 else "")
        stream.options = {"crf": str(crf), "preset": "ultrafast", "x265-params": params}
    else:
        stream.codec_context.bit_rate = max(200_000, int(frames.shape[1] * frames.shape[2] * float(fps) * 0.6))
        stream.codec_context.qmax = 4
    astream = None
    if audio:
        astream = container.add_stream("aac", rate=16000)
        astream.layout = "mono"
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        if times is not None:
            vf.pts, vf.time_base = int(round(float(times[i]) * 90000)), tb
        for packet in stream.encode(vf):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if astream is not None:
        dur = float(times[-1]) + 1.0 / float(fps) if times is not None else t / float(fps)
        samples = np.zeros((1, max(1024, int(dur * 16000))), np.float32)
        af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for packet in astream.encode(af):
            container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)


def write_frames(folder: str | Path, frames, *, ext: str = ".png", fsync: bool = True) -> Path:
    """Write frames as a numbered image folder (``000000.png`` ...), the frame-folder video format.

    The folder is built beside ``folder`` and renamed into place (:func:`slsdk.fileio.atomic_dir`): ``folder``
    must not exist or be empty, and a kill leaves no half-written folder."""
    from PIL import Image

    folder = Path(folder)
    fmt = Image.registered_extensions().get(ext.lower())
    if fmt is None:
        raise ValueError(f"write_frames({folder}): unknown image extension {ext!r}")
    with fileio.atomic_dir(folder, fsync=fsync) as tmp:
        for i, f in enumerate(np.asarray(frames)):
            img = Image.fromarray(np.ascontiguousarray(f))
            fileio.atomic_write(tmp / f"{i:06d}{ext}", lambda fh, img=img: img.save(fh, format=fmt), fsync=False)
    return folder
