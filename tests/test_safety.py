"""Nothing the user has is lost, nothing untrusted runs, no input exhausts memory.

* slsdk.fileio: atomic writes, a real full disk (a 256 KiB tmpfs in a private mount namespace) named in the
  error, scratch folders of killed runs removed, nothing else removed;
* bundles: written beside what is there, never over it; ``overwrite`` replaces only an slsdk bundle;
* manifests: bounded numbers, names / shapes / class count / ONNX metadata checked against the model file;
  zips whose headers lie;
* an OpenAI-style TorchScript archive whose ``__setstate__`` writes a file is read as data (the file is never
  written), while ``torch.jit.load`` of the same archive does write it;
* the CLI probe: every case of issue 12 run as ``slsdk ...`` in a temporary folder: exit code, one line, no
  traceback, and the user's files unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch

from slsdk import fileio
from slsdk.bundle import LIMITS, BundleError, Manifest, default_input_spec, load_bundle, write_bundle, zip_bundle
from slsdk.fileio import DiskFullError, OutputExistsError
from cli_errors import one_line_error

VOCAB = ["<blank>", "HELLO", "WORLD"]


# ------------------------------------------------------------------------------------------------ helpers
def _onnx_model(path: Path, classes: int = 3, vocab: list | None = None) -> Path:
    """A real tiny streaming ONNX graph: x [1,4] -> log_probs [1,classes], h [1,2] -> h_out (with metadata)."""
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, classes], np.arange(4 * classes, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["log_probs"]), helper.make_node("Identity", ["h"], ["h_out"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1, classes]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 2])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in {"vocab": "\n".join(vocab or VOCAB), "vocab_size": str(len(vocab or VOCAB)),
                 "chunk_frames": "8", "output_stride": "4", "blank_id": "0"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def _manifest(classes: int = 3, **kw) -> Manifest:
    d = dict(
        target="onnx", precision="fp32", model_kind="student", model_file="model.onnx", vocab=list(VOCAB),
        input=default_input_spec(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), fps=25.0,
        streaming={"mode": "streaming", "chunk_frames": 8, "shift_frames": 8, "lookahead_frames": 0,
                   "output_stride": 4, "frame_shift_s": 0.16, "algorithmic_latency_s": 0.32,
                   "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"},
                              {"name": "h", "shape": [1, 2], "dtype": "float32"}],
                   "outputs": [{"name": "log_probs", "shape": [1, classes], "dtype": "float32"},
                               {"name": "h_out", "shape": [1, 2], "dtype": "float32"}],
                   "state": [{"name": "h", "input": "h", "output": "h_out", "shape": [1, 2]}]},
        model_config={"width": 4}, fidelity={"max_abs_err": 1e-6})
    d.update(kw)
    return Manifest(**d)


@pytest.fixture
def bundle_dir(tmp_path):
    return write_bundle(tmp_path / "b", _manifest(), {"model.onnx": _onnx_model(tmp_path / "src.onnx")}).root


def _edit_manifest(root: Path, fn=None, text=None) -> Path:
    m = root / "manifest.json"
    if fn is not None:
        d = json.loads(m.read_text())
        fn(d)
        m.write_text(json.dumps(d))
    if text is not None:
        m.write_text(text(m.read_text()))
    return root


def _ls(d) -> list[str]:
    """A folder's entries, less the ledger slsdk.fileio keeps of what it wrote there."""
    return [n for n in os.listdir(d) if n != fileio.LEDGER]


