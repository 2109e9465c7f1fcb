"""Small hostile files never exhaust memory, text from bundles and datasets reaches the terminal as plain text,
and every refusal is one line naming the file (issue 28).

Each hostile file is made here (a 1 GiB one-line annotations.csv as a sparse file, a 600 KB zip member that
inflates to 600 MB written as a stream of zeros, ...) and the real CLI runs on it in a subprocess from a
temporary working folder with relative paths. Each case asserts: the exit code and one ``error:`` line naming
the file (and line) without a traceback, or success where that is right; the subprocess's peak RSS under the
bound stated below (``resource.getrusage(RUSAGE_CHILDREN)`` in a small wrapper process); nothing left in the
temp folder (``TMPDIR`` points at a folder of the test); the user's files byte-identical afterwards.

The bundles are built from a real tiny ONNX graph that emits its vocabulary in order, one gloss per chunk
(``_cycling_onnx``), so a vocabulary of hostile glosses is guaranteed to reach the live output.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slsdk import fileio
from slsdk.bundle import Manifest, default_input_spec, write_bundle, zip_bundle
from slsdk.data import readers
from slsdk.data.readers import AnnotationError
from cli_errors import one_line_error

# peak RSS bounds of one CLI process (measured on this code: data show ~50 MB, bundle inspect ~60 MB,
# train ~240 MB, run ~70 MB on the small clip); on main the same files took 7.4 GB (csv) and 4 GiB of /tmp (zip)
DATA_SHOW_RSS_MB = 200
TRAIN_RSS_MB = 700
INSPECT_RSS_MB = 250
RUN_RSS_MB = 600
GIB = 1 << 30
ZIP_BOMB_BYTES = 600 << 20       # what the hostile zip member inflates to (from ~600 KB)

HOSTILE = ["[/]", "[laughs]", "[link=file:///etc/passwd]click", "\x1b]0;pwned\x07", "[bold]b", "\x1b[31mred",
           ":smile:", "\u202eevil", "tab\there"]
VOCAB = ["<blank>", *HOSTILE]
FOLDER_HEADER = "id,video,signer,split,glosses\n"

_WRAPPER = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[2:])\n"
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
            "sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)\n")


# ------------------------------------------------------------------------------------------------ helpers
class Result:
    def __init__(self, rc: int, stdout: bytes, stderr: bytes, peak_mb: float):
        self.returncode, self.peak_mb = rc, peak_mb
        self.stdout_bytes, self.stderr_bytes = stdout, stderr
        self.stdout = stdout.decode("utf-8", "replace")
        self.stderr = stderr.decode("utf-8", "replace")


def _slsdk(args, cwd: Path, tmpdir: Path, *, input: bytes | None = None, stdout=subprocess.PIPE,
           preexec_fn=None, timeout: float = 600) -> Result:
    """``slsdk ARGS`` in ``cwd`` (TMPDIR=``tmpdir``) through the RSS wrapper; its peak RSS in MB."""
    peak = tmpdir.parent / f"peak-{os.getpid()}.txt"
    env = {**os.environ, "COLUMNS": "2000", "NO_COLOR": "1", "TMPDIR": str(tmpdir), "TERM": "dumb"}
    r = subprocess.run([sys.executable, "-c", _WRAPPER, str(peak), sys.executable, "-m", "slsdk.cli", *args],
                       cwd=cwd, env=env, input=input, stdout=stdout, stderr=subprocess.PIPE,
                       preexec_fn=preexec_fn, timeout=timeout)
    mb = int(peak.read_text()) / 1024
    peak.unlink()
    return Result(r.returncode, r.stdout or b"", r.stderr, mb)


def _left(tmp: Path) -> list[str]:
    """What is left in the test's TMPDIR, but for ``.ses`` (onnxruntime's import writes it there, not slsdk)."""
    return sorted(n for n in os.listdir(tmp) if n != ".ses")


def _snapshot(root: Path) -> dict:
    """Every file under ``root``: size, and its sha256 (files over 64 MiB: size, mtime and inode, so a sparse
    1 GiB file is not read whole)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            if st.st_size > 64 << 20:
                out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_blocks)
            else:
                out[str(p.relative_to(root))] = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def work(tmp_path):
    """``(cwd, tmpdir)``: the working folder the CLI runs in, and the TMPDIR it gets (must stay empty)."""
    cwd, tmp = tmp_path / "work", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    return cwd, tmp


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` followed by NUL bytes up to ``size`` (a hole: no disk, no memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def _cycling_onnx(path: Path, classes: int) -> Path:
    """A streaming graph: frames [1,8,3,32,32] + h [1,1] -> log_probs [1,2,classes] + h_out = h + 1. Chunk k
    scores class ``k mod (classes-1) + 1`` highest (blank never), so the vocabulary is emitted in order."""
    import onnx
    from onnx import TensorProto, helper

    def const(name, arr):
        a = np.asarray(arr, np.float32)
        return helper.make_tensor(name, TensorProto.FLOAT, list(a.shape), a.ravel().tolist())

    nodes = [helper.make_node("Add", ["h", "one"], ["h_out"]),
             helper.make_node("Mod", ["h", "glosses"], ["m"], fmod=1),
             helper.make_node("Add", ["m", "one"], ["k"]),
             helper.make_node("Sub", ["arange", "k"], ["d"]),
             helper.make_node("Abs", ["d"], ["a"]),
             helper.make_node("Mul", ["a", "minus"], ["row"]),
             helper.make_node("Unsqueeze", ["row", "axis1"], ["row3"]),
             helper.make_node("Concat", ["row3", "row3"], ["log_probs"], axis=1)]
    inits = [const("one", [[1.0]]), const("glosses", [[float(classes - 1)]]), const("arange", np.arange(classes)),
             const("minus", [[-20.0]]), helper.make_tensor("axis1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(nodes, "cycling",
                              [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1, 8, 3, 32, 32]),
                               helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1, 2, classes]),
                               helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 1])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _manifest(vocab) -> Manifest:
    n = len(vocab)
    return Manifest(
        target="onnx", precision="fp32", model_kind="student", model_file="model.onnx", vocab=list(vocab),
        input=default_input_spec(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), fps=25.0,
        streaming={"mode": "streaming", "chunk_frames": 8, "shift_frames": 8, "lookahead_frames": 0,
                   "output_stride": 4, "frame_shift_s": 0.16, "algorithmic_latency_s": 0.32,
                   "inputs": [{"name": "frames", "shape": [1, 8, 3, 32, 32], "dtype": "float32"},
                              {"name": "h", "shape": [1, 1], "dtype": "float32"}],
                   "outputs": [{"name": "log_probs", "shape": [1, 2, n], "dtype": "float32"},
                               {"name": "h_out", "shape": [1, 1], "dtype": "float32"}],
                   "state": [{"name": "h", "input": "h", "output": "h_out", "shape": [1, 1]}]},
        fidelity={"max_abs_err": 0.0})


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A bundle folder whose vocabulary is HOSTILE, its zip, and an 80-frame clip (10 chunks: every gloss)."""
    from slsdk.data.video import write_video

    d = tmp_path_factory.mktemp("assets")
    b = write_bundle(d / "B", _manifest(VOCAB), {"model.onnx": _cycling_onnx(d / "src.onnx", len(VOCAB))}).root
    z = zip_bundle(b, d / "B.zip")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (80, 48, 64, 3), dtype=np.uint8)
    clip = write_video(d / "clip.mp4", frames, fps=25)
    return {"bundle": b, "zip": z, "clip": clip}


def _place(assets, cwd: Path, *names: str) -> None:
    for n in names:
        src = assets[{"B": "bundle", "B.zip": "zip", "clip.mp4": "clip"}[n]]
        (shutil.copytree if src.is_dir() else shutil.copy)(src, cwd / n)


def _zeros_member(zf: zipfile.ZipFile, name: str, size: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    block = bytes(1 << 20)
    with zf.open(info, "w") as f:
        for _ in range(size // len(block)):
            f.write(block)


def _patch_sizes(zip_path: Path, member: str, size: int) -> None:
    """Make both headers of ``member`` (local and central directory) say ``size`` uncompressed bytes."""
    data = bytearray(zip_path.read_bytes())
    name = member.encode()
    for sig, off, name_len_off, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        i = data.find(sig)
        while i >= 0:
            (n,) = struct.unpack("<H", data[i + name_len_off:i + name_len_off + 2])
            if bytes(data[i + name_at:i + name_at + n]) == name:
                data[i + off:i + off + 4] = struct.pack("<I", size)
            i = data.find(sig, i + 4)
    zip_path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------------ annotations
def test_gigabyte_one_line_annotations_csv(work):
    """1 GiB annotations.csv whose second line never ends (a sparse file): `data show` and `train` read one
    bounded line, name the file and line, and stay small (main: 7.4 GB, then a traceback)."""
    cwd, tmp = work
    _sparse(cwd / "DATA" / "annotations.csv", FOLDER_HEADER.encode(), GIB)
    before = _snapshot(cwd)
    r = _slsdk(["data", "show", "DATA"], cwd, tmp)
    one_line_error(r, "DATA/annotations.csv:2:", f"longer than {readers.MAX_LINE_BYTES} bytes")
    assert r.peak_mb < DATA_SHOW_RSS_MB, r.peak_mb
    r = _slsdk(["train", "DATA", "-o", "RUN", "--backbone", "ViT-T/16-test", "--hidden", "32", "--epochs", "1",
                "--device", "cpu"], cwd, tmp)
    one_line_error(r, "DATA/annotations.csv:2:", "longer than")
    assert r.peak_mb < TRAIN_RSS_MB, r.peak_mb
    assert _snapshot(cwd) == before and sorted(os.listdir(cwd)) == ["DATA"] and _left(tmp) == []


@pytest.mark.parametrize("case", ["field over 128 KiB", "field over the field limit"])
def test_long_fields_name_the_file_and_line(work, case):
    cwd, tmp = work
    n = (128 << 10) + 1000 if case == "field over 128 KiB" else readers.MAX_FIELD_CHARS + 10
    text = FOLDER_HEADER + "a,v.mp4,s1,train,HELLO\n" + "b,v.mp4,s1,train," + "G" * n + "\n"
    (cwd / "DATA").mkdir()
    (cwd / "DATA" / "annotations.csv").write_text(text)
    before = _snapshot(cwd)
    r = _slsdk(["data", "show", "DATA", "--no-frames"], cwd, tmp)
    want = "longer than" if n + 20 > readers.MAX_LINE_BYTES else "field 5 (glosses) has"
    one_line_error(r, "DATA/annotations.csv:3:", want)
    assert "_csv.Error" not in r.stderr and _snapshot(cwd) == before and _left(tmp) == []


def test_phoenix_and_isharah_files_have_the_same_bounds(work):
    cwd, tmp = work
    _sparse(cwd / "P" / "annotations" / "manual" / "train.corpus.csv", b"id|folder|signer|annotation\n", GIB)
    _sparse(cwd / "I" / "annotations_v2" / "isharah2000" / "SI" / "train.csv", b"", GIB)   # one line, no header
    before = _snapshot(cwd)
    r = _slsdk(["data", "show", "P", "--layout", "phoenix2014"], cwd, tmp)
    one_line_error(r, "P/annotations/manual/train.corpus.csv:2:", "longer than")
    assert r.peak_mb < DATA_SHOW_RSS_MB, r.peak_mb
    r = _slsdk(["data", "show", "I", "--layout", "isharah"], cwd, tmp)
    one_line_error(r, "SI/train.csv:1:", "longer than")
    assert r.peak_mb < DATA_SHOW_RSS_MB, r.peak_mb
    assert _snapshot(cwd) == before and _left(tmp) == []


def test_row_and_file_limits_and_csl_daily(tmp_path, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    (d / "annotations.csv").write_text(FOLDER_HEADER + "".join(f"i{i},v.mp4,,train,G{i % 3}\n" for i in range(50)))
    monkeypatch.setattr(readers, "MAX_ROWS", 10)
    with pytest.raises(AnnotationError, match=r"annotations.csv:12: more than 10 rows"):
        readers.read_folder(d, check_videos=False)
    monkeypatch.setattr(readers, "MAX_ROWS", 10 ** 6)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 300)
    with pytest.raises(AnnotationError, match=r"annotations.csv:\d+: file larger than 300 bytes"):
        readers.read_folder(d, check_videos=False)
    monkeypatch.undo()
    assert len(readers.read_folder(d, check_videos=False)) == 50
    c = tmp_path / "csl" / "sentence_label"
    c.mkdir(parents=True)
    (c / "split_1.txt").write_text("Name|split\nS000000_P0000_T00|train\n")
    _sparse(c / "video_map.txt", b"index|name|length|gloss|char|word|postag\n", 1 << 20)
    with pytest.raises(AnnotationError, match=r"video_map.txt:2: line longer than"):
        readers.read_csl_daily(tmp_path / "csl", "train", check_videos=False)


def test_glosses_are_shared_not_copied(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "annotations.csv").write_text(FOLDER_HEADER + "".join(f"i{i},v.mp4,,train,HELLO WORLD{i % 2}\n"
                                                               for i in range(20)))
    s = readers.read_folder(d, check_videos=False)
    assert s[0].glosses[0] is s[19].glosses[0] and s[1].glosses[1] is s[3].glosses[1]


# ------------------------------------------------------------------------------------------------ zip bundles
def test_zip_with_an_unlisted_huge_member_is_refused_unextracted(assets, work):
    """A 600 KB member that inflates to 600 MB and that the manifest does not list: refused before anything is
    extracted (main: extracted into /tmp, then accepted)."""
    cwd, tmp = work
    _place(assets, cwd, "B.zip", "clip.mp4")
    with zipfile.ZipFile(cwd / "B.zip", "a") as zf:
        _zeros_member(zf, "big.bin", ZIP_BOMB_BYTES)
    assert (cwd / "B.zip").stat().st_size < 2 << 20
    before = _snapshot(cwd)
    r = _slsdk(["bundle", "inspect", "B.zip"], cwd, tmp)
    one_line_error(r, "B.zip", "'big.bin'", "not listed in manifest.json", "nothing extracted")
    assert r.peak_mb < INSPECT_RSS_MB, r.peak_mb
    assert _left(tmp) == []
    r = _slsdk(["run", "B.zip", "clip.mp4", "--json"], cwd, tmp)
    one_line_error(r, "B.zip", "'big.bin'", "not listed")
    assert r.peak_mb < RUN_RSS_MB and r.stdout == ""
    assert _snapshot(cwd) == before and _left(tmp) == []


def test_zip_whose_header_lies_about_a_listed_member(assets, work):
    """model.onnx replaced by a 600 MB stream of zeros whose headers claim the manifest's size: at most that
    many bytes come out, the data is found corrupt, nothing is left behind."""
    cwd, tmp = work
    declared = json.loads((assets["bundle"] / "manifest.json").read_text())["files"]["model.onnx"]["bytes"]
    z = cwd / "L.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(assets["bundle"] / "manifest.json", "manifest.json")
        _zeros_member(zf, "model.onnx", ZIP_BOMB_BYTES)
    _patch_sizes(z, "model.onnx", declared)
    before = _snapshot(cwd)
    r = _slsdk(["bundle", "inspect", "L.zip"], cwd, tmp)
    one_line_error(r, "L.zip", "'model.onnx'", "headers lie")
    assert r.peak_mb < INSPECT_RSS_MB, r.peak_mb
    # the same member with headers that claim the real size: refused from the headers alone
    _patch_sizes(z, "model.onnx", ZIP_BOMB_BYTES)
    r = _slsdk(["bundle", "inspect", "L.zip"], cwd, tmp)
    one_line_error(r, "L.zip", "'model.onnx'", f"they say {ZIP_BOMB_BYTES} bytes", f"says {declared}")
    assert r.peak_mb < INSPECT_RSS_MB, r.peak_mb
    assert _snapshot(cwd).keys() == before.keys() and _left(tmp) == []


def test_killed_extraction_is_cleaned_by_the_next_run(assets, work):
    """A run killed while it extracts (os._exit at the rename of model.onnx) leaves its scratch folder; the
    next run removes it (and its own)."""
    cwd, tmp = work
    _place(assets, cwd, "B.zip")
    kill = ("import os, sys\n"
            "from slsdk import fileio\n"
            "fileio.set_write_hook(lambda point, path: os._exit(9) if point == 'before-rename' "
            "and path.name == 'model.onnx' else None)\n"
            "from slsdk.cli import main\n"
            "sys.argv = ['slsdk', 'bundle', 'inspect', 'B.zip']\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", kill], cwd=cwd, env={**os.environ, "TMPDIR": str(tmp)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr[-2000:]
    left = _left(tmp)
    assert len(left) == 1 and left[0].startswith(f"{fileio.SCRATCH_PREFIX}-"), left
    r = _slsdk(["bundle", "inspect", "B.zip"], cwd, tmp)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert _left(tmp) == []


# ------------------------------------------------------------------------------------------------ manifests
def _edit(section: str, key: str, value):
    def f(d):
        d.setdefault(section, {})[key] = value
    return f


MANIFEST_CASES = {
    "margin string": (_edit("crop", "margin", "1.5"), "crop.margin"),
    "hold_frames string": (_edit("crop", "hold_frames", "x"), "crop.hold_frames"),
    "margin list": (_edit("crop", "margin", [1]), "crop.margin"),
    "detect_every object": (_edit("crop", "detect_every", {}), "crop.detect_every"),
    "smoothing zero": (_edit("crop", "smoothing", 0), "crop.smoothing"),
    "unknown crop field": (_edit("crop", "zoom", 2), "crop has unknown fields"),
    "fidelity wer text": (_edit("fidelity", "wer", "x"), "fidelity.wer"),
    "value_range reversed": (_edit("input", "value_range", [1.0, 0.0]), "input.value_range"),
    "preparation size text": (_edit("extra", "preparation", {"size": "x"}), "extra.preparation.size"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_manifest_fields_are_type_checked_at_load(assets, work, case):
    """`bundle inspect` and `run` refuse the same manifests, with one line naming the bundle and the field
    (main: inspect passed them, run raised TypeError)."""
    cwd, tmp = work
    _place(assets, cwd, "B", "clip.mp4")
    fn, field = MANIFEST_CASES[case]
    m = cwd / "B" / "manifest.json"
    d = json.loads(m.read_text())
    fn(d)
    m.write_text(json.dumps(d))
    one_line_error(_slsdk(["bundle", "inspect", "B"], cwd, tmp), "B/manifest.json", field)
    if case in ("margin string", "hold_frames string", "margin list", "detect_every object"):
        one_line_error(_slsdk(["run", "B", "clip.mp4"], cwd, tmp), "B/manifest.json", field)
    assert _left(tmp) == []


# ------------------------------------------------------------------------------------------------ the terminal
def test_live_run_prints_hostile_glosses_literally(assets, work):
    """Every gloss of the vocabulary reaches the live output as its plain text: markup shown, not applied;
    ESC / BEL / U+202E shown escaped. `--json` keeps the real glosses."""
    from slsdk.terminal import visible

    cwd, tmp = work
    _place(assets, cwd, "B", "B.zip", "clip.mp4")
    r = _slsdk(["run", "B", "clip.mp4"], cwd, tmp)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    out = r.stdout_bytes
    assert b"\x1b" not in out and b"\x07" not in out and "\u202e".encode() not in out, out[:2000]
    lines = r.stdout.splitlines()
    for g in HOSTILE:
        assert any(ln.startswith(visible(g) + "  ") for ln in lines), (g, r.stdout[:3000])
    assert "[link=file:///etc/passwd]click" in r.stdout and "\\x1b]0;pwned\\x07" in r.stdout
    j = _slsdk(["run", "B.zip", "clip.mp4", "--json"], cwd, tmp)
    assert j.returncode == 0, j.stderr[-2000:]
    rows = [json.loads(x) for x in j.stdout.splitlines()]
    assert rows[-1]["type"] == "summary" and set(HOSTILE) <= set(rows[-1]["glosses"])
    assert b"\x1b" not in j.stdout_bytes
    i = _slsdk(["bundle", "inspect", "B"], cwd, tmp)
    assert i.returncode == 0 and b"\x1b" not in i.stdout_bytes and b"\x07" not in i.stdout_bytes
    assert "[/], [laughs], [link=file:///etc/passwd]click, \\x1b]0;pwned\\x07" in i.stdout
    assert _left(tmp) == []


def test_plain_on_a_real_terminal():
    """On a terminal Rich would turn markup into styles and links: plain() keeps every gloss literal."""
    from rich.console import Console

    from slsdk.runtime.cli_run import _gloss_line
    from slsdk.terminal import plain

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system="truecolor", width=200)
    for g in HOSTILE:
        con.print(_gloss_line({"gloss": g, "start": 0.0, "end": 0.32, "confidence": 1.0}), emoji=False)
    con.print(f"[green]{plain(' '.join(HOSTILE))}[/]", emoji=False)
    out = buf.getvalue()
    assert "\x1b]" not in out and "\x07" not in out and "\u202e" not in out     # no OSC (title, hyperlink), no BEL
    shown = re.sub(r"\x1b\[[0-9;]*m", "", out)     # drop Rich's own colour codes (CSI m only)
    for g in ("[/]", "[laughs]", "[link=file:///etc/passwd]click", "\\x1b]0;pwned\\x07", ":smile:", "tab\\there"):
        assert g in shown, (g, shown)
    assert plain("plain words") == "plain words" and plain("a\\") == "a\\\\"


def test_data_show_summary_prints_dataset_text_literally(tmp_path):
    from rich.console import Console

    from slsdk.data.summary import print_summary, summarize_dataset

    d = tmp_path / "d"
    d.mkdir()
    rows = [("a", "train", "HELLO"), ("b", "train", "WORLD"), ("c", "[link=x]\x1b]0;t\x07", "[/] \x1b[2J")]
    (d / "annotations.csv").write_text(FOLDER_HEADER + "".join(f"{i},v{i}.mp4,s,{s},{g}\n" for i, s, g in rows))
    s = summarize_dataset(d)
    buf = io.StringIO()
    print_summary(s, Console(file=buf, force_terminal=True, width=300))
    out = buf.getvalue()
    assert "\x1b]" not in out and "\x07" not in out and "\x1b[2J" not in out
    assert "│ [link=x]\\x1b]0;t\\x07 │" in out and "(e.g. \\x1b[2J, [/])" in out
    assert all("\x1b" not in w for w in s.warnings)


# ------------------------------------------------------------------------------------------------ slsdk run
def _clip_720p(path: Path, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 1280, 720, "yuv420p"
        base = np.zeros((720, 1280, 3), np.uint8)
        base[..., 0] = (np.arange(1280) // 5)[None, :]
        for i in range(frames):
            f = base.copy()
            f[100:300, (i * 8) % 1100:(i * 8) % 1100 + 150] = 255
            for p in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def test_read_ahead_is_capped_by_memory(assets, work):
    """`--read-ahead 100000` on a 720p clip: lowered to READ_AHEAD_MAX_BYTES of frames and said so (main
    buffered the whole clip: 1.35 GB)."""
    from slsdk.runtime.cli_run import READ_AHEAD_MAX_BYTES

    cwd, tmp = work
    _place(assets, cwd, "B")
    _clip_720p(cwd / "big.mp4", 100)          # 100 decoded frames of 2.76 MB: 276 MB if all were read ahead
    r0 = _slsdk(["run", "B", "big.mp4", "--read-ahead", "0"], cwd, tmp)
    assert r0.returncode == 0, r0.stderr[-2000:]
    r = _slsdk(["run", "B", "big.mp4", "--read-ahead", "100000"], cwd, tmp)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    cap = READ_AHEAD_MAX_BYTES // (1280 * 720 * 3)
    assert f"note: --read-ahead 100000 lowered to {cap} frames" in r.stdout, r.stdout[-2000:]
    assert r.peak_mb - r0.peak_mb < (READ_AHEAD_MAX_BYTES >> 20) + 48, (r.peak_mb, r0.peak_mb)
    j = _slsdk(["run", "B", "big.mp4", "--read-ahead", "100000", "--json"], cwd, tmp)
    rows = [json.loads(x) for x in j.stdout.splitlines()]
    assert rows[0]["kind"] == "read_ahead_capped" and rows[-1]["read_ahead"] == cap
    assert _left(tmp) == []


def test_run_with_stdout_closed_or_gone(assets, work):
    cwd, tmp = work
    _place(assets, cwd, "B", "clip.mp4")
    # stdout closed (>&-): one line on stderr, exit 1
    r = _slsdk(["run", "B", "clip.mp4", "--json"], cwd, tmp, stdout=None, preexec_fn=lambda: os.close(1))
    one_line_error(r, "standard output is closed")
    # the reader went away (`| head` that already exited): quiet, nothing on stderr; 141 (128 + SIGPIPE) for the
    # JSON lines, 1 for the live output (Rich's own broken-pipe exit)
    rd, wr = os.pipe()
    os.close(rd)
    try:
        for args, code in ((["--json"], 141), ([], 1)):
            r = _slsdk(["run", "B", "clip.mp4", *args], cwd, tmp, stdout=wr)
            assert r.returncode == code and r.stderr == "", r.stderr[-2000:]
            assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-2000:]
    finally:
        os.close(wr)
    assert _left(tmp) == []


def test_run_from_a_pipe_says_what_to_do(assets, work):
    cwd, tmp = work
    _place(assets, cwd, "B", "clip.mp4")
    r = _slsdk(["run", "B", "/dev/stdin"], cwd, tmp, input=(cwd / "clip.mp4").read_bytes())
    one_line_error(r, "/dev/stdin", "is a pipe", "save the stream to a file")
    with open(cwd / "clip.mp4", "rb") as f:      # stdin redirected from a file is a file: that works
        r = subprocess.run([sys.executable, "-m", "slsdk.cli", "run", "B", "/dev/stdin", "--json"], cwd=cwd,
                           stdin=f, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "TMPDIR": str(tmp)})
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["frames"] == 80, r.stderr[-2000:]


def test_manifest_crop_schema_is_the_crop_config():
    """The manifest's crop check (slsdk.bundle.CROP_FIELDS, standard library only) covers CropConfig's fields, and
    every CropConfig the runtime makes passes it."""
    from dataclasses import fields

    from slsdk.bundle.checks import CROP_RULES as CROP_FIELDS, crop_problem as _crop_problem
    from slsdk.runtime.crop import CropConfig

    assert set(CROP_FIELDS) == {f.name for f in fields(CropConfig)}
    for cfg in (CropConfig(), CropConfig(policy="full", detect_every=1, detect_policy="hold", include_face=True)):
        assert _crop_problem(cfg.to_dict()) is None
