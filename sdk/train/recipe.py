"""Recipe files: every setting of a training or distillation run in one YAML or JSON file.

A recipe has up to five sections, each the fields of one config dataclass (the same dataclasses that are
stored in checkpoints and bundles)::

    data:    DataSettings       (layout, ...)
    model:   RecognizerConfig   (teacher; ``encoder:`` = FrameEncoderConfig)
    train:   TrainConfig        (teacher training)
    distill: DistillConfig      (distillation; every TrainConfig field too)
    student: StudentConfig      (the student's shape; ``num_classes`` comes from the teacher)

Precedence: dataclass defaults < the command's own defaults < the file < flags typed on the command line.
Unknown keys are an error naming the key, the file and the closest valid key; so is a value of the wrong
type. ``slsdk train --print-config`` / ``slsdk distill --print-config`` write a complete file to start from.

The shipped recipes (``slsdk/train/recipes/*.yaml``, package data) are found by name from any folder:
``--config adaptsign-phoenix2014`` reads the file of that name in the working folder if there is one, else the
shipped recipe; ``slsdk train --list-configs`` lists them with the first line of each file's header.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slsdk.data.splits import get_layout
from slsdk.errors import SlsdkError
from slsdk.models.adapters import FrameEncoderConfig
from slsdk.models.recognizer import RecognizerConfig
from slsdk.models.student import StudentConfig
from slsdk.train.config import TrainConfig
from slsdk.train.distill import DistillConfig

__all__ = ["RecipeError", "DataSettings", "Recipe", "load_recipe", "parse_recipe", "dump_recipe",
           "SECTIONS", "RECIPES_DIR", "ShippedRecipe", "shipped_recipes", "find_recipe"]


class RecipeError(SlsdkError, ValueError):
    """A recipe file that cannot be used; the message names the file and the key."""


@dataclass
class DataSettings:
    """Which dataset layout to read (the dataset root itself is a command-line argument)."""

    layout: str = "folder"             # slsdk.data.LAYOUTS: folder | phoenix2014 | phoenix2014t | csl-daily | isharah

    def __post_init__(self):
        get_layout(self.layout)


def _section_types() -> dict[str, type]:
    return {"data": DataSettings, "model": RecognizerConfig, "model.encoder": FrameEncoderConfig,
            "train": TrainConfig, "distill": DistillConfig, "student": StudentConfig}


SECTIONS = {"teacher": ("data", "model", "train"), "student": ("data", "distill", "student")}
_DERIVED = {"model": {"num_classes"}, "student": {"num_classes"}, "distill": {"student"}}  # set from data/teacher


@dataclass
class Recipe:
    """The effective settings of one run (``kind`` teacher or student)."""

    kind: str
    sections: dict[str, dict] = field(default_factory=dict)   # section -> {field: value} (validated)
    source: str | None = None

    def build(self, section: str):
        """The dataclass of ``section`` (``model``, ``train``, ``distill``, ``student`` needs num_classes)."""
        types_ = _section_types()
        vals = dict(self.sections.get(section, {}))
        if section == "distill":
            vals["student"] = dict(self.sections.get("student", {}))
        return types_[section](**vals)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **{k: v for k, v in self.sections.items()}}


def _closest(key: str, valid) -> str:
    m = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean {m[0]!r}?" if m else f"; valid keys: {', '.join(sorted(valid))}"


def _check_type(value, hint, where: str) -> Any:
    """``value`` if it fits the annotation ``hint`` (ints accepted for floats, lists for tuples)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except RecipeError:
                pass
        raise RecipeError(f"{where}: {value!r} is not a {hint}")
    base = origin or hint
    if base is Any:
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            value = float(value)     # YAML 1.1 reads 1e-4 / 1.0e30 (no sign, or no dot) as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise RecipeError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected a string, got {value!r}")
        return value
    if base in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        return list(value) if base is list else tuple(value)
    if base is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _validate_section(name: str, values, cls, where: str) -> dict:
    if not isinstance(values, Mapping):
        raise RecipeError(f"{where}: section {name!r} must be a mapping of settings, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - _DERIVED.get(name, set())
    out = {}
    for k, v in values.items():
        if k not in names:
            raise RecipeError(f"{where}: unknown key {name}.{k}{_closest(str(k), names)}")
        if name == "model" and k == "encoder":
            out[k] = _validate_section("model.encoder", v, _section_types()["model.encoder"], where)
            continue
        out[k] = _check_type(v, hints[k], f"{where}: {name}.{k}")
    return out


def parse_recipe(data: Mapping, kind: str, where: str = "<recipe>") -> Recipe:
    """Validate a recipe mapping (as read from a file) for a ``kind`` (teacher | student) run."""
    if not isinstance(data, Mapping):
        raise RecipeError(f"{where}: a recipe is a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    file_kind = data.pop("kind", kind)
    if file_kind != kind:
        cmd = "slsdk train" if file_kind == "teacher" else "slsdk distill"
        raise RecipeError(f"{where}: this is a {file_kind} recipe (kind: {file_kind}); use it with `{cmd} --config`")
    valid = SECTIONS[kind]
    types_ = _section_types()
    sections = {}
    for name, values in data.items():
        if name not in valid:
            other = next((k for k, v in SECTIONS.items() if name in v and k != kind), None)
            hint = (f"; section {name!r} belongs to {other} recipes" if other else _closest(str(name), valid))
            if name == "train" and kind == "student":
                hint += " (a student recipe sets optimisation in 'distill', which takes every train field)"
            raise RecipeError(f"{where}: unknown section {name!r}{hint}")
        sections[name] = _validate_section(name, values or {}, types_[name], where)
    recipe = Recipe(kind, sections, where)
    try:   # the dataclasses' own checks (ranges, choices) with the file named
        for name in valid:
            if name == "student":
                types_["student"](num_classes=2, **sections.get("student", {}))
            else:
                recipe.build(name)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {e}") from None
    return recipe


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
MAX_RECIPE_CHARS = 1 << 20      # a recipe is a page of settings; a larger file is not one


def _unique(pairs, line) -> dict:
    """A mapping from ``pairs``, refusing a key given twice (YAML and JSON would silently keep the last)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise RecipeError(f"{'' if line is None else f':{line}'}: the key {k!r} is given twice; keep one")
        out[k] = v
    return out


def _load_yaml(text: str):
    class _Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node):
        loader.flatten_mapping(node)
        pairs = []
        for k, v in node.value:
            key = loader.construct_object(k, deep=True)
            if any(key == seen for seen, _ in pairs):
                raise RecipeError(f":{k.start_mark.line + 1}: the key {key!r} is given twice; keep one")
            pairs.append((key, loader.construct_object(v, deep=True)))
        return dict(pairs)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=_Loader)   # noqa: S506 - a SafeLoader subclass: plain data only


RECIPES_DIR = Path(__file__).with_name("recipes")   # the shipped recipes (package data)


@dataclass(frozen=True)
class ShippedRecipe:
    """A recipe file shipped with slsdk: its name (the file's stem), kind and one-line description."""

    name: str
    path: Path
    kind: str          # teacher (slsdk train) | student (slsdk distill)
    description: str   # the first comment line of the file

    @property
    def command(self) -> str:
        return "slsdk train" if self.kind == "teacher" else "slsdk distill"


def _shipped(path: Path) -> ShippedRecipe:
    text = path.read_text(encoding="utf-8")
    description = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")), "")
    return ShippedRecipe(path.stem, path, yaml.safe_load(text)["kind"], description)


def shipped_recipes(kind: str | None = None) -> list[ShippedRecipe]:
    """The recipes shipped with slsdk, by name (only those of ``kind`` -- teacher | student -- if given)."""
    found = [_shipped(p) for p in sorted(RECIPES_DIR.glob("*.yaml"))]
    return [r for r in found if kind is None or r.kind == kind]


def find_recipe(config: str | Path, kind: str | None = None) -> Path:
    """The recipe file ``--config`` names: a file that exists, else the shipped recipe of that name.

    A name is a shipped file's stem, with or without ``.yaml``; an unknown name is an error listing the shipped
    recipes of ``kind`` (teacher | student).
    """
    path = Path(config)
    if path.is_file():
        return path
    by_name = {r.name: r.path for r in shipped_recipes()}
    name = path.name.removesuffix(".yaml")
    if path.parent != Path("."):   # a path, not a name
        shipped = f"; the shipped recipe of that name is --config {name}" if name in by_name else ""
        raise RecipeError(f"{path}: recipe file not found{shipped}")
    if name in by_name:
        return by_name[name]
    names = [r.name for r in shipped_recipes(kind)] or list(by_name)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean --config {close[0]}? " if close else ""
    listing = "slsdk distill --list-configs" if kind == "student" else "slsdk train --list-configs"
    raise RecipeError(f"{path}: no such recipe file here and no shipped recipe of that name; {hint}"
                      f"shipped recipes: {', '.join(names)} (`{listing}`)")


def _read_recipe_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text") from None
    if len(text) > MAX_RECIPE_CHARS:
        raise RecipeError(f"{path}: {len(text)} characters; a recipe holds at most {MAX_RECIPE_CHARS}")
    return text


def load_recipe(path: str | Path, kind: str) -> Recipe:
    """Read and validate a recipe: a YAML (``.yaml``/``.yml``) or JSON file, or a shipped recipe's name."""
    found = find_recipe(path, kind)
    text = _read_recipe_text(found)
    shown = str(found) if found == Path(path) else found.stem   # errors name a shipped recipe by its name
    is_json = found.suffix.lower() == ".json"
    try:
        if is_json:
            data = json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, None))
        else:
            data = _load_yaml(text)   # plain data only (SafeLoader), a key given twice is an error
    except RecipeError as e:
        raise RecipeError(f"{shown}{e}") from None
    except Exception as e:  # noqa: BLE001 - yaml/json syntax errors of any kind become one line
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else (f":{e.lineno}" if hasattr(e, "lineno") else "")
        raise RecipeError(f"{shown}{line}: not valid {'JSON' if is_json else 'YAML'}: "
                          f"{getattr(e, 'problem', None) or e}") from None
    return parse_recipe(data or {}, kind, shown)


def merge(base: Recipe, overrides: Mapping[str, Mapping[str, Any]]) -> Recipe:
    """``base`` with ``{section: {field: value}}`` laid over it (validated again)."""
    sections = {k: dict(v) for k, v in base.sections.items()}
    for name, vals in overrides.items():
        if name == "model.encoder":
            name, vals = "model", {"encoder": vals}
        sec = sections.setdefault(name, {})
        for k, v in vals.items():   # nested sections (model.encoder) merge key by key
            sec[k] = {**sec[k], **v} if isinstance(v, Mapping) and isinstance(sec.get(k), Mapping) else v
    return parse_recipe({"kind": base.kind, **sections}, base.kind, base.source or "<command line>")


def complete(recipe: Recipe) -> dict:
    """Every field of every section of ``recipe`` (defaults filled in): what ``--print-config`` writes."""
    out: dict[str, Any] = {"kind": recipe.kind}
    for name in SECTIONS[recipe.kind]:
        if name == "student":
            d = _section_types()["student"](num_classes=2, **recipe.sections.get("student", {})).to_dict()
        else:
            obj = recipe.build(name)
            d = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        for k in _DERIVED.get(name, ()):
            d.pop(k, None)
        out[name] = _plain(d)
    return out


def _plain(v):
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def dump_recipe(data: Mapping, fmt: str = "yaml") -> str:
    """A recipe mapping as YAML (default) or JSON text."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
