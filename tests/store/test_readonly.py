"""The read-only reader `jarvis plan` uses answers exactly as the SQL backend does.

`jarvis.store.readonly` reads through stdlib sqlite3 or asyncpg instead of
SQLAlchemy (issue 16). Each query the store can ask is put to both, on one
database written by the real store (SQLite, then PostgreSQL), and the answers
must be equal, event for event and in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from jarvis.config.sections import RetentionSettings
from jarvis.model import Event, EventKind, KillSwitchState, RetryState
from jarvis.store import DbKillSwitch, EventStore, StoreError
from jarvis.store.engine import place
from jarvis.store.place import Place
from jarvis.store.readonly import DirectReader, KillSwitchReader, open_reader
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KINDS = (EventKind.RESOURCE_CHANGED, EventKind.ALERT, EventKind.ACTION_APPLIED)
RESOURCES = ("ecs://prod/api", "ecs://prod/web", None)


def _events() -> list[Event]:
    found = []
    for n in range(60):
        kind = KINDS[n % 3]
        # Several events share a time, so ordering by (ts, id) is exercised.
        ts = T0 + timedelta(minutes=n // 2, microseconds=(n // 2) * 1001)
        if n % 7 == 0:  # the same moment, written in another zone
            ts = ts.astimezone(timezone(timedelta(hours=-5)))
        found.append(
            Event(
                kind=kind,
                ts=ts,
                idempotency_key=f"key-{n}",
                tick_id=f"tick-{n // 5}",
                resource=RESOURCES[n % 4 % 3],
                action_kind="restart" if kind is EventKind.ACTION_APPLIED else None,
                policy="heal" if n % 2 else None,
                reason=f"reason {n} — ünïcode ✓" if n % 5 else None,
                payload={"n": n, "nested": {"list": [1, 2.5, None, "x"]}, "ok": n % 2 == 0},
                action_id=f"act-{n}" if kind is EventKind.ACTION_APPLIED else None,
            )
        )
    return found


@pytest.fixture
async def written(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[EventStore, str]]:
    """A database written by the real store: events, a retry ledger, the switch."""
    store = await EventStore.connect(db_url, spool_path=tmp_path / "spool.jsonl", auto_migrate=True)
    store.append(_events())
    store.stage_retry(
        RetryState(
            resource="ecs://prod/api",
            action_kind="restart",
            attempts=(T0, T0 + timedelta(seconds=30)),
            consecutive_failures=2,
            retry_after=T0 + timedelta(minutes=5),
            quarantined=False,
            last_error="crash loop",
            updated_at=T0 + timedelta(seconds=31),
        )
    )
    store.stage_retry(RetryState(resource="ecs://prod/web", action_kind="scale", quarantined=True))
    await store.flush()
    await DbKillSwitch(store.engine).write(
        KillSwitchState(engaged=True, actor="ops", reason="freeze", changed_at=T0)
    )
    try:
        yield store, db_url
    finally:
        await store.aclose()


@pytest.fixture
async def reader(written: tuple[EventStore, str]) -> AsyncIterator[DirectReader]:
    opened = await open_reader(written[1])
    assert opened is not None
    try:
        yield opened
    finally:
        await opened.aclose()


KIND_FILTERS: tuple[list[str] | None, ...] = (
    None,
    [EventKind.ALERT.value],
    [k.value for k in KINDS[:2]],
    [],
)
TIMES = (None, T0 + timedelta(minutes=7), T0 + timedelta(minutes=7, microseconds=1))


async def _answer_alike(
    reader: DirectReader, sql: object, method: str, grid: dict[str, tuple[Any, ...]]
) -> int:
    """Put every combination of ``grid``'s values to both; return how many were asked."""
    asked = 0
    for values in product(*grid.values()):
        query = dict(zip(grid, values, strict=True))
        expected = await getattr(sql, method)(**query)
        assert await getattr(reader, method)(**query) == expected, (method, query)
        asked += 1
    return asked


