"""Edits of an in-memory ONNX ``ModelProto`` shared by the exporter and the int8 recipes (no imports: the
caller has onnx loaded already)."""
from __future__ import annotations

import json
from typing import Mapping

__all__ = ["strip_debug_info", "set_metadata_props"]


def strip_debug_info(model) -> int:
    """Drop what a shipped model does not need: the exporter's per-node metadata (stack traces with the
    exporting machine's file paths, fx node names, class hierarchies: ~1 % of a Lite0 file), node doc strings and
    the graph's ``value_info`` (intermediate shapes, which runtimes infer at load). Model ``metadata_props``
    (the manifest essentials) and node names stay. Returns the bytes of serialized model saved."""
    before = model.ByteSize()
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]
    return before - model.ByteSize()


def set_metadata_props(model, meta: Mapping[str, str]) -> None:
    """Add/replace the model's ``metadata_props`` entries (values that are not strings as JSON)."""
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in meta.items():
        model.metadata_props.add(key=str(k), value=v if isinstance(v, str) else json.dumps(v))
