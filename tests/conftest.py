"""Shared fixtures: real PostgreSQL and Redis, each test on a fresh database.

`JARVIS_TEST_DATABASE_URL` and `JARVIS_TEST_REDIS_URL` point elsewhere than the
local defaults. When a server does not answer, tests that need it skip and
say so, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def migrated_pg_database() -> Iterator[str]:
    """A brand-new PostgreSQL database migrated to head, dropped after; sync, for tests
    that drive `jarvis` processes rather than run in an event loop."""
    import anyio

    from jarvis.store import upgrade

    url = anyio.run(create_pg_database)
    try:
        anyio.run(upgrade, url)
        yield url
    finally:
        anyio.run(drop_pg_database, url)


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


@contextmanager
def claimed_redis_database(url: str, lock_dir: Path) -> Iterator[str]:
    """``url`` with the first Redis database that no other test process holds, from
    ``url``'s own counting down (wrapping past 0), held until the claim ends.

    A claim is an flock on a file per server and database index in ``lock_dir``: two
    serial runs at once (two worktrees, a developer beside CI) would otherwise flush each
    other's keys in database 15. The kernel drops the lock when its process dies, so a
    killed run leaves nothing held.
    """
    parts = urlsplit(url)
    first = int(parts.path.strip("/") or 0)
    server = f"{parts.hostname}-{parts.port or 6379}"
    for step in range(REDIS_DATABASES):
        index = (first - step) % REDIS_DATABASES
        try:
            lock = (lock_dir / f"jarvis-test-redis-{server}-{index}.lock").open("a")
        except OSError:
            continue  # another user's lock file: theirs, whether held or not
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield urlunsplit(parts._replace(path=f"/{index}"))
        finally:
            lock.close()  # and with it the flock
        return
    raise RuntimeError(f"all {REDIS_DATABASES} Redis databases at {server} are held by test runs")


@pytest.fixture(scope="session")
def redis_database() -> Iterator[str]:
    """This test process's Redis database for the whole run: `JARVIS_TEST_REDIS_URL`'s (or
    its worker's) as given, else claimed from 15 (a worker: from its own) down."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if "JARVIS_TEST_REDIS_URL" in os.environ:
        yield redis_database_url(REDIS_URL, worker)
        return
    url = redis_database_url("redis://127.0.0.1:6379/15", worker)
    with claimed_redis_database(url, Path(tempfile.gettempdir())) as claimed:
        yield claimed


@pytest.fixture
def redis_url(redis_database: str) -> Iterator[str]:
    """A URL to a Redis database of this process's own, flushed around the test.

    See `redis_database` for which one.
    """
    _require(redis_database, 6379, "Redis")
    import redis

    client = redis.Redis.from_url(redis_database)
    client.flushdb()
    try:
        yield redis_database
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