async def test_events_answer_as_the_sql_backend_does(
    written: tuple[EventStore, str], reader: DirectReader
) -> None:
    grid = {
        "limit": (1, 7, 100),
        "kinds": KIND_FILTERS,
        "resource": RESOURCES,
        "after_id": (None, 10),
        "since": TIMES,
    }
    assert await _answer_alike(reader, written[0].backend, "events", grid) == 216


async def test_events_by_time_answer_as_the_sql_backend_does(
    written: tuple[EventStore, str], reader: DirectReader
) -> None:
    grid = {
        "limit": (None, 1, 9),
        "kinds": KIND_FILTERS,
        "resource": ("ecs://prod/api", None),
        "since": TIMES,
        "until": (None, T0 + timedelta(minutes=20)),
    }
    assert await _answer_alike(reader, written[0].backend, "events_by_time", grid) == 144


async def test_the_ledger_counts_and_kill_switch_read_as_the_sql_backend_does(
    written: tuple[EventStore, str], reader: DirectReader
) -> None:
    store = written[0]
    assert await reader.load_retries() == await store.backend.load_retries()
    assert len(await reader.load_retries()) == 2
    for kinds in KIND_FILTERS:
        assert await reader.count_events(kinds) == await store.backend.count_events(kinds)
    switch = await KillSwitchReader(reader).read()
    assert switch == await DbKillSwitch(store.engine).read()
    assert switch is not None and switch.engaged
    await reader.ping()


async def test_it_writes_nothing_and_says_so(
    written: tuple[EventStore, str], reader: DirectReader
) -> None:
    event = _events()[0]
    with pytest.raises(StoreError, match="read-only"):
        await reader.write([event], [])
    with pytest.raises(StoreError, match="read-only"):
        await reader.delete_retries("ecs://prod/api")
    with pytest.raises(StoreError, match="read-only"):
        await reader.open_intents()
    with pytest.raises(StoreError, match="read-only"):
        await reader.prune(RetentionSettings(), now=T0, keep_after=T0, dry_run=True)
    with pytest.raises(StoreError, match="read-only"):
        await KillSwitchReader(reader).write(KillSwitchState(engaged=False))
    # The connection itself is read-only: not even a statement of its own writes.
    with pytest.raises(StoreError, match=r"read-only|readonly"):
        await reader._query("DELETE FROM events", [])
    assert await written[0].count_events() == 60


async def test_a_read_only_store_on_it_discards_what_it_is_asked_to_write(
    written: tuple[EventStore, str],
) -> None:
    opened = await open_reader(written[1])
    assert opened is not None
    store = EventStore(opened, read_only=True)
    try:
        store.append([Event(kind=EventKind.ALERT, ts=T0, idempotency_key="plan-only")])
        await store.flush()
    finally:
        await store.aclose()
    assert await written[0].count_events() == 60


async def test_it_does_not_apply_where_the_sql_backend_must_answer(
    tmp_path: Path, sqlite_url: str, pg_url: str
) -> None:
    assert await open_reader("sqlite+aiosqlite:///:memory:") is None
    assert await open_reader(sqlite_url) is None  # no file yet: the store creates and migrates it
    assert await open_reader(pg_url) is None  # an empty database: `jarvis db upgrade` first
    assert await open_reader("postgresql+asyncpg://postgres@127.0.0.1:1/none") is None
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert await open_reader(f"sqlite+aiosqlite:///{empty}") is None  # not migrated
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('0001_initial')")
    connection.close()
    assert await open_reader(f"sqlite+aiosqlite:///{other}") is None  # behind: migrate first


async def _rename(url: str, table: str, to: str) -> None:
    """Rename ``table`` behind the reader's back, as an operator's hand or a bad migration might."""
    store = await EventStore.connect(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))
    finally:
        await store.aclose()


