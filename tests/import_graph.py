"""slsdk's own import graph, read from the source (function-level imports included).

Used by tests/test_imports.py (no cycles) and runnable to print the architecture counts of a tree:

    python tests/import_graph.py [ROOT]     # ROOT: a checkout (default: this one)

prints the imports of slsdk modules (all / inside functions), the import cycles, the modules over 600 lines
and the largest classes.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# source folder -> import name (pyproject's package-dir)
PACKAGES = {"sdk": "slsdk", "convert": "slsdk.convert", "quantize": "slsdk.quantize", "demos": "slsdk.demos"}
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    importer: str     # module that imports
    imported: str     # slsdk module it names
    line: int
    in_function: bool


def modules(root: Path) -> dict[str, Path]:
    """Every slsdk module of the checkout at ``root``: import name -> file."""
    out = {}
    for folder, name in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            rel = path.relative_to(base).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = path
    return out


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that ``name`` is or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(root: Path) -> list[Import]:
    """Each import of an slsdk module in the checkout at ``root``."""
    mods = modules(root)
    known = set(mods)
    found = []
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_fn: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        in_fn.add(id(sub))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = _package_of(module, path).split(".")
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for n in dict.fromkeys(names):
                target = _resolve(n, known) if n.startswith("slsdk") else None
                if target and target != module:
                    found.append(Import(module, target, node.lineno, id(node) in in_fn))
    return found


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def long_modules(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules over ``limit`` lines: name -> lines."""
    out = {}
    for module, path in modules(root).items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out[module] = n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def largest_classes(root: Path, n: int = 5) -> list[tuple[str, int]]:
    """The ``n`` longest classes: (module.Class, lines)."""
    sizes = []
    for module, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                sizes.append((f"{module}.{node.name}", node.end_lineno - node.lineno + 1))
    return sorted(sizes, key=lambda s: -s[1])[:n]


def report(root: Path) -> str:
    found = imports(root)
    inside = [i for i in found if i.in_function]
    lines = [f"imports of slsdk modules: {len(found)}, inside functions: {len(inside)}"]
    cyc = cycles(found)
    lines.append(f"import cycles (function-level imports counted): {len(cyc)}")
    lines += [f"  {' <-> '.join(c)}" for c in cyc]
    long = long_modules(root)
    lines.append(f"modules over {MAX_LINES} lines: {len(long)}")
    lines += [f"  {m}: {k}" for m, k in long.items()]
    lines.append("largest classes: " + ", ".join(f"{c} {k}" for c, k in largest_classes(root)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))
