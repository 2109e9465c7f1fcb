"""CI helper for the torch-free runtime check (see .ci/run).

    python .ci/runtime_bundle.py make OUT     # full env: a small seeded student -> OUT/bundle (onnx) and
                                              # OUT/expected.json (the glosses `slsdk run` gives here)
    python .ci/runtime_bundle.py check OUT SUMMARY_JSONL   # any env (stdlib only): the torch-free run's
                                              # summary line must have the same glosses

The clip is ../shared/data/hands/webcam_gestures.mp4, found as tests/conftest.py finds the shared material.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]


def make(out: Path) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import find_shared_dir  # the one place that knows where the shared material is

    from slsdk.convert import convert
    from slsdk.models.student import StreamingStudent, StudentConfig

    shared = find_shared_dir()
    if shared is None:
        raise SystemExit("no shared test material (set SLSDK_SHARED)")
    clip, hand_model = shared / "data/hands/webcam_gestures.mp4", shared / "models/hand_landmarker.task"
    torch.manual_seed(0)
    model = StreamingStudent(StudentConfig(num_classes=len(VOCAB), image_size=32, patch_size=16, width=64, layers=1,
                                           heads=2, feature_dim=64, hidden=64, chunk_frames=8)).eval()
    with torch.no_grad():
        model.head.classifier.weight.mul_(8.0)  # a varied gloss sequence from random weights
    bundle = convert(model, "onnx", "fp32", out / "bundle", vocab=VOCAB, crop={"policy": "hands"})
    run = subprocess.run([sys.executable, "-m", "slsdk.cli", "run", str(bundle.root), str(clip), "--crop", "hands",
                          "--hand-model", str(hand_model), "--json"], capture_output=True, text=True, check=True)
    summary = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")][-1]
    (out / "expected.json").write_text(json.dumps({"clip": str(clip), "hand_model": str(hand_model),
                                                   "glosses": summary["glosses"]}))
    print(f"{bundle.root}: {len(summary['glosses'])} glosses with the full install")


def check(out: Path, jsonl: Path) -> None:
    want = json.loads((out / "expected.json").read_text())["glosses"]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines() if x.startswith("{")]
    got = lines[-1]["glosses"] if lines and lines[-1].get("type") == "summary" else None
    if got != want:
        raise SystemExit(f"torch-free runtime: glosses {got} differ from the full install's {want}")
    print(f"torch-free runtime: the same {len(got)} glosses as the full install ({lines[-1]['backend']})")


if __name__ == "__main__":
    cmd, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    make(out) if cmd == "make" else check(out, Path(sys.argv[3]))
