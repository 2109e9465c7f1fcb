"""Frame sources for the runtime: video files and cameras, as iterables of ``(frame, timestamp_s)``.

``frame`` is ``uint8 [H, W, 3]`` RGB; ``timestamp_s`` is seconds from the first frame (the file's or the
camera's presentation times, so a 30 fps clip has steps of 1/30 s whatever rate the model wants).

A model is trained at one frame rate (the manifest's ``fps``). :class:`FrameResampler` maps any source onto
that rate by timestamp (nearest frame by presentation time: drops frames of a faster source, repeats frames of
a slower one); ``Stream.accept_frames(frames, timestamps)`` uses it, so files and cameras feed the model at
its rate and event times are on the source's clock.

Live sources (cameras) produce frames at their own pace. When the consumer (hand cropping + model) is
slower, frames must be dropped rather than queued without bound: :class:`BackgroundReader` reads a
source on a thread into a :class:`FrameDropper`, a bounded buffer whose ``"drop-oldest"`` policy throws
away the oldest waiting frame for each new one and counts the drops, so memory stays bounded and the
consumer always gets the freshest frames. ``"block"`` (for files) makes the reader wait instead.
"""
from __future__ import annotations

import math
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from slsdk.data.video import MAX_GAP_S, VideoError, VideoReader, rgb_image, target_size
from slsdk.errors import ConfigError, SlsdkError
from slsdk.preprocess import resize_image

POLICIES = ("drop-oldest", "block")
RESAMPLE_POLICY = "nearest"
LIVE_MAX_GAP_S = 0.25  # cameras: a longer gap between frames is skipped, not filled with repeated frames
# files: frames with a shorter side above this are scaled down in the decoder (libswscale) before they become numpy.
# The next stages need less: the hand landmarker works on 192/224-pixel inputs, and a signing-space crop (at least
# CropConfig.min_size = 0.5 of the shorter side) of a 720-pixel frame is >= 360 pixels, still a downscale to any
# model resize (<= 256). So 1080p / 4K phone clips cost 720p decoding-to-numpy, and <= 720p sources are untouched.
DECODE_MAX_SHORTER = 720


class FrameResampler:
    """Resample a frame stream to ``fps`` by presentation time: each output frame is the nearest source frame.

    Output frame ``k`` stands for time ``t0 + k / fps`` (``t0``: the first frame's time) and shows the source
    frame whose timestamp is nearest to it (a tie goes to the later frame). A faster source loses frames
    (30 -> 25 fps drops one in six), a slower one repeats frames (20 -> 25 fps shows one in four twice), a
    source at the target rate passes unchanged, timing jitter under half a frame period included. The input
    ends half a source period after the last frame, so ``n`` frames at ``f`` fps give about ``n * fps / f``.

    Only times go in. ``push(t)`` registers the next source frame and returns how many output frames the
    *previous* one fills (0: dropped; None for the first frame): that is known once the next frame's time is.
    ``finish()`` returns the count of the last frame. So a stream holds one frame back (one source period of
    latency).

    ``max_gap`` (seconds; for live sources): a longer gap between consecutive frames (a camera stall, frames
    the reader dropped because the consumer is behind) is not filled with repeats, which would hand a slow
    consumer more work; the clock moves on as if the next frame came one output period later, and ``gaps`` /
    ``gap_s`` count what was skipped. A timestamp that goes backwards is treated the same way. Files use no
    limit: their timestamps are the truth, so event times stay on the file's clock.
    """

    def __init__(self, fps: float, max_gap: float | None = None):
        if not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
            raise ConfigError(f"fps must be positive, got {fps!r}")
        if max_gap is not None and not max_gap > 0:
            raise ConfigError(f"max_gap must be positive seconds or None, got {max_gap!r}")
        self.fps, self.period, self.max_gap = float(fps), 1.0 / float(fps), max_gap
        self.source_frames = self.frames = self.dropped = self.repeated = self.gaps = 0
        self.gap_s = 0.0
        self._span = 0.0  # source time covered, gaps excluded (for the measured source rate)
        self.restart()

    def restart(self) -> None:
        """Forget the clock (a new segment of input follows); the counters keep running."""
        self._t0 = self._prev = self._interval = None
        self._offset = 0.0
        self._next = 0  # index of the next output slot
        self._finished = False

    def _take(self, limit: float) -> int:
        """Output slots with a time before ``limit`` not yet given out."""
        n = max(0, math.ceil((limit - self._t0) * self.fps - 1e-9))
        c = max(0, n - self._next)
        self._next += c
        return c

    def _count(self, c: int) -> int:
        self.frames += c
        if c == 0:
            self.dropped += 1
        else:
            self.repeated += c - 1
        return c

    def push(self, t: float) -> int | None:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"frame timestamp must be a finite number of seconds, got {t!r}")
        if self._finished:
            raise RuntimeError("FrameResampler.push after finish(); call restart() first")
        self.source_frames += 1
        if self._t0 is None:
            self._t0 = self._prev = t
            return None
        ta = t - self._offset
        d = ta - self._prev
        if d < 0 or (self.max_gap is not None and d > self.max_gap):
            shift = d - self.period  # skip the gap: the frame comes one output period after the previous one
            self._offset += shift
            ta -= shift
            self.gaps += 1
            self.gap_s += max(0.0, shift)
            d = self.period
        c = self._take((self._prev + ta) / 2)
        if d > 0:
            self._interval = d
            self._span += d
        self._prev = ta
        return self._count(c)

    def finish(self) -> int | None:
        """The number of output frames the last source frame fills (None when nothing was pushed)."""
        if self._t0 is None or self._finished:
            return None
        self._finished = True
        return self._count(self._take(self._prev + 0.5 * (self._interval or self.period)))

    @property
    def source_fps(self) -> float | None:
        """The source's measured frame rate (gaps excluded), None before two frames."""
        return (self.source_frames - 1) / self._span if self._span > 0 and self.source_frames > 1 else None

    def stats(self) -> dict:
        src = self.source_fps
        return {"policy": RESAMPLE_POLICY, "fps": self.fps, "source_fps": None if src is None else round(src, 3),
                "source_frames": self.source_frames, "frames": self.frames, "dropped": self.dropped,
                "repeated": self.repeated, "gaps": self.gaps, "gap_s": round(self.gap_s, 3)}



