"""`slsdk bench` building blocks: the eager torch rows (the --arch mode's teacher and student)."""
from __future__ import annotations

import pytest
import torch

from slsdk.bench import bench_torch_model, finish_table
from slsdk.models.recognizer import CSLRRecognizer
from slsdk.models.student import StreamingStudent, StudentConfig
from slsdk.train import teacher_config


def test_torch_rows_time_and_count_macs_for_teacher_and_student():
    torch.manual_seed(0)
    teacher = CSLRRecognizer(teacher_config(backbone="ViT-T/16-test", hidden=16, num_classes=5))
    student = StreamingStudent(StudentConfig(num_classes=5, image_size=32, patch_size=16, width=32, layers=1,
                                             heads=2, feature_dim=16, hidden=16))
    rows = [bench_torch_model(teacher, 16, 32, "torch teacher", iters=1),
            bench_torch_model(student, 8, 32, "torch student", iters=1)]
    for r in rows:
        assert r.status == "ok" and r.frames_per_s > 0 and r.gmacs_per_frame > 0
    assert rows[0].gmacs_per_frame > rows[1].gmacs_per_frame
    rows = finish_table(rows, rows[0].frames_per_s)
    assert rows[0].speed_vs_teacher == 1.0


@pytest.mark.slow
def test_bench_students_reproduces_the_table_from_a_relative_folder(tmp_path, monkeypatch):
    """The students table's command, as the README gives it, on the tiny preset: every stage runs (data, towers,
    teacher, both students, measure), from a temporary working directory with a relative --out; the table has the
    three models with WERs, speeds, int8 deltas and sizes; a rerun resumes (skips every finished stage)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_students.py"
    monkeypatch.chdir(tmp_path)
    cmd = [sys.executable, str(script), "--out", "runs/q", "--quick", "--no-raw", "--targets", "onnx", "executorch"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "5/5 measure" in res.stdout
    out = json.loads(Path("runs/q/students.json").read_text())
    assert list(out["models"]) == ["teacher", "student vit-tiny", "student efficientnet-lite0"]
    lite = out["targets"]["student efficientnet-lite0"]
    for key in ("onnx-fp32", "onnx-int8", "executorch-fp32", "executorch-int8"):
        assert lite[key]["status"] == "ok" and lite[key]["frames_per_s"] > 0, (key, lite[key])
    assert lite["onnx-fp32"]["max_abs_err"] < 1e-3 and lite["onnx-int8"]["cosine"] > 0.9
    assert 0.2 < lite["onnx-int8"]["size_vs_float"] < 0.3
    md = Path("runs/q/students.md").read_text()
    assert md.count("\n| ") >= 3 and "student efficientnet-lite0" in md and "x ViT-B/16" in md
    again = subprocess.run(cmd + ["--build-only"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "epoch 1" not in again.stdout, again.stdout[-2000:]


def test_bench_bundles_times_every_bundle_interleaved(tmp_path, monkeypatch):
    """Real bundles in their real runtimes (onnxruntime, ExecuTorch): each round runs one chunk on every
    backend, who goes first rotating, so a busy spell slows them alike; a backend that fails is reported in its
    row and the others are still timed."""
    import slsdk.runtime.backends as backends
    from slsdk.bench import bench_bundles
    from slsdk.convert import convert

    torch.manual_seed(0)
    student = StreamingStudent(StudentConfig(num_classes=5, image_size=32, patch_size=16, width=32, layers=1,
                                             heads=2, feature_dim=16, hidden=16)).eval()
    vocab = ["<blank>", "a", "b", "c", "d"]
    roots = [convert(student, t, "fp32", tmp_path / t, vocab=vocab).root for t in ("onnx", "executorch", "ort")]
    order, real = [], backends.open_backend

    def logged(bundle, threads=0):
        backend, target = real(bundle, threads=threads), bundle.manifest.target

        class Logged:
            def run(self, inputs):
                order.append(target)
                if target == "ort" and len(order) > 6:
                    raise RuntimeError("the runtime gave up")
                return backend.run(inputs)
        return Logged()

    monkeypatch.setattr(backends, "open_backend", logged)
    rows = bench_bundles(roots, iters=3, warmup=1)
    assert [r.format for r in rows] == ["onnx", "executorch", "ort"]
    assert order[:6] == ["onnx", "executorch", "ort", "executorch", "ort", "onnx"]
    assert [r.status for r in rows] == ["ok", "ok", "failed"] and "gave up" in rows[2].note
    assert rows[0].frames_per_s > 0 and rows[1].frames_per_s > 0 and rows[2].frames_per_s is None
    assert order.count("onnx") == order.count("executorch") == 4    # 1 warm-up + 3 timed rounds each


@pytest.mark.slow
def test_bench_modalities_runs_every_stage_from_a_relative_folder(tmp_path, monkeypatch, shared_file):
    """The RGB vs landmark table's command (issue #31) on the tiny preset, from a temporary working directory with a
    relative --out: the Lite0 student and the landmark teacher and student are trained, converted to ONNX fp32 and
    int8 (parity in the manifest), timed, and served on the real webcam clip through `slsdk run` (MediaPipe's real
    hand, face and pose landmarkers); the table is written."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    clip = shared_file("data/hands/webcam_gestures.mp4")
    from test_pose86_landmarks import _find

    from slsdk.runtime.hand_model import POSE_MODEL

    hand, face = shared_file("models/hand_landmarker.task"), shared_file("models/face_landmarker.task")
    pose = _find(POSE_MODEL, hand.parents[1], "pose_landmarker.task")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_modalities.py"
    monkeypatch.chdir(tmp_path)
    cmd = [sys.executable, str(script), "--out", "runs/q", "--quick", "--kit", "--fp32-videos", "2", "--clip", str(clip),
           "--hand-model", str(hand), "--face-model", str(face), "--pose-model", str(pose)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(Path("runs/q/modalities.json").read_text())
    assert list(out["models"]) == ["CLIP teacher", "student efficientnet-lite0", "landmark teacher", "student landmarks"]
    assert set(out["models"]["CLIP teacher"]["wer"]) == {"dev", "test_si", "test_us"}   # scored, not converted
    assert "onnx_fp32" not in out["models"]["CLIP teacher"]
    lite, lm = out["models"]["student efficientnet-lite0"], out["models"]["student landmarks"]
    for row in (lite, lm):
        assert set(row["wer"]) == {"dev", "test_si", "test_us"}
        assert row["onnx_fp32"]["max_abs_err"] < 1e-3 and row["onnx_int8"]["cosine"] > 0.9
        assert row["onnx_fp32"]["frames_per_s"] > 0 and row["onnx_int8"]["frames_per_s"] > 0
        assert row["serving"]["per_frame_ms"]["model"] > 0 and row["serving"]["frames"] > 0
    assert lite["serving"]["per_frame_ms"]["crop"] > 0 and "landmarks" not in lite["serving"]["per_frame_ms"]
    assert lm["serving"]["per_frame_ms"]["landmarks"] > 0
    assert lm["parameters"] < lite["parameters"] / 10
    kit = out["kit"]    # the kit-format path: the preset as the challenge kit's files, then the CLI
    pickles = sorted(p.name for p in Path("runs/q/kit/kit/data").iterdir())
    assert pickles == [f"pose_data_isharah2000_hands_lips_body_phase2_{p}.pkl" for p in ("SI", "US")]
    assert "no right hand" in kit["show"]
    assert set(kit["wer"]) == {"teacher", "student"}
    assert all(isinstance(v, float) for w in kit["wer"].values() for v in w.values())
    assert kit["manifest"]["input"] == "landmarks" and kit["manifest"]["fidelity"]["status"] == "run"
    assert kit["served"]["frames"] > 0
    md = Path("runs/q/modalities.md").read_text()
    assert md.count("\n| ") >= 5 and "Landmark student vs Lite0" in md and "The kit-format path" in md
