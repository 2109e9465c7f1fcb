"""Shared pytest fixtures.

``shared_dir``: the folder of real test material (``shared/``: models/, data/) that lives beside the
repository, not inside it. Found via $SLSDK_SHARED, else the first ``shared/`` met walking up from the
repository root (``<root>/shared``, ``<root>/../shared``, ...), else ``/work/shared`` (for a clone made
elsewhere, e.g. /tmp/x/main, on the machine that holds the material). Tests that need it are skipped
with the reason when it is truly absent.
"""
from __future__ import annotations

import os
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