def resampled_frames(timed_frames, fps: float | None):
    """``(frame, count)`` for ``(frame, t)`` pairs resampled to ``fps`` by :class:`FrameResampler` (each frame
    repeated ``count`` times, dropped when 0); ``fps`` None: every frame once."""
    resampler = FrameResampler(fps) if fps is not None else None
    held = None
    for frame, t in timed_frames:
        if resampler is None:
            yield frame, 1
            continue
        c = resampler.push(t)
        if c:
            yield held, c
        held = frame
    if resampler is not None and held is not None:
        c = resampler.finish()
        if c:
            yield held, c

class CameraError(SlsdkError, RuntimeError):
    """The camera could not be opened or stopped delivering frames."""


class FrameDropper:
    """Bounded thread-safe buffer between a producer (camera thread) and a slower consumer.

    ``put`` never blocks under ``"drop-oldest"``: when full, the oldest item is discarded and
    ``dropped`` goes up by one. Under ``"block"``, ``put`` waits for room. ``get`` waits for an item and
    raises :class:`FrameDropper.Closed` once the buffer is closed and empty.
    """

    class Closed(Exception):
        """The producer is finished and every item has been taken."""

    def __init__(self, capacity: int = 2, policy: str = "drop-oldest"):
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        if policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.capacity, self.policy = capacity, policy
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.put_count = 0
        self.max_len = 0

    def put(self, item) -> bool:
        """Add ``item``; returns False when it was refused because the buffer is closed."""
        with self._cond:
            if self.policy == "block":
                while len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.capacity:  # drop-oldest
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self.max_len = max(self.max_len, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest waiting item. Raises TimeoutError after ``timeout`` s, Closed when finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise FrameDropper.Closed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no frame within {timeout} s")
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more puts; waiting getters drain what is left, then get Closed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __iter__(self) -> Iterator:
        while True:
            try:
                yield self.get()
            except FrameDropper.Closed:
                return


class BackgroundReader:
    """Iterate ``source`` on a daemon thread into a :class:`FrameDropper`; iterate this for the frames.

    An exception raised by the source is re-raised in the consumer after the frames read before it.
    """

    def __init__(self, source: Iterable, capacity: int = 2, policy: str = "drop-oldest", *, start: bool = True):
        self.source = source
        self.buffer = FrameDropper(capacity, policy)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slsdk-frame-reader", daemon=True)
        if start:
            self.start()

    def start(self) -> BackgroundReader:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        return self

    def _run(self) -> None:
        it = iter(self.source)
        try:
            for item in it:
                if self._stop.is_set() or not self.buffer.put(item):
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self.error = e
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
            self.buffer.close()

    @property
    def dropped(self) -> int:
        return self.buffer.dropped

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader thread to finish; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self.buffer.close()
        self.join(timeout)

    def __iter__(self) -> Iterator:
        yield from self.buffer
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _refuse_stream(path: Path) -> None:
    """A pipe, socket or device (``/dev/stdin``, ``<(cmd)``, a FIFO) is not a video *file*: the reader opens a file
    twice (the probe, then the decode) and seeks in it, which a stream cannot do. Say so, and what to do."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return   # missing or unreadable: the reader names it
    kind = ("a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else None)
    if kind is None:
        return
    camera = " (a camera? use --camera N)" if str(path).startswith("/dev/video") else ""
    raise VideoError(f"{path}: is {kind}{camera}, not a video file; slsdk run reads a video from a file (it probes "
                     "it, then decodes it from the start), which a pipe cannot give: save the stream to a file "
                     "first (e.g. `... > clip.mp4`, then `slsdk run BUNDLE clip.mp4`)")


class VideoFileSource:
    """Frames of a video file or frame folder with their timestamps (:class:`slsdk.data.video.VideoReader`).

    Frames come upright (the container's rotation applied). A file's timestamps are its presentation times
    (seconds from the first frame), with gaps longer than ``max_gap`` cut (the reader's policy, default
    ``slsdk.data.video.MAX_GAP_S``); ``fps`` overrides them with ``i / fps``. A frame folder has no timing, so it
    gets ``i / fps`` with ``fps`` (default 25) and ``timed`` is False: the runtime then uses its frames as they
    are, at the model's rate. ``shorter`` / ``max_shorter`` scale in the decoder (default: a shorter side above
    :data:`DECODE_MAX_SHORTER` comes down to it, so a 4K phone clip never becomes 4K numpy frames; None keeps the
    decoded size); ``stream`` picks the N-th video stream.
    """

    live = False  # a file's timestamps are the truth: short gaps are filled (FrameResampler without max_gap)

    def __init__(self, path: str | Path, *, fps: float | None = None, max_frames: int | None = None,
                 shorter: int | None = None, max_shorter: int | None = DECODE_MAX_SHORTER, stream: int | None = None,
                 max_gap: float | None | str = "default", threads: int = 0):
        self.path = Path(path)
        _refuse_stream(self.path)
        self.reader = VideoReader(self.path, shorter=shorter, max_shorter=max_shorter, stream=stream,
                                  max_frames=max_frames, max_gap=MAX_GAP_S if max_gap == "default" else max_gap,
                                  threads=threads, fps=fps)  # FileNotFoundError / VideoError early
        self.info = self.reader.info
        self.fps = float(fps or self.info.fps or 25.0)
        self._fixed_rate = fps is not None
        self.timed = fps is not None or not self.info.is_folder
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.reader)

    def scale_hint(self, shorter: int) -> None:
        """The consumer needs no more than a ``shorter``-pixel shorter side (the runtime without a hand crop: the
        manifest's ``resize_shorter``): larger frames are scaled to it in the decoder, by the preprocessing's own
        resize, so the runtime's resize becomes a no-op and the frames are those it would have made. Call it
        before iterating."""
        r = self.reader
        if min(r.out_size) > int(shorter) and r.size is None:
            r.out_size = target_size(r.info.width, r.info.height, shorter=int(shorter))

    @property
    def stats(self) -> dict:
        """The reader's counters: frames, timestamp gaps cut, frames rescaled after a resolution change."""
        return dict(self.reader.stats)

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        for i, (frame, t) in enumerate(self.reader):
            yield frame, (i / self.fps if self._fixed_rate or not self.reader.timed else t)


def _camera_input(index: int | str, device: str | None) -> tuple[str, str]:
    if sys.platform.startswith("linux"):
        return (device or (index if isinstance(index, str) else f"/dev/video{index}")), "v4l2"
    if sys.platform == "darwin":
        return (device or str(index)), "avfoundation"
    if sys.platform.startswith("win"):
        if device is None and not isinstance(index, str):
            raise CameraError("on Windows pass the camera name: CameraSource(device='Integrated Camera') "
                              "(list them with: ffmpeg -list_devices true -f dshow -i dummy)")
        name = device or str(index)
        return (name if name.startswith("video=") else f"video={name}"), "dshow"
    raise CameraError(f"camera input is not supported on {sys.platform}; pass a video file instead")


class CameraSource:
    """A camera through PyAV (v4l2 on Linux, avfoundation on macOS, dshow on Windows).

    Opened on construction (a :class:`CameraError` says why it cannot be). Iterating yields
    ``(frame, timestamp_s)``; with ``buffer > 0`` frames are read on a background thread into a
    :class:`FrameDropper` of that capacity (``policy`` "drop-oldest" by default), and ``dropped`` counts
    the frames the consumer was too slow for. ``shorter`` (or :meth:`scale_hint`, which the runtime calls
    without a hand crop) scales larger frames at capture to that shorter side. The runtime resamples the frames to the model's rate by these
    timestamps, skipping gaps longer than ``LIVE_MAX_GAP_S`` rather than filling them (``live``).
    """

    live = True
    timed = True

    def __init__(self, index: int | str = 0, fps: float | None = None, *, size: tuple[int, int] | None = None,
                 device: str | None = None, buffer: int = 2, policy: str = "drop-oldest", shorter: int | None = None):
        import av  # PyAV (FFmpeg): heavy, loaded only when a camera is opened

        self.index, self.buffer, self.policy = index, buffer, policy
        self.shorter = None if shorter is None else int(shorter)  # scale at capture (see scale_hint)
        self.file, self.format = _camera_input(index, device)
        options = {}
        if fps:
            options["framerate"] = str(fps)
        elif self.format == "avfoundation":
            options["framerate"] = "30"  # avfoundation refuses to open without a supported rate
        if size:
            options["video_size"] = f"{size[0]}x{size[1]}"
        try:
            self._container = av.open(self.file, format=self.format, options=options)
        except Exception as e:  # noqa: BLE001 - av raises FileNotFoundError, PermissionError, FFmpegError...
            hint = {"v4l2": "check that it exists (ls /dev/video*), that no other program uses it and that you "
                            "may read it (group 'video')",
                    "avfoundation": "check the index (ffmpeg -f avfoundation -list_devices true -i '') and that "
                                    "this terminal has camera permission (System Settings > Privacy)",
                    "dshow": "check the name (ffmpeg -list_devices true -f dshow -i dummy)"}[self.format]
            raise CameraError(f"cannot open camera {self.file!r} ({self.format}, options {options}): "
                              f"{type(e).__name__}: {e}; {hint}") from None
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"camera {self.file!r} has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        self.fps = float(fps or (rate if rate else 30.0))
        self._reader: BackgroundReader | None = None

    def _frames(self) -> Iterator[tuple[np.ndarray, float]]:
        t0 = None
        start = time.monotonic()
        try:
            for frame in self._container.decode(video=0):
                t = frame.time
                if t is None:
                    t = time.monotonic() - start
                if t0 is None:
                    t0 = t
                yield self._rgb(frame), float(t - t0)
        except Exception as e:  # noqa: BLE001
            if self._container is None:  # closed on purpose
                return
            raise CameraError(f"camera {self.file!r} stopped delivering frames: {type(e).__name__}: {e}") from None

    def _rgb(self, frame) -> np.ndarray:
        """The frame as uint8 RGB, scaled at capture (on the reader thread) when ``shorter`` asks for less."""
        s = self.shorter
        if s is None or min(frame.width, frame.height) <= s:
            return frame.to_ndarray(format="rgb24")
        w, h = target_size(frame.width, frame.height, shorter=s)
        return resize_image(rgb_image(frame), h, w)

    def scale_hint(self, shorter: int) -> None:
        """The consumer needs no more than a ``shorter``-pixel shorter side (the runtime without a hand crop):
        frames are scaled to it at capture, on the reader thread, by the preprocessing's own resize."""
        self.shorter = int(shorter) if self.shorter is None else min(self.shorter, int(shorter))

    @property
    def dropped(self) -> int:
        return self._reader.dropped if self._reader is not None else 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        if self._container is None:
            raise CameraError("camera is closed")
        if self.buffer <= 0:
            yield from self._frames()
            return
        self._reader = BackgroundReader(self._frames(), self.buffer, self.policy)
        try:
            yield from self._reader
        finally:
            self._reader.stop()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
        c, self._container = getattr(self, "_container", None), None
        if c is not None:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(spec: str | int | Path, **kwargs):
    """``"0"``/``0``/``/dev/videoN`` -> CameraSource, anything else -> VideoFileSource."""
    s = str(spec)
    if s.isdigit() or s.startswith("/dev/video"):
        return CameraSource(int(s) if s.isdigit() else s, **kwargs)
    return VideoFileSource(spec, **kwargs)


__all__ = ["CameraError", "FrameDropper", "BackgroundReader", "FrameResampler", "resampled_frames", "VideoFileSource", "CameraSource",
           "open_source", "POLICIES", "RESAMPLE_POLICY", "LIVE_MAX_GAP_S", "DECODE_MAX_SHORTER"]
