"""End to end: `slsdk demo --quick` through the real CLI, and the README/CI contract."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_cmd = next(b for b in blocks if "pytest" in b).strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in [line.strip() for line in ci]
    assert any("slsdk demo" in b for b in blocks)


def test_cli_lists_every_stage():
    out = subprocess.run([sys.executable, "-m", "slsdk.cli", "--help"], capture_output=True, text=True, check=True)
    for stage in ("train", "distill", "quantize", "convert", "run", "eval", "bench", "demo", "info"):
        assert re.search(rf"\b{stage}\b", out.stdout), stage


def test_convert_refuses_unknown_target_with_suggestion(tmp_path):
    out = subprocess.run([sys.executable, "-m", "slsdk.cli", "convert", str(tmp_path / "x.pt"), "--target", "onxx"],
                         capture_output=True, text=True)
    assert out.returncode == 2                       # refused by the parser, before anything is loaded
    assert "'onxx'" in out.stderr and "'onnx'" in out.stderr and "executorch-coreml" in out.stderr


def readme_main_command() -> list[str]:
    """The README's first bash block (set-up + main job), split at ``&&``."""
    readme = (ROOT / "README.md").read_text()
    block = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)[0].strip()
    return [part.strip() for part in block.split("&&")]


def test_readme_main_command_installs_torch_first_and_runs_the_demo():
    parts = readme_main_command()
    assert parts[0] == "pip install torch==2.13.0", parts     # the CPU wheel, before anything can pull CUDA
    assert parts[-1] == "slsdk demo", parts
    assert all(p.startswith("pip install") for p in parts[:-1])


@pytest.mark.slow
def test_readme_install_steps_resolve(tmp_path):
    """The README's pip steps, as written, from the repository root (pip --dry-run: resolved, not installed)."""
    for part in readme_main_command()[:-1]:
        res = subprocess.run(shlex.split(part) + ["--dry-run", "-q"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, f"{part}: {res.stderr[-2000:]}"


@pytest.mark.slow
def test_readme_demo_command_in_a_fresh_folder(tmp_path):
    """`slsdk demo` as the README writes it, plus --quick, in an empty folder: default output folder."""
    cmd = shlex.split(readme_main_command()[-1]) + ["--quick"]
    exe = shutil.which(cmd[0])
    argv = [exe, *cmd[1:]] if exe else [sys.executable, "-m", "slsdk.cli", *cmd[1:]]
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slsdk_demo"]   # nothing written elsewhere
    demo = tmp_path / "slsdk_demo"
    results = json.loads((demo / "results.json").read_text())
    by = {(r["format"], r["precision"]): r for r in results["targets"]}
    # every target was produced; those with a runtime here were run and timed
    for fmt, prec in (("onnx", "fp32"), ("onnx", "int8"), ("ort", "fp32"), ("executorch", "fp32"),
                      ("executorch", "int8")):
        assert by[(fmt, prec)]["status"] == "ok" and by[(fmt, prec)]["frames_per_s"] > 0
    from slsdk.targets import TARGETS

    for fmt in TARGETS:
        assert any(k[0] == fmt and r["status"] != "failed" for k, r in by.items()), fmt
    targets_written = set()
    for b in (demo / "bundles").iterdir():
        man = json.loads((b / "manifest.json").read_text())
        targets_written.add(man["target"])
    assert targets_written == set(TARGETS)   # one bundle (at least) per target
    # every bundle the demo wrote validates against the manifest's JSON Schema (`slsdk bundle schema PATH...`)
    bundles = sorted(str(b.relative_to(tmp_path)) for b in (demo / "bundles").iterdir())
    check = subprocess.run([*argv[:1 if exe else 3], "bundle", "schema", *bundles],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": valid") == len(bundles), check.stdout
    assert results["streamed"] is not None
    assert (demo / "teacher" / "curves.png").is_file()
    # the console (no terminal here, so progress comes as lines): both towers' pretraining step by step, the
    # results once, and last the files to open, each of which exists
    shown = out.stdout + out.stderr
    for tower in ("ViT-S/16-demo", "48px/8 w48 L2"):
        assert f"pretrain {tower}: rendering" in shown, shown[-4000:]
        assert re.search(rf"pretrain {re.escape(tower)} step \d+/\d+ loss", shown), shown[-4000:]
    assert shown.count("slsdk demo: synthetic signing, test_si split") == 1, shown[-4000:]   # the results table
    # the WERs once: the demo's results table, not also distill's report (which `slsdk distill` prints)
    assert shown.count("GMACs/frame") == 0 and shown.count("GMACs per frame") == 1, shown[-4000:]
    final = " ".join(out.stdout[out.stdout.rindex("total "):].split())   # the last line, unwrapped
    for name in ("results.json", "teacher/curves.png", "student/curves.png", "bench/bench.png", "bundles"):
        assert f"slsdk_demo/{name}" in final, final
    named = re.findall(r"slsdk_demo/[^,;\s]+", final)
    assert named and all((tmp_path / p).exists() for p in named), final
    # the same command again in the same folder: the demo replaces what it wrote, and only that
    (demo / "mine.txt").write_text("mine")
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert (demo / "mine.txt").read_text() == "mine"
    assert json.loads((demo / "results.json").read_text())["streamed"] is not None
