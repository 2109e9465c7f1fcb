"""What the web demo serves: the allow-list of files (the page, the npm packages' parts it loads, the bundle's
listed files, the given video and hand model) and the URL path -> file rule (no climbing out of a folder)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from slsdk.errors import SlsdkError

WEB_DIR = Path(__file__).resolve().parent
ENV_NODE_MODULES = "SLSDK_WEB_NODE_MODULES"
NODE_PACKAGES = ("onnxruntime-web", "@mediapipe/tasks-vision", "mediabunny")
NODE_SERVED = ("onnxruntime-web/dist/", "@mediapipe/tasks-vision/vision_bundle.mjs", "@mediapipe/tasks-vision/wasm/",
               "mediabunny/dist/")
STATIC = ("index.html", "js")


class WebDemoError(SlsdkError, RuntimeError):
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


def bad_url_path(p: str) -> bool:
    """A decoded URL path no file can have: not absolute, control characters (NUL...), backslashes."""
    return not p.startswith("/") or "\\" in p or any(c < " " or c == "\x7f" for c in p)


def _bundle_listing(bundle_dir: Path) -> tuple[str, ...]:
    """manifest.json, its model_file and the files it lists (for a Site made without ``bundle_files``)."""
    try:
        m = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
        names = [m.get("model_file"), *(m.get("files") or {})] if isinstance(m, dict) else []
    except (OSError, ValueError):
        names = []
    return ("manifest.json", *(n for n in names if isinstance(n, str)))


@dataclass
class Site:
    """What the server serves: the page, the bundle's listed files, and URL path -> one file (``files``)."""

    bundle_dir: Path
    node_modules: Path
    files: dict[str, Path] = field(default_factory=dict)  # "/video/clip.mp4" -> path
    bundle_files: tuple[str, ...] | None = None  # bundle-relative names served; None: manifest.json and its list

    def __post_init__(self):
        if self.bundle_files is None:
            self.bundle_files = _bundle_listing(self.bundle_dir)
        self._bundle_names = frozenset(self.bundle_files)

    def resolve(self, url_path: str) -> Path | None:
        """The file a (percent-encoded) URL path names, or None when it is not one of the served files."""
        try:
            p = unquote(url_path, errors="strict")
        except UnicodeDecodeError:
            return None
        if bad_url_path(p):
            return None
        if p in ("/", "/index.html"):
            return WEB_DIR / "index.html"
        if p in self.files:
            return self.files[p]
        if p.startswith("/bundle/"):
            name = p[len("/bundle/"):]
            return _inside(self.bundle_dir, name) if name in self._bundle_names else None
        if p.startswith("/js/"):
            return _inside(WEB_DIR / "js", p[len("/js/"):])
        if p.startswith("/node_modules/"):
            rel = p[len("/node_modules/"):]
            for served in NODE_SERVED:
                if served.endswith("/") and rel.startswith(served):
                    return _inside(self.node_modules / served, rel[len(served):])
                if rel == served:
                    parent, _, name = served.rpartition("/")
                    return _inside(self.node_modules / parent, name)
        return None


def _inside(root: Path, rel: str) -> Path | None:
    """root/rel if it is a file under root (no climbing out)."""
    try:
        root = root.resolve()
        target = (root / rel).resolve()
        if target != root and root in target.parents and target.is_file():
            return target
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop, a name too long
        pass
    return None
