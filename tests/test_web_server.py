"""The web demo's server (demos/web) against hostile or greedy clients: a real server on 127.0.0.1 with an ephemeral
port, real sockets, no mocks.

HTTP Range (a <video> seeks), only the page / the bundle's listed files / the given video are served, foreign Host
headers are refused (DNS rebinding), bad paths get a 4xx and no traceback, 200 concurrent page loads are all answered,
100 idle connections neither block other clients nor hold threads and are closed after the timeout, and serving a
50 MB file to 60 slow clients keeps the server's peak RSS bounded (measured in a subprocess). Every wait is bounded:
a generous deadline that runs out is a failure, never a speed figure. npm packages are not needed: the tests serve a
stand-in node_modules folder with the layout the page loads from.
"""
from __future__ import annotations

import http.client
import selectors
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from slsdk.demos.web import NODE_PACKAGES, POOL_SIZE, WEB_DIR, make_server

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]
DEADLINE_S = 120.0  # any wait on the server longer than this is a failure (hung), not a slow machine
VIDEO = bytes(range(256)) * 4096  # 1 MiB with a byte pattern: a wrong offset shows
INDEX = (WEB_DIR / "index.html").read_bytes()


@pytest.fixture(scope="module")
def bundle(tiny_student, tmp_path_factory) -> Path:
    """A streaming onnx fp32 bundle of conftest's tiny student (as tests/test_web.py makes its "full" bundle)."""
    from slsdk.convert import convert

    return convert(tiny_student(len(VOCAB)), "onnx", "fp32", tmp_path_factory.mktemp("web-server") / "full",
                   vocab=VOCAB).root


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory) -> Path:
    """A stand-in node_modules: the three packages (package.json each), the files the page loads, and some it
    does not (a package's sources, another package)."""
    nm = tmp_path_factory.mktemp("node_modules")
    files = {**{f"{p}/package.json": "{}" for p in NODE_PACKAGES},
             "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm": "\0asm", "onnxruntime-web/lib/index.ts": "src",
             "@mediapipe/tasks-vision/vision_bundle.mjs": "export {};", "@mediapipe/tasks-vision/README.md": "doc",
             "@mediapipe/tasks-vision/wasm/vision_wasm_internal.wasm": "\0asm",
             "mediabunny/dist/bundles/mediabunny.min.mjs": "export {};", "left-pad/index.js": "module.exports = 1;"}
    for rel, text in files.items():
        (nm / rel).parent.mkdir(parents=True, exist_ok=True)
        (nm / rel).write_text(text)
    return nm


@pytest.fixture
def serve(bundle, node_modules, tmp_path, monkeypatch):
    """``serve(**make_server kwargs)`` -> (server, port): started in this process, stopped after the test."""
    monkeypatch.setenv("SLSDK_WEB_NODE_MODULES", str(node_modules))
    video = tmp_path / "clip.mp4"
    video.write_bytes(VIDEO)
    started = []

    def start(bundle_dir: Path = bundle, **kw):
        srv = make_server(bundle_dir, video, None, 0, **kw).start()
        started.append(srv)
        return srv, srv.httpd.server_address[1]

    yield start
    for srv in started:
        srv.stop()
        srv.thread.join(DEADLINE_S)
        assert not srv.thread.is_alive(), "stop() left the server thread running"


