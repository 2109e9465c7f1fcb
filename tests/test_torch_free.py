"""The runtime without torch: an ONNX bundle runs in a process where ``import torch`` fails, through the Python
API (``slsdk.Recognizer``, ``slsdk.recognize_video``) and the CLI (``slsdk run``, ``slsdk bundle inspect``), and
gives exactly the result of the normal process. (CI also installs ``.[runtime]`` alone into a fresh venv:
``.ci/run``.)"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]

# runs before anything else in the child: every `import torch` (direct or inside a library) raises ImportError
NO_TORCH = "import sys; sys.modules['torch'] = None\n"


@pytest.fixture(scope="module")
def onnx_bundle(tiny_student, tmp_path_factory):
    from slsdk.convert import convert

    return convert(tiny_student(len(VOCAB)), "onnx", "fp32", tmp_path_factory.mktemp("tf") / "student-onnx",
                   vocab=VOCAB, crop={"policy": "hands"})


def _child(code: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-c", NO_TORCH + code, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_the_guard_really_blocks_torch():
    r = subprocess.run([sys.executable, "-c", NO_TORCH + "import torch"], capture_output=True, text=True)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def test_api_without_torch_equals_the_normal_run(onnx_bundle, shared_file):
    import slsdk

    clip, hand_model = shared_file("data/hands/webcam_gestures.mp4"), shared_file("models/hand_landmarker.task")
    want = slsdk.recognize_video(onnx_bundle.root, clip, hand_model=hand_model)
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "import slsdk\n"
        "from slsdk.data.video import read_video\n"
        "bundle, clip, model = sys.argv[1:4]\n"
        "out = slsdk.recognize_video(bundle, clip, hand_model=model)\n"
        "rec = slsdk.Recognizer(bundle, crop='full')\n"
        "s = rec.create_stream()\n"
        "s.accept_frames(read_video(clip))\n"
        "s.input_finished()\n"
        "heavy = sorted(m for m in ('torch', 'slsdk.train', 'slsdk.convert', 'slsdk.quantize', 'slsdk.models')\n"
        "               if sys.modules.get(m) is not None)\n"
        "print(json.dumps({'video': out.result.to_dict(), 'crop': out.crop_stats, 'full': rec.result(s).to_dict(),\n"
        "                  'loaded': heavy}))\n"
    )
    got = json.loads(_child(code, str(onnx_bundle.root), str(clip), str(hand_model)).splitlines()[-1])
    assert got["loaded"] == []
    assert got["video"]["glosses"], "the tiny student emits glosses on the clip (else the comparison is empty)"
    assert got["video"] == json.loads(json.dumps(want.result.to_dict()))
    assert got["crop"]["frames_with_hands"] == want.crop_stats["frames_with_hands"] > 0
    # untimed frames, full-frame policy: also identical
    from slsdk.data.video import read_video

    rec = slsdk.Recognizer(onnx_bundle.root, crop="full")
    s = rec.create_stream()
    s.accept_frames(read_video(clip))
    s.input_finished()
    assert got["full"] == json.loads(json.dumps(rec.result(s).to_dict()))


def test_cli_without_torch_equals_the_normal_run(onnx_bundle, shared_file, tmp_path, monkeypatch):
    clip, hand_model = shared_file("data/hands/webcam_gestures.mp4"), shared_file("models/hand_landmarker.task")
    monkeypatch.chdir(tmp_path)
    cli = "import sys\nfrom slsdk.cli import main\nsys.argv = ['slsdk', *sys.argv[1:]]\nmain()\n"
    args = ["run", str(onnx_bundle.root), str(clip), "--crop", "hands", "--hand-model", str(hand_model), "--json"]
    lines = [json.loads(x) for x in _child(cli, *args).splitlines() if x.startswith("{")]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["backend"] == "onnxruntime"
    normal = subprocess.run([sys.executable, "-c", cli, *args], capture_output=True, text=True, check=True).stdout
    want = [json.loads(x) for x in normal.splitlines() if x.startswith("{")][-1]
    assert summary["glosses"] == want["glosses"] and summary["glosses"]
    assert summary["crop"] == want["crop"]
    inspect = _child(cli, "bundle", "inspect", str(onnx_bundle.root))
    assert "onnx" in inspect and "fp32" in inspect


def test_the_torch_backend_says_what_is_missing(onnx_bundle, tmp_path):
    """Without torch, asking for a checkpoint's torch backend is a clear error, not a traceback."""
    code = ("import sys, slsdk\n"
            "from slsdk.runtime.backends import BackendError\n"
            "try:\n"
            "    slsdk.Recognizer(sys.argv[1], backend='torch')\n"
            "except BackendError as e:\n"
            "    print('BackendError', e)\n")
    out = _child(code, str(tmp_path / "student.pt"))
    assert out.startswith("BackendError") and "the torch backend needs torch" in out and "slsdk[train]" in out
