"""Shipped recipes by name, from any folder: `slsdk train --config adaptsign-phoenix2014`, `--list-configs`.

Run as a user types it: the installed `slsdk` command, in a fresh folder that has no recipes/, relative paths.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from cli_errors import one_line_error
from slsdk.train.recipe import RECIPES_DIR, find_recipe, shipped_recipes

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = ["adaptsign-phoenix2014", "clip-sla-adapter-isharah500", "clip-sla-lora-isharah500"]


def _slsdk(args, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("slsdk")
    cmd = [exe] if exe else [sys.executable, "-m", "slsdk.cli"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})   # wide: one table row per line


def test_a_shipped_recipe_by_name_from_a_folder_without_recipes(tmp_path):
    assert not (tmp_path / "recipes").exists()
    r = _slsdk(["train", "--config", "adaptsign-phoenix2014", "--print-config"], tmp_path)
    assert r.returncode == 0, r.stderr
    full = yaml.safe_load(r.stdout)
    assert full["data"]["layout"] == "phoenix2014" and full["model"]["backbone"] == "ViT-B/16"
    assert full["train"]["step_milestones"] == [20, 30]
    with_suffix = _slsdk(["train", "--config", "adaptsign-phoenix2014.yaml", "--print-config"], tmp_path)
    assert with_suffix.returncode == 0 and with_suffix.stdout == r.stdout
    r = _slsdk(["distill", "-c", "student-edge", "--print-config"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["student"]["encoder"] == "efficientnet-lite0"


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(tmp_path):
    (tmp_path / "adaptsign-phoenix2014.yaml").write_text("kind: teacher\ntrain:\n  epochs: 3\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "r.yaml").write_text("kind: teacher\ntrain:\n  epochs: 5\n")
    r = _slsdk(["train", "--config", "adaptsign-phoenix2014.yaml", "--print-config"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["train"]["epochs"] == 3 and yaml.safe_load(r.stdout)["data"]["layout"] == "folder"
    r = _slsdk(["train", "--config", "mine/r.yaml", "--print-config"], tmp_path)
    assert r.returncode == 0 and yaml.safe_load(r.stdout)["train"]["epochs"] == 5, r.stderr


def test_list_configs_shows_each_name_and_its_description(tmp_path):
    r = _slsdk(["train", "--list-configs"], tmp_path)
    assert r.returncode == 0, r.stderr
    for rec in shipped_recipes("teacher"):
        line = next(ln for ln in r.stdout.splitlines() if rec.name in ln)
        assert rec.description in line, r.stdout
    assert [x.name for x in shipped_recipes("teacher")] == TEACHERS
    assert "student-edge" not in r.stdout and "slsdk train --config NAME" in r.stdout
    r = _slsdk(["distill", "--list-configs"], tmp_path)
    assert r.returncode == 0 and "student-edge" in r.stdout and "adaptsign" not in r.stdout, r.stdout + r.stderr
    assert "EfficientNet-Lite0" in r.stdout


def test_an_unknown_name_says_which_names_exist(tmp_path):
    r = _slsdk(["train", "--config", "adaptsign-phoenix", "--print-config"], tmp_path)
    line = one_line_error(r, "adaptsign-phoenix: no such recipe file here and no shipped recipe of that name",
                          "did you mean --config adaptsign-phoenix2014?", "slsdk train --list-configs", *TEACHERS)
    assert "student-edge" not in line
    r = _slsdk(["distill", "--config", "nothing", "--print-config"], tmp_path)
    one_line_error(r, "shipped recipes: student-edge", "slsdk distill --list-configs")
    # the README's old form, from a folder without recipes/: points at the name
    r = _slsdk(["train", "--config", "recipes/adaptsign-phoenix2014.yaml", "--print-config"], tmp_path)
    one_line_error(r, "recipes/adaptsign-phoenix2014.yaml: recipe file not found",
                   "the shipped recipe of that name is --config adaptsign-phoenix2014")
    # a shipped recipe of the other kind: named by its name, with the command that takes it
    r = _slsdk(["train", "--config", "student-edge", "--print-config"], tmp_path)
    one_line_error(r, "student-edge: this is a student recipe", "slsdk distill --config")


def test_every_shipped_recipe_has_a_one_line_description_and_is_used_by_name():
    recipes = shipped_recipes()
    assert len(recipes) >= 4
    for rec in recipes:
        lines = rec.path.read_text().splitlines()
        assert lines[0].startswith("# ") and lines[0].endswith(".") and len(lines[0]) <= 110, rec.name
        assert rec.description == lines[0][2:]
        use = next(ln for ln in lines if ln.startswith("# Use:"))
        assert f"{rec.command} " in use and f"--config {rec.name} " in use + " ", use
        assert find_recipe(rec.name) == rec.path == find_recipe(rec.name + ".yaml")


def test_the_shipped_recipes_are_package_data():
    """A non-editable install (`pip install .`) carries every file of the recipes folder."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    pkg_dir = ROOT / tool["package-dir"]["slsdk"] / "train"
    assert RECIPES_DIR.resolve() == (pkg_dir / "recipes").resolve()
    assert "slsdk.train" in tool["packages"]
    globs = tool["package-data"]["slsdk.train"]
    files = [p.relative_to(pkg_dir).as_posix() for p in RECIPES_DIR.iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
