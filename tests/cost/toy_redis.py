"""A loopback server that speaks just enough Redis to be slow, silent or fine on cue.

For the routing client's time budget: a real Redis cannot be told to take a
second per reply, or to accept a connection and never answer. This one can:
`delay` holds every reply that long, `silent` swallows every request (a
blackholed Redis: the TCP handshake succeeds, nothing comes back). It knows
HELLO (RESP3, as redis-py 8 asks), HGET, HMGET, HGETALL and OK for anything else
(SELECT, CLIENT SETINFO).
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class ToyRedis:
    """Serves one hash per key; every connection on its own thread, all closed by `stop`."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.delay = 0.0
        self.silent = False
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        # shutdown, not close alone: on Linux only that wakes the blocked accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while (command := _read_command(reader)) is not None:
                if self.silent:
                    continue
                time.sleep(self.delay)
                conn.sendall(self._reply(command))
        except OSError:
            return

    def _reply(self, command: list[str]) -> bytes:
        name = command[0].upper()
        if name == "HGET":
            value = self.hashes.get(command[1], {}).get(command[2])
            return b"$-1\r\n" if value is None else _bulk(value)
        if name == "HMGET":
            found = self.hashes.get(command[1], {})
            values = [found.get(field) for field in command[2:]]
            # RESP3's null is "_", not RESP2's "$-1".
            return f"*{len(values)}\r\n".encode() + b"".join(
                b"_\r\n" if v is None else _bulk(v) for v in values
            )
        if name == "HGETALL":
            fields = self.hashes.get(command[1], {})
            items = [_bulk(part) for pair in fields.items() for part in pair]
            return f"%{len(fields)}\r\n".encode() + b"".join(items)
        if name == "HELLO":
            return b"%1\r\n" + _bulk("proto") + b":3\r\n"
        return b"+OK\r\n"


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _read_command(reader: io.BufferedReader) -> list[str] | None:
    header = reader.readline()
    if not header:
        return None
    parts = []
    for _ in range(int(header[1:])):
        size = int(reader.readline()[1:])
        parts.append(reader.read(size + 2)[:-2].decode())
    return parts


@contextmanager
def toy_redis() -> Iterator[ToyRedis]:
    server = ToyRedis()
    try:
        yield server
    finally:
        server.stop()
