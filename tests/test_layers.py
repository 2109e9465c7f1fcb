"""The package's import layers, read off the source (module-level and function-level imports alike).

Bottom (stdlib / numpy / PyAV): the targets table, the numpy preprocessing, CTC decoding, the bundle, errors,
file writing, WER scoring and the video reader. Serving (``slsdk.runtime``) imports only the bottom -- the one
door to the models is the torch backend's ``open_checkpoint``, imported only when that backend is chosen.
Building: data < models < train < quantize < convert, each importing only what is below it (and serving code:
the backends conversion and calibration measure through, the hand cropper data preparation uses). Apps (CLI, bench, demos) may import anything.
No cycles between these groups. See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"sdk": "slsdk", "convert": "slsdk.convert", "quantize": "slsdk.quantize", "demos": "slsdk.demos"}

# (group, rank, module prefixes); a module belongs to the group of its longest matching prefix
GROUPS = [
    ("bottom", 0, ["slsdk", "slsdk.errors", "slsdk.fileio", "slsdk.terminal", "slsdk.targets", "slsdk.preprocess",
                   "slsdk.decode",
                   "slsdk.bundle", "slsdk.eval", "slsdk.data.video"]),
    ("serving", 1, ["slsdk.runtime"]),
    ("data", 2, ["slsdk.data"]),
    ("models", 3, ["slsdk.models"]),
    ("train", 4, ["slsdk.train"]),
    ("quantize", 5, ["slsdk.quantize"]),
    ("convert", 6, ["slsdk.convert"]),
    ("apps", 7, ["slsdk.cli", "slsdk.cli_import", "slsdk.bench", "slsdk.demos"]),
]
RANK = {g: r for g, r, _ in GROUPS}
# who may import whom (besides itself); the building side may use the serving code (the backends conversion
# measures with, the hand cropper data preparation crops with)
ALLOWED = {
    "bottom": {"bottom"},
    "serving": {"bottom"},
    "data": {"bottom", "serving"},
    "models": {"bottom", "serving", "data"},
    "train": {"bottom", "serving", "data", "models"},
    "quantize": {"bottom", "serving", "data", "models", "train"},
    "convert": {"bottom", "serving", "data", "models", "train", "quantize"},
    "apps": {g for g, _, _ in GROUPS},
}
# the torch backend's door from serving to the models: function-level only, in this one function
DOOR = {("slsdk.runtime.backends", "open_checkpoint", "slsdk.models.factory"),
        ("slsdk.runtime.backends", "open_checkpoint", "slsdk.models.model_io")}


def group_of(module: str) -> str | None:
    best, best_len = None, -1
    for g, _, prefixes in GROUPS:
        for p in prefixes:
            hit = module == p if p == "slsdk" else (module == p or module.startswith(p + "."))
            if hit and len(p) > best_len:
                best, best_len = g, len(p)
    return best


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in FOLDERS.items():
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT / folder).with_suffix("")
            if folder == "sdk" and rel.parts and rel.parts[0] in ("convert", "quantize", "demos"):
                continue
            parts = [x for x in rel.parts if x != "__init__"]
            out[".".join([pkg, *parts])] = p
    return out


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: set[str]):
    """``(imported slsdk module, enclosing function or None, line)`` for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and func is None else func
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, path, child)
                # `from pkg import sub` imports the submodule when there is one
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names]
            else:
                visit(child, f)
                continue
            for n in names:
                if n == "slsdk" or n.startswith("slsdk."):
                    found.append((n, func, child.lineno))
    visit(tree, None)
    return found


def edges():
    mods = modules()
    known = set(mods)
    return mods, [(m, target, func, line) for m, p in mods.items() for target, func, line in imports(m, p, known)]


def test_every_module_has_a_layer():
    mods = modules()
    assert len(mods) > 40
    missing = sorted(m for m in mods if group_of(m) is None)
    assert not missing, f"modules outside every layer (add them to GROUPS here and in docs/ARCHITECTURE.md): {missing}"


