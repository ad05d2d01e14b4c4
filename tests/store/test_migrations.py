"""Migrations and connecting: schema at head, an un-migrated or unreachable database."""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from alembic.script import ScriptDirectory

from jarvis.store import EventStore, NotMigratedError, StoreError, current_revision, upgrade
from jarvis.store.migrate import HEAD_REVISION, alembic_config
from jarvis.store.revision import REVISIONS

pytestmark = pytest.mark.anyio


def _script_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_upgrade_migrates_to_the_script_head(db_url: str) -> None:
    """upgrade() brings an empty database to Alembic's head and reports that revision."""
    assert await current_revision(db_url) is None
    assert await upgrade(db_url) == _script_head()
    assert await current_revision(db_url) == _script_head()
    # A second upgrade is a no-op at head.
    assert await upgrade(db_url) == _script_head()


def test_the_head_revision_constant_is_alembics_head() -> None:
    """The constant start-up compares against is the newest migration script."""
    assert _script_head() == HEAD_REVISION


def test_the_known_revisions_are_alembics_history() -> None:
    """`REVISIONS`, what a database may be at for this Jarvis to write, is every script."""
    history = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert list(REVISIONS) == history[::-1]


async def test_a_database_at_head_is_opened_without_importing_alembic(tmp_path: Path) -> None:
    """Restarting on a migrated database skips Alembic's quarter-second import."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    await upgrade(url)
    probe = (
        "import sys, anyio\n"
        "from jarvis.store import EventStore\n"
        "async def main():\n"
        f"    store = await EventStore.connect({url!r})\n"
        "    await store.aclose()\n"
        "anyio.run(main)\n"
        "print('alembic' in sys.modules)\n"
    )
    result = await anyio.run_process([sys.executable, "-c", probe])
    assert result.stdout.decode().strip() == "False"


async def test_sqlite_store_migrates_a_new_file_itself(tmp_path: Path) -> None:
    """Connecting to a SQLite file that does not exist yet creates and migrates it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/nested/dir/jarvis.db"
    store = await EventStore.connect(url)
    try:
        assert await store.count_events() == 0
        assert await current_revision(url) == _script_head()
    finally:
        await store.aclose()
    assert (tmp_path / "nested" / "dir" / "jarvis.db").exists()


async def test_unmigrated_postgres_raises_not_migrated(pg_url: str) -> None:
    """A PostgreSQL database without the schema is refused with a pointer to `jarvis db upgrade`."""
    with pytest.raises(NotMigratedError, match="jarvis db upgrade") as caught:
        await EventStore.connect(pg_url)
    assert "none" in str(caught.value)
    assert await current_revision(pg_url) is None


async def test_postgres_connects_once_upgraded(pg_url: str) -> None:
    """After `upgrade`, connecting to PostgreSQL without auto-migration succeeds."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_url)
    try:
        await store.ping()
        assert store.url.startswith("postgresql+asyncpg://")
    finally:
        await store.aclose()


async def test_unreachable_postgres_raises_one_line_store_error() -> None:
    """A closed port gives StoreError naming host, port and cause on one line."""
    port = _closed_port()
    with pytest.raises(StoreError) as caught:
        await EventStore.connect(f"postgresql+asyncpg://jarvis:secret@127.0.0.1:{port}/jarvis")
    message = str(caught.value)
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in message
    assert "refused" in message.lower() or "connect call failed" in message.lower()
    assert "\n" not in message
    assert "secret" not in message
    assert not isinstance(caught.value, NotMigratedError)


async def test_unsupported_database_url_is_refused() -> None:
    """A URL for a database the store does not support is a StoreError naming both choices."""
    with pytest.raises(StoreError, match="postgresql\\+asyncpg"):
        await EventStore.connect("mysql://root@127.0.0.1/jarvis")


async def test_masked_url_hides_the_password(pg_url: str) -> None:
    """The store's url property never shows the database password."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_url.replace("postgres@", "postgres:hunter2@"))
    try:
        assert "hunter2" not in store.url
        assert "***" in store.url
    finally:
        await store.aclose()


