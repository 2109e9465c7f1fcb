"""The names of slsdk's built-in models, torch-free: what the CLI offers as choices without importing torch.

``VARIANTS``: the teacher's frame encoder variants (``slsdk.models.adapters`` builds them). ``STUDENTS``: the
student frame encoders ``slsdk.models.student`` registers (``list_students()`` also lists any registered later).
``MODALITIES``: what ``slsdk train --modality`` offers (``slsdk.models.landmark`` builds the landmark models).
Standard library only.
"""
from __future__ import annotations

__all__ = ["VARIANTS", "STUDENTS", "MODALITIES"]

VARIANTS = ("frozen", "adaptsign", "sla-lora", "sla-adapter")
STUDENTS = ("vit-tiny", "efficientnet-lite0")
MODALITIES = ("rgb", "landmarks", "fusion")   # what a model sees: video frames, the 86 pose points, or both
