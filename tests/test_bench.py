"""`slsdk bench` building blocks: the eager torch rows (the --arch mode's teacher and student)."""
from __future__ import annotations

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