def test_imports_follow_the_layers():
    mods, es = edges()
    bad = []
    for src, dst, func, line in es:
        gs, gd = group_of(src), group_of(dst)
        if gd is None or gs == gd:
            continue
        if (src, func, dst) in DOOR:
            continue
        if gd not in ALLOWED[gs]:
            where = f"{mods[src].relative_to(ROOT)}:{line}" + (f" (in {func})" if func else "")
            bad.append(f"{where}: {gs} module {src} imports {gd} module {dst}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_runtime_imports_no_building_code():
    """The serving package reaches train/convert/quantize/models nowhere, the checkpoint door excepted."""
    _, es = edges()
    hits = [(s, d, f) for s, d, f, _ in es if s.startswith("slsdk.runtime")
            and group_of(d) in ("data", "models", "train", "quantize", "convert") and (s, f, d) not in DOOR]
    assert hits == []
    # the door exists and is function-level only
    assert {(s, f, d) for s, d, f, _ in es if (s, f, d) in DOOR} == DOOR


def test_no_cycles_between_layers():
    _, es = edges()
    graph = defaultdict(set)
    for src, dst, func, _ in es:
        if (src, func, dst) in DOOR:   # the one door (function-level, only when the torch backend is chosen)
            continue
        a, b = group_of(src), group_of(dst)
        if a and b and a != b:
            graph[a].add(b)
    seen, stack = set(), []

    def dfs(n):
        if n in stack:
            raise AssertionError(f"import cycle between layers: {' -> '.join(stack[stack.index(n):] + [n])}")
        if n in seen:
            return
        stack.append(n)
        for m in sorted(graph[n]):
            dfs(m)
        stack.pop()
        seen.add(n)

    for n in list(graph):
        dfs(n)


def test_the_checker_catches_a_violation(tmp_path):
    """The walker sees function-level imports (a check that cannot fail proves nothing)."""
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from slsdk.train.checkpoint import load_model\n", encoding="utf-8")
    found = imports("slsdk.runtime.x", p, set(modules()))
    assert found == [("slsdk.train.checkpoint", "f", 2)]
    assert group_of("slsdk.train.checkpoint") not in ALLOWED[group_of("slsdk.runtime.x")]
    assert group_of("slsdk.data.video") == "bottom" and group_of("slsdk.data.dataset") == "data"


# -- no branching on a target's name outside the table and the target's own modules --------------------
TARGET_MODULES = {"sdk/targets.py", "convert/export.py", "convert/onnx.py", "convert/executorch.py",
                  "convert/coreml.py"}


def _strings(node) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def _mentions_target(node) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and ("target" in n.id.lower() or n.id in ("tgt", "t")):
            return True
        if isinstance(n, ast.Attribute) and ("target" in n.attr.lower() or n.attr == "suffix"):
            return True
    return False


def target_branches(path: Path) -> list[int]:
    from slsdk.targets import TARGETS

    names = set(TARGETS)
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(set(_strings(s)) & names for s in sides) and any(_mentions_target(s) for s in sides
                                                                     if not _strings(s)):
                lines.append(node.lineno)
        else:  # {"coreml": ..., "executorch-coreml": ...}.get(target) / [...][target]
            table = key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                table, key = node.func.value, node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript):
                table, key = node.value, node.slice
            if isinstance(table, ast.Dict) and key is not None and _mentions_target(key):
                keys = {k.value for k in table.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                if keys & names:
                    lines.append(node.lineno)
    return lines


def test_no_branching_on_target_names():
    bad = []
    for folder in FOLDERS:
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel in TARGET_MODULES:
                continue
            bad += [f"{rel}:{n}" for n in target_branches(p)]
    assert not bad, "branches on a target's name outside slsdk.targets and the target's own modules: " + ", ".join(bad)


def test_the_branch_check_can_fail(tmp_path):
    p = tmp_path / "y.py"
    p.write_text('if tgt.name == "coreml":\n    pass\nx = {"onnx": 1, "ort": 2}.get(target)\n'
                 'if m.target in ("executorch-coreml", "coreml"):\n    pass\n', encoding="utf-8")
    assert sorted(target_branches(p)) == [1, 3, 4]


@pytest.mark.parametrize("name", ["onnx", "ort", "executorch", "executorch-coreml", "coreml"])
def test_every_row_names_what_dispatches_on_it(name):
    """Each row's exporter resolves, its backend exists, its int8 recipe belongs to its family, its not-here
    reason is given where it cannot run (the columns are read, not decoration)."""
    from slsdk.quantize.recipes import get_recipe
    from slsdk.runtime.backends import BACKENDS
    from slsdk.targets import get_target, resolve

    t = get_target(name)
    assert callable(resolve(t.exporter))
    assert t.backend in BACKENDS
    if t.int8_recipe:
        assert get_recipe(t.int8_recipe).family == t.int8_family
    assert ("int8" in t.precisions) == bool(t.int8_family)
    assert bool(t.platforms) == bool(t.not_here)
    if t.fidelity_writer:
        assert callable(resolve(t.fidelity_writer))
