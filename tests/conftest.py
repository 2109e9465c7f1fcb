"""Shared pytest fixtures.

``shared_dir``: the folder of real test material (``shared/``: models/, data/) that lives beside the
repository, not inside it. Found via $SLSDK_SHARED, else the first ``shared/`` met walking up from the
repository root (``<root>/shared``, ``<root>/../shared``, ...), else ``/work/shared`` (for a clone made
elsewhere, e.g. /tmp/x/main, on the machine that holds the material). Tests that need it are skipped
with the reason when it is truly absent.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FALLBACK_SHARED = Path("/work/shared")


def _looks_shared(p: Path) -> bool:
    return p.is_dir() and ((p / "data").is_dir() or (p / "models").is_dir())


def find_shared_dir() -> Path | None:
    env = os.environ.get("SLSDK_SHARED")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    for base in (REPO_ROOT, *REPO_ROOT.parents):
        if _looks_shared(base / "shared"):
            return base / "shared"
    return FALLBACK_SHARED if _looks_shared(FALLBACK_SHARED) else None


MEDIAPIPE_WHEEL_VERSION = "0.10.14"   # the last mediapipe wheel with model files inside (lite hands, pose)
# the user's cache, read at import (before any test points XDG_CACHE_HOME elsewhere)
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slsdk" / "wheels"


@functools.cache
def find_mediapipe_wheel() -> Path | None:
    """The mediapipe 0.10.14 wheel: $SLSDK_MEDIAPIPE_WHEEL, under the shared material, in ~/.cache/slsdk/wheels,
    else fetched there once from PyPI as the guide tells a user (``pip download mediapipe==0.10.14 --no-deps``);
    None where none can be had."""
    env = os.environ.get("SLSDK_MEDIAPIPE_WHEEL")
    if env:
        return Path(env) if Path(env).is_file() else None
    shared = find_shared_dir()
    found = sorted(shared.rglob("mediapipe-0.10.*.whl")) if shared is not None else []
    found += sorted(WHEEL_CACHE.glob(f"mediapipe-{MEDIAPIPE_WHEEL_VERSION}-*.whl"))
    if not found:   # the registry is reachable from CI
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}",
                            "--no-deps", "--only-binary=:all:", "-q", "-d", str(WHEEL_CACHE)], capture_output=True,
                           timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            pass
        found = sorted(WHEEL_CACHE.glob(f"mediapipe-{MEDIAPIPE_WHEEL_VERSION}-*.whl"))
    return found[0] if found else None


@functools.cache
def built_pose_model() -> Path | None:
    """A PoseLandmarker .task built from the mediapipe wheel (``slsdk import pose``'s builder) into a temporary
    folder removed at exit, for a machine whose cache holds no pose model and cannot download Google's; None
    without the wheel."""
    wheel = find_mediapipe_wheel()
    if wheel is None:
        return None
    from slsdk.runtime.hand_model import build_pose_model

    folder = Path(tempfile.mkdtemp(prefix="slsdk-pose-model-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return build_pose_model(wheel, folder / "pose_landmarker.task")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    p = find_shared_dir()
    if p is None:
        where = (f"$SLSDK_SHARED={os.environ['SLSDK_SHARED']} is not a directory" if os.environ.get("SLSDK_SHARED")
                 else f"no shared/ (with data/ or models/) above {REPO_ROOT} nor at {FALLBACK_SHARED}")
        pytest.skip(f"real test material not available: {where}; set SLSDK_SHARED=/path/to/shared")
    return p


@pytest.fixture(scope="session")
def shared_file(shared_dir):
    """``shared_file("data/hands/x.mp4")`` -> Path, skipping the test when that file is missing."""

    def get(rel: str) -> Path:
        p = shared_dir / rel
        if not p.exists():
            pytest.skip(f"{p} not found in the shared test material ({shared_dir})")
        return p

    return get


@pytest.fixture(scope="session")
def tiny_student():
    """``tiny_student(num_classes)`` -> a small random ``StreamingStudent`` (32 px, 8-frame chunks) whose
    sharpened classifier still emits a varied gloss sequence: the runtime and demo tests' model."""
    import torch

    from slsdk.models.student import StreamingStudent, StudentConfig

    def make(num_classes: int):
        torch.manual_seed(0)
        m = StreamingStudent(StudentConfig(num_classes=num_classes, image_size=32, patch_size=16, width=64,
                                           layers=1, heads=2, feature_dim=64, hidden=64, chunk_frames=8)).eval()
        with torch.no_grad():
            m.head.classifier.weight.mul_(8.0)
        return m

    return make
