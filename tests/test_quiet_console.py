"""A quiet console: `slsdk` commands print no other library's lines on stderr (torch / torchao / coremltools /
ExecuTorch logs, Python warnings, tqdm bars, MediaPipe's native TF Lite / glog lines); `slsdk --verbose` shows them.

Run as a user does: the `slsdk` script or `python -m slsdk.cli` in a subprocess, from a temporary folder, relative
paths. slsdk's own stderr lines are the forms listed in ``SLSDK_LINES``; any other line is a third-party line.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from slsdk.quiet import ENV_DEFAULTS

# what slsdk itself prints on stderr: one-line messages, training progress and its result table (rich), a bug's
# traceback line. A new slsdk stderr line of another form belongs here.
SLSDK_LINES = re.compile(
    r"^(?:\s*$"
    r"|(?:error|warning|note|interrupted|hint|device): "
    r"|this is a bug in slsdk"
    r"|.*\bepoch \d+/\d+"
    r"|(?:best dev WER|student encoder loaded from|model +dev WER|teacher |student |distill |pretrain |train )"
    r"|[\s│┃┏┗┡┣└├┌─━╭╰╮╯|]"   # rich tables and panels
    r")")

VOCAB = ["<blank>", "a", "b", "c", "d", "e"]


def third_party_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if not SLSDK_LINES.match(ln)]


def slsdk(args, cwd, verbose=False, script=False, timeout=900):
    """Run `slsdk ARGS` (``script``: the console script, else ``python -m slsdk.cli``) in ``cwd``; the environment
    without the variables slsdk.quiet sets (an in-process CLI test may have set them in this process)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_DEFAULTS}
    env["COLUMNS"] = "200"
    exe = [shutil.which("slsdk") or "slsdk"] if script else [sys.executable, "-m", "slsdk.cli"]
    cmd = exe + (["--verbose"] if verbose else []) + list(args)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (cmd, res.stdout[-3000:], res.stderr[-3000:])
    return res


@pytest.fixture(scope="module")
def work(tiny_student, tmp_path_factory):
    """A working folder with a small hands-cropping ONNX bundle in bundles/."""
    from slsdk.convert import convert

    d = tmp_path_factory.mktemp("quiet")
    convert(tiny_student(len(VOCAB)), "onnx", "fp32", d / "bundles" / "student-hands", vocab=VOCAB,
            crop={"policy": "hands"})
    return d


@pytest.fixture(scope="module")
def clip_and_hand_model(work, shared_file):
    shutil.copy(shared_file("data/hands/webcam_gestures.mp4"), work / "clip.mp4")
    shutil.copy(shared_file("models/hand_landmarker.task"), work / "hand_landmarker.task")
    return "clip.mp4", "hand_landmarker.task"


def test_slsdk_line_forms_tell_slsdk_from_other_libraries():
    ours = ["error: bundles/x: no manifest.json", "warning: clip.mp4: 2 timestamp gaps", "",
            "teacher epoch 1/1  loss 12.7839  dev WER 90.91%  (best)  19.6s", "┏━━━┳━━━┓",
            "best dev WER 72.73% after 1 epoch(s); best checkpoint slsdk_demo/student/best.pt"]
    theirs = ["W1206 08:17:26.763000 27063 site-packages/torch/onnx/_internal/exporter/_registration.py:107] "
              "torchvision is not installed. Skipping torchvision::nms",
              "Failed to load /x/torchao/_C_mxfp8.so: Could not load this library",
              "WARNING:coremltools:Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'",
              "[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version",
              "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
              "Running MIL default pipeline:   0%|          | 0/95 [00:00<?, ? passes/s]",
              "/x/site-packages/torch/nn/modules/module.py:12: UserWarning: something"]
    assert third_party_lines("\n".join(ours)) == []
    assert third_party_lines("\n".join(theirs)) == theirs


def test_info_is_quiet(tmp_path):
    res = slsdk(["info"], tmp_path, script=True)
    assert "frame encoders" in res.stdout
    assert third_party_lines(res.stderr) == []


def test_bench_is_quiet(work):
    res = slsdk(["bench", "--bundles", "bundles", "--out", "bench"], work)
    assert "bench/bench.json" in res.stdout
    assert third_party_lines(res.stderr) == []


def test_run_with_hand_crop_is_quiet_and_verbose_shows_the_noise(work, clip_and_hand_model):
    clip, hand_model = clip_and_hand_model
    args = ["run", "bundles/student-hands", clip, "--crop", "hands", "--hand-model", hand_model]
    res = slsdk(args, work)
    assert "hands in" in res.stdout
    assert third_party_lines(res.stderr) == []
    loud = slsdk(args, work, verbose=True)   # the same run with --verbose: MediaPipe's lines are back
    assert third_party_lines(loud.stderr), loud.stderr


@pytest.mark.slow
def test_demo_quick_is_quiet(tmp_path):
    res = slsdk(["demo", "--quick"], tmp_path, script=True, timeout=1800)
    assert third_party_lines(res.stderr) == []
