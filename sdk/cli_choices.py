"""The CLI's choice options, each an Enum read off the table that owns its values (targets, layouts, students,
backends, ...), so `--help` lists the values and the parser refuses a wrong one."""
from __future__ import annotations

from enum import Enum

from slsdk.data.splits import LAYOUTS
from slsdk.model_names import MODALITIES, STUDENTS, VARIANTS
from slsdk.runtime.backends import backend_names
from slsdk.targets import PRECISIONS, TARGETS

Layout = Enum("Layout", {n.replace("-", "_"): n for n in LAYOUTS}, type=str)
Target = Enum("Target", {n.replace("-", "_"): n for n in TARGETS}, type=str)
Precision = Enum("Precision", {p: p for p in PRECISIONS}, type=str)
Variant = Enum("Variant", {n.replace("-", "_"): n for n in VARIANTS}, type=str)
Student = Enum("Student", {n.replace("-", "_"): n for n in STUDENTS}, type=str)
Modality = Enum("Modality", {n: n for n in MODALITIES}, type=str)
Decoder = Enum("Decoder", {"greedy": "greedy", "beam": "beam"}, type=str)
Crop = Enum("Crop", {"hands": "hands", "full": "full"}, type=str)
BACKENDS = tuple(backend_names())   # every registered serving backend, "torch" included
Backend = Enum("Backend", {n: n for n in BACKENDS}, type=str)
Convention = Enum("Convention", {"auto": "auto", "phoenix": "phoenix", "none": "none"}, type=str)
CONVENTION_HELP = ("gloss clean-up before scoring: phoenix (the PHOENIX evaluation scripts' rules) or none; auto: "
                   "phoenix for --layout phoenix2014/phoenix2014t, none for every other data set")


__all__ = ["BACKENDS", "CONVENTION_HELP", "Backend", "Convention", "Crop", "Decoder", "Layout", "Modality",
           "Precision", "Student", "Target", "Variant"]
