"""The bounded HTTP server of the web demo: one selector thread for all socket I/O, a fixed pool of workers that
turn a request head into a response head, the bounds of :mod:`slsdk.demos.web` (connections, head size, timeouts)."""
from __future__ import annotations

import collections
import io
import mimetypes
import os
import re
import selectors
import socket
import stat
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from slsdk.demos.web.site import Site, bad_url_path

TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".html": "text/html; charset=utf-8", ".onnx": "application/octet-stream", ".ort": "application/octet-stream",
         ".task": "application/octet-stream", ".webm": "video/webm", ".mp4": "video/mp4", ".map": "application/json"}

# Server bounds (see the slsdk.demos.web docstring): threads = POOL_SIZE workers + 1 selector thread, whatever the load.
POOL_SIZE = 8                # worker threads: each turns one request head into a response head (no socket I/O)
SOCKET_TIMEOUT_S = 30.0      # default `timeout`: no complete request / no response progress for this long -> closed
LISTEN_BACKLOG = 512         # listen() backlog: connections the kernel queues while the server is busy
MAX_CONNECTIONS = 384        # open connections at most (each may hold an open file too: well under 1024 fds)
MAX_HEAD_BYTES = 64 * 1024   # a request head (request line + headers) longer than this is answered 431
CHUNK_BYTES = 64 * 1024      # a response body is read from disk and sent in pieces of at most this size
CHUNKS_PER_TURN = 16         # pieces sent to one connection before the selector thread turns to the others
LINGER_S = 2.0               # after a closing answer, what the client still sends is read and dropped this long
                             # (closing with unread bytes would reset the connection and lose the answer)

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_RANGE = re.compile(r"bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})", re.IGNORECASE)
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_CLOSE_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
_CLOSE_500 = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, stop)`` a ``Range`` header asks of ``size`` bytes; None: send it all (no header, one the server
    ignores: other units, several ranges, bad syntax). Raises ``_Unsatisfiable`` for a range past the end."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # a suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - n), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid: ignored, as RFC 9110 says
    if start >= size:
        raise _Unsatisfiable
    return start, size if last == "" else min(int(last) + 1, size)


class _Unsatisfiable(Exception):
    """A Range that selects no byte of the file (answered 416)."""


class _Body:
    """The rest of a response body: an open file, read in CHUNK_BYTES pieces by the selector thread."""

    __slots__ = ("file", "remaining")

    def __init__(self, file, remaining: int):
        self.file, self.remaining = file, remaining

    def read(self) -> bytes:
        data = self.file.read(min(CHUNK_BYTES, self.remaining))
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


class _Conn:
    """One client connection, owned by the selector thread except while a worker answers its request."""

    __slots__ = ("sock", "addr", "inbuf", "scanned", "head", "out", "body", "close_after", "deadline", "busy",
                 "events", "closed", "lingering")

    def __init__(self, sock: socket.socket, addr, deadline: float):
        self.sock, self.addr, self.deadline = sock, addr, deadline
        self.inbuf, self.scanned, self.head = bytearray(), 0, b""
        self.out, self.body, self.close_after = memoryview(b""), None, False
        self.busy, self.events, self.closed, self.lingering = False, 0, False, False


class _Handler(BaseHTTPRequestHandler):
    """Answers one request head (``request`` is a ``_Conn``) into ``wfile`` (a buffer) and ``body``; it never touches
    the socket: the selector thread sends what it wrote, then ``body``."""

    server_version = "slsdk-web"
    protocol_version = "HTTP/1.1"  # keep-alive: the page loads a dozen files
    default_request_version = "HTTP/1.0"  # an unparsable request line still gets a status line (not HTTP/0.9)
    body: _Body | None = None

    def setup(self):
        self.rfile = io.BytesIO(self.request.head)
        self.wfile = io.BytesIO()

    def handle(self):
        self.handle_one_request()

    def finish(self):
        pass

    def log_message(self, fmt, *args):  # quiet: the first output line is the URL, keep stdout for it
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # cross-origin isolation: SharedArrayBuffer, so ONNX Runtime Web may use WebAssembly threads
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def do_GET(self):  # noqa: N802 - http.server's name
        self._send(head=False)

    def do_HEAD(self):  # noqa: N802
        self._send(head=True)

    def _host_ok(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        return len(hosts) == 1 and hosts[0].strip().lower() in self.server.allowed_hosts

    def _send(self, head: bool):
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = True  # a body this server does not read: never parse it as a request
        if not self._host_ok():  # DNS rebinding: a foreign page's requests name the foreign host
            self.send_error(HTTPStatus.FORBIDDEN, "Host not allowed", "this server answers only to "
                            f"127.0.0.1, localhost or [::1] on port {self.server.server_address[1]}")
            return
        raw = urlsplit(self.path).path
        try:
            bad = bad_url_path(unquote(raw, errors="strict"))
        except UnicodeDecodeError:
            bad = True
        if bad:
            self.send_error(HTTPStatus.BAD_REQUEST, "bad path")
            return
        path = self.server.site.resolve(raw)
        try:
            f = open(path, "rb") if path is not None else None  # noqa: SIM115 - the selector thread closes it
        except OSError:
            f = None
        if f is None:
            self.send_error(HTTPStatus.NOT_FOUND, "not served here")
            return
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                f.close()
                self.send_error(HTTPStatus.NOT_FOUND, "not served here")
                return
            self._send_file(f, path, st.st_size, head)
        except BaseException:
            f.close()
            raise

    def _send_file(self, f, path: Path, size: int, head: bool):
        """Headers for the whole file (200) or the asked range (206 / 416); ``body`` the bytes still to send."""
        try:
            rng = None if self.headers.get("If-Range") else _byte_range(self.headers.get("Range"), size)
        except _Unsatisfiable:
            f.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, stop = rng or (0, size)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if rng else HTTPStatus.OK)
        ctype = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if head or stop == start:
            f.close()
            return
        f.seek(start)
        self.body = _Body(f, stop - start)