# ------------------------------------------------------------------------------------------------ fileio
def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    p = fileio.atomic_write_text(tmp_path / "a.json", "old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        fileio.atomic_write(p, boom)
    assert p.read_text() == "old" and sorted(_ls(tmp_path)) == ["a.json"]
    with pytest.raises(OutputExistsError, match="is a folder"):
        fileio.atomic_write_text(tmp_path, "x")


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -m and mount (root) for a real small tmpfs")
def test_full_disk_error_names_the_file_and_keeps_the_old_one(tmp_path):
    # a real ENOSPC: a 256 KiB tmpfs, a checkpoint far larger than that, in a private mount namespace
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = textwrap.dedent(f"""
        import os, torch
        from slsdk.train.checkpoint import save_checkpoint
        from slsdk.fileio import DiskFullError
        p = "{mnt}/run/last.pt"
        save_checkpoint(p, kind="student", config={{}}, vocab=["<blank>", "A"], model={{"w": torch.zeros(10)}})
        before = open(p, "rb").read()
        try:
            save_checkpoint(p, kind="student", config={{}}, vocab=["<blank>", "A"], model={{"w": torch.zeros(200000)}})
        except DiskFullError as e:
            print("ERROR", e)
        print("OLD_KEPT", open(p, "rb").read() == before)
        print("LEFT", sorted(n for n in os.listdir("{mnt}/run") if n != ".slsdk-files.jsonl"))
    """)
    r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=256k tmpfs {mnt} && "
                        f"{sys.executable} -c '{script}'"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert f"ERROR {mnt}/run/last.pt: no space left on device (ENOSPC" in out, out
    assert "OLD_KEPT True" in out and "LEFT ['last.pt']" in out, out


def test_scratch_folders_of_killed_runs_are_removed_and_nothing_else(bundle_dir, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead = 2 ** 22 + 4321                                   # beyond pid_max: no such process
    killed = scratch / f"slsdk-bundle-{dead}-0123abcd"      # a killed slsdk run's extraction folder
    (killed / "bundle").mkdir(parents=True)
    (killed / fileio.OWNER_FILE).write_text("x")
    (killed / "bundle" / "model.onnx").write_bytes(b"0" * 1000)
    unmarked = scratch / f"slsdk-bundle-{dead}-4567abcd"    # right name, no owner mark: not provably ours
    unmarked.mkdir()
    legacy = scratch / "slsdk-bundle-ab12_x9z"              # TemporaryDirectory name of older slsdk: no proof
    legacy.mkdir()
    old = os.path.getmtime(legacy) - 30 * 24 * 3600
    os.utime(legacy, (old, old))
    young = scratch / "slsdk-bundle-cd34_y8w"               # could belong to a running older slsdk
    young.mkdir()
    user = scratch / "slsdk-bundle-notes"                   # not a name slsdk makes
    user.mkdir()
    z = zip_bundle(bundle_dir)
    b = load_bundle(z)
    assert not killed.exists()
    assert legacy.exists() and unmarked.exists() and young.exists() and user.exists()
    mine = b.root.parent
    assert mine.parent == scratch and mine.name.startswith(f"slsdk-bundle-{os.getpid()}-")
    del b
    import gc

    gc.collect()
    assert not mine.exists(), "the extraction folder lives only as long as the Bundle"


# ------------------------------------------------------------------------------------------------ bundle writes
def test_bundle_into_an_existing_folder_goes_into_a_fresh_subfolder(tmp_path):
    src = _onnx_model(tmp_path / "src.onnx")
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    b = write_bundle(d, _manifest(), {"model.onnx": src})
    assert b.root == d / "student-onnx-fp32" and not b.replaced
    assert (d / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError, match="already holds an slsdk bundle.*--overwrite"):
        write_bundle(d, _manifest(), {"model.onnx": src})
    (d / "student-onnx-fp32" / "mine.txt").write_text("also mine")
    with pytest.raises(OutputExistsError, match="files it did not write.*mine.txt"):
        write_bundle(d, _manifest(), {"model.onnx": src}, overwrite=True)
    assert (d / "student-onnx-fp32" / "mine.txt").read_text() == "also mine"
    (d / "student-onnx-fp32" / "mine.txt").unlink()
    assert write_bundle(d, _manifest(), {"model.onnx": src}, overwrite=True).replaced
    assert sorted(_ls(d)) == ["notes.txt", "student-onnx-fp32"]
    # a subfolder of that name that is not a bundle is refused, even with overwrite
    e = tmp_path / "e"
    (e / "student-onnx-fp32").mkdir(parents=True)
    (e / "student-onnx-fp32" / "x").write_text("x")
    with pytest.raises(OutputExistsError, match="is not an slsdk bundle"):
        write_bundle(e, _manifest(), {"model.onnx": src}, overwrite=True)


def test_bundle_to_a_file_or_the_current_folder(tmp_path, monkeypatch):
    src = _onnx_model(tmp_path / "src.onnx")
    f = tmp_path / "somefile"
    f.write_text("keep")
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        write_bundle(f, _manifest(), {"model.onnx": src}, overwrite=True)
    assert f.read_text() == "keep"
    monkeypatch.chdir(tmp_path)
    b = write_bundle(".", _manifest(), {"model.onnx": src})
    assert b.root.resolve() == tmp_path / "student-onnx-fp32"
    assert sorted(_ls(tmp_path)) == ["somefile", "src.onnx", "student-onnx-fp32"]   # no ..xxxx.old


def test_zip_never_replaces_a_foreign_file(bundle_dir):
    z = bundle_dir.with_name("b.zip")
    z.write_text("my zip")
    with pytest.raises(OutputExistsError, match="not a zipped slsdk bundle"):
        zip_bundle(bundle_dir, overwrite=True)
    assert z.read_text() == "my zip"
    z.unlink()
    zip_bundle(bundle_dir)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        zip_bundle(bundle_dir)
    zip_bundle(bundle_dir, overwrite=True)
    assert load_bundle(z).vocab == VOCAB


# ------------------------------------------------------------------------------------------------ manifests
def _set(path, value):
    def f(d):
        cur = d
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = value
    return f


MANIFEST_CASES = {
    "chunk of 4e11 frames": (_set(["streaming", "chunk_frames"], 400_000_000_000), None, "chunk_frames"),
    "fps 1e400": (None, lambda t: t.replace('"fps": 25.0', '"fps": 1e400'), "not finite"),
    "fps NaN": (None, lambda t: t.replace('"fps": 25.0', '"fps": NaN'), "NaN is not allowed"),
    "huge integer": (None, lambda t: t.replace('"fps": 25.0', '"fps": ' + "9" * 5000), "out of range"),
    "negative frames": (_set(["streaming", "shift_frames"], -8), None, "shift_frames"),
    "state of 2^40 elements": (_set(["streaming", "state", 0, "shape"], [1 << 20, 1 << 20]), None, "shape"),
    "input size 1e9": (_set(["input", "height"], 10 ** 9), None, "input.height/width"),
    "vocab shorter than the classes": (_set(["vocab"], VOCAB[:2]), None, "vocab has 2 entries but output"),
    "vocab reordered": (_set(["vocab"], [VOCAB[0], VOCAB[2], VOCAB[1]]), None,
                        "vocab differs from the vocabulary stored in model.onnx"),
    "output name not in the model": (_set(["streaming", "outputs", 0, "name"], "logits"), None,
                                     "differ from the model's outputs"),
    "input shape not the model's": (_set(["streaming", "inputs", 0, "shape"], [1, 8]), None,
                                    "has shape \\[1, 8\\] in the manifest but \\[1, 4\\]"),
    "chunk not the model's": (_set(["streaming", "chunk_frames"], 16), None, "chunk_frames is 16 in the manifest"),
    "deep nesting": (None, lambda t: t.replace('"extra": {}', '"extra": {"x": ' + "[" * 100000 + "]" * 100000 + "}"),
                     "invalid JSON"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_manifest_that_does_not_prove_itself_is_refused(bundle_dir, case):
    fn, text, msg = MANIFEST_CASES[case]
    _edit_manifest(bundle_dir, fn, text)
    with pytest.raises(BundleError, match=msg) as e:
        load_bundle(bundle_dir)
    assert "manifest.json" in str(e.value)


def test_vocab_shorter_than_the_model_even_when_the_manifest_agrees_with_itself(tmp_path):
    # the manifest says 2 classes and lists 2 glosses, but the model file outputs 3: found in the model
    src = _onnx_model(tmp_path / "src.onnx", classes=3, vocab=None)
    m = _manifest(classes=2, vocab=VOCAB[:2])
    with pytest.raises(BundleError, match="has shape \\[1, 2\\] in the manifest but \\[1, 3\\]"):
        write_bundle(tmp_path / "b", m, {"model.onnx": src})
    assert not (tmp_path / "b").exists()


def _zip_with_lying_sizes(bundle_dir: Path, factor: float) -> Path:
    z = zip_bundle(bundle_dir)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("model.onnx")
    lie = max(1, int(info.file_size * factor))
    # patch the uncompressed size in both the local header and the central directory entry of model.onnx
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = 0
        while True:
            i = data.find(sig, i)
            if i < 0:
                break
            name_len_off = 26 if sig == b"PK\x03\x04" else 28
            (n,) = struct.unpack("<H", data[i + name_len_off:i + name_len_off + 2])
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if bytes(data[name_at:name_at + n]) == b"model.onnx":
                data[i + off:i + off + 4] = struct.pack("<I", lie)
            i += 4
    z.write_bytes(bytes(data))
    return z


@pytest.mark.parametrize("factor", [0.5, 3.0, 1000.0])
def test_zip_whose_headers_lie_about_sizes(bundle_dir, factor):
    z = _zip_with_lying_sizes(bundle_dir, factor)
    with pytest.raises(BundleError, match="model.onnx") as e:
        load_bundle(z)
    assert str(z) in str(e.value)


# ------------------------------------------------------------------------------------------------ TorchScript
class _Evil(torch.nn.Module):
    """Its TorchScript ``__setstate__`` writes ``marker`` (torch.from_file(shared=True) creates the file)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.w = torch.nn.Parameter(torch.ones(2))

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.marker, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.w = state[1]
        self.training = state[2]
        t = torch.from_file(self.marker, True, 16, dtype=torch.uint8)
        t.fill_(33)
        self.w = self.w + t.sum() * 0

    def forward(self, x):
        return x * self.w.sum()


class _EvilCLIP(torch.nn.Module):
    def __init__(self, visual, marker: str):
        super().__init__()
        self.visual = visual
        self.evil = _Evil(marker)

    def forward(self, x):
        return self.evil(self.visual(x))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_openai_torchscript_archive_is_read_as_data_never_run(tmp_path):
    from slsdk.models.clip import VisionTransformer, get_config
    from slsdk.models.clip_files import detect_format
    from slsdk.models.clip_loaders import load_clip_visual

    torch.manual_seed(0)
    tower = VisionTransformer(get_config("ViT-T/16-test")).eval()
    x = torch.randn(1, 3, tower.config.image_size, tower.config.image_size)
    marker = tmp_path / "PWNED"
    archive = tmp_path / "ViT-evil.pt"
    traced = torch.jit.trace(tower, x, check_trace=False)
    torch.jit.save(torch.jit.script(_EvilCLIP(traced, str(marker))).half(), str(archive))
    assert detect_format(archive) == "openai-torchscript"
    # the archive really runs code when loaded by torch.jit.load (in a child, so this process stays clean)
    r = subprocess.run([sys.executable, "-c", f"import torch; torch.jit.load({str(archive)!r})"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and marker.read_bytes() == b"!" * 16, r.stderr[-1000:]
    marker.unlink()
    loaded = load_clip_visual(archive)
    assert not marker.exists(), "loading the archive ran its TorchScript"
    assert loaded.load_info["format"] == "openai-torchscript"
    for k, v in tower.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v.half().float(), rtol=0, atol=0)


def test_torchscript_archive_with_foreign_globals_is_refused(tmp_path):
    import pickle

    from slsdk.models.clip_loaders import load_clip_visual
    from slsdk.models.errors import CheckpointError

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "PWNED2"),))

    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps(Boom(), protocol=2))
        z.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("m/code/__torch__.py", "")
        z.writestr("m/version", "3")
    with pytest.raises(CheckpointError, match="refused global posix.system|refused global os.system"):
        load_clip_visual(p)
    assert not (tmp_path / "PWNED2").exists()


# ------------------------------------------------------------------------------------------------ the CLI probe
def _slsdk(args, cwd, timeout=900):
    env = {**os.environ, "COLUMNS": "2000", "NO_COLOR": "1"}   # one line means one line, whatever the terminal
    return subprocess.run([sys.executable, "-m", "slsdk.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tiny_student):
    from slsdk.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("probe")
    m = tiny_student(5)
    save_checkpoint(root / "student.pt", kind="student", config=m.config.to_dict(),
                    vocab=["<blank>", "A", "B", "C", "D"], model=m.state_dict())
    return root


@pytest.fixture(scope="module")
def converted(probe):
    """``slsdk convert student.pt -t onnx -o d`` with d holding the user's notes.txt: the bundle's folder."""
    (probe / "d").mkdir()
    (probe / "d" / "notes.txt").write_text("mine")
    r = _slsdk(["convert", "student.pt", "-t", "onnx", "-o", "d"], probe)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return probe / "d" / "student-onnx-fp32"


def test_cli_probe_bundle_outputs(probe, converted):
    cwd = probe
    # -o d, d holding the user's files: success, the bundle in d/student-onnx-fp32, nothing lost
    assert (cwd / "d" / "notes.txt").read_text() == "mine"
    assert sorted(_ls(cwd / "d")) == ["notes.txt", "student-onnx-fp32"]
    assert load_bundle(converted).vocab == ["<blank>", "A", "B", "C", "D"]
    # the same again: refused before any work, one line naming the bundle and --overwrite
    one_line_error(_slsdk(["convert", "student.pt", "-t", "onnx", "-o", "d"], cwd), "student-onnx-fp32",
                    "--overwrite")
    # -o somefile: one line, the file untouched
    (cwd / "somefile").write_text("keep")
    one_line_error(_slsdk(["convert", "student.pt", "-t", "onnx", "-o", "somefile"], cwd), "somefile",
                    "is a file")
    assert (cwd / "somefile").read_text() == "keep"
    # the default -o bundles, holding the user's own bundles: each keeps its folder
    (cwd / "bundles" / "mine").mkdir(parents=True)
    (cwd / "bundles" / "mine" / "a.txt").write_text("x")
    shutil.copytree(cwd / "d" / "student-onnx-fp32", cwd / "bundles" / "student-onnx-fp32")
    one_line_error(_slsdk(["convert", "student.pt", "-t", "onnx"], cwd), "bundles/student-onnx-fp32",
                    "--overwrite")
    assert (cwd / "bundles" / "mine" / "a.txt").read_text() == "x"
    # -o . : the bundle goes into ./student-onnx-fp32; no ..xxxx.old or temp folder is left
    work = cwd / "dot"
    work.mkdir()
    shutil.copy(cwd / "student.pt", work / "student.pt")
    r = _slsdk(["convert", "student.pt", "-t", "onnx", "-o", "."], work)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert sorted(_ls(work)) == ["student-onnx-fp32", "student.pt"]
    assert sorted(_ls(cwd)) == ["bundles", "d", "dot", "somefile", "student.pt"]


def test_cli_probe_data_and_runs(probe, tmp_path):
    from slsdk.train.checkpoint import save_checkpoint

    cwd = tmp_path
    # data synth u, u holding the user's own annotations.csv: refused, the file unchanged
    (cwd / "u").mkdir()
    ann = "id,video,signer,split,glosses\nmine,v.mp4,s1,train,HELLO\n"
    (cwd / "u" / "annotations.csv").write_text(ann)
    one_line_error(_slsdk(["data", "synth", "u", "--quick"], cwd), "u", "another data set")
    assert (cwd / "u" / "annotations.csv").read_text() == ann and _ls(cwd / "u") == ["annotations.csv"]
    # a non-UTF-8 annotations.csv: the file and line are named
    (cwd / "bad").mkdir()
    (cwd / "bad" / "annotations.csv").write_bytes(b"id,video,signer,split,glosses\nx,v.mp4,s1,train,H\xe9LLO\n")
    one_line_error(_slsdk(["data", "show", "bad"], cwd), "annotations.csv:2", "UTF-8")
    # train into a folder holding a run: refused with the choice --resume / --overwrite
    r = _slsdk(["data", "synth", "syn", "--quick"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    save_checkpoint(cwd / "run" / "last.pt", kind="teacher", config={}, vocab=["<blank>", "A"], model={}, epoch=3)
    line = one_line_error(_slsdk(["train", "syn", "-o", "run", "--backbone", "ViT-T/16-test", "--hidden", "32",
                                   "--epochs", "1", "--device", "cpu"], cwd), "--resume", "--overwrite")
    assert "3 epoch(s) done" in line
    assert load_checkpoint_epoch(cwd / "run" / "last.pt") == 3


def load_checkpoint_epoch(p):
    from slsdk.train import load_checkpoint

    return load_checkpoint(p)["epoch"]


def test_cli_probe_manifests_and_zips(converted, tmp_path):
    src = converted
    m = json.loads((src / "manifest.json").read_text())
    logits = m["streaming"]["outputs"][0]["name"]
    cases = {
        "short-vocab": lambda d: d.update(vocab=d["vocab"][:3]),
        "short-vocab-consistent": lambda d: (d.update(vocab=d["vocab"][:3]),
                                             d["streaming"]["outputs"][0]["shape"].__setitem__(-1, 3)),
        "reordered-vocab": lambda d: d.update(vocab=[d["vocab"][0], *reversed(d["vocab"][1:])]),
        "chunk-4e11": lambda d: d["streaming"].update(chunk_frames=400_000_000_000),
        "output-name": lambda d: d["streaming"]["outputs"][0].update(name="logits_renamed"),
        "input-size": lambda d: d["input"].update(height=48, width=48, resize_shorter=55),
        "input-size-consistent": lambda d: (d["input"].update(height=48, width=48, resize_shorter=55),
                                            d["streaming"]["inputs"][0]["shape"].__setitem__(slice(3, 5), [48, 48])),
    }
    texts = {"fps-1e400": lambda t: t.replace(f'"fps": {json.dumps(m["fps"])}', '"fps": 1e400'),
             "fps-nan": lambda t: t.replace(f'"fps": {json.dumps(m["fps"])}', '"fps": NaN')}
    expect = {"short-vocab": "vocab has 3 entries", "short-vocab-consistent": "in the manifest but",
              "reordered-vocab": "vocab differs", "chunk-4e11": "chunk_frames", "output-name": "differ from the model",
              "input-size": "disagrees with input.height", "input-size-consistent": "in the manifest but",
              "fps-1e400": "not finite", "fps-nan": "NaN"}
    for name in [*cases, *texts]:
        b = tmp_path / name
        shutil.copytree(src, b)
        _edit_manifest(b, cases.get(name), texts.get(name))
        one_line_error(_slsdk(["bundle", "inspect", str(b)], tmp_path), "manifest.json", expect[name])
    z = _zip_with_lying_sizes(shutil.copytree(src, tmp_path / "zipped"), 0.5)
    one_line_error(_slsdk(["bundle", "inspect", str(z)], tmp_path), "zipped.zip", "headers lie")
    assert logits == "log_probs"
