"""A kill-switch flip written straight through the driver: `jarvis killswitch engage|release`.

An operator in a hurry should not wait for imports. Every other store path
goes through SQLAlchemy's async engine, whose ``sqlalchemy.ext.asyncio``
imports the ORM (docs/benchmarks.md, benchmark 7); this module writes the one
flip (the ``killswitch`` row, when the switch lives in the database, and its
event) in one transaction with stdlib ``sqlite3`` or ``asyncpg``, nothing else.

It writes exactly what the store writes: the caller passes an event already
made by `jarvis.loop.killswitch.flip` and through the store's `Redactor` and
`safe_event`, SQLite's values are encoded as SQLAlchemy's types encode them
(`jarvis.store.tables`: UTC text for times, ``json.dumps`` for payloads), and
PostgreSQL's are the COPY path's (`event_record`);
`tests/store/test_direct_flip.py` reads both back through the store. When
this path cannot write (no such database yet, tables missing, a URL it does
not know, an outage) or must not (a schema revision a newer Jarvis made, which
may keep or mean the switch otherwise), `write_flip` says so and the CLI takes
the store's own path, which migrates, spools and reports errors (a newer schema
among them) as always. When it waited out a lock (SQLite's busy timeout, a
PostgreSQL statement timeout) it says that instead (`FlipWrite.busy`): the
store's path would wait as long again on the same lock, so the CLI reports the
one failure.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from jarvis.model import Event, EventKind, KillSwitchState
from jarvis.sqlengine import asyncpg_dsn
from jarvis.store.codec import EVENT_COLUMNS, event_record
from jarvis.store.revision import REVISIONS
from jarvis.store.sqlite_read import reading_uri, unwritable
from jarvis.store.timeouts import BUSY_TIMEOUT_MS, CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_S

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "FlipWrite",
    "pg_connect",
    "pg_revision",
    "sqlite_connect",
    "sqlite_file",
    "sqlite_revision",
    "sqlite_time",
    "write_flip",
]

_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_PG_SCHEMES = {"postgresql", "postgresql+asyncpg", "postgres"}
_REVISION = "SELECT version_num FROM alembic_version"

# Built from constants only (the column names of `EVENT_COLUMNS`), never from input.
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({{}})"  # noqa: S608
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_UPSERT_SWITCH = (
    "INSERT INTO killswitch (id, engaged, actor, reason, changed_at) VALUES (1, {})"
    " ON CONFLICT (id) DO UPDATE SET engaged = excluded.engaged, actor = excluded.actor,"
    " reason = excluded.reason, changed_at = excluded.changed_at"
)


def _marks(style: str, count: int) -> str:
    """Parameter markers: ``?, ?`` for sqlite3, ``$1, $2`` for asyncpg."""
    return ", ".join("?" if style == "?" else f"${n}" for n in range(1, count + 1))


_PG_EVENT = _INSERT_EVENT.format(_marks("$", len(EVENT_COLUMNS)))
_PG_SWITCH = _UPSERT_SWITCH.format(_marks("$", 4))
_SQLITE_EVENT = _INSERT_EVENT.format(_marks("?", len(EVENT_COLUMNS)))
_SQLITE_SWITCH = _UPSERT_SWITCH.format(_marks("?", 4))


@dataclass(frozen=True, slots=True)
class FlipWrite:
    """What `write_flip` did: committed, declined, or declined after waiting out a lock."""

    written: bool
    busy: str | None = None
    """Why the database kept the write waiting until it gave up, on one line (a lock
    another session holds, a statement that had no answer in time); None otherwise."""

    @property
    def for_the_store(self) -> bool:
        """Whether the store's own path should write it: declined, and not for a lock the
        store's path would wait on as long again."""
        return not self.written and self.busy is None


_WRITTEN = FlipWrite(written=True)
_DECLINED = FlipWrite(written=False)


async def write_flip(url: str, event: Event, state: KillSwitchState | None) -> FlipWrite:
    """Write ``event`` (and ``state`` as the switch row, when given) in one transaction.

    Written when committed. Otherwise nothing was written; `FlipWrite.for_the_store`
    when this path cannot write it and the caller must use the store's path
    instead: also for a database at a revision this Jarvis does not know, whose
    schema a newer Jarvis may read otherwise (the store's path refuses it in one
    line). `FlipWrite.busy` names the wait when a lock held the write until the
    busy or statement timeout. Raises only for a programming error (an event
    that is not a flip, a naive time).
    """
    if event.kind not in (EventKind.KILLSWITCH_ENGAGED, EventKind.KILLSWITCH_RELEASED):
        raise ValueError(f"{event.kind} is not a kill-switch flip")
    scheme = urlsplit(url).scheme
    if scheme in _SQLITE_SCHEMES:
        path = sqlite_file(url)
        return _DECLINED if path is None else _write_sqlite(path, event, state)
    if scheme in _PG_SCHEMES:
        return await _write_postgres(url, event, state)
    return _DECLINED


