"""A provider that takes the connection and never answers, on a free loopback port.

`silent_server()` accepts every TCP connection and reads what is sent, but writes
nothing back: an API that hung. With ``upstream`` (a fake's host and port) it
forwards each connection's bytes both ways, as a plain TCP relay, until the
client sends a chunk holding one of ``hang_on`` (``b"PATCH "``, an ``X-Amz-Target``):
that request never reaches the fake and is never answered, while the reads
before it were. So an observe succeeds and the apply after it hangs. A test
reads `SilentServer.held` to know a request was swallowed. Everything stops, and
every socket is closed, when the block ends.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["SilentServer", "silent_server"]


@dataclass
class SilentServer:
    """Where the silent server listens, and what it swallowed."""

    port: int
    upstream: tuple[str, int] | None
    hang_on: tuple[bytes, ...]
    held: threading.Event = field(default_factory=threading.Event)
    """Set once a request went unanswered (with no upstream: once a connection came)."""
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, client: socket.socket) -> None:
        """One connection until the server stops: relayed, or read and never answered."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            relay = None
            if self.upstream is not None:
                relay = stack.enter_context(socket.create_connection(self.upstream, timeout=10))
            else:
                self.held.set()
            self._pump(client, relay)

    def _pump(self, client: socket.socket, relay: socket.socket | None) -> None:
        answering = relay is not None
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            if relay is not None:
                selector.register(relay, selectors.EVENT_READ)
            while not self.stopped.is_set():
                for key, _ in selector.select(timeout=0.2):
                    sock = client if key.fileobj is client else relay
                    assert sock is not None
                    data = sock.recv(65536)
                    if sock is client and any(mark in data for mark in self.hang_on):
                        self.held.set()
                        answering = False  # this request, and all after it, go unanswered
                    if not data and (sock is client or answering):
                        return  # a close goes through while the relay answers
                    if not data:
                        selector.unregister(sock)  # the fake closed: the client still waits
                    elif answering and relay is not None:
                        (relay if sock is client else client).sendall(data)


@contextmanager
def silent_server(
    upstream: tuple[str, int] | None = None, hang_on: Sequence[bytes] = ()
) -> Iterator[SilentServer]:
    """A silent server on 127.0.0.1 (a free port), relaying to ``upstream`` until a
    request holding one of ``hang_on`` comes; stopped, its sockets closed, at the end."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server = SilentServer(listener.getsockname()[1], upstream, tuple(hang_on))
    workers: list[threading.Thread] = []

    def accept() -> None:
        while not server.stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=server.serve, args=(client,), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        server.stopped.set()
        acceptor.join(timeout=10)
        listener.close()
        for worker in workers:
            worker.join(timeout=10)
