"""The manifest's JSON Schema (draft 2020-12), generated from the typed sections' field rules and
:data:`~slsdk.bundle.limits.LIMITS`. ``manifest.schema.json`` next to this module is its committed copy
(``python -m slsdk.bundle.schema`` prints it; a test keeps the two equal). Standard library only."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields

from slsdk.bundle.limits import (FIDELITY_ABS, FIDELITY_FLAGS, FIDELITY_NUMBERS, FIDELITY_TEXTS, FORMAT, LIMITS,
                                 MODEL_KINDS, BundleError, READABLE_FORMAT_VERSIONS, TEXT_CHARS)
from slsdk.bundle.manifest import REQUIRED
from slsdk.bundle.sections import SHAPE_RULE, CropConfig, InputSpec, StreamingSpec

SCHEMA_ID = "urn:slsdk:bundle-manifest:2"   # an identifier, not a download location
L = LIMITS


def _shape(symbolic: bool) -> dict:
    dim = {"type": "integer", "minimum": 1, "maximum": SHAPE_RULE["dim"]}
    if symbolic:
        items = {"anyOf": [dim, {"const": -1}, {"type": "string", "minLength": 1, "maxLength": SHAPE_RULE["dim_name"]},
                           {"type": "null"}]}
    else:
        items = dim
    return {"type": "array", "maxItems": SHAPE_RULE["max_dims"], "items": items}


def _field_schema(meta) -> dict:
    kind = meta["kind"]
    if kind == "int":
        s = {"type": "integer", "minimum": meta["lo"], "maximum": meta["hi"]}
    elif kind == "number":
        s = {"type": "number", "maximum": meta["hi"],
             **({"exclusiveMinimum": meta["lo"]} if meta["open_lo"] else {"minimum": meta["lo"]})}
    elif kind == "bool":
        s = {"type": "boolean"}
    elif kind == "choice":
        s = {"enum": list(meta["values"])}
    elif kind == "text":
        s = {"type": "string", "maxLength": meta["max"], **({"minLength": meta["min"]} if "min" in meta else {})}
    elif kind == "numbers":
        n, a = meta["count"], meta["abs"]
        s = {"type": "array", "minItems": n, "maxItems": n, "items": {"type": "number", "minimum": -a, "maximum": a}}
    elif kind == "ints":
        s = {"type": "array", "minItems": meta.get("min", 0), "maxItems": meta["max"],
             "items": {"type": "integer", "minimum": meta["lo"], "maximum": meta["hi"]}}
    elif kind == "section":
        s = section_schema(meta["of"])
    elif kind == "shape":
        s = _shape(meta["symbolic"])
    elif kind == "pair":
        s = {"type": "array", "minItems": 2, "maxItems": 2,
             "items": {"anyOf": [{"type": "integer", "minimum": meta["lo"], "maximum": meta["hi"]}, {"type": "null"}]}}
    elif kind == "list":
        s = {"type": "array", "minItems": meta["min"], "maxItems": meta["max"], "items": section_schema(meta["of"])}
    else:  # pragma: no cover - a new kind needs its schema here
        raise ValueError(f"no JSON Schema for field kind {kind!r}")
    if meta.get("nullable"):
        s = {"anyOf": [s, {"type": "null"}]}
    if meta.get("doc"):
        s = {"description": meta["doc"], **s}
    return s


def section_schema(cls, *, closed: bool = False) -> dict:
    """The schema of one section class (``closed``: no other keys; otherwise unknown keys are kept)."""
    props = {f.name: _field_schema(f.metadata) for f in fields(cls)}
    required = [f.name for f in fields(cls) if f.metadata.get("required")]
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return {"description": doc, "type": "object", "properties": props, "required": required,
            "additionalProperties": not closed}


def _input_schema() -> dict:
    s = section_schema(InputSpec)
    s["required"] = [k for k in s["required"] if k not in V1_MISSING]
    return s


V1_MISSING = ("resize_shorter", "crop")   # format version 1 manifests lack them (they get the v1 rule at load)


def _fidelity_schema() -> dict:
    number = {"anyOf": [{"type": "number", "minimum": -FIDELITY_ABS, "maximum": FIDELITY_ABS}, {"type": "null"}]}
    text = {"anyOf": [{"type": "string", "maxLength": TEXT_CHARS}, {"type": "null"}]}
    props = {**{k: number for k in FIDELITY_NUMBERS}, **{k: {"type": ["boolean", "null"]} for k in FIDELITY_FLAGS},
             **{k: text for k in FIDELITY_TEXTS}}
    return {"description": "what conversion measured against the float model", "type": "object",
            "properties": props, "propertyNames": {"maxLength": 256},
            "additionalProperties": {"anyOf": [{"type": ["number", "boolean", "null", "object", "array"]},
                                               {"type": "string", "maxLength": TEXT_CHARS}]}}


def manifest_schema() -> dict:
    """The JSON Schema of ``manifest.json`` (what :meth:`slsdk.bundle.Manifest.from_dict` accepts, less the
    cross-field rules: resize_shorter >= the crop, chunk_frames a multiple of output_stride, state names)."""
    text = {"type": "string", "maxLength": TEXT_CHARS}
    crop = section_schema(CropConfig, closed=True)
    preparation = {"type": "object", "properties": {
        "crop": {"anyOf": [crop, {"type": "null"}]},
        "size": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": L["resize_shorter"]}, {"type": "null"}]},
        "fps": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": L["fps"]}, {"type": "null"}]}}}
    props = {
        "format": {"const": FORMAT},
        "format_version": {"enum": list(READABLE_FORMAT_VERSIONS)},
        "slsdk_version": text, "created": text, "target": text, "precision": text,
        "model_kind": {"enum": list(MODEL_KINDS)},
        "model_file": {"type": "string", "minLength": 1, "maxLength": 1024},
        "vocab": {"type": "array", "minItems": 2, "maxItems": L["vocab"], "uniqueItems": True,
                  "items": {"type": "string", "maxLength": L["gloss_chars"]}},
        "input": _input_schema(),
        "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": L["fps"]},
        "streaming": section_schema(StreamingSpec),
        "model_config": {"type": "object"},
        "blank_id": {"const": 0},
        "crop": crop,
        "fidelity": _fidelity_schema(),
        "quantization": {"type": ["object", "null"]},
        "files": {"type": "object", "maxProperties": L["files"], "additionalProperties": {
            "type": "object", "required": ["sha256"],
            "properties": {"sha256": {"type": "string", "minLength": 64, "maxLength": 64},
                           "bytes": {"type": "integer", "minimum": 0, "maximum": L["file_bytes"]}}}},
        "extra": {"type": "object", "properties": {"preparation": preparation}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
        "title": "slsdk bundle manifest (manifest.json)", "type": "object",
        "properties": props, "required": ["format", "format_version", *REQUIRED], "additionalProperties": False,
        "if": {"properties": {"format_version": {"const": 2}}},
        "then": {"properties": {"input": {"required": list(V1_MISSING)}}},
    }


def schema_json() -> str:
    """``manifest.schema.json``'s text."""
    return json.dumps(manifest_schema(), indent=2) + "\n"


def schema_problems(manifest: Mapping) -> list[str]:
    """Where ``manifest`` (the JSON object of a manifest.json) breaks the schema, one line each (empty: valid).

    Needs the ``jsonschema`` package (``pip install jsonschema``; the test extra has it)."""
    try:
        from jsonschema import Draft202012Validator  # optional: only for checking files against the schema
    except ImportError:
        raise BundleError("checking a manifest against the schema needs the jsonschema package: "
                          "pip install jsonschema") from None
    validator = Draft202012Validator(manifest_schema())
    return [f"{'.'.join(str(k) for k in e.absolute_path) or '(manifest)'}: {e.message}"
            for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]


if __name__ == "__main__":
    print(schema_json(), end="")
