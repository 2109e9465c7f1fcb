"""Small hostile checkpoints and gloss dictionaries (issue 28): bounded memory and time, one line, files kept.

Each hostile file is made here, byte by byte where torch.save would never write it, and fed to the real CLI
(``slsdk import adaptsign`` / ``slsdk convert``) in a subprocess from a temporary working folder with relative
paths. Every case must end with exit code != 0, stderr one ``error:`` line naming the file, no traceback, never
torch's advice to re-run with ``weights_only=False``, peak RSS of the command under ``RSS_BOUND_MB`` (measured by a
small wrapper with ``getrusage(RUSAGE_CHILDREN)``), within ``TIMEOUT_S`` (a hang is a failure, not a speed
figure), and the working folder byte-identical afterwards (nothing written, nothing changed).

The hostile files:

* a torch zip whose storage record ``archive/data/0`` is deflate-compressed: ~1 MB inflating to 1 GiB, ~8.5 MB to
  8 GiB (torch.save never compresses a record; torch's reader would inflate it whole before any check);
* a zip whose central directory lists many storage records over the same bytes (declared sum >> file size);
* a pickle declaring a storage larger than its record;
* a gloss dictionary that is wide through shared references (``[[['a'] * 10**4] * 10**4] * 10**4``, ~60 KB);
* a checkpoint whose pickle calls ``os.system``;
* an AdaptSign checkpoint with a 0-size ``conv1`` kernel.
"""
from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptsign_checkpoints import gloss_names, reference_state_dict, write_checkpoint, write_gloss_dict

RSS_BOUND_MB = 600      # torch + slsdk import and a refusal take ~300-400 MB; the old code peaked at 1.3-2.3 GB
TIMEOUT_S = 240         # generous: every case ends in a few seconds; running into it is a failure (a hang)
GLOSSES = 6             # RefShape() has 7 classes: 6 glosses + blank

# ----------------------------------------------------------------------------------------- running the CLI
_WRAP = """import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def _cli(cwd: Path, *args: str):
    """Run ``slsdk ARGS`` in ``cwd``; -> (returncode, stderr, peak RSS of the command in MB)."""
    rss_file = cwd.parent / f"{cwd.name}.rss"
    env = {**os.environ, "COLUMNS": "2000", "NO_COLOR": "1"}
    p = subprocess.Popen([sys.executable, "-c", _WRAP, str(rss_file), sys.executable, "-m", "slsdk.cli", *args],
                         cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)       # the wrapper and the command it waits on
        p.communicate()
        pytest.fail(f"slsdk {' '.join(args)} did not end within {TIMEOUT_S} s (a hang)")
    rss_mb = int(rss_file.read_text()) / 1024
    return p.returncode, err, rss_mb


def _refused(cwd: Path, args: list[str], needles: list[str]) -> str:
    """Run the command, assert the common contract, return the error line."""
    before = _snapshot(cwd)
    rc, err, rss_mb = _cli(cwd, *args)
    assert rc != 0, err
    assert "Traceback" not in err, err[-3000:]
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    assert rss_mb < RSS_BOUND_MB, f"peak RSS {rss_mb:.0f} MB >= {RSS_BOUND_MB} MB: {lines[0]}"
    assert _snapshot(cwd) == before, "the command changed the working folder"
    print(f"slsdk {' '.join(args)}: peak RSS {rss_mb:.0f} MB: {lines[0]}")
    return lines[0]


# ------------------------------------------------------------------------------------- making torch zips
class _Storage:
    """One storage record: ``data`` (the bytes written), ``numel`` (what the pickle declares)."""

    def __init__(self, key: str, stype: str, numel: int, data: bytes = b"", *, deflate_zeros: int = 0):
        self.key, self.stype, self.numel, self.data, self.deflate_zeros = key, stype, numel, data, deflate_zeros


class _Tensor:
    """Pickles as torch.save pickles a contiguous tensor over a storage."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()))


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", getattr(torch, obj.stype), obj.key, "cpu", obj.numel)
        return None


_STYPES = {torch.float32: "FloatStorage", torch.int64: "LongStorage", torch.uint8: "ByteStorage",
           torch.float16: "HalfStorage", torch.int32: "IntStorage", torch.bool: "BoolStorage",
           torch.float64: "DoubleStorage"}


