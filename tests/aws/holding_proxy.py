"""An HTTP forwarder in front of moto that can hold one AWS operation, as a slow API would.

Tests aim a daemon's AWS endpoint at it to find a moment in an apply from
outside the process: `hold` names an operation (by the ``X-Amz-Target`` header
of the JSON protocol ECS speaks) and whether to hold it before moto sees it or
after moto applied it but before its answer goes back. The first matching
request then waits until `release` (or the client is killed); `held` is set
meanwhile. `log` lists every operation and whether moto received it: the
provider's own witness of what was called.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["HoldingProxy", "holding_proxy"]


@dataclass
class HoldingProxy:
    """Shared state of the forwarder: what to hold, what was held, what moto got."""

    target: tuple[str, int]
    port: int = 0
    log: list[tuple[str, bool]] = field(default_factory=list)
    """(operation, forwarded to moto), in arrival order."""
    held: threading.Event = field(default_factory=threading.Event)
    _hold: tuple[str, bool, bytes] | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, operation: str, *, after_moto: bool, containing: bytes = b"") -> None:
        """Hold the next ``operation`` whose body holds ``containing``: before moto
        sees it, or after moto applied it."""
        with self._lock:
            self.held.clear()
            self._released.clear()
            self._hold = (operation, after_moto, containing)

    def release(self) -> None:
        """Let a held request go on (its client may be gone) and hold nothing more."""
        with self._lock:
            self._hold = None
            self._released.set()

    def forwarded(self, operation: str) -> int:
        """How many ``operation`` requests moto received."""
        return sum(1 for name, sent in self.log if name == operation and sent)

    def _claim(self, operation: str, body: bytes) -> bool | None:
        """None: pass through; else this request is the held one (True: after moto)."""
        with self._lock:
            if self._hold is None or self.held.is_set():
                return None
            if self._hold[0] != operation or self._hold[2] not in body:
                return None
            self.held.set()
            return self._hold[1]

    def _wait(self) -> None:
        self._released.wait(timeout=600)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2] or self.path
        after = proxy._claim(operation, body)
        if after is False:
            proxy.log.append((operation, False))
            proxy._wait()
            self.close_connection = True
            return
        upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request("POST", self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        proxy.log.append((operation, True))
        if after:
            proxy._wait()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: the log a test reads is `HoldingProxy.log`."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: HoldingProxy


@contextmanager
def holding_proxy(moto_url: str) -> Iterator[HoldingProxy]:
    """A forwarder to ``moto_url`` on a free loopback port, stopped when the block ends."""
    parts = urlsplit(moto_url)
    proxy = HoldingProxy((parts.hostname or "127.0.0.1", parts.port or 80))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.proxy = proxy
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
