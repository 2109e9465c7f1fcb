"""The web demo: an slsdk bundle in the browser (ONNX Runtime Web + MediaPipe HandLandmarker, streaming CTC).

``python -m slsdk.demos.web serve BUNDLE [--video FILE] [--hand-model FILE] [--port N]`` serves the page
(``index.html`` + ``js/``), the bundle, and the given files on 127.0.0.1, and prints the page's URL with the test
hook (``?bundle=...&video=...&hand_model=...``) on its first line. The page's JavaScript and WebAssembly
(onnxruntime-web, @mediapipe/tasks-vision, mediabunny) are served from ``node_modules``: ``$SLSDK_WEB_NODE_MODULES``
if set, else ``demos/web/node_modules`` beside this file (``npm ci`` in ``demos/web`` puts them there).
"""
from __future__ import annotations

import mimetypes
import os
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

WEB_DIR = Path(__file__).resolve().parent
ENV_NODE_MODULES = "SLSDK_WEB_NODE_MODULES"
NODE_PACKAGES = ("onnxruntime-web", "@mediapipe/tasks-vision", "mediabunny")
STATIC = ("index.html", "js")
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".html": "text/html; charset=utf-8", ".onnx": "application/octet-stream", ".ort": "application/octet-stream",
         ".task": "application/octet-stream", ".webm": "video/webm", ".mp4": "video/mp4", ".map": "application/json"}


class WebDemoError(RuntimeError):
    """The page cannot be served (missing npm packages, a bundle it cannot run, a missing file)."""


def node_modules_dir() -> Path:
    """Where the page's npm packages are looked up: ``$SLSDK_WEB_NODE_MODULES``, else ``demos/web/node_modules``."""
    env = os.environ.get(ENV_NODE_MODULES)
    return Path(env).expanduser() if env else WEB_DIR / "node_modules"


def check_node_modules(path: Path | None = None) -> Path:
    """The node_modules folder, with a clear error naming what is missing and how to install it."""
    path = path or node_modules_dir()
    missing = [p for p in NODE_PACKAGES if not (path / p / "package.json").is_file()]
    if missing:
        raise WebDemoError(f"{path}: the web demo's npm packages {', '.join(missing)} are missing; run "
                           f"`npm ci` in {WEB_DIR} (or set ${ENV_NODE_MODULES} to a node_modules folder holding them)")
    return path


@dataclass
class Site:
    """What the server serves: URL prefix -> a folder or one file."""

    bundle_dir: Path
    node_modules: Path
    files: dict[str, Path] = field(default_factory=dict)  # "/video/clip.mp4" -> path

    def resolve(self, url_path: str) -> Path | None:
        p = unquote(url_path)
        if p in ("", "/"):
            return WEB_DIR / "index.html"
        if p in self.files:
            return self.files[p]
        for prefix, root in (("/bundle/", self.bundle_dir), ("/node_modules/", self.node_modules), ("/js/", WEB_DIR / "js")):
            if p.startswith(prefix):
                return _inside(root, p[len(prefix):])
        if p == "/index.html":
            return WEB_DIR / "index.html"
        return None


def _inside(root: Path, rel: str) -> Path | None:
    """root/rel if it is a file under root (no climbing out)."""
    root = root.resolve()
    target = (root / rel).resolve()
    if target != root and root in target.parents and target.is_file():
        return target
    return None


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        server_version = "slsdk-web"

        def log_message(self, fmt, *args):  # quiet: the first output line is the URL, keep stdout for it
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            self._send(head=False)

        def do_HEAD(self):  # noqa: N802
            self._send(head=True)

        def _send(self, head: bool):
            path = site.resolve(urlsplit(self.path).path)
            if path is None or not path.is_file():
                self.send_error(HTTPStatus.NOT_FOUND, "not served here")
                return
            data = path.read_bytes()
            ctype = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            # cross-origin isolation: SharedArrayBuffer, so ONNX Runtime Web may use WebAssembly threads
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.end_headers()
            if not head:
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the browser stopped reading (a cancelled fetch)
                    pass

    return Handler


@dataclass
class WebServer:
    """A running server: ``url`` (with the test hook), ``stop()``."""

    httpd: ThreadingHTTPServer
    url: str
    thread: threading.Thread | None = None
    bundle: object = None  # keeps a zip bundle's extraction folder alive

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> WebServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="slsdk-web", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_server(bundle: str | Path, video: str | Path | None = None, hand_model: str | Path | None = None,
                port: int = 8000, *, extra_query: str = "") -> WebServer:
    """Check the bundle and files, bind 127.0.0.1:``port`` (0: any free port); ``url`` is the test-hook URL."""
    from slsdk.bundle import load_bundle
    from slsdk.targets import get_target

    b = load_bundle(bundle)
    m = b.manifest
    if get_target(m.target).backend != "onnxruntime":
        raise WebDemoError(f"{bundle}: a {m.target!r} bundle; the web page runs onnx/ort bundles (ONNX Runtime Web)")
    if m.streaming.get("mode") != "streaming":
        raise WebDemoError(f"{bundle}: an offline (teacher) bundle has no streaming step; convert the student")
    files: dict[str, Path] = {}
    query = [("bundle", "bundle/")]
    if video is not None:
        v = Path(video)
        if not v.is_file():
            raise WebDemoError(f"video {v} does not exist or is not a file")
        files[f"/video/{v.name}"] = v.resolve()
        query.append(("video", f"video/{quote(v.name)}"))
    if hand_model is not None or m.crop.get("policy") == "hands":
        from slsdk.runtime.hands import resolve_hand_model

        hm = resolve_hand_model(hand_model)  # named errors for a missing or wrong file
        files["/hand_model/hand_landmarker.task"] = hm.resolve()
        files["/hand_landmarker.task"] = hm.resolve()  # the page's default: a model next to the page
        query.append(("hand_model", "hand_model/hand_landmarker.task"))
    site = Site(b.root.resolve(), check_node_modules().resolve(), files)
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", int(port)), _handler(site))
    except OSError as e:
        raise WebDemoError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e}); pick another --port") from None
    host, real_port = httpd.server_address[:2]
    q = "&".join(f"{k}={v}" for k, v in query) + (f"&{extra_query}" if extra_query else "")
    return WebServer(httpd, f"http://{host}:{real_port}/?{q}", bundle=b)


__all__ = ["WEB_DIR", "WebDemoError", "WebServer", "check_node_modules", "make_server", "node_modules_dir"]