class DemoHTTPServer(HTTPServer):
    """The bounded server: a selector thread for all socket I/O, ``POOL_SIZE`` workers, the bounds of the module
    docstring. ``serve_forever`` / ``shutdown`` / ``server_close`` as for any ``socketserver`` server."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, site: Site, *, timeout: float = SOCKET_TIMEOUT_S, workers: int = POOL_SIZE,
                 max_connections: int = MAX_CONNECTIONS):
        self.site, self.conn_timeout = site, float(timeout)
        self.workers, self.max_connections = workers, max_connections
        self._conns: set[_Conn] = set()
        self._done: collections.deque[_Conn] = collections.deque()  # answered by a worker, for the selector
        self._jobs: collections.deque[_Conn | None] = collections.deque()
        self._jobs_ready = threading.Semaphore(0)
        self._stop = False
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        super().__init__(address, _Handler)
        port = self.server_address[1]
        names = {*_LOCAL_HOSTS, str(self.server_address[0]).lower()}
        self.allowed_hosts = frozenset({f"{h}:{port}" for h in names} | (names if port == 80 else set()))

    # -- public surface --------------------------------------------------------------------------------------
    def wait_running(self, timeout: float) -> bool:
        """Wait until ``serve_forever`` has started (True) or ``timeout`` seconds passed (False)."""
        return self._running.wait(timeout)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()``; the worker threads live as long as this call."""
        self._stop = False
        self._stopped.clear()
        self._running.set()
        threads = [threading.Thread(target=self._work, name=f"slsdk-web-worker-{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        self._sel = selectors.DefaultSelector()
        self._accepting = False
        try:
            self.socket.setblocking(False)
            self._sel.register(self._wake_r, selectors.EVENT_READ)
            self._set_accepting(True)
            self._loop(poll_interval)
        finally:
            for _ in threads:
                self._submit(None)
            for c in list(self._conns):
                self._close(c)
            self._sel.close()
            for t in threads:  # they finish the request in hand (no socket I/O: quick), then exit
                t.join(5.0)
            self._running.clear()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from another thread) and wait until it has returned."""
        self._stop = True
        self._wake()
        if self._running.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket (after ``shutdown``)."""
        super().server_close()
        for s in (self._wake_r, self._wake_w):
            s.close()

    # -- selector thread -------------------------------------------------------------------------------------
    def _loop(self, poll_interval: float) -> None:
        sweep_every = max(0.05, min(poll_interval, self.conn_timeout / 4))
        next_sweep = time.monotonic() + sweep_every
        while not self._stop:
            for key, events in self._sel.select(max(0.0, next_sweep - time.monotonic())):
                if key.fileobj is self.socket:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                elif not key.data.closed:
                    (self._on_readable if events & selectors.EVENT_READ else self._on_writable)(key.data)
            while self._done:
                c = self._done.popleft()
                c.busy, c.deadline = False, time.monotonic() + self.conn_timeout
                if not c.closed:
                    self._on_writable(c)
                elif c.body is not None:  # closed while a worker answered it (evicted, shutting down)
                    c.body.close()
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + sweep_every
                for c in [c for c in self._conns if not c.busy and now > c.deadline]:
                    self._close(c)  # idle, too slow to send a request, or not reading its response
                if not self._accepting:
                    self._set_accepting(True)

    def _accept(self) -> None:
        while True:
            if len(self._conns) >= self.max_connections and not self._evict_idle():
                self._set_accepting(False)  # the rest wait in the listen backlog
                return
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of file descriptors and the like: retry at the next sweep
                self._set_accepting(False)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            c = _Conn(sock, addr, time.monotonic() + self.conn_timeout)
            self._conns.add(c)
            self._watch(c, selectors.EVENT_READ)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest without sending a byte of a request; False if none."""
        idle = [c for c in self._conns if not c.busy and not c.inbuf and not c.out and c.body is None]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _set_accepting(self, on: bool) -> None:
        if on and not self._accepting and len(self._conns) < self.max_connections:
            self._sel.register(self.socket, selectors.EVENT_READ)
            self._accepting = True
        elif not on and self._accepting:
            self._sel.unregister(self.socket)
            self._accepting = False

    def _watch(self, c: _Conn, events: int) -> None:
        """Register ``c`` for ``events`` (0: none) with the selector."""
        if events == c.events:
            return
        if c.events == 0:
            self._sel.register(c.sock, events, c)
        elif events == 0:
            self._sel.unregister(c.sock)
        else:
            self._sel.modify(c.sock, events, c)
        c.events = events

    def _on_readable(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(MAX_HEAD_BYTES + 1 - len(c.inbuf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        if c.lingering:
            return
        c.inbuf += data
        self._dispatch(c)

    def _dispatch(self, c: _Conn) -> None:
        """Hand ``c`` to a worker if its buffer holds a whole request head; else wait for more bytes."""
        if c.inbuf[:1] in (b"\r", b"\n"):  # empty lines before a request line are ignored (RFC 9112)
            del c.inbuf[:len(c.inbuf) - len(c.inbuf.lstrip(b"\r\n"))]
            c.scanned = 0
        m = _HEAD_END.search(c.inbuf, max(0, c.scanned - 3))
        if m is None:
            c.scanned = len(c.inbuf)
            if len(c.inbuf) > MAX_HEAD_BYTES:
                c.inbuf.clear()
                c.out, c.close_after = memoryview(_CLOSE_431), True
                self._on_writable(c)
            else:
                self._watch(c, selectors.EVENT_READ)
            return
        c.head = bytes(c.inbuf[:m.end()])
        del c.inbuf[:m.end()]
        c.scanned, c.busy = 0, True
        self._watch(c, 0)
        self._submit(c)

    def _on_writable(self, c: _Conn) -> None:
        """Send what is pending (response head, then body pieces); then the next request or close."""
        for _ in range(CHUNKS_PER_TURN):
            if not c.out:
                if c.body is None:
                    self._response_sent(c)
                    return
                try:
                    data = c.body.read()
                except OSError:
                    data = b""
                if c.body.remaining == 0 or not data:
                    c.body.close()
                    c.body = None
                if not data:  # the file shrank while being served: the promised length cannot be met
                    self._close(c)
                    return
                c.out = memoryview(data)
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the client went away (a cancelled fetch, a seek in a <video>)
                self._close(c)
                return
            c.out = c.out[n:]
            c.deadline = time.monotonic() + self.conn_timeout  # progress: the client is reading
        self._watch(c, selectors.EVENT_WRITE)

    def _response_sent(self, c: _Conn) -> None:
        if c.close_after:  # half-close, then drop what the client sends until it closes too (or LINGER_S)
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(c)
                return
            c.lingering, c.deadline = True, time.monotonic() + min(LINGER_S, self.conn_timeout)
            c.inbuf.clear()
            self._watch(c, selectors.EVENT_READ)
            return
        c.head, c.close_after = b"", False
        c.deadline = time.monotonic() + self.conn_timeout  # a keep-alive connection: idle from now
        self._dispatch(c)

    def _close(self, c: _Conn) -> None:
        if c.closed:
            return
        c.closed = True
        self._watch(c, 0)  # (a busy connection is unregistered already)
        if c.body is not None:
            c.body.close()
            c.body = None
        c.sock.close()
        self._conns.discard(c)
        if not self._accepting and not self._stop:
            self._set_accepting(True)

    # -- workers ---------------------------------------------------------------------------------------------
    def _submit(self, c: _Conn | None) -> None:
        self._jobs.append(c)
        self._jobs_ready.release()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError, OSError):  # full: the selector wakes anyway; closed: stopping
            pass

    def _work(self) -> None:
        while True:
            self._jobs_ready.acquire()
            c = self._jobs.popleft()
            if c is None:
                return
            try:
                h = _Handler(c, c.addr, self)
                c.out, c.body, c.close_after = memoryview(h.wfile.getvalue()), h.body, h.close_connection
            except Exception as e:  # a bug, not the client's doing: one line, a 500, the connection closed
                print(f"slsdk-web: error answering {c.head[:200]!r}: {type(e).__name__}: {e}", file=sys.stderr)
                c.out, c.body, c.close_after = memoryview(_CLOSE_500), None, True
            if not c.out and c.body is None:
                c.close_after = True  # nothing to answer (an empty request line): close
            self._done.append(c)
            self._wake()