def _as_fakes(obj, storages: list):
    """Real tensors in ``obj`` -> _Tensor over stored _Storage records (appended to ``storages``)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous()
        st = _Storage(str(len(storages)), _STYPES[t.dtype], t.numel(), t.numpy().tobytes())
        storages.append(st)
        return _Tensor(st, tuple(t.shape))
    if isinstance(obj, dict):
        return {k: _as_fakes(v, storages) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_as_fakes(v, storages) for v in obj)
    return obj


def _deflated_zeros(n: int) -> tuple[bytes, int]:
    """(raw deflate stream of n zero bytes, its CRC-32), made from one repeated full-flush block (fast)."""
    chunk = 1 << 20
    assert n % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)   # history reset: every block is the same
    stream = block * (n // chunk) + c.flush()
    zeros, crc = bytes(64 << 20), 0
    for _ in range(n // len(zeros)):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(n % len(zeros)), crc)
    return stream, crc


def _write_zip(path: Path, entries: list[tuple[str, int, bytes, int, int]], alias: list[tuple[str, int]] = ()):
    """A zip of (name, method 0/8, payload, uncompressed size, crc); zip64 extra fields where sizes need them.

    ``alias``: extra central-directory entries (name, index of an entry) pointing at that entry's bytes.
    """
    out = io.BytesIO()
    central = []
    for name, method, payload, size, crc in entries:
        offset = out.tell()
        big = size >= 0xFFFFFFFF or len(payload) >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(payload)) if big else b""
        n = name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45 if big else 20, 0, method, 0, 33, crc,
                              0xFFFFFFFF if big else len(payload), 0xFFFFFFFF if big else size, len(n), len(extra)))
        out.write(n + extra + payload)
        central.append((n, method, crc, len(payload), size, offset, big))
    for name, i in alias:
        central.append((name.encode(),) + central[i][1:])
    cd_start = out.tell()
    for n, method, crc, csize, size, offset, big in central:
        extra = struct.pack("<HHQQ", 1, 16, size, csize) if big else b""
        out.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45 if big else 20, 0, method, 0, 33, crc,
                              0xFFFFFFFF if big else csize, 0xFFFFFFFF if big else size, len(n), len(extra), 0, 0,
                              0, 0, offset))
        out.write(n + extra)
    cd_size = out.tell() - cd_start
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), cd_size, cd_start, 0))
    path.write_bytes(out.getvalue())
    return path


def write_torch_zip(path: Path, payload, extra_storages: list[_Storage] = (), alias: list[tuple[str, str]] = ()):
    """A torch.save-like zip of ``payload`` (real tensors and _Tensor fakes), storages as the _Storage say."""
    storages: list[_Storage] = list(extra_storages)
    obj = _as_fakes(payload, storages)
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    entries = [("archive/data.pkl", 0, buf.getvalue(), len(buf.getvalue()), zlib.crc32(buf.getvalue())),
               ("archive/byteorder", 0, b"little", 6, zlib.crc32(b"little"))]
    for st in storages:
        if st.deflate_zeros:
            stream, crc = _deflated_zeros(st.deflate_zeros)
            entries.append((f"archive/data/{st.key}", 8, stream, st.deflate_zeros, crc))
        else:
            entries.append((f"archive/data/{st.key}", 0, st.data, len(st.data), zlib.crc32(st.data)))
    entries.append(("archive/version", 0, b"3\n", 2, zlib.crc32(b"3\n")))
    index = {e[0]: i for i, e in enumerate(entries)}
    return _write_zip(path, entries, [(a, index[b]) for a, b in alias])


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def work(tmp_path):
    """A working folder holding a valid gloss dictionary (the user's file, checked unchanged)."""
    w = tmp_path / "work"
    w.mkdir()
    write_gloss_dict(w / "gloss_dict.npy", gloss_names(GLOSSES))
    (w / "notes.txt").write_text("the user's own notes\n")
    return w


def _adaptsign_payload(sd=None):
    return {"epoch": 39, "model_state_dict": dict(reference_state_dict() if sd is None else sd)}


def _import(ckpt: str, gloss: str = "gloss_dict.npy"):
    return ["import", "adaptsign", ckpt, "--gloss-dict", gloss, "-o", "teacher.pt"]


@pytest.fixture(scope="module")
def slsdk_payload(tiny_student):
    """The dict of a valid slsdk student checkpoint (tensors real), to rebuild hostile variants from."""
    from slsdk.train.checkpoint import _check_safe, _plain

    m = tiny_student(5)
    payload = {"format": "slsdk-checkpoint", "version": 1, "kind": "student", "config": m.config.to_dict(),
               "vocab": ["<blank>", "A", "B", "C", "D"], "model": dict(m.state_dict()), "epoch": 1, "step": 1,
               "extra": {}}
    payload = _plain(payload)
    _check_safe(payload, "checkpoint")
    return payload


# ------------------------------------------------------------------------------------------ zip bombs
@pytest.mark.parametrize("gib", [1, 8])
def test_deflated_storage_record_is_refused_before_inflating(work, gib):
    n = gib << 30
    big = _Storage("big", "FloatStorage", n // 4, deflate_zeros=n)
    payload = _adaptsign_payload()
    payload["optimizer_state_dict"] = {"state": {0: {"exp_avg": _Tensor(big, (n // 4,))}}, "param_groups": []}
    ck = write_torch_zip(work / "bomb.pt", payload, [big])
    assert ck.stat().st_size < (gib * 1.1 + 2) * 2**20          # ~1 MB per GiB + the 1.2 MB model
    _refused(work, _import("bomb.pt"), ["bomb.pt", "archive/data/big", "compressed"])


def test_deflated_storage_record_in_slsdk_checkpoint_convert(work, slsdk_payload):
    n = 4 << 30
    big = _Storage("big", "FloatStorage", n // 4, deflate_zeros=n)
    payload = dict(slsdk_payload, extra={"pad": _Tensor(big, (n // 4,))})
    write_torch_zip(work / "student.pt", payload, [big])
    _refused(work, ["convert", "student.pt", "-t", "onnx", "-o", "bundle"], ["student.pt", "compressed"])


def test_records_sharing_bytes_declare_more_than_the_file_holds(work):
    """200 central-directory entries over one 4 MiB stored record: 800 MiB declared from a 4 MiB file."""
    shared = _Storage("s0", "FloatStorage", 1 << 20, bytes(4 << 20))
    others = [_Storage(f"s{i}", "FloatStorage", 1 << 20) for i in range(1, 200)]
    payload = _adaptsign_payload()
    payload["optimizer_state_dict"] = {"state": {i: {"exp_avg": _Tensor(s, (1 << 20,))}
                                                 for i, s in enumerate([shared] + others)}, "param_groups": []}
    storages = [shared]
    ck = write_torch_zip(work / "alias.pt", payload, storages,
                         alias=[(f"archive/data/s{i}", "archive/data/s0") for i in range(1, 200)])
    assert ck.stat().st_size < 6 << 20                          # 4 MiB record + the 1.2 MB model
    _refused(work, _import("alias.pt"), ["alias.pt", "more than the file"])


@pytest.mark.parametrize("cmd", ["import", "convert"])
def test_pickle_declaring_a_storage_larger_than_its_record(work, slsdk_payload, cmd):
    small = _Storage("lie", "FloatStorage", 1 << 28, bytes(16))      # 1 GiB declared, 16 bytes stored
    if cmd == "import":
        payload = _adaptsign_payload()
        payload["model_state_dict"]["conv2d.visual.class_embedding"] = _Tensor(small, (1 << 28,))
        write_torch_zip(work / "lie.pt", payload, [small])
        args = _import("lie.pt")
    else:
        payload = dict(slsdk_payload, extra={"pad": _Tensor(small, (1 << 28,))})
        write_torch_zip(work / "lie.pt", payload, [small])
        args = ["convert", "lie.pt", "-t", "onnx", "-o", "bundle"]
    _refused(work, args, ["lie.pt", "archive/data/lie", "1073741824 bytes", "holds 16"])


# ----------------------------------------------------------------------------------- wide gloss dictionary
def test_wide_gloss_dictionary_is_refused_by_a_node_budget(work):
    write_checkpoint(work / "ck.pt")
    d = {g: [i, 10 + i] for i, g in enumerate(gloss_names(GLOSSES), 1)}
    d["WIDE"] = [GLOSSES + 1, [[["a"] * 10000] * 10000] * 10000]
    with open(work / "wide.npy", "wb") as f:
        np.save(f, d, allow_pickle=True)
    assert (work / "wide.npy").stat().st_size < 100_000
    _refused(work, _import("ck.pt", "wide.npy"), ["wide.npy", "nodes"])


class _LyingArray:
    """Pickles as numpy pickles an array, with a state whose shape its data does not fill."""

    def __init__(self, shape, dtype, data):
        self.state = (1, shape, np.dtype(dtype), False, data)

    def __reduce__(self):
        from numpy._core import multiarray

        return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state)


def test_gloss_dictionary_array_with_a_lying_shape(work):
    """numpy's own ndarray.__setstate__ trusts the shape: an object array of 10**7 items over a one-item list
    crashed the interpreter (SIGSEGV) in the old gloss dictionary reader."""
    write_checkpoint(work / "ck.pt")
    with open(work / "lying.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(_LyingArray((10**7,), object, [1]), f, protocol=3)
    _refused(work, _import("ck.pt", "lying.npy"), ["lying.npy", "0-d object array"])


def test_checkpoint_rng_array_with_a_lying_shape(work):
    payload = _adaptsign_payload()
    payload["rng_state"] = {"numpy": _LyingArray((10**9,), "uint32", b"abcd")}
    torch.save(payload, work / "rng.pt")
    _refused(work, _import("rng.pt"), ["rng.pt", "refused", "numpy array", "not loaded"])


# ---------------------------------------------------------------------------------- in-process checks
def _legacy_file(path: Path, declared: int, stored: int):
    """A legacy (non-zip) torch.save file whose pickle declares ``declared`` floats, its record ``stored``."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    st = _Storage("k0", "FloatStorage", declared)
    buf = io.BytesIO()
    for head in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                                                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(head, buf, protocol=2)

    class Legacy(_TorchPickler):
        def persistent_id(self, obj):
            pid = super().persistent_id(obj)
            return None if pid is None else pid + (None,)

    Legacy(buf, protocol=2).dump({"w": _Tensor(st, (declared,))})
    pickle.dump(["k0"], buf, protocol=2)
    buf.write(struct.pack("<q", stored) + bytes(4 * stored))
    path.write_bytes(buf.getvalue())
    return path


def test_legacy_format_storage_sizes(tmp_path):
    from slsdk.models.factory import CheckpointError
    from slsdk.models.torchfile import load_torch_file

    ok = _legacy_file(tmp_path / "ok.pt", 4, 4)
    assert load_torch_file(ok)["w"].shape == (4,)
    lie = _legacy_file(tmp_path / "lie.pt", 1 << 28, 4)
    with pytest.raises(CheckpointError, match=r"lie.pt: .*1073741824 bytes.*more than the file"):
        load_torch_file(lie, error=CheckpointError)
    short = tmp_path / "short.pt"
    short.write_bytes(ok.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=r"short.pt: cannot be read .*truncated"):
        load_torch_file(short, error=CheckpointError)


def test_cap_is_stated_and_overridable(tmp_path, monkeypatch):
    from slsdk.models import torchfile

    assert torchfile.MAX_CHECKPOINT_BYTES == 4 << 30 and torchfile.max_checkpoint_bytes() == 4 << 30
    torch.save({"w": torch.zeros(1000)}, tmp_path / "w.pt")
    monkeypatch.setenv(torchfile.CAP_ENV, "1000")
    with pytest.raises(torchfile.TorchFileError, match=r"w.pt: refused: its storages declare 4000 bytes .*"
                                                       r"SLSDK_MAX_CHECKPOINT_BYTES"):
        torchfile.load_torch_file(tmp_path / "w.pt")
    monkeypatch.setenv(torchfile.CAP_ENV, "4000")
    assert torchfile.load_torch_file(tmp_path / "w.pt")["w"].shape == (1000,)


# ------------------------------------------------------------------------------------------ code in pickles
class _System:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("cmd", ["import", "convert"])
def test_checkpoint_calling_os_system_is_named_and_not_loaded(work, slsdk_payload, cmd):
    if cmd == "import":
        payload = _adaptsign_payload()
        payload["rng_state"] = _System("touch PWNED")
        torch.save(payload, work / "evil.pt")
        args = _import("evil.pt")
    else:
        torch.save(dict(slsdk_payload, extra={"x": _System("touch PWNED")}), work / "evil.pt")
        args = ["convert", "evil.pt", "-t", "onnx", "-o", "bundle"]
    line = _refused(work, args, ["evil.pt", "holds code", "system", "not loaded"])
    assert "truncated" not in line and "corrupt" not in line
    assert ("posix.system" in line) or ("os.system" in line) or ("nt.system" in line)
    assert not (work / "PWNED").exists()


# ------------------------------------------------------------------------------------------ bad shapes
def test_zero_size_conv1_kernel_names_the_key(work):
    sd = reference_state_dict()
    sd["conv2d.visual.conv1.weight"] = torch.zeros(64, 3, 0, 0)
    write_checkpoint(work / "zero.pt", state_dict=sd)
    _refused(work, _import("zero.pt"), ["zero.pt", "conv2d.visual.conv1.weight"])


def test_a_valid_checkpoint_still_imports(work):
    """The bounds do not refuse the real thing (and the wrapper measures a success too)."""
    write_checkpoint(work / "ck.pt")
    rc, err, rss_mb = _cli(work, *_import("ck.pt"))
    assert rc == 0, err
    assert (work / "teacher.pt").is_file()
    print(f"valid import: peak RSS {rss_mb:.0f} MB")
