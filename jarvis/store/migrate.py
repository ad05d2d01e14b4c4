"""Schema migrations: run Alembic programmatically against the store's async engine.

Called by `jarvis db upgrade` (the CLI), by `EventStore.connect` (SQLite
migrates itself; PostgreSQL is only checked), and by tests. No alembic.ini is
needed: the script directory is `jarvis/store/migrations` inside the package.

Alembic is imported only when a migration has to run (or a revision has to be
looked up): importing it costs about a quarter of a second, and a daemon
restarting on a database already at `HEAD_REVISION` should not pay that. A
database with no tables at all (a first start) is not migrated either: its
tables are created from `metadata` and it is stamped at `HEAD_REVISION`, as
Alembic would leave it (about 0.5 s less on the first start of the embedded
default). A database that holds tables but was never migrated gets Jarvis's
tables beside its own through Alembic, unless one of them bears a name Jarvis's
schema uses (a business's ``customers``): that is refused naming it, with where
Jarvis could live instead. `tests/store/test_migrations.py` holds the two schemas equal on both
backends; a future revision that changes data rather than schema must run
through Alembic on a new database too, and would end this shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.store.engine import (
    SQLITE_IMMEDIATE,
    create_engine,
    masked,
    normalize_url,
    unreachable,
)
from jarvis.store.errors import (
    NotMigratedError,
    StoreError,
    describe,
    insufficient_privilege,
    is_operational,
    no_schema,
    not_a_database,
)
from jarvis.store.revision import HEAD_REVISION, REVISIONS

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS",
    "alembic_config",
    "check_revision",
    "current_revision",
    "head_revision",
    "upgrade",
    "upgrade_engine",
]

if TYPE_CHECKING:
    from alembic.config import Config

_T = TypeVar("_T")

MIGRATION_LOCK = int.from_bytes(b"jarvismg", "big")
"""The advisory lock a PostgreSQL migration holds for its transaction (one per database,
< 2**63)."""

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """Alembic's configuration, built in code: only the script location matters."""
    from alembic.config import Config  # noqa: PLC0415 -- see the module docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision the migration scripts hold, as Alembic reads them."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 -- see the module docstring

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads {heads}; merge them")
    return heads[0]


def _current(connection: Connection) -> str | None:
    """What Alembic's version table says, read without Alembic."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    found = list(versions)
    return found[0] if len(found) == 1 else None


def _is_empty(connection: Connection) -> bool:
    return not inspect(connection).get_table_names()


_CREATE_VERSION_TABLE = text(
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
    " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)
"""Alembic's own version table, as Alembic creates it."""


def _metadata() -> MetaData:
    """`metadata` with every table of the head revision on it."""
    import jarvis.store.customers  # noqa: PLC0415 -- puts customers on metadata
    import jarvis.store.indexes  # noqa: PLC0415 -- puts the partial indexes on metadata
    import jarvis.store.outbox  # noqa: PLC0415 -- puts the notification tables on metadata
    import jarvis.store.revenue  # noqa: PLC0415 -- puts the revenue tables on metadata
    import jarvis.store.usage  # noqa: F401, PLC0415 -- puts llm_usage on metadata
    from jarvis.store.tables import metadata  # noqa: PLC0415 -- with the lines above

    return metadata


def _create_at_head(connection: Connection) -> None:
    """Every table on `metadata`, and the version table saying `HEAD_REVISION`."""
    _metadata().create_all(connection)
    connection.execute(_CREATE_VERSION_TABLE)
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD_REVISION}
    )


def _upgrade(connection: Connection) -> str | None:
    """Migrate on ``connection``, inside its transaction, deciding only once no one else is.

    Two replicas upgrading one PostgreSQL database at once both read it as empty (or
    behind) and both migrated it: the second failed on the tables the first had just
    made. The lock makes the second wait, then read the first one's revision. SQLite
    needs none: the transaction began with BEGIN IMMEDIATE (`upgrade_engine`).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    current = _current(connection)
    if current == HEAD_REVISION:
        return HEAD_REVISION
    if current is None and _is_empty(connection):
        _create_at_head(connection)
        return _current(connection)
    if current is None:
        _refuse_clashes(connection)
    if current is not None and _is_unknown(current):
        # Alembic would fail with "Can't locate revision": a traceback, no advice.
        raise _newer(connection.engine.url, current)
    from alembic import command  # noqa: PLC0415 -- see the module docstring

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return _current(connection)


def _refuse_clashes(connection: Connection) -> None:
    """Raise StoreError naming the tables and indexes of a database Jarvis never migrated
    that bear the names of its own: Alembic ran from its first script into someone else's
    ``customers`` and ended in a traceback. Other tables may stay beside Jarvis's."""
    ours = {
        name
        for table in _metadata().tables.values()
        for name in (table.name, *(index.name for index in table.indexes))
        if isinstance(name, str)
    }
    if connection.dialect.name == "postgresql":
        # Tables, indexes and sequences share one namespace per schema.
        found = text(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        )
    else:
        found = text("SELECT name FROM sqlite_master")
    clashes = sorted(ours.intersection(connection.execute(found).scalars()))
    if not clashes:
        return
    url = connection.engine.url
    own = (
        "a database of its own (createdb), or a schema of its own (CREATE SCHEMA jarvis, "
        "then ?options=-csearch_path%3Djarvis in the URL)"
        if connection.dialect.name == "postgresql"
        else "a database file of its own"
    )
    raise StoreError(
        f"database {masked(url)} already holds {', '.join(clashes)}, not created by Jarvis "
        f"(it was never migrated): Jarvis's schema uses those names; give Jarvis {own}"
    )