def _get(port: int, path: str, headers: dict | None = None, method: str = "GET", conn=None):
    """One request (on ``conn`` if given: keep-alive) -> (status, headers, body)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        if conn is None:
            c.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes (one answer: these requests all end the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else -1


def _concurrent(port: int, requests: list[bytes]) -> tuple[list[bytes], int]:
    """Connect all, send all, then read every answer to the end in one selector loop (no client threads, so
    ``threading.active_count()`` counts the server's). Returns the answers and the most threads seen meanwhile."""
    sel = selectors.DefaultSelector()
    answers = [bytearray() for _ in requests]
    for i, req in enumerate(requests):
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    max_threads, end = threading.active_count(), time.monotonic() + DEADLINE_S
    try:
        while sel.get_map():
            left = len(sel.get_map())
            assert time.monotonic() < end, f"{left} of {len(requests)} requests unanswered after {DEADLINE_S} s"
            for key, _ in sel.select(1.0):
                data = key.fileobj.recv(65536)
                if data:
                    answers[key.data] += data
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
            max_threads = max(max_threads, threading.active_count())
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return [bytes(a) for a in answers], max_threads


def _page_request(port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()


def _assert_page(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == INDEX, head[:200]


def _still_open(s: socket.socket) -> bool:
    """True if the server has neither closed ``s`` nor sent anything on it."""
    s.setblocking(False)
    try:
        s.recv(1)  # b"": closed; data: an answer nobody asked for
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def test_range_requests_stream_the_asked_bytes(serve):
    _, port = serve()
    n = len(VIDEO)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)  # one keep-alive connection for all
    try:
        st, h, body = _get(port, "/video/clip.mp4", conn=conn)
        assert (st, h["Accept-Ranges"], h["Content-Type"], body) == (200, "bytes", "video/mp4", VIDEO)
        cases = {"bytes=0-9": (0, 10), "bytes=-5": (n - 5, n), f"bytes={n - 3}-": (n - 3, n),
                 "bytes=1000-2999": (1000, 3000), "bytes=5-99999999": (5, n), "BYTES = 7 - 8": (7, 9)}
        for rng, (start, stop) in cases.items():
            st, h, body = _get(port, "/video/clip.mp4", {"Range": rng}, conn=conn)
            assert st == 206, rng
            assert h["Content-Range"] == f"bytes {start}-{stop - 1}/{n}", rng
            assert int(h["Content-Length"]) == stop - start and body == VIDEO[start:stop], rng
        for rng in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
            st, h, body = _get(port, "/video/clip.mp4", {"Range": rng}, conn=conn)
            assert (st, h["Content-Range"], body) == (416, f"bytes */{n}", b""), rng
        for rng in ("bytes=0-1,5-6", "bytes=9-3", "pages=1-2", "bytes=x-"):  # ignored: the whole file
            st, h, body = _get(port, "/video/clip.mp4", {"Range": rng}, conn=conn)
            assert (st, body) == (200, VIDEO), rng
        st, h, body = _get(port, "/video/clip.mp4", {"Range": "bytes=10-19"}, method="HEAD", conn=conn)
        assert (st, h["Content-Length"], h["Content-Range"], body) == (206, "10", f"bytes 10-19/{n}", b"")
    finally:
        conn.close()


def test_only_the_page_the_bundle_listing_and_the_given_files_are_served(serve, bundle, tmp_path):
    import json

    b = shutil.copytree(bundle, tmp_path / "bundle")
    (b / "notes.txt").write_text("a file beside the bundle that its manifest does not list")
    (b / "sub").mkdir()
    (b / "sub" / "x.onnx").write_bytes(b"not listed")
    model_file = json.loads((b / "manifest.json").read_text())["model_file"]
    _, port = serve(b)
    served = ["/", "/index.html", "/js/app.js", "/js/worker.js", "/bundle/manifest.json", f"/bundle/{model_file}",
              "/video/clip.mp4", "/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
              "/node_modules/@mediapipe/tasks-vision/vision_bundle.mjs",
              "/node_modules/@mediapipe/tasks-vision/wasm/vision_wasm_internal.wasm",
              "/node_modules/mediabunny/dist/bundles/mediabunny.min.mjs"]
    for path in served:
        assert _get(port, path)[0] == 200, path
    assert _get(port, f"/bundle/{model_file}")[2] == (b / model_file).read_bytes()
    refused = ["/bundle/notes.txt", "/bundle/sub/x.onnx", "/bundle/", "/bundle", "/video/other.mp4", "/video/",
               "/node_modules/onnxruntime-web/package.json", "/node_modules/onnxruntime-web/lib/index.ts",
               "/node_modules/@mediapipe/tasks-vision/README.md", "/node_modules/left-pad/index.js",
               "/js/", "/js/nosuch.js", "/package.json", "/__init__.py", "/hand_landmarker.task"]
    for path in refused:
        assert _get(port, path)[0] == 404, path


def test_foreign_host_is_refused(serve):
    _, port = serve()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert _get(port, "/video/clip.mp4", {"Host": host})[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", "localhost",
                 f"127.0.0.1.evil.example:{port}", f"127.0.0.2:{port}", ""):
        st, _, body = _get(port, "/video/clip.mp4", {"Host": host})
        assert st == 403 and VIDEO[:64] not in body, host
    assert _status(_raw(port, b"GET /video/clip.mp4 HTTP/1.0\r\n\r\n")) == 403  # no Host at all
    two = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n".encode()
    assert _status(_raw(port, two)) == 403


def test_bad_paths_get_a_4xx_and_the_server_keeps_serving(serve, capfd):
    _, port = serve()
    paths = ["/bundle/%00", "/%00", "/js/app.js%00.png", "/video/clip.mp4%00", "/bundle/%ff%fe", "/js/%0d%0aX: y",
             "/bundle/../../../etc/passwd", "/bundle/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/js/../../__init__.py",
             "/js/..%2f..%2f__init__.py", "/js/..%5c..%5c__init__.py", "/node_modules/%2e%2e/%2e%2e/__init__.py",
             "/node_modules/onnxruntime-web/dist/../lib/index.ts", "//etc/passwd", "/js/" + "a" * 5000, "/\u00e9", "*"]
    host = f"Host: 127.0.0.1:{port}\r\n"
    for path in paths:
        answer = _raw(port, f"GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode())
        assert 400 <= _status(answer) < 500, (path, answer[:100])
    malformed = [b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"BREW / HTTP/1.1\r\n\r\n",
                 f"GET / HTTP/1.1\r\n{host}X: {'y' * 70000}\r\n\r\n".encode(),  # a head over MAX_HEAD_BYTES
                 f"GET / HTTP/1.1\r\n{host}".encode() + b"".join(b"X%d: y\r\n" % i for i in range(200)) + b"\r\n"]
    for data in malformed:
        answer = _raw(port, data)
        assert 400 <= _status(answer) < 600 and _status(answer) != 500, (data[:40], answer[:100])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")  # half a request, then the client goes away
    assert _get(port, "/")[0] == 200 and _get(port, "/video/clip.mp4")[2] == VIDEO
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]


def test_200_concurrent_page_requests_all_answered_with_bounded_threads(serve):
    before = threading.active_count()
    _, port = serve()
    answers, max_threads = _concurrent(port, [_page_request(port)] * 200)
    for a in answers:
        _assert_page(a)
    assert max_threads <= before + POOL_SIZE + 1, (max_threads, before)


def test_idle_connections_do_not_block_other_clients(serve):
    before = threading.active_count()
    _, port = serve(timeout=DEADLINE_S)  # nothing times out during this test
    idle = []
    for i in range(100):  # silent, half a request head, and keep-alive after one answered request
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        if i % 3 == 1:
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        elif i % 3 == 2:
            s.sendall(f"GET /js/app.js HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.recv(1)  # the answer has started; the rest may stay unread in the socket buffer
        idle.append(s)
    try:
        answers, max_threads = _concurrent(port, [_page_request(port)] * 50)
        for a in answers:
            _assert_page(a)
        assert max_threads <= before + POOL_SIZE + 1, (max_threads, before)
        assert threading.active_count() <= before + POOL_SIZE + 1
        silent_and_half = [s for i, s in enumerate(idle) if i % 3 != 2]
        assert all(_still_open(s) for s in silent_and_half), "idle connections were closed before the timeout"
    finally:
        for s in idle:
            s.close()


def test_idle_connections_are_closed_after_the_timeout(serve):
    timeout = 1.0
    _, port = serve(timeout=timeout)
    opened = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) for _ in range(100)]
    for i, s in enumerate(idle):
        if i % 2:  # a slow-loris head: one byte, never finished
            s.sendall(b"G")
    try:
        for i, s in enumerate(idle):
            s.settimeout(max(0.1, opened + DEADLINE_S - time.monotonic()))
            try:
                assert s.recv(1) == b"", "an idle connection got an answer"
            except ConnectionResetError:
                pass  # closed with unread bytes: a reset, also a close
            if i == 0:  # the first one opened: closed, but not before the timeout
                assert time.monotonic() - opened >= timeout * 0.9, "an idle connection closed before the timeout"
        assert _get(port, "/")[0] == 200  # and the server still serves
    finally:
        for s in idle:
            s.close()


RSS_CHILD = textwrap.dedent("""
    import resource, sys
    from slsdk.demos.web import make_server

    def peak_kib():  # peak resident set size of this process so far
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except OSError:
            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return r // 1024 if sys.platform == "darwin" else r

    srv = make_server(sys.argv[1], sys.argv[2], None, 0, timeout=600).start()
    print(srv.url, peak_kib(), flush=True)
    sys.stdin.readline()  # the clients are connected and stalled
    print(peak_kib(), flush=True)
    srv.stop()
""")


def test_rss_stays_bounded_serving_a_large_file_to_slow_clients(bundle, node_modules, tmp_path):
    """60 clients fetch a 50 MB file (half of them from the middle, by Range), each reads 256 KiB in small pieces,
    then stops reading. The server's peak RSS grows by less than LIMIT_MB (reading each file whole: 3 GB)."""
    import os

    size, clients, read_each, limit_mb = 50 * 2**20, 60, 256 * 1024, 100
    big = tmp_path / "big.webm"
    with open(big, "wb") as f:
        f.truncate(size)  # sparse: zeros
    env = {**os.environ, "SLSDK_WEB_NODE_MODULES": str(node_modules)}
    child = subprocess.Popen([sys.executable, "-c", RSS_CHILD, str(bundle), str(big)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    socks = []
    try:
        url, base_kib = child.stdout.readline().split()
        port = int(url.split(":")[2].split("/")[0])
        sel = selectors.DefaultSelector()
        got = {}
        for i in range(clients):
            s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
            rng = f"Range: bytes={size // 2}-\r\n" if i % 2 else ""
            s.sendall(f"GET /video/big.webm HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{rng}\r\n".encode())
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            socks.append(s)
            got[i] = bytearray()
        end = time.monotonic() + DEADLINE_S
        while sel.get_map():  # round robin, 4 KiB at a time, until each client has its 256 KiB (+ head)
            assert time.monotonic() < end, f"{len(sel.get_map())} clients still waiting after {DEADLINE_S} s"
            for key, _ in sel.select(1.0):
                data = key.fileobj.recv(4096)
                assert data, f"client {key.data}: connection closed early"
                got[key.data] += data
                if len(got[key.data]) >= read_each:
                    sel.unregister(key.fileobj)  # stalls: the server must not buffer the rest of the file
        sel.close()
        for i, data in got.items():
            head, _, body = bytes(data).partition(b"\r\n\r\n")
            want = b"206 Partial Content" if i % 2 else b"200 OK"
            length = size - size // 2 if i % 2 else size
            assert want in head and f"Content-Length: {length}".encode() in head, head
            assert body and body.count(0) == len(body)
        child.stdin.write("\n")
        child.stdin.flush()
        peak_kib = int(child.stdout.readline())
        grown_mb = (peak_kib - int(base_kib)) / 1024
        print(f"rss: {int(base_kib) / 1024:.0f} MB after start, peak {peak_kib / 1024:.0f} MB with {clients} "
              f"stalled clients of a {size >> 20} MB file (+{grown_mb:.1f} MB)")
        assert grown_mb < limit_mb, f"peak RSS grew by {grown_mb:.0f} MB serving {clients} slow clients"
    finally:
        for s in socks:
            s.close()
        try:
            child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        err = child.stderr.read()
    assert child.returncode == 0 and "Traceback" not in err, err[-2000:]
