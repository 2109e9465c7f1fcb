"""The package's import layers, read off the source (module-level and function-level imports alike).

Bottom (stdlib / numpy / PyAV): the targets table, the numpy preprocessing, CTC decoding, the bundle, errors,
file writing, WER scoring and the video reader. Serving (``slsdk.runtime``) imports only the bottom -- the one
door to the models is the torch backend's ``open_checkpoint``, imported only when that backend is chosen.
Building: data < models < train < quantize < convert, each importing only what is below it (and serving code:
the backends conversion and calibration measure through, the hand cropper data preparation uses). Apps (CLI, bench, demos) may import anything.
The package's ``__init__`` (``slsdk``) is the torch-free public facade over the bottom and serving names.
A toolchain folder (``slsdk.toolchains.<name>``) spans the layers by file: its ``__init__`` (the provider) and
``inspect.py`` are bottom, ``backend.py`` is serving, ``int8.py`` is quantize and ``export.py`` is convert.
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
    ("bottom", 0, ["slsdk.errors", "slsdk.fileio", "slsdk.terminal", "slsdk.targets", "slsdk.preprocess",
                   "slsdk.decode", "slsdk.toolchains", "slsdk.version", "slsdk.model_names", "slsdk.quiet", "slsdk.tables",
                   "slsdk.bundle", "slsdk.eval", "slsdk.data.video", "slsdk.landmarks"]),
    ("serving", 1, ["slsdk.runtime"]),
    ("facade", 1, ["slsdk"]),   # the package's __init__: the torch-free public API (bottom and serving names)
    ("data", 2, ["slsdk.data"]),
    ("models", 3, ["slsdk.models"]),
    ("train", 4, ["slsdk.train"]),
    ("quantize", 5, ["slsdk.quantize"]),
    ("convert", 6, ["slsdk.convert"]),
    ("apps", 7, ["slsdk.cli", "slsdk.cli_common", "slsdk.cli_import", "slsdk.cli_data", "slsdk.cli_choices", "slsdk.bench", "slsdk.demos"]),
]
RANK = {g: r for g, r, _ in GROUPS}
# the files of a toolchain folder (slsdk.toolchains.<name>.<file>) that sit above the bottom layer
TOOLCHAIN_FILES = {"backend": "serving", "int8": "quantize", "export": "convert"}
# who may import whom (besides itself); the building side may use the serving code (the backends conversion
# measures with, the hand cropper data preparation crops with)
ALLOWED = {
    "bottom": {"bottom"},
    "serving": {"bottom"},
    "facade": {"bottom", "serving"},
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
    parts = module.split(".")
    if len(parts) == 4 and parts[:2] == ["slsdk", "toolchains"] and parts[3] in TOOLCHAIN_FILES:
        return TOOLCHAIN_FILES[parts[3]]
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
        if gs is None or gd is None or gs == gd:   # a module outside every layer: test_every_module_has_a_layer
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
    hits = [(s, d, f) for s, d, f, _ in es if group_of(s) in ("serving", "bottom")
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


def test_toolchain_files_sit_in_their_layers():
    """A toolchain's provider and inspector are bottom, its backend serving, its recipes and exporter building."""
    assert group_of("slsdk.toolchains") == group_of("slsdk.toolchains.registry") == "bottom"
    assert group_of("slsdk.toolchains.onnx") == group_of("slsdk.toolchains.onnx.inspect") == "bottom"
    assert group_of("slsdk.toolchains.onnx.proto") == "bottom"
    assert group_of("slsdk.toolchains.onnx.backend") == "serving"
    assert group_of("slsdk.toolchains.onnx.int8") == "quantize"
    assert group_of("slsdk.toolchains.executorch.export") == "convert"
    mods = modules()
    for name in ("onnx", "executorch", "coreml", "torch"):
        assert f"slsdk.toolchains.{name}" in mods and f"slsdk.toolchains.{name}.backend" in mods


# -- no branching on a target's, backend's or file suffix's name outside the table and the toolchains -------
OWNERS = ("sdk/targets.py", "sdk/toolchains/")       # where those names may be compared
BACKEND_NAMES = {"onnxruntime", "executorch", "coreml", "torch"}
SUFFIXES = {".onnx", ".ort", ".pte", ".mlpackage"}
# comparisons with a backend name or a suffix that legitimately remain outside the owners, each with its reason
ALLOWED_NAME_COMPARISONS = {
    # pickle globals named after the torch package, not the torch backend
    ("sdk/models/clip_torchscript.py", 'if module == "torch" and name in _TS_STORAGES:'):
        "a TorchScript archive's pickle names the torch module",
    ("sdk/models/torchfile.py", 'if module in ("torch", "torch.cuda", "torch.storage") and name.endswith("Storage"):'):
        "a checkpoint's pickle names the torch module",
    # the RNG states of a training checkpoint, keyed by library
    ("sdk/train/checkpoint.py", "state: dict[str, Any] = {"): "RNG states keyed by library (torch, numpy, python)",
    ("sdk/train/checkpoint.py", 'if "torch" in state:'): "RNG states keyed by library (torch, numpy, python)",
    # HTTP content types of the files the web demo serves
    ("demos/web/http_server.py", 'TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": '
                                 '"application/wasm", ".json": "application/json",'):
        "HTTP content types by file extension (the browser fetches model files)",
}
# still to move behind the providers (each names the change, reported to the coordinator); remove when done
PENDING_NAME_COMPARISONS: dict = {}


