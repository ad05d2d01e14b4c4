"""Shared fixtures: real PostgreSQL and Redis, each test on a fresh database.

`JARVIS_TEST_DATABASE_URL` and `JARVIS_TEST_REDIS_URL` point elsewhere than the
local defaults. When a server does not answer, tests that need it skip and
say so, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import settings

from tests.store.tcp_proxy import TcpProxy

# Hypothesis's default deadline (200 ms an example) is a timing assertion that a
# machine busy with parallel workers and daemons can fail at random. The
# properties here are about what functions answer, not how fast: no deadline.
settings.register_profile("jarvis", deadline=None)
settings.load_profile("jarvis")

PG_URL = os.environ.get(
    "JARVIS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("JARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _require(url: str, default_port: int, what: str) -> None:
    if _answers(url, default_port):
        return
    message = f"{what} does not answer at {url}"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true a missing server is a failure")
    pytest.skip(f"{message}; set JARVIS_TEST_* to a running server to run this test")


async def create_pg_database() -> str:
    """Create a brand-new, empty PostgreSQL database and return its URL."""
    _require(PG_URL, 5432, "PostgreSQL")
    import asyncpg

    admin_url = PG_URL.replace("postgresql+asyncpg", "postgresql")
    name = f"jarvis_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL to a brand-new, empty PostgreSQL database, dropped after the test."""
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def pg_proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy on 127.0.0.1 in front of the test's PostgreSQL server (`TcpProxy.url_for`)."""
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


REDIS_DATABASES = 16
"""Redis's default `databases`: indexes 0-15."""


def redis_database_url(base: str, worker: str | None) -> str:
    """The Redis URL one test process uses: ``base`` alone, or its own database per worker.

    A serial run uses ``base``'s database. Under pytest-xdist each worker ``gwN``
    flushes its own, counting down from the one below ``base``'s (wrapping past
    0), so two workers, or a worker and a serial run elsewhere, never flush each
    other's keys.
    """
    if worker is None:
        return base
    index = int(worker.removeprefix("gw"))
    if index >= REDIS_DATABASES - 1:
        raise ValueError(
            f"worker {worker}: Redis has {REDIS_DATABASES} databases, one for a serial run "
            f"and {REDIS_DATABASES - 1} for workers; run pytest with fewer workers (-n)"
        )
    parts = urlsplit(base)
    serial = int(parts.path.strip("/") or 0)
    own = (serial - 1 - index) % REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{own}"))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A URL to a Redis database of this process's own, flushed around the test.

    Index 15 (or `JARVIS_TEST_REDIS_URL`'s) in a serial run; see `redis_database_url`
    for the one each pytest-xdist worker uses.
    """
    base = REDIS_URL if "JARVIS_TEST_REDIS_URL" in os.environ else "redis://127.0.0.1:6379/15"
    url = redis_database_url(base, os.environ.get("PYTEST_XDIST_WORKER"))
    _require(url, 6379, "Redis")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A URL to a fresh SQLite file in the test's temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"


@pytest.fixture(params=["sqlite", "postgres"])
async def sqlite_or_postgres(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    """The embedded SQLite default, then a brand-new migrated PostgreSQL database: a module
    whose tests run on both returns this as its ``db_url``."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    from jarvis.store import upgrade

    url = await create_pg_database()
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_pg_database(url)
