"""Property test: mutated manifests and zip headers load as a bundle or fail with BundleError, within a bound.

Examples are derandomized (the same 250 each run, so CI is reproducible; set derandomize=False to explore new ones).
Each example starts from a valid bundle (a real tiny ONNX model run by nothing, read by onnx) and either
replaces / deletes / adds one value anywhere in manifest.json (numbers far out of range, NaN, Infinity, 1e400,
huge integers, wrong types, deep lists), or overwrites bytes of the zip's headers (local headers, central
directory, end record). ``load_bundle`` must then succeed or raise :class:`BundleError` with a message naming
the file; any other exception fails the test. The Python heap peak of each load (tracemalloc) must stay
under ``PEAK_BOUND``; when a mutated manifest loads, everything a runtime allocates from it (a frame chunk, the
state tensors) is bounded by the validator's limits.
"""
from __future__ import annotations

import copy
import json
import math
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from slsdk.bundle import LIMITS, BundleError, load_bundle, write_bundle, zip_bundle  # noqa: E402

from test_safety import _manifest, _onnx_model  # noqa: E402

PEAK_BOUND = 64 << 20      # bytes of Python heap one load may use at its peak (a valid load uses ~1 MiB)
RUNTIME_BOUND = 1 << 31    # bytes a runtime could allocate from an accepted manifest (chunk + states)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    b = write_bundle(d / "b", _manifest(), {"model.onnx": _onnx_model(d / "src.onnx")})
    z = zip_bundle(b.root)
    return {"root": b.root, "zip": z, "manifest": json.loads((b.root / "manifest.json").read_text()),
            "zip_bytes": z.read_bytes(), "work": d}


NASTY_NUMBERS = st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 63, 10 ** 30, 4e11, 1e308, -1e308, 1e-320, 0.5,
                                 float("nan"), float("inf"), float("-inf"), True, False])
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), NASTY_NUMBERS,
              st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=6), st.dictionaries(st.text(max_size=8), children,
                                                                               max_size=4)),
    max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _runtime_bytes(m) -> int:
    """What a runtime allocates from an accepted manifest: one input chunk and every state tensor (float32)."""
    s, i = m.streaming, m.input
    chunk = s.chunk_frames or 1
    total = chunk * i.channels * i.height * i.width * 4 + i.resize_shorter ** 2 * 3
    for st_ in s.state:
        total += math.prod(st_.shape) * 4
    return total


def _load_bounded(path: Path):
    tracemalloc.start()
    try:
        try:
            b = load_bundle(path)
            err = None
        except BundleError as e:
            b, err = None, e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND, f"load peaked at {peak} bytes of Python heap"
    if err is not None:
        assert str(path) in str(err) or "manifest.json" in str(err), str(err)
    return b


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_manifest_loads_or_fails_with_bundle_error(base, data):
    d = copy.deepcopy(base["manifest"])
    paths = list(_paths(d))[1:]
    path = data.draw(st.sampled_from(paths), label="path")
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    if action == "replace":
        parent[path[-1]] = data.draw(JSON_VALUES, label="value")
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=8), label="key")] = data.draw(JSON_VALUES, label="value")
    else:
        parent.append(data.draw(JSON_VALUES, label="value"))
    text = json.dumps(d, allow_nan=True)         # NaN / Infinity written as such: a hostile file would
    if data.draw(st.booleans(), label="raw-number"):
        text = text.replace('"fps": 25.0', '"fps": ' + data.draw(st.sampled_from(["1e400", "-1e400", "9" * 400,
                                                                                  "1" + "0" * 30])))
    (base["root"] / "manifest.json").write_text(text)
    try:
        b = _load_bounded(base["root"])
        if b is not None:
            assert _runtime_bytes(b.manifest) < RUNTIME_BOUND
            for k, lim in (("chunk_frames", LIMITS["chunk_frames"]), ("output_stride", LIMITS["output_stride"])):
                v = getattr(b.manifest.streaming, k)
                assert v is None or 0 < v <= lim
            assert math.isfinite(b.manifest.fps) and 0 < b.manifest.fps <= LIMITS["fps"]
    finally:
        (base["root"] / "manifest.json").write_text(json.dumps(base["manifest"], indent=2))


def _header_offsets(data: bytes) -> list[int]:
    """Byte offsets of every field of the zip's local headers, central directory entries and end record."""
    out = []
    for sig, size in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46), (b"PK\x05\x06", 22)):
        i = data.find(sig)
        while i >= 0:
            out += range(i, min(i + size, len(data)))
            i = data.find(sig, i + 4)
    return out


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_zip_headers_load_or_fail_with_bundle_error(base, data):
    raw = bytearray(base["zip_bytes"])
    offsets = _header_offsets(bytes(raw))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.sampled_from(offsets), label="offset")
        width = data.draw(st.sampled_from([1, 2, 4]), label="width")
        value = data.draw(st.sampled_from([0, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 1, 2]) | st.integers(0, 2 ** 32 - 1),
                          label="value")
        raw[at:at + width] = struct.pack("<I", value & 0xFFFFFFFF)[:width]
    z = base["work"] / "mutated.zip"
    z.write_bytes(bytes(raw))
    b = _load_bounded(z)
    if b is not None:       # a mutation zip does not notice (e.g. a timestamp) must leave a consistent bundle
        assert b.vocab == base["manifest"]["vocab"]
        b.verify()


def test_the_fuzzers_start_from_a_valid_bundle(base):
    assert load_bundle(base["root"]).vocab == base["manifest"]["vocab"]
    assert load_bundle(base["zip"]).vocab == base["manifest"]["vocab"]
    with zipfile.ZipFile(base["zip"]) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.onnx"]


def test_every_single_header_edit_loads_or_fails_with_bundle_error(base):
    """Deterministic sweep of one edit per header field (CI's fuzzer once found a byte that moved a member's local
    header offset below 0: zipfile's seek raised OSError EINVAL instead of a BundleError)."""
    raw0 = base["zip_bytes"]
    z = base["work"] / "swept.zip"
    for at in _header_offsets(raw0):
        for width in (1, 2, 4):
            for value in (0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF):
                raw = bytearray(raw0)
                raw[at:at + width] = struct.pack("<I", value)[:width]
                z.write_bytes(bytes(raw))
                _load_bounded(z)
