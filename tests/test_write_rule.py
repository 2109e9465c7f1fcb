"""One write rule, in one place (issue 28): every write and deletion in the package goes through slsdk.fileio.

* a scan of the package's source (AST, not text) fails on any direct write, rename or deletion outside
  ``slsdk/fileio/``; a library saver (``onnx.save``, ``savefig``, ``torch.save`` ...) is allowed only into a
  path fileio handed out (``with atomic_path(..) as tmp`` / ``atomic_dir`` / ``temp_dir``, and names made from
  it) or into the file object of an ``atomic_write`` callback;
* the rule itself: a file slsdk did not write is never replaced or removed (by content, not by name), a
  symbolic link is never replaced, the command's input is never written, ``--overwrite`` is needed for
  slsdk's own earlier output, leftovers are only slsdk's own names of dead processes, one run per output;
* kill points: an overwrite killed between its renames leaves the old folder, put back by the next write.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slsdk import fileio
from slsdk.fileio import OutputExistsError, OutputLockedError
from cli_errors import one_line_error

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = [ROOT / d for d in ("sdk", "convert", "quantize", "demos")]

# direct file-system writes and deletions: module functions and methods
DIRECT = {"os.replace", "os.rename", "os.renames", "os.remove", "os.unlink", "os.rmdir", "os.removedirs",
          "os.truncate", "shutil.rmtree", "shutil.move", "shutil.copy", "shutil.copy2", "shutil.copyfile",
          "shutil.copytree", "shutil.copyfileobj", "tempfile.mkstemp", "tempfile.mkdtemp",
          "tempfile.NamedTemporaryFile", "tempfile.TemporaryDirectory"}
METHODS = {"write_text", "write_bytes", "unlink", "rmdir", "rename", "touch", "symlink_to", "hardlink_to"}
# library savers that take a path or file object as their first argument (or ``file=`` / ``f=``)
SAVERS = {"save", "savez", "savez_compressed", "savefig", "save_file", "tofile", "imwrite"}
SAVER_MODULES = {"np", "numpy", "torch", "onnx", "Image", "safetensors"}
FILEIO_CMS = {"atomic_path", "atomic_dir", "temp_dir", "TempDir"}
FILEIO_WRITERS = {"atomic_write"}


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _open_mode(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


class _Scope(ast.NodeVisitor):
    """One function (or module) body: which names hold fileio-made paths, and the offending calls."""

    def __init__(self, path: Path, func, safe_params: set[str]):
        self.path, self.func = path, func
        self.safe = set(safe_params)
        self.offences: list[str] = []
        body = func.body if hasattr(func, "body") and isinstance(func.body, list) else [func.body]
        self._taint(body)
        for stmt in body:
            self.visit(stmt)

    def _taint(self, body) -> None:
        """Names bound by ``with <fileio cm> as NAME`` and names assigned from them (to a fixpoint)."""
        nodes = [n for stmt in body for n in ast.walk(stmt)]
        for n in nodes:
            if isinstance(n, (ast.With, ast.AsyncWith)):
                for item in n.items:
                    if (isinstance(item.context_expr, ast.Call)
                            and _dotted(item.context_expr.func).split(".")[-1] in FILEIO_CMS and item.optional_vars):
                        self.safe |= _names(item.optional_vars)
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and \
                    _dotted(n.value.func).split(".")[-1] in FILEIO_CMS:
                for t in n.targets:
                    self.safe |= _names(t)
        changed = True
        while changed:
            changed = False
            for n in nodes:
                targets, value = ([], None)
                if isinstance(n, ast.Assign):
                    targets, value = n.targets, n.value
                elif isinstance(n, (ast.AnnAssign, ast.AugAssign)) and n.value is not None:
                    targets, value = [n.target], n.value
                elif isinstance(n, (ast.For, ast.comprehension)):
                    targets, value = [n.target], n.iter
                if value is not None and _names(value) & self.safe:
                    new = set().union(*(_names(t) for t in targets)) - self.safe
                    if new:
                        self.safe |= new
                        changed = True

    def _ok(self, node) -> bool:
        return node is not None and bool(_names(node) & self.safe)

    def _flag(self, node, what: str) -> None:
        self.offences.append(f"{self.path.relative_to(ROOT)}:{node.lineno}: {what}")

    def visit_FunctionDef(self, node):  # nested functions are scanned as scopes of their own
        return

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Call(self, node: ast.Call):
        name = _dotted(node.func)
        last = name.split(".")[-1]
        first = node.args[0] if node.args else None
        target = first if first is not None else next(
            (k.value for k in node.keywords if k.arg in ("file", "f", "fname", "path", "filename")), None)
        if name in DIRECT:
            if not self._ok(target):
                self._flag(node, name)
        elif name == "torch.onnx.export":      # writes only when given a file (args[2] or f=)
            f = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "f"), None)
            if f is not None and not (isinstance(f, ast.Constant) and f.value is None) and not self._ok(f):
                self._flag(node, name)
        elif name == "open" or name.endswith(".open") and last == "open" and name.split(".")[0] in ("io", "os"):
            if set(_open_mode(node)) & set("wax+") and not self._ok(target):
                self._flag(node, f"open(..., {_open_mode(node)!r})")
        elif isinstance(node.func, ast.Attribute) and last in METHODS:
            if not self._ok(node.func.value):
                self._flag(node, f".{last}()")
        elif last in SAVERS and isinstance(node.func, ast.Attribute):
            owner = _dotted(node.func.value)
            path_arg = node.args[1] if last == "save" and owner in ("torch",) and len(node.args) > 1 else target
            if last == "save" and owner not in SAVER_MODULES and not self._ok(target):
                # an object's own .save(path) (mlmodel.save, prog.save, PIL image.save)
                self._flag(node, f"{name}()")
            elif last != "save" and not self._ok(target):
                self._flag(node, f"{name}()")
            elif owner == "torch" and not self._ok(path_arg):
                self._flag(node, f"{name}()")
            elif owner in ("np", "numpy", "onnx") and not self._ok(target):
                self._flag(node, f"{name}()")
        self.generic_visit(node)


def _callback_params(tree) -> dict[ast.AST, set[str]]:
    """Functions and lambdas handed to ``atomic_write`` (as an argument, or by name): their first parameter
    is the temp file fileio opened."""
    out: dict[ast.AST, set[str]] = {}
    defs = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and _dotted(n.func).split(".")[-1] in FILEIO_WRITERS:
            for a in n.args[1:2] + [k.value for k in n.keywords if k.arg == "write"]:
                fn = a if isinstance(a, ast.Lambda) else defs.get(a.id) if isinstance(a, ast.Name) else None
                if fn is not None and fn.args.args:
                    out[fn] = {fn.args.args[0].arg}
    return out


def scan(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    params = _callback_params(tree)
    offences = []
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    for s in scopes:
        offences += _Scope(path, s, params.get(s, set())).offences
    return offences


def _package_files() -> list[Path]:
    files = []
    for d in PACKAGE:
        files += [p for p in d.rglob("*.py") if "node_modules" not in p.parts]
    return sorted(p for p in files if ROOT / "sdk" / "fileio" not in p.parents)


def test_the_scan_finds_what_it_must():
    src = textwrap.dedent('''
        import os, shutil, numpy as np, torch
        from slsdk.fileio import atomic_path, atomic_write
        def bad(p, model, fig):
            p.write_text("x"); os.replace(p, p); shutil.rmtree(p); open(p, "wb"); np.save(p, 1)
            torch.save({}, p); fig.savefig(p); model.save(str(p)); p.unlink()
        def good(p, model, fig, d):
            with atomic_path(p) as tmp:
                model.save(str(tmp))
                part = tmp.with_suffix(".x")
                np.save(part, 1)
            atomic_write(p, lambda f: torch.save({}, f))
            open(p, "rb"); d.replace("a", "b")
        ''')
    f = ROOT / "tests" / "_scan_probe.py"
    try:
        f.write_text(src)
        found = scan(f)
    finally:
        f.unlink()
    assert len(found) == 9, found
    assert all(":5:" in x or ":6:" in x for x in found), found


def test_every_write_in_the_package_goes_through_fileio():
    offences = [o for f in _package_files() for o in scan(f)]
    assert not offences, "direct writes outside slsdk.fileio:\n" + "\n".join(offences)


# ------------------------------------------------------------------------------------------------ the rule
def test_a_users_file_is_never_replaced_nor_removed(tmp_path):
    mine = tmp_path / "vocab.json"
    mine.write_text("mine")
    for kw in ({}, {"overwrite": True}):
        with pytest.raises(OutputExistsError, match="slsdk did not write it"):
            fileio.atomic_write_text(mine, "x", **kw)
    with pytest.raises(OutputExistsError, match="did not write it"):
        fileio.remove(mine)
    # same name, bytes slsdk wrote: proven by the ledger; replaced only with overwrite
    ours = fileio.atomic_write_text(tmp_path / "a.json", "1")
    fileio.forget_writes()                              # as a later process sees it
    with pytest.raises(OutputExistsError, match="--overwrite"):
        fileio.atomic_write_text(ours, "2")
    fileio.atomic_write_text(ours, "2", overwrite=True)
    # the user edits slsdk's file: it is theirs now
    fileio.forget_writes()
    ours.write_text("edited")
    with pytest.raises(OutputExistsError, match="did not write it"):
        fileio.atomic_write_text(ours, "3", overwrite=True)
    assert mine.read_text() == "mine" and ours.read_text() == "edited"


def test_links_and_inputs_are_never_written(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        fileio.atomic_write_text(link, "x", overwrite=True)
    d = tmp_path / "d"
    d.mkdir()
    dlink = tmp_path / "dlink"
    dlink.symlink_to(d)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        with fileio.atomic_dir(dlink, replace=True):
            pass
    data = tmp_path / "data"
    data.mkdir()
    (data / "annotations.csv").write_text("a")
    with fileio.reading(data):
        with pytest.raises(OutputExistsError, match="input"):
            fileio.check_output(data)
        with pytest.raises(OutputExistsError, match="input"):
            fileio.atomic_write_text(data / "annotations.csv", "x", overwrite=True)
        with pytest.raises(OutputExistsError, match="input"):
            fileio.check_output(tmp_path)            # the output would hold the input
    assert link.is_symlink() and dlink.is_symlink() and target.read_text() == "keep"
    assert (data / "annotations.csv").read_text() == "a"


def test_leftovers_only_slsdk_names_of_dead_processes(tmp_path):
    dead = 2 ** 22 + 777
    ours = tmp_path / f".vocab.json.{dead}-0123abcd.slsdk-tmp"
    ours.write_text("x")
    live = tmp_path / f".vocab.json.{os.getpid()}-0123abcd.slsdk-tmp"
    live.write_text("x")
    user_tmp = tmp_path / ".vocab.json.tmp"                 # a user's file with a temp-like name
    user_tmp.write_text("mine")
    old = (tmp_path / ".metrics.jsonl.backup01.old")        # a user's folder, matched by older slsdk
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "f").write_text("mine")
    unmarked = tmp_path / f".metrics.jsonl.{dead}-0123abcd.slsdk-old"   # right name, no owner mark
    (unmarked / "b").mkdir(parents=True)
    os.utime(user_tmp, (1, 1))
    fileio.atomic_write_text(tmp_path / "vocab.json", "{}")
    fileio.atomic_write_text(tmp_path / "metrics.jsonl", "")
    assert not ours.exists() and live.exists()
    assert user_tmp.read_text() == "mine" and (old / "sub" / "f").read_text() == "mine" and unmarked.is_dir()


_LOCK_HOLDER = """
import sys, time
from slsdk import fileio
with fileio.output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_one_run_per_output_and_a_dead_holders_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"in use by slsdk process {p.pid}"):
            with fileio.output_lock(out):
                pass
    finally:
        p.kill()
        p.wait()
    lock = tmp_path / ".run.slsdk-lock"
    assert lock.exists()                        # killed: the file stays, the lock does not
    r = subprocess.run([sys.executable, "-c", "from slsdk import fileio\nwith fileio.output_lock('run'): pass"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of slsdk process {p.pid}, which is gone" in r.stderr
    assert not lock.exists()


_KILL_BETWEEN = """
import os, sys
from pathlib import Path
from slsdk import fileio
fileio.folders._exchange = lambda a, b: False   # a file system without RENAME_EXCHANGE
def hook(point, path):
    if point == "between-renames":
        os._exit(9)
fileio.set_write_hook(hook)
with fileio.atomic_dir(Path(sys.argv[1]), replace=True) as w:
    (w / "model.onnx").write_text("new")
"""


def test_an_overwrite_killed_between_its_renames_leaves_the_old_folder(tmp_path):
    b = tmp_path / "bundle"
    with fileio.atomic_dir(b) as w:
        (w / "model.onnx").write_text("old")
    r = subprocess.run([sys.executable, "-c", _KILL_BETWEEN, str(b)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    assert not b.exists()                       # killed exactly between the two renames ...
    fileio.clean_stale(tmp_path)                # ... the next write there puts the old one back
    assert (b / "model.onnx").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    # with RENAME_EXCHANGE (Linux) the swap is one step: a kill just before it leaves the old folder
    with fileio.atomic_dir(b, replace=True) as w:
        (w / "model.onnx").write_text("new")
    assert (b / "model.onnx").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_cut_append_stays_slsdks_log(tmp_path):
    log = fileio.atomic_write_text(tmp_path / "metrics.jsonl", '{"epoch": 1}\n')
    fileio.append_text(log, '{"epoch": 2}\n')
    with open(log, "a") as f:                    # a kill in the middle of the next append
        f.write('{"epo')
    fileio.forget_writes()
    assert fileio.is_ours(log)
    lines = [json.loads(x) for x in (tmp_path / fileio.LEDGER).read_text().splitlines()]
    assert [e.get("log") for e in lines if e.get("name") == "metrics.jsonl"] == [None, True, True]


def test_the_ledger_is_appended_and_compacted(tmp_path):
    for i in range(300):
        fileio.atomic_write_text(tmp_path / f"clip{i % 3}.json", str(i))
    ledger = tmp_path / fileio.LEDGER
    assert len(ledger.read_text().splitlines()) < 60          # compacted: at most two lines per name, and a header
    fileio.forget_writes()
    assert all(fileio.is_ours(tmp_path / f"clip{k}.json") for k in range(3))


# ------------------------------------------------------------------------------------------------ the CLI, as a user
def _slsdk(args, cwd, timeout=900):
    env = {**os.environ, "COLUMNS": "2000", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links as their target) -> its bytes: the user's files, byte for byte."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = b"-> " + os.readlink(p).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def user(tmp_path_factory, tiny_student):
    """A user's folder: a quick synthetic data set DATA and a student checkpoint, made with the CLI."""
    from slsdk.train.checkpoint import save_checkpoint

    cwd = tmp_path_factory.mktemp("user")
    r = _slsdk(["data", "synth", "DATA", "--quick"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    m = tiny_student(5)
    save_checkpoint(cwd / "student.pt", kind="student", config=m.config.to_dict(),
                    vocab=["<blank>", "A", "B", "C", "D"], model=m.state_dict())
    return cwd


def test_cli_never_writes_onto_its_input_nor_a_users_file(user):
    before = _tree(user / "DATA")
    # pretrain onto the labels: refused before training
    one_line_error(_slsdk(["pretrain", "DATA", "-o", "DATA/annotations.csv", "--steps", "1"], user),
             "DATA/annotations.csv", "input")
    one_line_error(_slsdk(["pretrain", "DATA", "-o", "DATA/annotations.csv", "--steps", "1", "--overwrite"], user),
             "DATA/annotations.csv")
    # prepare into the data set itself, three times: refused each time, DATA unchanged
    for _ in range(3):
        one_line_error(_slsdk(["data", "prepare", "DATA", "-o", "DATA", "--crop", "full", "--size", "32"], user),
                 "DATA", "input")
    assert _tree(user / "DATA") == before


def test_cli_overwrite_replaces_only_slsdks_own_outputs(user):
    cwd = user
    # a folder M that was never a cache: --overwrite does not touch it
    (cwd / "M" / "clips").mkdir(parents=True)
    (cwd / "M" / "clips" / "mine.npy").write_bytes(b"mine")
    (cwd / "M" / "index.json").write_text('{"mine": 1}')
    m_before = _tree(cwd / "M")
    one_line_error(_slsdk(["data", "prepare", "DATA", "-o", "M", "--overwrite", "--crop", "full", "--size", "32"], cwd), "M")
    assert _tree(cwd / "M") == m_before
    # a run folder holding the user's vocab.json / metrics.jsonl: --resume and --overwrite refuse, before training
    (cwd / "RUN").mkdir()
    (cwd / "RUN" / "vocab.json").write_text('{"mine": true}')
    (cwd / "RUN" / "metrics.jsonl").write_text('{"mine": true}\n')
    run_before = _tree(cwd / "RUN")
    for flag in ("--resume", "--overwrite"):
        one_line_error(_slsdk(["train", "DATA", "-o", "RUN", flag, "--epochs", "1"], cwd), "RUN", "vocab.json",
                 "did not write")
    assert _tree(cwd / "RUN") == run_before
    # eval -o DIR holding the user's dev.stm: refused before decoding, even with --overwrite
    (cwd / "EV").mkdir()
    (cwd / "EV" / "dev.stm").write_text("mine\n")
    for extra in ([], ["--overwrite"]):
        one_line_error(_slsdk(["eval", "model", "student.pt", "DATA", "--split", "dev", "-o", "EV", *extra], cwd),
                 "EV/dev.stm")
    assert (cwd / "EV" / "dev.stm").read_text() == "mine\n"
    # bench -o DIR holding the user's bench.json: refused before timing
    (cwd / "B" / "x").mkdir(parents=True)
    (cwd / "B" / "x" / "manifest.json").write_text("{}")
    (cwd / "BENCH").mkdir()
    (cwd / "BENCH" / "bench.json").write_text("mine")
    one_line_error(_slsdk(["bench", "--bundles", "B", "-o", "BENCH", "--overwrite"], cwd), "BENCH/bench.json")
    assert (cwd / "BENCH" / "bench.json").read_text() == "mine"
    # bench --data nosuch: one line, not an IndexError
    one_line_error(_slsdk(["bench", "--data", "nosuch", "--bundles", "B"], cwd), "nosuch")


def test_cli_prepare_resumes_rebuilds_a_cut_clip_and_notices_an_edited_source(user, tmp_path):
    import shutil

    import numpy as np

    cwd = tmp_path
    shutil.copytree(user / "DATA", cwd / "DATA")
    args = ["data", "prepare", "DATA", "-o", "C", "--crop", "full", "--size", "32"]
    r = _slsdk(args, cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    clips = sorted((cwd / "C" / "clips").glob("*.npy"))
    shapes = {p.name: np.load(p).shape for p in clips}
    cut = clips[0]
    with open(cut, "r+b") as f:
        f.truncate(5000)
    # the source of another clip edited in place, same size and mtime
    index = json.loads((cwd / "C" / "index.json").read_text())
    rec = next(r for r in index["clips"] if Path(r["file"]).name == clips[1].name)
    src = Path(rec["source"]["path"])
    st = src.stat()
    data = bytearray(src.read_bytes())
    data[-20] ^= 0xFF
    src.write_bytes(bytes(data))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = _slsdk(args, cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"2 prepared, {len(clips) - 2} kept from before" in r.stdout, r.stdout
    assert {p.name: np.load(p).shape for p in clips} == shapes
    assert not [p for p in (cwd / "C" / "clips").iterdir() if ".slsdk-tmp" in p.name]


_HOLD = """
import sys, time
from slsdk import fileio
with fileio.output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_cli_two_runs_into_one_output_the_second_isone_line_error(user):
    p = subprocess.Popen([sys.executable, "-c", _HOLD, "C2"], cwd=user, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        one_line_error(_slsdk(["data", "prepare", "DATA", "-o", "C2", "--crop", "full", "--size", "32"], user),
                 "C2", f"in use by slsdk process {p.pid}")
        one_line_error(_slsdk(["train", "DATA", "-o", "C2", "--epochs", "1"], user), f"in use by slsdk process {p.pid}")
    finally:
        p.kill()
        p.wait()
    assert not (user / "C2").exists()


def test_cli_convert_never_replaces_a_link(user):
    cwd = user
    r = _slsdk(["convert", "student.pt", "-t", "onnx", "-o", "real"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    (cwd / "LINK").symlink_to("real")
    before = _tree(cwd / "real")
    one_line_error(_slsdk(["convert", "student.pt", "-t", "onnx", "-o", "LINK", "--overwrite"], cwd), "LINK", "link")
    assert (cwd / "LINK").is_symlink() and _tree(cwd / "real") == before


def test_cli_one_line_errors_where_tracebacks_were(user, tmp_path):
    cwd = tmp_path
    import shutil

    shutil.copytree(user / "DATA", cwd / "DATA")
    # a cache whose index.json is a JSON list
    (cwd / "C" / "clips").mkdir(parents=True)
    (cwd / "C" / "index.json").write_text("[1, 2]")
    import numpy as np

    np.save(cwd / "C" / "clips" / "a.npy", np.zeros((4, 8, 8, 3), np.uint8))
    (cwd / "C" / "annotations.csv").write_text("id,video,signer,split,glosses\na,clips/a.npy,s,train,A\n")
    one_line_error(_slsdk(["train", "C", "-o", "R", "--epochs", "1"], cwd), "C/index.json", "not an slsdk prepared-cache")
    one_line_error(_slsdk(["pretrain", "DATA", "--steps", "0"], cwd), "steps must be >= 1")
    one_line_error(_slsdk(["train", "DATA", "-o", "R", "--image-size", "0", "--epochs", "1"], cwd), "image_size")
    # a recipe whose learning rate makes the loss NaN: one line, and no half-made run folder left behind
    (cwd / "lr.yaml").write_text("kind: teacher\ntrain:\n  lr: 1.0e30\n  epochs: 1\n")
    one_line_error(_slsdk(["train", "DATA", "-o", "R", "--config", "lr.yaml"], cwd), "non-finite loss", "lower lr")
    assert not (cwd / "R").exists()


def test_cli_outputs_have_the_users_permissions_and_data_show_reads_a_cache(user, tmp_path):
    cwd = tmp_path
    import shutil
    import stat

    shutil.copytree(user / "DATA", cwd / "DATA")
    r = _slsdk(["pretrain", "DATA", "-o", "w.safetensors", "--steps", "1"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    mask = os.umask(0)
    os.umask(mask)
    for name in ("w.safetensors", "w.safetensors.json"):
        assert stat.S_IMODE((cwd / name).stat().st_mode) == 0o666 & ~mask, name     # not mkstemp's 0600
    r = _slsdk(["data", "prepare", "DATA", "-o", "C", "--crop", "full", "--size", "32"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _slsdk(["data", "show", "C", "--json"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert all(not sp["unreadable"] and sp["frames"] for sp in summary["splits"]), summary
