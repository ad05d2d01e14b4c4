"""A replica's shard warnings say what failed in one line that names the database.

`ShardElector` logged ``error=str(exc)``: for a database stopped under it, a bare
``[Errno 111] Connect call failed ('127.0.0.1', PORT)`` naming no database, and the
lease rounds of its shards only the driver's reason; for a database that answered and
refused, SQLAlchemy's text (its statement on several lines and a link to its docs).
Built as the daemon builds it (`jarvis.cli.daemon._elector`), it now says them as the
store says every database error (`EventStore.explain`). A private PostgreSQL
(`tests.private_postgres`) stopped mid-run; a role whose privileges are revoked on the
shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from jarvis.cli.daemon import _elector
from jarvis.loop.shards import ShardElector
from jarvis.store import upgrade
from jarvis.store.lease import PgLease
from tests.loop.conftest import AppFactory
from tests.private_postgres import SUPERUSER_PASSWORD, PrivatePostgres, private_postgres

pytestmark = pytest.mark.anyio

SHARDS = 2
LEASE = {"duration": 600, "renew_deadline": 300, "retry_period": 1}
"""Long: the test steps the electors itself, and no deadline may pass on a slow machine."""
SAID_BY_SQLALCHEMY = ("sqlalche.me", "[SQL", "SELECT", "INSERT", "DELETE", "[parameters")


def one_line_naming(error: object, server: str, database: str) -> None:
    """``error`` is one printable line naming ``server`` and ``database``, with no statement,
    no bound parameters, no SQLAlchemy link and no password."""
    assert isinstance(error, str), error
    assert error.isprintable(), error
    assert server in error, error
    assert f"(database {database})" in error, error
    for leaked in (*SAID_BY_SQLALCHEMY, SUPERUSER_PASSWORD):
        assert leaked not in error, error


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    """A server of this test's own, its ``postgres`` database migrated: the test stops it."""
    with private_postgres(["host all all 127.0.0.1/32 scram-sha-256"]) as pg:
        yield pg


@pytest.fixture
async def migrated(server: PrivatePostgres) -> str:
    url = server.url("postgres", SUPERUSER_PASSWORD)
    await upgrade(url)
    return url


async def holding_both_with_one_surplus(make_app: AppFactory, url: str) -> ShardElector:
    """The daemon's elector, holding both shards, one of them to hand over (a replica joined)."""
    app = await make_app(database_url=url, loop={"shards": SHARDS}, lease=LEASE)
    elector = _elector(app.settings, app)
    assert isinstance(elector, ShardElector)
    await elector.step()  # no heartbeat yet: takes nothing, then beats
    await elector.step()
    assert len(elector.held()) == SHARDS
    await PgLease(app.store.engine, "joined", duration=600).heartbeat(None)
    await elector.step()
    assert len(elector.surplus) == 1
    return elector


def warnings(logs: list[MutableMapping[str, Any]]) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for line in logs:
        if line["log_level"] == "warning" and "error" in line:
            found.setdefault(line["event"], []).append(line["error"])
    return found


async def test_a_database_stopped_under_the_shards_is_named_in_every_warning(
    make_app: AppFactory, server: PrivatePostgres, migrated: str
) -> None:
    """The database stops: each warning of a round, of a hand-over and of leaving is one
    line naming the server and the database, not the bare socket error."""
    elector = await holding_both_with_one_surplus(make_app, migrated)
    server.halt()
    with capture_logs() as logs:
        await elector.step()
        await elector.hand_over()
        await elector.resign()

    said = warnings(logs)
    assert set(said) >= {
        "lease round failed",
        "could not count the replicas",
        "could not read the shard leases",
        "heartbeat failed",
        "could not release a shard",
        "could not release the lease",
        "could not leave",
    }, said
    for errors in said.values():
        for error in errors:
            one_line_naming(error, f"127.0.0.1:{server.port}", "postgres")


ROLE_PASSWORD = "role-pw-Qe5n"


@pytest.fixture
async def role_url(pg_url: str) -> AsyncIterator[str]:
    """``pg_url`` migrated, reached as a role of its own granted the tables' rows."""
    await upgrade(pg_url)
    parts = urlsplit(pg_url)
    name = parts.path.lstrip("/")
    role = f"shards_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        await admin.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        netloc = f"{role}:{ROLE_PASSWORD}@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await admin.close()
        server = await asyncpg.connect(
            pg_url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0] + "/postgres"
        )
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await server.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await server.close()


async def test_privileges_revoked_under_the_shards_are_one_line_without_the_statement(
    make_app: AppFactory, pg_url: str, role_url: str
) -> None:
    """The role loses its privileges on the lease tables: each warning names the database
    and the role refused, without SQLAlchemy's statement and link."""
    parts = urlsplit(role_url)
    role, database = parts.username, parts.path.lstrip("/")
    elector = await holding_both_with_one_surplus(make_app, role_url)
    admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f"REVOKE ALL ON leases, replicas FROM {role}")
    finally:
        await admin.close()
    with capture_logs() as logs:
        await elector.step()
        await elector.hand_over()
        await elector.resign()

    said = warnings(logs)
    assert {
        "lease round failed",
        "could not count the replicas",
        "could not read the shard leases",
        "heartbeat failed",
        "could not release a shard",
        "could not leave",
    } <= set(said), said
    for errors in said.values():
        for error in errors:
            one_line_naming(error, f"{parts.hostname}:{parts.port or 5432}", database)
            assert f"refuses user {role}" in str(error), error
            assert ROLE_PASSWORD not in str(error), error
