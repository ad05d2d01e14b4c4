"""Building the async SQLAlchemy engine the whole store shares, for either backend.

Called by `EventStore.connect` and by the migration helpers (`upgrade`,
`current_revision`). One code path serves PostgreSQL (asyncpg) and SQLite
(aiosqlite); the differences live here: SQLite gets WAL and a busy timeout on
every connection, so the CLI can flip the kill switch while the daemon writes,
and real transactions (BEGIN emitted by us, not guessed by the driver). An
engine made ``read_only`` for a command that only reads opens a SQLite file
this process cannot write (a read-only mount) without writing anything there
or beside it (`jarvis.store.sqlite_read`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from jarvis.sqlengine import async_engine
from jarvis.store.backend import database_failure
from jarvis.store.errors import LASTING_ERRNOS, StoreError, said
from jarvis.store.place import Place, is_file
from jarvis.store.sqlite_read import reading_uri, unwritable
from jarvis.store.timeouts import (
    BUSY_TIMEOUT_MS,
    CONNECT_TIMEOUT_S,
    IDLE_IN_TRANSACTION_S,
    STATEMENT_TIMEOUT_S,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CONNECT_TIMEOUT_S",
    "SQLITE_IMMEDIATE",
    "STATEMENT_TIMEOUT_S",
    "cannot_write",
    "create_engine",
    "database_outage",
    "limit_busy_wait",
    "location",
    "masked",
    "normalize_url",
    "place",
    "unreachable",
]

SQLITE_IMMEDIATE = "jarvis_sqlite_immediate"
"""Execution option: begin SQLite transactions with BEGIN IMMEDIATE (ignored elsewhere)."""
_SQLITE_BUSY_UNTIL = "jarvis_sqlite_busy_until"
"""Execution option: the `time.monotonic()` after which a SQLite transaction waits no more
for another process's lock (`limit_busy_wait`); ignored elsewhere."""
_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str) -> URL:
    """Parse a database URL, giving a bare ``postgresql://`` or ``sqlite://`` its async driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    drivername = _DRIVERS.get(parsed.drivername, parsed.drivername)
    if drivername not in {"postgresql+asyncpg", "sqlite+aiosqlite"}:
        raise StoreError(
            f"unsupported database {parsed.drivername!r}: "
            "use postgresql+asyncpg://… or sqlite+aiosqlite:///FILE"
        )
    return parsed.set(drivername=drivername)


def masked(url: URL) -> str:
    """The URL as it may appear in logs: the password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def create_engine(
    url: URL, *, statement_timeout: float | None = STATEMENT_TIMEOUT_S, read_only: bool = False
) -> AsyncEngine:
    """An engine for `url`; for a SQLite file, its directory is created first.

    ``statement_timeout`` None waits for PostgreSQL as long as it takes (a migration).
    ``read_only`` opens a SQLite file that `cannot_write` names through
    `jarvis.store.sqlite_read.reading_uri` (StoreError when it cannot be read
    safely); every other database opens as always.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only and cannot_write(url))
    return _pg_engine(url, statement_timeout)


def cannot_write(url: URL) -> bool:
    """Whether ``url`` names an existing SQLite file this process cannot write (a read-only
    mount, another user's file or directory): a reader opens it read-only, and no
    migration can run on it."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and is_file(database) and unwritable(database)


def _pg_engine(url: URL, statement_timeout: float | None) -> AsyncEngine:
    """An engine whose connections read libpq's URL parameters (`jarvis.sqlengine`)."""
    # No pre-ping: the kill-switch read must stay one round trip. A dead
    # pooled connection is invalidated on first use and callers retry once.
    return async_engine(
        url,
        connect_args={
            "timeout": CONNECT_TIMEOUT_S,
            "command_timeout": statement_timeout,
            "server_settings": {
                "idle_in_transaction_session_timeout": str(int(IDLE_IN_TRANSACTION_S * 1000))
            },
        },
    )


def _sqlite_engine(url: URL, *, read_only: bool) -> AsyncEngine:
    database = url.database or ""
    if is_file(database):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, or no permission
            raise StoreError(
                f"cannot create the directory of SQLite database {database}: {exc.strerror or exc}",
                lasting=exc.errno in LASTING_ERRNOS,
            ) from exc
    # A reader's each query connects anew (NullPool), deciding again how to read.
    pooling: dict[str, Any] = {"poolclass": NullPool} if read_only else {}
    engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **pooling)
    if read_only:
        _read_without_writing(engine, database)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module, which would
        # otherwise commit before DDL and begin only before DML.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not read_only:  # a database in WAL mode stays in it; a reader cannot set it
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writer that reads first (a migration) takes the write lock up front
        # with BEGIN IMMEDIATE, waiting out the busy timeout: in WAL mode a
        # deferred transaction whose snapshot went stale cannot upgrade to a
        # write and fails at once with "database is locked".
        options = connection.get_execution_options()
        until = options.get(_SQLITE_BUSY_UNTIL)
        if until is not None:
            left = int((until - time.monotonic()) * 1000)
            connection.exec_driver_sql(f"PRAGMA busy_timeout={max(0, min(BUSY_TIMEOUT_MS, left))}")
        immediate = options.get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _read_without_writing(engine: AsyncEngine, database: str) -> None:
    """Connect through `reading_uri` in place of the file's name, keeping the engine's URL
    (the one every message names) as the operator wrote it.

    Decided at each connection: `jarvis events --follow` that began with no daemon
    running read the file as immutable, and would have gone on reading it so, blind
    to the log, once a daemon started writing.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _by_uri(
        _dialect: Any, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        cargs[0] = reading_uri(database)
        cparams["uri"] = True


def limit_busy_wait(engine: AsyncEngine, seconds: float) -> None:
    """Transactions begun from now on wait at most ``seconds`` from now for another process's
    SQLite lock (never longer than the busy timeout); PostgreSQL ignores it.

    A busy wait runs in aiosqlite's worker thread, which no cancellation reaches and
    the interpreter waits for at exit: the shutdown deadline (`jarvis.loop.shutdown`)
    bounds it this way, or a write begun just before it held the exit up to 5 s more.
    """
    engine.sync_engine.update_execution_options(**{_SQLITE_BUSY_UNTIL: time.monotonic() + seconds})


def place(url: URL) -> Place:
    """What the store's messages say of ``url`` (`jarvis.store.place`)."""
    return Place(
        sqlite=url.get_backend_name() == "sqlite",
        database=url.database,
        host=url.host,
        port=url.port,
        username=url.username,
    )


def location(url: URL) -> str:
    """The database as every message names it: the SQLite file, or PostgreSQL's server and
    database (never its user's password)."""
    return place(url).where


def unreachable(url: URL, exc: BaseException) -> StoreError:
    """A one-line error naming where the database was expected and why it did not answer."""
    return place(url).unreachable(exc)


def database_outage(url: URL, exc: BaseException) -> str | None:
    """What `EventStore.outage` says of its own database, for another that Jarvis reaches
    at ``url`` (the customers' table, on ``customers.database_url`` or the store's URL):
    ``exc`` in one line naming that database when it came from there, None for anything
    else (a bug, for its traceback)."""
    failure = database_failure(place(url), exc)
    return None if failure is None else said(failure)
