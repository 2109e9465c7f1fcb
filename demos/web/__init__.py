"""The web demo: an slsdk bundle in the browser (ONNX Runtime Web + MediaPipe HandLandmarker, streaming CTC).

``python -m slsdk.demos.web serve BUNDLE [--video FILE | --landmarks FILE.pose] [--hand-model FILE] [--face-model
FILE] [--pose-model FILE] [--port N]`` serves the page
(``index.html`` + ``js/``), the bundle, and the given files on 127.0.0.1, and prints the page's URL
(``?bundle=...&video=...&hand_model=...``) on its first line: opened, the page runs the video on load and shows the
glosses it recognised, or "Nothing recognised in this video." The page's JavaScript and WebAssembly
(onnxruntime-web, @mediapipe/tasks-vision, mediabunny) are served from ``node_modules``: ``$SLSDK_WEB_NODE_MODULES``
if set, else ``demos/web/node_modules`` beside this file (``npm ci`` in ``demos/web`` puts them there).

A landmark bundle (``input.modality`` "landmarks") is served with the hand, face and pose landmarker files
(found as ``slsdk run`` finds them: the options, ``$SLSDK_HAND_MODEL`` / ``$SLSDK_FACE_MODEL`` /
``$SLSDK_POSE_MODEL``, the cache, a download); the page makes the 86 points per frame with them. ``--landmarks
FILE.pose`` serves a landmark recording instead of a video (read with :func:`slsdk.landmarks.read_pose_file`,
served as JSON ``{fps, frames}``): the page feeds its points to the bundle as ``slsdk run BUNDLE FILE.pose`` does,
and needs no landmarker files. A fusion bundle (``input.modality`` "fusion": the hand crop and the 86 points of
each frame) is served with the same three model files: the page's one hand pass per frame gives both the crop and
the hand points; it takes a video, not a recording (a recording has no frames).

The server is built for hostile neighbours on the same machine (other local processes, a web page doing DNS
rebinding). It serves only an allow-list: the page (``index.html``, ``js/``, the parts of the npm packages the
page loads), the bundle's ``manifest.json`` and the files that manifest lists, and the one given video and hand
model; every request must name 127.0.0.1 / localhost / [::1] and the bound port in ``Host``. One selector thread
accepts connections, reads request heads and streams response bodies in ``CHUNK_BYTES`` pieces (HTTP Range for
seeking); a fixed pool of ``POOL_SIZE`` threads turns a complete request head into a response head. Connections
that send no complete request, or take no response bytes, for ``timeout`` seconds are closed, at most
``MAX_CONNECTIONS`` are open at once (the oldest idle one makes room for a new one), and more wait in the listen
backlog. Memory is thus bounded by ``MAX_CONNECTIONS x (MAX_HEAD_BYTES + CHUNK_BYTES)`` whatever the file sizes.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from slsdk import fileio
from slsdk.bundle import load_bundle
from slsdk.demos.web.http_server import (CHUNK_BYTES, CHUNKS_PER_TURN, LINGER_S, LISTEN_BACKLOG,  # noqa: F401
                                         MAX_CONNECTIONS, MAX_HEAD_BYTES, POOL_SIZE, SOCKET_TIMEOUT_S, TYPES,
                                         DemoHTTPServer)
from slsdk.demos.web.site import (ENV_NODE_MODULES, NODE_PACKAGES, NODE_SERVED, STATIC, WEB_DIR,  # noqa: F401
                                  Site, WebDemoError, check_node_modules, node_modules_dir)
from slsdk.landmarks import read_pose_file
from slsdk.runtime.hand_model import FACE_MODEL, POSE_MODEL, resolve_hand_model, resolve_task_model
from slsdk.runtime.landmark_source import check_landmark_bundle
from slsdk.targets import get_target


@dataclass
class WebServer:
    """A running server: ``url`` (the page with the bundle and video), ``stop()``."""

    httpd: DemoHTTPServer
    url: str
    thread: threading.Thread | None = None
    bundle: object = None  # keeps a zip bundle's extraction folder alive
    scratch: object = None  # the served landmark recording's JSON (a fileio.TempDir), removed with the server

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> WebServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="slsdk-web", daemon=True)
        self.thread.start()
        self.httpd.wait_running(5)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.scratch is not None:
            self.scratch.cleanup()


def _recording_json(path: Path, scratch) -> Path:
    """A ``.pose`` landmark recording as the JSON the page reads: ``{fps, frames: [[[x, y] x 86] per frame]}``."""
    keypoints, fps = read_pose_file(path)          # named errors for a file that is not a readable recording
    out = scratch.path / "recording.json"
    fileio.atomic_write_text(out, json.dumps({"fps": fps, "source": path.name,
                                              "frames": keypoints.astype(float).tolist()}))
    return out


def make_server(bundle: str | Path, video: str | Path | None = None, hand_model: str | Path | None = None,
                port: int = 8000, *, extra_query: str = "", timeout: float = SOCKET_TIMEOUT_S,
                face_model: str | Path | None = None, pose_model: str | Path | None = None,
                landmarks: str | Path | None = None) -> WebServer:
    """Check the bundle and files, bind 127.0.0.1:``port`` (0: any free port); ``url`` is the page's URL.
    ``timeout``: seconds a connection may stay without sending a request or reading its response. A landmark bundle
    is served with its landmarker files (``hand_model``, ``face_model``, ``pose_model``: found as the runtime finds
    them), or with ``landmarks`` (a ``.pose`` recording the page feeds directly) instead of a video."""
    b = load_bundle(bundle)
    m = b.manifest
    modality = getattr(m.input, "modality", None) or "frames"
    if modality in ("landmarks", "fusion"):
        check_landmark_bundle(m, str(bundle))     # a layout / normalisation the page does not produce
    if modality == "fusion" and landmarks is not None:
        raise WebDemoError(f"{bundle}: a fusion bundle (input.modality fusion) takes the video frames as well as their "
                           f"landmarks; a landmark recording like {landmarks} has no frames: give --video")
    if modality != "landmarks" and landmarks is not None:
        raise WebDemoError(f"{bundle}: the bundle takes video frames (input.modality {modality}), not a landmark "
                           f"recording like {landmarks}: give --video")
    if video is not None and landmarks is not None:
        raise WebDemoError("give --video or --landmarks, not both")
    if not get_target(m.target).web:
        raise WebDemoError(f"{bundle}: a {m.target!r} bundle; the web page runs onnx/ort bundles (ONNX Runtime Web)")
    if m.streaming.mode != "streaming":
        raise WebDemoError(f"{bundle}: an offline (teacher) bundle has no streaming step; convert the student")
    files: dict[str, Path] = {}
    query = [("bundle", "bundle/")]
    if video is not None:
        v = Path(video)
        if not v.is_file():
            raise WebDemoError(f"video {v} does not exist or is not a file")
        files[f"/video/{v.name}"] = v.resolve()
        query.append(("video", f"video/{quote(v.name)}"))
    scratch = None
    if landmarks is not None:
        scratch = fileio.temp_dir("slsdk-web")
        files["/landmarks/recording.json"] = _recording_json(Path(landmarks), scratch)
        query.append(("landmarks", "landmarks/recording.json"))
    # the page makes the points (a landmark bundle's, a fusion bundle's): it needs the models
    extract = modality in ("landmarks", "fusion") and landmarks is None
    if hand_model is not None or m.crop.policy == "hands" or extract:
        hm = resolve_hand_model(hand_model)  # named errors for a missing or wrong file
        files["/hand_model/hand_landmarker.task"] = hm.resolve()
        files["/hand_landmarker.task"] = hm.resolve()  # the page's default: a model next to the page
        query.append(("hand_model", "hand_model/hand_landmarker.task"))
    if extract:
        for what, spec, given in (("face", FACE_MODEL, face_model), ("pose", POSE_MODEL, pose_model)):
            path = resolve_task_model(spec, given).resolve()     # named errors, as `slsdk run` finds them
            files[f"/{what}_model/{spec.filename}"] = path
            files[f"/{spec.filename}"] = path
            query.append((f"{what}_model", f"{what}_model/{spec.filename}"))
    listed = ("manifest.json", m.model_file, *m.files)  # the bundle's own files: nothing else in its folder
    site = Site(b.root.resolve(), check_node_modules().resolve(), files, bundle_files=listed)
    try:
        httpd = DemoHTTPServer(("127.0.0.1", int(port)), site, timeout=timeout)
    except OSError as e:
        raise WebDemoError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e}); pick another --port") from None
    host, real_port = httpd.server_address[:2]
    q = "&".join(f"{k}={v}" for k, v in query) + (f"&{extra_query}" if extra_query else "")
    return WebServer(httpd, f"http://{host}:{real_port}/?{q}", bundle=b, scratch=scratch)


__all__ = ["WEB_DIR", "DemoHTTPServer", "Site", "WebDemoError", "WebServer", "check_node_modules", "make_server",
           "node_modules_dir"]
