"""Dependency probes against servers that answer in ways the client library does not expect."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from jarvis.actuators.probes.dependencies import ProbeSensor, dependency_probes
from jarvis.config.probes import ProbeSettings
from jarvis.loop.clock import WallClock
from jarvis.model import Health
from tests.cli.conftest import Jarvis, jarvis  # noqa: F401 - the fixture

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


async def test_a_postgres_url_naming_two_hosts_is_probed_not_refused(pg_url: str) -> None:
    """asyncpg takes ``host1:port1,host2:port2``; building the probe must not choke on it,
    and its target names both hosts (no password)."""
    parts = urlsplit(pg_url)
    where = f"{parts.hostname}:{parts.port or 5432}"
    netloc = f"{parts.username or 'postgres'}:hunter22@{where},{where}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    settings = ProbeSettings.model_validate({"postgres": {"pair": url}, "timeout_seconds": 10})
    sensor = ProbeSensor(dependency_probes(settings), clock=WallClock(), timeout=10)
    [state] = await sensor.observe()
    assert state.health is Health.HEALTHY, state.detail
    assert state.attributes["target"] == f"{where},{where}{parts.path}"
    assert "hunter22" not in repr(state)


def test_dependency_urls_a_client_cannot_use_are_refused_naming_the_key(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """A port out of range, or a URL for another kind of server, fails `config check`
    (exit 2) naming its key, never printing its password; `jarvis run` used to stop
    with only "Port out of range 0-65535"."""
    cases = [
        (
            '[probes.postgres]\nmain = "postgresql://u:hunter22@127.0.0.1:99999/db"\n',
            "probes.postgres.main: ",
        ),
        ('[probes.postgres]\nmain = "mysql://u:hunter22@127.0.0.1/db"\n', "probes.postgres.main: "),
        ('[probes.redis]\ncache = "http://:hunter22@127.0.0.1:6379/0"\n', "probes.redis.cache: "),
        ('[probes.redis]\ncache = "redis://:hunter22@127.0.0.1:port/0"\n', "probes.redis.cache: "),
    ]
    for text, expected in cases:
        (tmp_path / "bad.toml").write_text(text)
        result = jarvis("--config", "bad.toml", "config", "check")
        assert result.returncode == 2, (text, result.stdout, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "hunter22" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
