"""Video I/O for the whole SDK (training data and the runtime): PyAV only, no OpenCV.

Frames are ``uint8`` numpy arrays ``[T, H, W, 3]`` in RGB. A "video" is either a file PyAV can
demux (mp4, mov, avi, webm, ...) or a folder of images (png/jpg/jpeg/bmp) read in sorted order
(natural sort, so ``2.png`` comes before ``10.png``).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class VideoError(ValueError):
    """A video exists but cannot be used: unreadable, corrupt, empty, or inconsistent."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float | None  # None for a frame folder (no timing information)
    frames: int
    width: int
    height: int
    is_folder: bool


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image  # ships with matplotlib
    except ImportError:  # pragma: no cover - PIL is a matplotlib dependency
        Image = None
    try:
        if Image is not None:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        else:  # pragma: no cover
            import av

            with av.open(str(path)) as c:
                arr = next(c.decode(video=0)).to_ndarray(format="rgb24")
    except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise VideoError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _iter_folder(folder: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    files = list_frame_files(folder)
    if not files:
        raise VideoError(f"{folder}: frame folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
    shape = None
    for i, f in enumerate(files):
        if max_frames is not None and i >= max_frames:
            return
        arr = _read_image(f)
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise VideoError(f"{f}: frame size {arr.shape[1]}x{arr.shape[0]} differs from the first frame's "
                             f"{shape[1]}x{shape[0]} in {folder}")
        yield arr


def _open_container(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: contains no video stream")
    return container


def _iter_file(path: Path, max_frames: int | None, *, times: bool = False) -> Iterator:
    import av

    container = _open_container(path)
    n = 0
    try:
        stream = container.streams.video[0]
        if (stream.codec_context.width or 0) * (stream.codec_context.height or 0) > 320 * 240:
            stream.thread_type = "AUTO"  # threads only pay off on larger frames
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        period = 1.0 / float(rate) if rate else None
        t0 = last = None
        try:
            for frame in container.decode(stream):
                if max_frames is not None and n >= max_frames:
                    return
                if not times:
                    yield frame.to_ndarray(format="rgb24")
                else:
                    raw = frame.time  # presentation time (s); None when the frame has no timestamp
                    if raw is not None:
                        t0 = float(raw) if t0 is None else t0
                        t = float(raw) - t0
                    elif period is not None:
                        t = 0.0 if last is None else last + period
                    else:
                        t = None
                    last = t
                    yield frame.to_ndarray(format="rgb24"), t
                n += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {n} frames ({e}); the file is corrupt or truncated") from None
    finally:
        container.close()
    if n == 0 and max_frames != 0:
        raise VideoError(f"{path}: video has 0 decodable frames (empty, truncated or corrupt)")


def iter_video(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``uint8 [H, W, 3]`` RGB frames of a video file or frame folder, one at a time."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        yield from _iter_folder(path, max_frames)
    else:
        if path.stat().st_size == 0:
            raise VideoError(f"{path}: file is empty (0 bytes)")
        yield from _iter_file(path, max_frames)


def iter_video_timed(path: str | Path, max_frames: int | None = None) -> Iterator[tuple[np.ndarray, float | None]]:
    """Yield ``(frame, t)``: ``uint8 [H, W, 3]`` RGB frames with their presentation time in seconds from the
    first frame (the container's timestamps, so a variable frame rate shows). ``t`` is None for a frame folder,
    which has no timing, and for a file whose container gives neither timestamps nor a frame rate."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        for frame in _iter_folder(path, max_frames):
            yield frame, None
    else:
        if path.stat().st_size == 0:
            raise VideoError(f"{path}: file is empty (0 bytes)")
        yield from _iter_file(path, max_frames, times=True)


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Read a whole video (file or frame folder) as ``uint8 [T, H, W, 3]`` RGB."""
    frames = list(iter_video(path, max_frames=max_frames))
    if not frames:
        raise VideoError(f"{path}: video has 0 frames")
    return np.stack(frames)


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size. Counts frames by decoding when the container doesn't say."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoError(f"{path}: frame folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
        h, w = _read_image(files[0]).shape[:2]
        return VideoInfo(path, None, len(files), w, h, True)
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    container = _open_container(path)
    try:
        s = container.streams.video[0]
        rate = s.average_rate or s.base_rate or s.guessed_rate
        fps = float(rate) if rate else None
        w, h, frames = s.codec_context.width, s.codec_context.height, int(s.frames or 0)
    finally:
        container.close()
    if frames <= 0:
        frames = sum(1 for _ in _iter_file(path, None))
    return VideoInfo(path, fps, frames, w, h, False)


def _encoder() -> str:
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001
            continue
    raise VideoError("PyAV has no H.264 or MPEG-4 encoder in this build")  # pragma: no cover


def write_video(path: str | Path, frames, fps: float = 25, *, crf: int = 17, codec: str | None = None) -> Path:
    """Write ``uint8 [T, H, W, 3]`` RGB frames as an mp4 (H.264 via libx264 when present, else MPEG-4).

    yuv420p needs even sizes: an odd height/width is padded by repeating the last row/column, so a
    read-back is then one pixel larger. Encoding is single-threaded, so output is deterministic.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video({path}): frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if len(frames) == 0:
        raise ValueError(f"write_video({path}): no frames to write")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    name = codec or _encoder()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(name, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if name in ("libx264", "h264"):
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.codec_context.bit_rate = max(200_000, int(frames.shape[1] * frames.shape[2] * float(fps) * 0.6))
            stream.codec_context.qmax = 4
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: str | Path, frames, *, ext: str = ".png") -> Path:
    """Write frames as a numbered image folder (``000000.png`` ...), the frame-folder video format."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(np.asarray(frames)):
        Image.fromarray(np.ascontiguousarray(f)).save(folder / f"{i:06d}{ext}")
    return folder