async def test_it_names_the_database_in_the_sql_backends_words(
    written: tuple[EventStore, str], reader: DirectReader
) -> None:
    """An outage is the SQL backend's one line: the database named, the driver's reason alone
    (no URL, no SQLAlchemy statement, parameters or link, no bare errno)."""
    backend = written[0].backend
    assert reader.where == backend.where
    async with reader.engine.connect() as connection:
        with pytest.raises(DBAPIError) as caught:
            await connection.execute(text("SELECT * FROM no_such_table WHERE 1 = :one"), {"one": 1})
    assert "\n" in str(caught.value)  # SQLAlchemy's own text: statement, parameters, link
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    for exc in (caught.value, refused):
        said = str(reader.unreachable(exc))
        assert said == str(backend.unreachable(exc))
        assert said.startswith(f"cannot reach {backend.where}: ")
        assert said == " ".join(said.split())


@pytest.mark.parametrize(
    ("table", "query", "reason"),
    [
        ("retry_state", "load_retries", "no such table: retry_state"),
        ("events", "count_events", "no such table: events"),
    ],
    ids=["ledger", "events"],
)
async def test_a_table_renamed_away_is_the_stores_one_line(
    written: tuple[EventStore, str], table: str, query: str, reason: str
) -> None:
    """A query the database refuses says the database and the driver's reason, as the store
    explains any error of its database (`EventStore.explain`)."""
    await _rename(written[1], table, "renamed_away")
    opened = await open_reader(written[1])
    assert opened is not None
    try:
        with pytest.raises(StoreError) as caught:
            await (opened.load_retries() if query == "load_retries" else opened.count_events(None))
        said = str(caught.value)
        cause = caught.value.__cause__
        assert cause is not None
        assert said == EventStore(opened, read_only=True).explain(cause)
    finally:
        await opened.aclose()
    if written[1].startswith("sqlite"):
        assert said == f"{written[0].backend.where}: OperationalError: {reason}"
    else:
        relation = reason.removeprefix("no such table: ")
        expected = f'UndefinedTableError: relation "{relation}" does not exist'
        assert said == f"{written[0].backend.where}: {expected}"


async def test_a_server_gone_mid_command_is_the_sql_backends_cannot_reach(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """PostgreSQL lost after the reader opened: "cannot reach" the server and database, one line."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    await store.aclose()
    proxied = pg_proxy.url_for(pg_url)
    opened = await open_reader(proxied)
    assert opened is not None
    try:
        await pg_proxy.stop()
        with pytest.raises(StoreError) as caught:
            await opened.load_retries()
    finally:
        await opened.aclose()
    database = pg_url.rsplit("/", 1)[1]
    said = str(caught.value)
    assert said.startswith(
        f"cannot reach PostgreSQL at 127.0.0.1:{pg_proxy.port} (database {database}): "
    ), said
    assert said == " ".join(said.split())


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////var/lib/jarvis/jarvis.db",
        "sqlite:///jarvis.db",
        "sqlite+aiosqlite:////srv/a%20b/jarvis%25.db",
        "postgresql+asyncpg://jarvis:s3cret@db.internal:6432/events",
        "postgresql://j%40rvis@db.internal/events?sslmode=require",
        "postgres://[::1]:5433/events",
        "postgresql+asyncpg:///events?host=/run/postgresql",
    ],
)
def test_it_reads_a_url_as_sqlalchemy_does(url: str) -> None:
    """The reader names a URL's database as the SQL backend does, without importing SQLAlchemy."""
    assert Place.of(url) == place(make_url(url))


def test_a_password_in_the_url_is_never_shown() -> None:
    reader = DirectReader("postgresql+asyncpg://jarvis:s3cret@db.internal:5432/jarvis")
    assert reader.url == "postgresql+asyncpg://jarvis:***@db.internal:5432/jarvis"
    assert "s3cret" not in str(reader.unreachable(OSError("refused")))


async def test_an_engine_is_made_on_first_use_for_what_needs_sql(reader: DirectReader) -> None:
    """The customers table and LLM usage read through SQLAlchemy: they still can."""
    async with reader.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM events"))).scalar() == 60