def _owned(rel: str) -> bool:
    return any(rel == o or (o.endswith("/") and rel.startswith(o)) for o in OWNERS)


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


def name_comparisons(path: Path) -> list[int]:
    """Lines that compare with a backend name or a model file suffix: ``==``/``!=``/``in`` with such a string,
    ``.startswith``/``.endswith`` of one, or a dict keyed by them."""
    names = BACKEND_NAMES | SUFFIXES
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            if any(set(_strings(side)) & names for side in (node.left, *node.comparators)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("startswith", "endswith"):
            if any(set(_strings(a)) & names for a in node.args):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)} & names:
                lines.append(node.lineno)
    return sorted(set(lines))


def _source_files():
    for folder in FOLDERS:
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield p.relative_to(ROOT).as_posix(), p


def test_no_branching_on_target_names():
    bad = []
    for rel, p in _source_files():
        if _owned(rel):
            continue
        bad += [f"{rel}:{n}" for n in target_branches(p)]
    assert not bad, "branches on a target's name outside slsdk.targets and the toolchains: " + ", ".join(bad)


def test_no_comparisons_with_backend_or_suffix_names():
    """Which backend runs a file and what its suffix means belong to the table and the toolchain providers."""
    bad, seen = [], set()
    for rel, p in _source_files():
        if _owned(rel):
            continue
        text = p.read_text(encoding="utf-8").splitlines()
        for n in name_comparisons(p):
            key = (rel, text[n - 1].strip())
            seen.add(key)
            if key not in ALLOWED_NAME_COMPARISONS and key not in PENDING_NAME_COMPARISONS:
                bad.append(f"{rel}:{n}: {key[1]}")
    assert not bad, ("comparisons with a backend name or a file suffix outside slsdk.targets and "
                     "slsdk.toolchains (ask the provider / the table instead):\n" + "\n".join(bad))
    stale = sorted(k for k in (*ALLOWED_NAME_COMPARISONS, *PENDING_NAME_COMPARISONS) if k not in seen)
    assert not stale, f"allow-list entries that no longer match a line (remove them): {stale}"


def test_the_branch_check_can_fail(tmp_path):
    p = tmp_path / "y.py"
    p.write_text('if tgt.name == "coreml":\n    pass\nx = {"onnx": 1, "ort": 2}.get(target)\n'
                 'if m.target in ("executorch-coreml", "coreml"):\n    pass\n', encoding="utf-8")
    assert sorted(target_branches(p)) == [1, 3, 4]


def test_the_name_check_can_fail(tmp_path):
    p = tmp_path / "z.py"
    p.write_text('if name == "onnxruntime":\n    pass\nok = path.suffix != ".ort"\n'
                 'if b in ("torch", "coreml"):\n    pass\nf.endswith(".pte")\nx = {".mlpackage": 1}\n'
                 'y = name.upper()\n', encoding="utf-8")
    assert name_comparisons(p) == [1, 3, 4, 6, 7]


@pytest.mark.parametrize("name", ["onnx", "ort", "executorch", "executorch-coreml", "coreml"])
def test_every_row_names_what_dispatches_on_it(name):
    """Each row's provider is registered, its exporter lives in the provider's folder and is one of the
    provider's, its backend and inspector resolve, its int8 recipe belongs to its family, its not-here reason
    is given where it cannot run (the columns are read, not decoration)."""
    from slsdk.quantize.recipes import get_recipe
    from slsdk.runtime.backends import Backend, backend_class, backend_names
    from slsdk.targets import get_target
    from slsdk.toolchains import get_provider, resolve

    t = get_target(name)
    provider = get_provider(t.toolchain)
    assert t.exporter in provider.exporters.values()
    assert t.exporter.startswith(f"slsdk.toolchains.{provider.name}.")
    assert callable(resolve(t.exporter))
    assert t.backend == provider.backend_name and t.backend in backend_names()
    cls = backend_class(t.backend)
    assert issubclass(cls, Backend) and cls.name == t.backend and cls is resolve(provider.backend)
    assert callable(resolve(provider.inspector))
    if t.int8_recipe:
        assert get_recipe(t.int8_recipe).family == t.int8_family
    assert ("int8" in t.precisions) == bool(t.int8_family)
    assert bool(t.platforms) == bool(t.not_here)
    if t.fidelity_writer:
        assert callable(resolve(t.fidelity_writer))


def test_backend_names_come_from_the_providers():
    from slsdk.runtime.backends import backend_class, backend_names

    assert backend_names() == ["onnxruntime", "executorch", "coreml", "torch"]
    assert all(backend_class(n).name == n for n in backend_names())