async def test_migrations_create_exactly_the_tables_on_metadata(db_url: str) -> None:
    """After upgrade, autogenerate finds no difference between the database and `metadata`."""
    import importlib
    import pkgutil

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import Connection

    import jarvis.store
    from jarvis.store import metadata
    from jarvis.store.engine import create_engine, normalize_url

    # As env.py does: every module of the package may put tables on metadata.
    for module in pkgutil.iter_modules(jarvis.store.__path__, prefix="jarvis.store."):
        importlib.import_module(module.name)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    await upgrade(db_url)
    engine = create_engine(normalize_url(db_url))
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def _migrate_to_base(url: str) -> str:
    """Upgrade only to the first revision; return it."""
    from alembic import command
    from sqlalchemy.engine import Connection

    from jarvis.store.engine import create_engine, normalize_url

    base = ScriptDirectory.from_config(alembic_config()).get_base()
    assert isinstance(base, str)

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, base)

    engine = create_engine(normalize_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()
    return base


async def test_postgres_behind_head_raises_not_migrated(pg_url: str) -> None:
    """A database at an older revision is refused, naming both revisions and the fix."""
    base = await _migrate_to_base(pg_url)
    if base == _script_head():
        pytest.skip("only one revision exists, so no database can be behind head")
    with pytest.raises(NotMigratedError, match="jarvis db upgrade") as caught:
        await EventStore.connect(pg_url)
    assert f"at revision {base}" in str(caught.value)
    assert _script_head() in str(caught.value)


async def test_database_newer_than_the_code_is_refused(pg_url: str) -> None:
    """A revision this Jarvis does not know means a newer schema: StoreError, not upgrade advice."""
    import asyncpg

    await upgrade(pg_url)
    connection = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    finally:
        await connection.close()
    with pytest.raises(StoreError, match="newer than this Jarvis") as caught:
        await EventStore.connect(pg_url)
    assert not isinstance(caught.value, NotMigratedError)


async def _schema(url: str) -> dict[str, object]:
    """Everything the database says about its tables, for comparing two of them."""
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import Connection

    from jarvis.store.engine import create_engine, normalize_url

    def read(connection: Connection) -> dict[str, object]:
        found = inspect(connection)
        schema: dict[str, object] = {}
        for table in sorted(found.get_table_names()):
            schema[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in found.get_columns(table)
                ],
                "pk": found.get_pk_constraint(table),
                "unique": sorted(
                    (u["name"] or "", tuple(u["column_names"]))
                    for u in found.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (
                        i["name"] or "",
                        tuple(map(str, i["column_names"])),
                        bool(i["unique"]),
                        # A partial index's WHERE (SQLite reflects it as a clause object).
                        sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
                    )
                    for i in found.get_indexes(table)
                ),
                "foreign_keys": found.get_foreign_keys(table),
                "checks": sorted(str(c) for c in found.get_check_constraints(table)),
            }
        schema["version"] = list(
            connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        )
        return schema

    engine = create_engine(normalize_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_a_new_database_gets_the_schema_the_migrations_make(
    db_url: str, tmp_path: Path
) -> None:
    """A first start creates the tables from `metadata` and stamps head, without Alembic;
    the result is the schema the migration scripts build, table by table."""
    from tests.conftest import create_pg_database, drop_pg_database

    await upgrade(db_url)  # an empty database: the fast path
    on_pg = not db_url.startswith("sqlite")
    other = (
        await create_pg_database() if on_pg else f"sqlite+aiosqlite:///{tmp_path}/by-migrations.db"
    )
    try:
        await _migrate_to_base(other)
        await upgrade(other)  # not empty: Alembic runs the remaining scripts
        assert await _schema(db_url) == await _schema(other)
    finally:
        if on_pg:
            await drop_pg_database(other)


async def _alembic(url: str, command_name: str, revision: str) -> None:
    """Run Alembic's ``upgrade`` or ``downgrade`` to ``revision`` on ``url``."""
    from alembic import command
    from sqlalchemy.engine import Connection

    from jarvis.store.engine import create_engine, normalize_url

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, command_name)(config, revision)

    engine = create_engine(normalize_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def _event_indexes(url: str) -> tuple[dict[str, str], str]:
    """The ``events`` indexes (name -> columns and WHERE) and the idempotency key's type."""
    schema = (await _schema(url))["events"]
    assert isinstance(schema, dict)
    indexes = {str(name): str((cols, where)) for name, cols, _, where in schema["indexes"]}
    key = next(str(kind) for name, kind, _, _ in schema["columns"] if name == "idempotency_key")
    return indexes, key


async def test_the_event_index_revision_goes_down_and_up_keeping_rows_and_keys_unique(
    db_url: str,
) -> None:
    """0009 makes the ``action_id`` index partial and, on PostgreSQL, the idempotency key
    byte-wise; its downgrade gives 0008's indexes back. Rows stay, and a replayed key is
    still a no-op at every step."""
    from jarvis.model import Event, EventKind

    at = datetime(2026, 1, 5, tzinfo=UTC)
    written = [
        Event(EventKind.ACTION_STARTED, at, "intent-1", resource="sim://a", action_id="act-1"),
        Event(EventKind.TICK_STARTED, at, "tick-1"),
    ]

    async def write(events: list[Event]) -> int:
        store = await EventStore.connect(db_url, auto_migrate=False)
        try:
            store.append(events)
            await store.flush()
            return await store.count_events()
        finally:
            await store.aclose()

    on_pg = not db_url.startswith("sqlite")
    await upgrade(db_url)
    head, head_key = await _event_indexes(db_url)
    assert "action_id IS NOT NULL" in head["ix_events_action_id"]
    assert ('COLLATE "C"' in head_key) == on_pg
    assert await write(written) == 2

    await _alembic(db_url, "downgrade", "0008_revenue")
    before, before_key = await _event_indexes(db_url)
    assert "action_id IS NOT NULL" not in before["ix_events_action_id"]
    assert "COLLATE" not in before_key
    del before["ix_events_action_id"]
    assert before == {name: where for name, where in head.items() if name != "ix_events_action_id"}

    await _alembic(db_url, "upgrade", "head")
    assert await _event_indexes(db_url) == (head, head_key)
    late = Event(EventKind.TICK_FINISHED, at, "tick-1-end")
    assert await write([*written, late]) == 3  # the two replayed are skipped
    store = await EventStore.connect(db_url, auto_migrate=False)
    try:
        assert [e.action_id for e in await store.open_intents()] == ["act-1"]
    finally:
        await store.aclose()


async def test_the_payload_revision_goes_down_and_up_keeping_every_payload(db_url: str) -> None:
    """0010 stores payloads as ``json`` on PostgreSQL (``jsonb`` before it) and leaves SQLite
    alone. Down and up again, every stored payload reads back equal, nesting and non-ASCII
    text included; only its key order is jsonb's after a stay at 0009."""
    from jarvis.model import Event, EventKind

    at = datetime(2026, 1, 5, tzinfo=UTC)
    payload = {"z": 1, "a": {"list": [1, 2.5, None, True], "text": "café ✓"}, "m": "x"}
    on_pg = not db_url.startswith("sqlite")

    async def payload_type() -> str:
        schema = (await _schema(db_url))["events"]
        assert isinstance(schema, dict)
        return next(str(kind) for name, kind, _, _ in schema["columns"] if name == "payload")

    async def payloads() -> list[dict[str, object]]:
        """Read back as the store decodes them, at whatever revision the database is."""
        from sqlalchemy import select

        from jarvis.store.engine import create_engine, normalize_url
        from jarvis.store.tables import events

        engine = create_engine(normalize_url(db_url))
        try:
            async with engine.connect() as connection:
                found = await connection.execute(select(events.c.payload))
                return [dict(row) for row in found.scalars()]
        finally:
            await engine.dispose()

    await upgrade(db_url)
    store = await EventStore.connect(db_url, auto_migrate=False)
    try:
        store.append([Event(EventKind.RESOURCE_CHANGED, at, "changed-1", payload=payload)])
        await store.flush()
    finally:
        await store.aclose()
    assert await payload_type() == "JSON"
    (read,) = await payloads()
    assert read == payload and list(read) == list(payload)  # json keeps the text as written

    await _alembic(db_url, "downgrade", "0009_event_indexes")
    assert await payload_type() == ("JSONB" if on_pg else "JSON")
    assert await payloads() == [payload]

    await _alembic(db_url, "upgrade", "head")
    assert await payload_type() == "JSON"
    assert await payloads() == [payload]


async def test_the_outbox_index_revisions_go_down_and_up_keeping_every_notification(
    db_url: str,
) -> None:
    """0012 adds the index of pending notifications by (channel, incident, id), 0013 the
    ``waiting`` mark and the index of the pending rows that do not wait; each downgrade drops
    its own and nothing else. The rows stay; the upgrade marks the resolve pending behind its
    trigger as waiting, and both are claimed in order after the round trip."""
    from jarvis.store.engine import create_engine, normalize_url
    from jarvis.store.outbox import Outbox

    at = datetime(2026, 1, 5, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {"dedup_key": k, "channel": "slack", "incident": "i-1", "action": k, "message": {}}
        for k in ("trigger", "resolve")
    ]
    pending_index, waiting_index = (
        "ix_notifications_channel_incident_id",
        "ix_notifications_id",
    )

    async def outbox_indexes() -> dict[str, str]:
        schema = (await _schema(db_url))["notifications"]
        assert isinstance(schema, dict)
        return {str(name): str((cols, where)) for name, cols, _, where in schema["indexes"]}

    async def waiting() -> list[bool]:
        engine = create_engine(normalize_url(db_url))
        try:
            async with engine.connect() as connection:
                found = await connection.exec_driver_sql(
                    "SELECT waiting FROM notifications ORDER BY id"
                )
                return [bool(w) for w in found.scalars()]
        finally:
            await engine.dispose()

    async def claimed() -> list[str]:
        """The actions claimed one after another, each sent before the next claim."""
        store = await EventStore.connect(db_url, auto_migrate=False)
        try:
            outbox, actions = Outbox(store.engine), []
            while (row := await outbox.claim(at, at)) is not None:
                actions.append(row.action)
                await outbox.mark_sent(row.id, 1, at)
            return actions
        finally:
            await store.aclose()

    await upgrade(db_url)
    store = await EventStore.connect(db_url, auto_migrate=False)
    try:
        assert await Outbox(store.engine).commit({}, rows, at) == 2
    finally:
        await store.aclose()
    head = await outbox_indexes()
    assert "status = 'pending'" in head[pending_index]
    assert "waiting" in head[waiting_index]
    assert await waiting() == [False, True]

    await _alembic(db_url, "downgrade", "0012_outbox_pending_index")
    assert await outbox_indexes() == {n: w for n, w in head.items() if n != waiting_index}
    await _alembic(db_url, "downgrade", "0011_lease_shards")
    before = await outbox_indexes()
    assert before == {n: w for n, w in head.items() if n not in {pending_index, waiting_index}}

    await _alembic(db_url, "upgrade", "head")
    assert await outbox_indexes() == head
    assert await waiting() == [False, True]
    assert await claimed() == ["trigger", "resolve"]


async def test_a_first_start_does_not_import_alembic(tmp_path: Path) -> None:
    """Creating a new database from `metadata` skips Alembic's import and scripts."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    probe = (
        "import sys, anyio\n"
        "from jarvis.store import EventStore\n"
        "async def main():\n"
        f"    store = await EventStore.connect({url!r}, auto_migrate=True)\n"
        "    await store.aclose()\n"
        "anyio.run(main)\n"
        "print('alembic' in sys.modules)\n"
    )
    result = await anyio.run_process([sys.executable, "-c", probe])
    assert result.stdout.decode().strip() == "False"
    assert await current_revision(url) == HEAD_REVISION


async def _stamp(url: str, revision: str) -> None:
    """Write ``revision`` into Alembic's version table, as a newer Jarvis would have left it."""
    from sqlalchemy import text

    from jarvis.store.engine import create_engine, normalize_url

    engine = create_engine(normalize_url(url))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        await engine.dispose()


async def test_upgrading_a_database_newer_than_the_code_is_refused_and_writes_nothing(
    db_url: str,
) -> None:
    """`jarvis db upgrade` (and SQLite's own migration at start) on a revision this Jarvis
    does not know refuses in one line naming it, and leaves the database as it was."""
    await upgrade(db_url)
    await _stamp(db_url, "ffff9999_from_the_future")
    before = await _schema(db_url)
    with pytest.raises(StoreError, match="newer than this Jarvis") as caught:
        await upgrade(db_url)
    assert "ffff9999_from_the_future" in str(caught.value)
    assert not isinstance(caught.value, NotMigratedError)
    with pytest.raises(StoreError, match="newer than this Jarvis"):
        await EventStore.connect(db_url, auto_migrate=True)
    assert await _schema(db_url) == before


async def test_a_role_that_may_not_create_tables_is_told_what_to_grant(pg_url: str) -> None:
    """`jarvis db upgrade` as a role without CREATE on the schema (PostgreSQL 15's default
    for every role but the owner) names the privilege to grant, not an unreachable server;
    once granted as it says, the upgrade goes through."""
    import uuid

    import asyncpg

    role = f"jarvis_test_role_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        as_role = pg_url.replace("postgres@", f"{role}@")
        with pytest.raises(StoreError) as caught:
            await upgrade(as_role)
        message = str(caught.value)
        assert "permission denied for schema public" in message
        assert f"GRANT CREATE ON SCHEMA public TO {role}" in message
        assert "cannot reach" not in message
        assert await current_revision(pg_url) is None
        await admin.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        assert await upgrade(as_role) == HEAD_REVISION
    finally:
        # Its tables go with it; a role is the cluster's, not the test database's.
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def _execute(url: str, *statements: str) -> list[str]:
    """Run ``statements`` in one transaction; return the tables the database then holds."""
    from sqlalchemy import inspect, text

    from jarvis.store.engine import create_engine, normalize_url

    engine = create_engine(normalize_url(url))
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
            return sorted(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_a_database_holding_a_table_of_jarvis_s_name_is_refused_naming_it(
    db_url: str,
) -> None:
    """A database that already holds someone else's ``customers`` (a name Jarvis's schema
    uses) is refused in one line naming the table and what to do, and left as it was: Alembic
    ran from its first script into it and failed with a traceback."""
    assert await _execute(db_url, "CREATE TABLE customers (id INTEGER PRIMARY KEY)") == [
        "customers"
    ]
    with pytest.raises(StoreError) as caught:
        await upgrade(db_url)
    message = str(caught.value)
    assert "\n" not in message
    assert "customers" in message and "not created by Jarvis" in message
    assert "of its own" in message
    assert ("search_path" in message) == db_url.startswith("postgresql")
    assert await _execute(db_url) == ["customers"]
    with pytest.raises(StoreError, match="not created by Jarvis"):
        await EventStore.connect(db_url, auto_migrate=True)


async def test_a_database_holding_other_tables_only_is_migrated_beside_them(
    db_url: str,
) -> None:
    """Tables whose names Jarvis does not use stay, and Jarvis's schema is made beside them."""
    await _execute(db_url, "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    assert await upgrade(db_url) == HEAD_REVISION
    assert {"orders", "events", "alembic_version"} <= set(await _execute(db_url))


async def test_a_schema_of_its_own_beside_a_clashing_table_is_migrated(pg_url: str) -> None:
    """The advice works: with ``?options=-csearch_path%3Djarvis`` Jarvis's tables go into
    a schema of their own, beside the business's ``customers`` in ``public``."""
    await _execute(
        pg_url,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY)",
        "CREATE SCHEMA jarvis",
    )
    own = f"{pg_url}?options=-csearch_path%3Djarvis"
    assert await upgrade(own) == HEAD_REVISION
    store = await EventStore.connect(own)
    await store.aclose()
