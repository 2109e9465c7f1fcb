"""Frame sources for the runtime: video files and cameras, as iterables of ``(frame, timestamp_s)``.

``frame`` is ``uint8 [H, W, 3]`` RGB; ``timestamp_s`` is seconds from the first frame.

Live sources (cameras) produce frames at their own pace. When the consumer (hand cropping + model) is
slower, frames must be dropped rather than queued without bound: :class:`BackgroundReader` reads a
source on a thread into a :class:`FrameDropper`, a bounded buffer whose ``"drop-oldest"`` policy throws
away the oldest waiting frame for each new one and counts the drops, so memory stays bounded and the
consumer always gets the freshest frames. ``"block"`` (for files) makes the reader wait instead.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

POLICIES = ("drop-oldest", "block")


class CameraError(RuntimeError):
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
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
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


class VideoFileSource:
    """Frames of a video file or frame folder with timestamps ``i / fps`` (slsdk.data.video)."""

    def __init__(self, path: str | Path, *, fps: float | None = None, max_frames: int | None = None):
        from slsdk.data.video import video_info

        self.path = Path(path)
        self.info = video_info(self.path)  # FileNotFoundError / VideoError early, not mid-iteration
        self.fps = float(fps or self.info.fps or 25.0)
        self.max_frames = max_frames

    def __len__(self) -> int:
        n = self.info.frames
        return min(n, self.max_frames) if self.max_frames is not None else n

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        from slsdk.data.video import iter_video

        for i, frame in enumerate(iter_video(self.path, max_frames=self.max_frames)):
            yield frame, i / self.fps


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
    the frames the consumer was too slow for.
    """

    def __init__(self, index: int | str = 0, fps: float | None = None, *, size: tuple[int, int] | None = None,
                 device: str | None = None, buffer: int = 2, policy: str = "drop-oldest"):
        import av

        self.index, self.buffer, self.policy = index, buffer, policy
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
                yield frame.to_ndarray(format="rgb24"), float(t - t0)
        except Exception as e:  # noqa: BLE001
            if self._container is None:  # closed on purpose
                return
            raise CameraError(f"camera {self.file!r} stopped delivering frames: {type(e).__name__}: {e}") from None

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


__all__ = ["CameraError", "FrameDropper", "BackgroundReader", "VideoFileSource", "CameraSource", "open_source",
           "POLICIES"]