async def upgrade_engine(engine: AsyncEngine) -> str:
    """Migrate the database behind `engine` to head in one transaction; return the revision.

    A database already at head is only read. Otherwise the transaction holds
    the write lock from its start (on SQLite), so two processes opening one
    new file at once migrate it one after the other instead of one failing.
    """
    try:
        current = await current_revision_engine(engine)
        if current == HEAD_REVISION:
            return HEAD_REVISION
        if current is not None or not await _run_read(engine, _is_empty):
            # Imported before the write lock is taken, not while holding it:
            # other processes wait for that lock only the busy timeout.
            import alembic.command  # noqa: F401, PLC0415 -- see the module docstring

        async with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
            revision = await connection.run_sync(_upgrade)
    except Exception as exc:
        if insufficient_privilege(exc):
            raise _not_permitted(engine.url, exc) from exc
        if no_schema(exc):
            raise await _no_schema(engine) from exc
        if is_operational(exc) or not_a_database(exc):
            raise unreachable(engine.url, exc) from exc
        raise
    if revision is None:  # pragma: no cover - alembic always stamps a revision
        raise StoreError("migration finished without a revision")
    return revision


def _not_permitted(url: URL, exc: BaseException) -> StoreError:
    """A migration refused a privilege: what to grant, or whom to run it as.

    Since PostgreSQL 15 only the database owner may create in schema ``public``, so a
    role made for the daemon alone meets this on its first `jarvis db upgrade`.
    """
    role = url.username or "the role Jarvis connects as"
    return StoreError(
        f"PostgreSQL role {role} may not migrate database {url.database!r}: {describe(exc)}; "
        f"grant what it names (for the schema: GRANT CREATE ON SCHEMA public TO {role}), "
        "or run `jarvis db upgrade` as the owner of the database and of Jarvis's tables"
    )


async def _no_schema(engine: AsyncEngine) -> StoreError:
    """A migration with no schema to create in: which one to create, read from the server."""

    def search_path(connection: Connection) -> str:
        return str(connection.execute(text("SHOW search_path")).scalar())

    try:
        path = await _run_read(engine, search_path)
    except Exception:  # noqa: BLE001 - only the message's detail depends on it
        path = "?"
    first = path.split(",")[0].strip().strip('"') or "NAME"
    return StoreError(
        f"database {masked(engine.url)} has no schema to create Jarvis's tables in: "
        f"none of its search_path ({path}) exists; create it first "
        f"(CREATE SCHEMA {first}), then run `jarvis db upgrade`"
    )


async def current_revision_engine(engine: AsyncEngine) -> str | None:
    """The revision the database behind `engine` is at; None when never migrated."""
    return await _run_read(engine, _current)


async def _run_read(engine: AsyncEngine, read: Callable[[Connection], _T]) -> _T:
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    except Exception as exc:
        if is_operational(exc) or not_a_database(exc):
            raise unreachable(engine.url, exc) from exc
        raise


async def check_revision(engine: AsyncEngine) -> str:
    """Raise NotMigratedError unless the database is at this version's head revision."""
    current = await current_revision_engine(engine)
    head = HEAD_REVISION
    if current == head:
        return head
    if current is not None and _is_unknown(current):
        raise _newer(engine.url, current)
    raise NotMigratedError(
        f"database {masked(engine.url)} is at revision {current or 'none (empty)'}, "
        f"this Jarvis needs {head}; run `jarvis db upgrade`"
    )


def _newer(url: URL, revision: str) -> StoreError:
    """The refusal of a database a newer Jarvis migrated: neither read nor migrated here."""
    return StoreError(
        f"database {masked(url)} is at revision {revision}, newer than this Jarvis knows "
        f"(head {HEAD_REVISION}); run a newer Jarvis"
    )


def _is_unknown(revision: str) -> bool:
    """A revision no script here makes: a newer Jarvis's (`REVISIONS`, the direct write's list)."""
    return revision not in REVISIONS


async def upgrade(url: str) -> str:
    """Migrate the database at `url` to head and return the revision it is now at.

    No statement timeout: the daemon's (an outage, to spool through) would fail a
    table rewrite of a large ``events`` on every attempt, and a replica waiting on
    another's migration lock (`_upgrade`) just as surely.
    """
    engine = create_engine(normalize_url(url), statement_timeout=None)
    try:
        return await upgrade_engine(engine)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None when it was never migrated."""
    engine = create_engine(normalize_url(url))
    try:
        return await current_revision_engine(engine)
    finally:
        await engine.dispose()
