"""The README as a user reads it: every bash and python block runs verbatim, top to bottom, in one empty folder.

The first two bash blocks are the set-up commands (install + `slsdk demo`, install + tests): `tests/test_demo.py`
checks them (pip resolves them; the demo runs in a fresh folder; CI runs the test command). ``text`` blocks are
templates (a user's data, a camera, a GPU): their `slsdk` lines are checked against the CLI's own help instead.
"""
from __future__ import annotations

import os
import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from slsdk.targets import targets_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETUP_BLOCKS = 2          # install + demo, install + tests
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)


def readme_blocks() -> list[tuple[str, str]]:
    """Every fenced block of the README as (language, text), in order."""
    return [(lang, text) for lang, text in FENCE.findall(README.read_text(encoding="utf-8"))]


def runnable_blocks() -> list[tuple[str, str]]:
    """The bash and python blocks after the set-up commands."""
    blocks = [(lang, text) for lang, text in readme_blocks() if lang in ("bash", "python")]
    assert [lang for lang, _ in blocks[:SETUP_BLOCKS]] == ["bash"] * SETUP_BLOCKS
    return blocks[SETUP_BLOCKS:]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])   # the `slsdk` script
    env.pop("COLUMNS", None)
    return env


def test_readme_is_a_manual_not_a_notebook():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 260
    assert "slsdk demo --quick" in text and "No shipped model recognises real signing" in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dated runs belong in docs/results.md"
    for link in re.findall(r"\]\(([^)#]+)\)", text):            # every relative link leads to a file
        if "://" not in link:
            assert (ROOT / link).exists(), link


def test_readme_targets_table_is_slsdk_targets_markdown():
    assert targets_markdown() in README.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _help(words: tuple[str, ...]) -> str:
    res = subprocess.run([sys.executable, "-m", "slsdk.cli", *words, "--help"], capture_output=True, text=True,
                         env={**_env(), "COLUMNS": "300"}, timeout=120)
    assert res.returncode == 0, (words, res.stderr)
    return res.stdout


def test_template_commands_name_real_subcommands_and_flags():
    """Each `slsdk ...` line of the text blocks (joined at trailing backslashes) names a real command and real
    flags (its --help lists them)."""
    lines = []
    for lang, text in readme_blocks():
        if lang in ("text", "bash"):
            lines += [ln for ln in text.replace("\\\n", " ").splitlines() if ln.startswith("slsdk ")]
    assert len(lines) > 15
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        words = []
        for a in argv[1:]:
            if a.startswith("-"):
                break
            words.append(a)
        while words and f" {words[-1]} " not in _help(tuple(words[:-1])).replace("│", " "):
            words.pop()                          # positional arguments after the (sub)command
        helptext = _help(tuple(words))
        for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
            assert flag in helptext, (line, flag)


@pytest.mark.slow
def test_readme_blocks_run_verbatim_in_an_empty_folder(tmp_path):
    """The chain, then the Python API on what it wrote: each block exits 0 (bash with -e: every line counts)."""
    ran = []
    for i, (lang, text) in enumerate(runnable_blocks(), start=1):
        argv = ["bash", "-e", "-o", "pipefail", "-c", text] if lang == "bash" else [sys.executable, "-c", text]
        res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=1800)
        ran.append((i, lang, text.splitlines()[0], res.returncode))
        print(f"README block {i} ({lang}, {len(text.splitlines())} lines, from `{text.splitlines()[0][:60]}`): "
              f"exit {res.returncode}")
        assert res.returncode == 0, (text, res.stdout[-3000:], res.stderr[-3000:])
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert [lang for _, lang, _, _ in ran] == ["bash", "python"]   # the chain, then the Python API
    assert (tmp_path / "bundles" / "onnx-int8" / "manifest.json").is_file()
    assert (tmp_path / "overlay.png").is_file()
