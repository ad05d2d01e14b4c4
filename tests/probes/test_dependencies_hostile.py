"""Dependency probes against servers that answer in ways the client library does not expect."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from jarvis.actuators.probes.dependencies import ProbeSensor, dependency_probes
from jarvis.config.probes import ProbeSettings
from jarvis.loop.clock import WallClock
from jarvis.model import Health

pytestmark = pytest.mark.anyio


@contextmanager
def asks_for_gssapi() -> Iterator[int]:
    """A loopback "Postgres" that asks every client for Kerberos (GSSAPI) authentication."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            try:
                conn.recv(65536)  # the startup message
                conn.sendall(b"R" + struct.pack("!ii", 8, 7))  # AuthenticationGSS
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in held:
            conn.close()
        thread.join(timeout=10)


async def test_a_postgres_asking_for_kerberos_is_one_unhealthy_probe(redis_url: str) -> None:
    """asyncpg's own client errors (GSSAPI unsupported) make that probe unhealthy; the
    other probes are still observed."""
    with asks_for_gssapi() as port:
        settings = ProbeSettings.model_validate(
            {
                "postgres": {"kerberos": f"postgresql://u@127.0.0.1:{port}/db?sslmode=disable"},
                "redis": {"cache": redis_url},
                "timeout_seconds": 10,
            }
        )
        sensor = ProbeSensor(dependency_probes(settings), clock=WallClock(), timeout=10)
        states = {str(state.ref): state for state in await sensor.observe()}
    kerberos = states["probe://postgres/kerberos"]
    assert kerberos.health is Health.UNHEALTHY
    assert kerberos.attributes["error"] == "InternalClientError"
    assert states["probe://redis/cache"].health is Health.HEALTHY
