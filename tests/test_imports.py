"""Imports say what a module depends on: at the top, no cycles, small modules.

- ruff (pyproject's [tool.ruff.lint]): PLC0415 refuses an import inside a function, except of the heavy optional
  packages that TID253 bans from module level (torch, onnxruntime, mediapipe, ... and slsdk's building stages,
  which import torch): serving modules and the CLI import those inside the function that needs them. Building
  modules (which import torch at the top anyway) carry a per-file allowance for TID253 only.
- No import cycle between slsdk's modules, function-level imports counted (tests/import_graph.py).
- No module over 600 lines.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from import_graph import MAX_LINES, cycles, imports, long_modules

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["sdk", "convert", "quantize", "demos"]


def _ruff() -> list[str]:
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff  # noqa: F401,PLC0415  (the test tool, only to find its binary)
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", "ruff"]


def test_imports_at_the_top_except_the_heavy_optional_packages():
    res = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", *SOURCES], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_catches_an_import_inside_a_function(tmp_path):
    """The rule is live: a deferred slsdk import is caught, a deferred torch import in a serving file is not."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    bad = tmp_path / "sdk" / "runtime" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from slsdk.decode import greedy_decode\n    return greedy_decode\n\n\n"
                   "def g():\n    import torch\n    return torch\n")
    res = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "sdk"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert "probe.py:2:5: PLC0415" in res.stdout, res.stdout + res.stderr
    assert ":7:5:" not in res.stdout, res.stdout


def test_no_import_cycles():
    assert cycles(imports(ROOT)) == []


def test_no_module_over_600_lines():
    assert long_modules(ROOT) == {}, f"modules over {MAX_LINES} lines"


def test_every_package_is_in_the_wheel():
    """pyproject lists packages by hand (four source folders map to one import name): none may be missing."""
    import tomllib  # noqa: PLC0415  (Python 3.11+; the test tool only)

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    from import_graph import modules  # noqa: PLC0415
    packages = {m for m, p in modules(ROOT).items() if p.name == "__init__.py"}
    assert packages == listed
