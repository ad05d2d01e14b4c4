"""The CLI's direct flip writes exactly what the store writes, on both databases.

`jarvis killswitch engage|release` write the switch row and its event with
stdlib sqlite3 or asyncpg (`jarvis.store.direct`), not through SQLAlchemy;
read back through the store, and compared column by column with the same
flip written through the store, nothing differs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from jarvis.loop.killswitch import flip
from jarvis.model import Event, EventKind, KillSwitchState
from jarvis.store import DbKillSwitch, EventStore, Redactor
from jarvis.store.direct import write_flip
from jarvis.store.storable import safe_event

pytestmark = pytest.mark.anyio

# Not UTC, with microseconds: the stored time must still be the same instant.
NOW = datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
REDACTOR = Redactor(["s3cret-token"])


def made(engaged: bool = True, reason: str = "stop ü\x00 s3cret-token \ud800") -> Any:
    state, event = flip(engaged=engaged, actor="ops", reason=reason, now=NOW, redactor=REDACTOR)
    return state, safe_event(REDACTOR.event(event))


async def raw_rows(store: EventStore, key: str) -> tuple[Any, Any]:
    """The event row (without id and key) and the switch row, as the database holds them."""
    async with store.engine.connect() as connection:
        event = (
            await connection.execute(
                text(
                    "SELECT ts, tick_id, kind, resource, action_kind, policy, reason,"
                    " CAST(payload AS TEXT), action_id FROM events WHERE idempotency_key = :key"
                ),
                {"key": key},
            )
        ).one()
        switch = (await connection.execute(text("SELECT * FROM killswitch"))).one()
    return tuple(event), tuple(switch)


async def test_a_direct_flip_reads_back_as_the_store_wrote_it(db_url: str) -> None:
    """Event and switch row read back equal, and their columns equal the store's own write."""
    store = await EventStore.connect(db_url, auto_migrate=True, redactor=REDACTOR)
    try:
        state, event = made()
        assert state.reason == "stop ü\ufffd [redacted] ?"
        assert (await write_flip(db_url, event, state)).written
        (stored,) = await store.events()
        assert stored == Event(**{**_fields(event), "id": stored.id})
        assert stored.ts == NOW and stored.ts.utcoffset() == timedelta(0)
        switch = DbKillSwitch(store.engine)
        assert await switch.read() == KillSwitchState(True, "ops", state.reason, NOW)
        direct = await raw_rows(store, event.idempotency_key)

        # The same flip through the store's own path, under another key.
        through_store = Event(**{**_fields(event), "idempotency_key": "through-store"})
        await switch.write(state)
        store.append([through_store])
        await store.flush()
        assert await raw_rows(store, "through-store") == direct
    finally:
        await store.aclose()


def _fields(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__slots__}


async def test_a_repeated_flip_is_written_once_and_a_release_overwrites(db_url: str) -> None:
    """The event's idempotency key holds as on the store's path; the switch row is one row."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        state, event = made(reason="maintenance")
        assert (await write_flip(db_url, event, state)).written
        assert (await write_flip(db_url, event, state)).written
        released, release = made(engaged=False, reason="done")
        release = Event(**{**_fields(release), "ts": NOW + timedelta(seconds=1)})
        assert (await write_flip(db_url, release, released)).written
        kinds = [e.kind for e in await store.events()]
        assert kinds == [EventKind.KILLSWITCH_ENGAGED, EventKind.KILLSWITCH_RELEASED]
        assert (await DbKillSwitch(store.engine).read()) == released
    finally:
        await store.aclose()


async def test_without_a_database_the_direct_path_declines_and_creates_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    """No file, no tables, no such PostgreSQL database: declined, for the store's path to take."""
    state, event = made()
    missing = tmp_path / "none.db"
    assert (await write_flip(f"sqlite+aiosqlite:///{missing}", event, state)).for_the_store
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert (await write_flip(f"sqlite:///{empty}", event, state)).for_the_store
    assert (await write_flip("sqlite+aiosqlite:///:memory:", event, state)).for_the_store
    assert (
        await write_flip(pg_url.rsplit("/", 1)[0] + "/no_such_db_here", event, state)
    ).for_the_store
    assert (await write_flip("mysql://x/y", event, state)).for_the_store


async def test_only_flips_go_this_way() -> None:
    """Any other event is refused: intents and facts go through the store and its fence."""
    with pytest.raises(ValueError, match="not a kill-switch flip"):
        await write_flip("sqlite:///x.db", Event(EventKind.ACTION_STARTED, NOW, "k"), None)


async def test_a_url_with_sqlalchemy_s_own_parameter_takes_the_direct_path(pg_url: str) -> None:
    """``?prepared_statement_cache_size=0`` (SQLAlchemy's, for pgbouncer) went to the server
    as a setting it refused, and the flip fell back to the slow path; libpq's beside it work."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        state, event = made(reason="behind pgbouncer")
        url = f"{pg_url}?prepared_statement_cache_size=0&sslmode=disable"
        assert (await write_flip(url, event, state)).written
        assert await DbKillSwitch(store.engine).read() == state
    finally:
        await store.aclose()


async def test_a_database_a_newer_jarvis_migrated_is_not_written(db_url: str) -> None:
    """A revision this Jarvis does not know (a newer one's schema may keep the switch
    elsewhere, or mean it otherwise): False and nothing written, for the store's path to
    refuse in one line, as it refuses to open such a database."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = '0099_from_a_newer_jarvis'")
            )
        state, event = made()
        assert (await write_flip(db_url, event, state)).for_the_store
        async with store.engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM events"))).scalar() == 0
        assert await DbKillSwitch(store.engine).read() is None
    finally:
        await store.aclose()


async def test_a_database_an_older_jarvis_migrated_takes_the_flip(db_url: str) -> None:
    """At the first revision (``events`` and ``killswitch`` have kept their shape since), an
    engage beside an older daemon is written directly, and reads back once upgraded."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

    from jarvis.store.engine import create_engine, normalize_url
    from jarvis.store.migrate import alembic_config, upgrade

    base = ScriptDirectory.from_config(alembic_config()).get_base()
    assert isinstance(base, str)

    def to_base(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, base)

    engine = create_engine(normalize_url(db_url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_base)
    finally:
        await engine.dispose()
    state, event = made()
    assert (await write_flip(db_url, event, state)).written
    await upgrade(db_url)
    store = await EventStore.connect(db_url)
    try:
        (stored,) = await store.events()
        assert stored == Event(**{**_fields(event), "id": stored.id})
        assert await DbKillSwitch(store.engine).read() == state
    finally:
        await store.aclose()


async def test_a_lock_held_by_another_session_is_waited_out_once_and_named(db_url: str) -> None:
    """Another session holds the tables: the write waits its busy or statement timeout,
    writes nothing and says it was kept waiting, not that the store's path should try."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    await store.aclose()
    state, event = made()
    async with _holding_the_tables(db_url):
        result = await write_flip(db_url, event, state)
    assert not result.written
    assert not result.for_the_store
    assert result.busy is not None
    assert ("database is locked" if db_url.startswith("sqlite") else "no answer") in result.busy
    store = await EventStore.connect(db_url)
    try:
        assert await store.events() == []
        assert await DbKillSwitch(store.engine).read() is None
    finally:
        await store.aclose()


@asynccontextmanager
async def _holding_the_tables(db_url: str) -> AsyncIterator[None]:
    """Another connection holding the write lock (SQLite) or the tables (PostgreSQL)."""
    if db_url.startswith("sqlite"):
        holder = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.close()
        return
    import asyncpg

    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE events, killswitch IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()