def sqlite_file(url: str) -> str | None:
    """The file of ``sqlite:///FILE``; None for memory, URI or parameterised databases,
    and for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme not in _SQLITE_SCHEMES:
        return None
    path = unquote(parts.path)[1:]
    if parts.netloc or parts.query or not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def sqlite_time(moment: datetime | None) -> str | None:
    """A time as SQLAlchemy's SQLite DateTime stores it, in UTC (`tables.UtcDateTime`)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (store needs timezone-aware)")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_values(event: Event) -> tuple[Any, ...]:
    values = dict(zip(EVENT_COLUMNS, event_record(event), strict=True))
    values["ts"] = sqlite_time(event.ts)
    # SQLAlchemy's JSON type on SQLite serialises with plain json.dumps.
    values["payload"] = json.dumps(dict(event.payload))
    return tuple(values[name] for name in EVENT_COLUMNS)


def sqlite_connect(
    path: str,
    mode: Literal["ro", "rw"],
    *,
    own_transactions: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection | None:
    """A connection to the existing database file at ``path``, or None.

    ``mode`` is ``rw`` or ``ro``: never ``rwc``, so a missing file is never
    created here (the store's path creates and migrates it). A file this
    process cannot write is read through `jarvis.store.sqlite_read.reading_uri`,
    which raises StoreError when it cannot be read safely. With
    ``own_transactions`` the caller issues its own ``BEGIN``.
    """
    if not Path(path).is_file():
        return None
    read_only = mode == "ro" and unwritable(path)
    try:
        return sqlite3.connect(
            reading_uri(path) if read_only else f"file:{quote(path)}?mode={mode}",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None if own_transactions else "DEFERRED",
            check_same_thread=check_same_thread,
        )
    except sqlite3.Error:
        return None


def sqlite_revision(connection: sqlite3.Connection) -> str | None:
    """The schema revision Alembic's version table names; None when it names none."""
    try:
        row = connection.execute(_REVISION).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


async def pg_revision(connection: asyncpg.Connection[Any]) -> str | None:
    """The schema revision Alembic's version table names; None when it names none."""
    import asyncpg  # noqa: PLC0415 -- loaded already by `pg_connect`

    try:
        revision = await connection.fetchval(_REVISION)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None
    return None if revision is None else str(revision)


async def pg_connect(url: str) -> asyncpg.Connection[Any] | None:
    """An asyncpg connection to the database at ``url``, or None when none can be had.

    The URL reads as the store's engine reads it (`jarvis.sqlengine.asyncpg_dsn`).
    """
    import asyncpg  # noqa: PLC0415 -- a flip on SQLite does not need it

    try:
        return await asyncpg.connect(
            asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ValueError):
        return None


_SQLITE_WAITED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _write_sqlite(path: str, event: Event, state: KillSwitchState | None) -> FlipWrite:
    event_values = _sqlite_values(event)
    connection = sqlite_connect(path, "rw", own_transactions=True)
    if connection is None:
        return _DECLINED
    try:
        connection.execute("BEGIN IMMEDIATE")
        if sqlite_revision(connection) not in REVISIONS:
            return _DECLINED
        connection.execute(_SQLITE_EVENT, event_values)
        if state is not None:
            connection.execute(
                _SQLITE_SWITCH,
                (int(state.engaged), state.actor, state.reason, sqlite_time(state.changed_at)),
            )
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        # Extended codes (SQLITE_BUSY_SNAPSHOT…) keep the primary one in the low byte.
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_WAITED:
            waited = BUSY_TIMEOUT_MS / 1000
            return FlipWrite(
                written=False, busy=f"{type(exc).__name__}: {exc} (waited {waited:g} s)"
            )
        return _DECLINED
    finally:
        connection.close()  # an open transaction is rolled back
    return _WRITTEN


async def _write_postgres(url: str, event: Event, state: KillSwitchState | None) -> FlipWrite:
    import asyncpg  # noqa: PLC0415 -- loaded already by `pg_connect`

    connection = await pg_connect(url)
    if connection is None:
        return _DECLINED
    try:
        async with connection.transaction():
            if await pg_revision(connection) not in REVISIONS:
                return _DECLINED
            await connection.execute(_PG_EVENT, *event_record(event))
            if state is not None:
                await connection.execute(
                    _PG_SWITCH, state.engaged, state.actor, state.reason, state.changed_at
                )
    except TimeoutError:
        # The client's statement timeout: a table another session holds locked, most
        # often; a stalled server would keep the store's path waiting just as long.
        return FlipWrite(
            written=False,
            busy=f"no answer within {STATEMENT_TIMEOUT_S:g} s (a lock held by another "
            "session, or a stalled server)",
        )
    except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError) as exc:
        # The server's lock_timeout or statement_timeout (a role or database setting).
        return FlipWrite(written=False, busy=f"{type(exc).__name__}: {exc}")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return _DECLINED
    finally:
        await connection.close()
    return _WRITTEN
