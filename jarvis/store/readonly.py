# ruff: noqa: ARG002 - the write half of the protocols is refused whatever it is given
"""The event database read straight through its driver: what `jarvis plan` reads with.

`jarvis plan` asks a handful of questions of the store (the retry ledger, the
history window, recent alerts, the kill switch) and writes nothing. Through
the SQL backend those cost SQLAlchemy's async engine, whose import is a
quarter of the command's time (docs/benchmarks.md, benchmark 8). A reader
here answers the same read queries as `jarvis.store.sql.SqlBackend`, with the
same semantics (the same rows, in the same order, decoded by the same
`jarvis.store.codec`): through stdlib ``sqlite3`` on a connection opened
``mode=ro`` (on a file this process cannot write, as `jarvis.store.sqlite_read`
says), or through ``asyncpg`` in read-only transactions. It refuses
every write as a read-only store's error, and says a query its database
failed as the SQL backend does: the database named (`jarvis.store.place`) and
the driver's reason in one line (`jarvis.store.backend.database_failure`).
`tests/store/test_readonly.py` holds every answer equal to the SQL backend's,
on both databases.

`open_reader` returns None when this path does not apply (an in-memory or URI
database, no file yet, a schema at another revision, a server it cannot
reach): the caller then opens the SQL backend, which migrates or names the
problem as always. A component that needs an engine after all (the customers
table, LLM usage) gets one from `engine`, created on first use.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread

from jarvis.model import Event, KillSwitchState, RetryState
from jarvis.store.backend import database_failure
from jarvis.store.codec import readable_events, retry_from_row
from jarvis.store.direct import (
    pg_connect,
    pg_revision,
    sqlite_connect,
    sqlite_file,
    sqlite_revision,
    sqlite_time,
)
from jarvis.store.errors import StoreError
from jarvis.store.place import Place
from jarvis.store.revision import HEAD_REVISION

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

    from jarvis.config.sections import RetentionSettings
    from jarvis.store.fence import Fences
    from jarvis.store.fleetcap import Cap

__all__ = ["DirectReader", "KillSwitchReader", "open_reader"]

_PG_SCHEMES = {"postgresql", "postgresql+asyncpg", "postgres"}
_EVENT_COLUMNS = (
    "id, ts, tick_id, kind, resource, action_kind, policy, reason, payload, action_id,"
    " idempotency_key"
)


async def open_reader(url: str) -> DirectReader | None:
    """A reader of the database at ``url``, or None when this path does not apply."""
    if urlsplit(url).scheme in _PG_SCHEMES:
        return await _open_postgres(url)
    return _open_sqlite(url)


def _open_sqlite(url: str) -> DirectReader | None:
    path = sqlite_file(url)
    # Used from worker threads, one query at a time (`DirectReader._lock`).
    connection = None if path is None else sqlite_connect(path, "ro", check_same_thread=False)
    if connection is None:
        return None
    if sqlite_revision(connection) != HEAD_REVISION:
        connection.close()
        return None
    connection.row_factory = _dict_row
    return _SqliteReader(url, connection)


async def _open_postgres(url: str) -> DirectReader | None:
    connection = await pg_connect(url)
    if connection is None:
        return None
    if await pg_revision(connection) != HEAD_REVISION:
        await connection.close()
        return None
    return _PgReader(url, connection)


class DirectReader:
    """The read half of `EventBackend` over one connection of the database's own driver."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._place = Place.of(url)
        self._engine: AsyncEngine | None = None
        self._lock = anyio.Lock()

    # -- what each driver supplies ------------------------------------------

    def _mark(self, number: int) -> str:
        """The placeholder of the ``number``-th parameter (from 1)."""
        raise NotImplementedError

    def _bind_time(self, moment: datetime) -> Any:
        raise NotImplementedError

    def _time(self, value: Any) -> datetime | None:
        raise NotImplementedError

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    # -- EventBackend ----------------------------------------------------------

    @property
    def url(self) -> str:
        parts = urlsplit(self._url)
        if parts.password is None:
            return self._url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def engine(self) -> AsyncEngine:
        """An engine on the same database, made on first use, for whatever needs SQL after all."""
        if self._engine is None:
            from jarvis.store.engine import (  # noqa: PLC0415 - only when something needs it
                create_engine,
                normalize_url,
            )

            self._engine = create_engine(normalize_url(self._url), read_only=True)
        return self._engine

    @property
    def where(self) -> str:
        return self._place.where

    def unreachable(self, exc: BaseException) -> StoreError:
        return self._place.unreachable(exc)

    def _refused(self, exc: BaseException) -> StoreError:
        """What a query the driver failed raises: the store's one line of that failure
        (`database_failure`), as the SQL backend and `EventStore.explain` say it."""
        return database_failure(self, exc) or self.unreachable(exc)

    async def write(
        self,
        pending: Sequence[Event],
        retries: Sequence[RetryState],
        fence: Fences | None = None,
        caps: Sequence[Cap] = (),
    ) -> None:
        raise StoreError(f"{self.url} is open read-only: nothing is written")

    async def events(
        self,
        *,
        limit: int,
        kinds: Sequence[str] | None,
        resource: str | None,
        after_id: int | None,
        since: datetime | None,
    ) -> list[Event]:
        where, params = self._filters(kinds, resource, since)
        if after_id is not None:
            params.append(after_id)
            where.append(f"id > {self._mark(len(params))}")
            order = "id"
        else:
            order = "id DESC"
        found = await self._events(where, params, order, limit)
        return found if after_id is not None else found[::-1]

    async def events_by_time(
        self,
        *,
        kinds: Sequence[str] | None,
        resource: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[Event]:
        where, params = self._filters(kinds, resource, since)
        if until is not None:
            params.append(self._bind_time(until))
            where.append(f"ts <= {self._mark(len(params))}")
        if limit is None:
            return await self._events(where, params, "ts, id", None)
        # The newest `limit`, walked backwards on the ts index, then turned round.
        found = await self._events(where, params, "ts DESC, id DESC", limit)
        return found[::-1]

    async def open_intents(self) -> list[Event]:
        raise StoreError(f"{self.url} is open read-only: orphaned intents are not closed here")

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        rows = await self._query("SELECT * FROM retry_state", [])
        states = [retry_from_row(self._retry_row(row)) for row in rows]
        return {(state.resource, state.action_kind): state for state in states}

    async def delete_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        raise StoreError(f"{self.url} is open read-only: the retry ledger is not changed here")

    async def count_events(self, kinds: Sequence[str] | None) -> int:
        where, params = self._filters(kinds, None, None)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._query(f"SELECT count(*) AS n FROM events{clause}", params)  # noqa: S608
        return int(rows[0]["n"])

    async def prune(
        self, retention: RetentionSettings, *, now: datetime, keep_after: datetime, dry_run: bool
    ) -> dict[str, int]:
        raise StoreError(f"{self.url} is open read-only: nothing is pruned here")

    async def ping(self) -> None:
        await self._query("SELECT 1 AS one", [])

    async def aclose(self) -> None:
        await self._close()
        if self._engine is not None:
            await self._engine.dispose()

    # -- the kill switch -------------------------------------------------------

    async def killswitch(self) -> KillSwitchState | None:
        """Row id=1 of the ``killswitch`` table, as `DbKillSwitch.read` gives it."""
        rows = await self._query(
            "SELECT engaged, actor, reason, changed_at FROM killswitch WHERE id = 1", []
        )
        if not rows:
            return None
        row = rows[0]
        return KillSwitchState(
            engaged=bool(row["engaged"]),
            actor=row["actor"],
            reason=row["reason"],
            changed_at=self._time(row["changed_at"]),
        )

    # -- shared ----------------------------------------------------------------

    def _filters(
        self, kinds: Sequence[str] | None, resource: str | None, since: datetime | None
    ) -> tuple[list[str], list[Any]]:
        """`jarvis.store.sql._filters` in SQL text: kinds, resource, earliest time."""
        where: list[str] = []
        params: list[Any] = []
        if kinds is not None:
            marks = []
            for kind in kinds:
                params.append(str(kind))
                marks.append(self._mark(len(params)))
            where.append(f"kind IN ({', '.join(marks)})" if marks else "1 = 0")
        if resource is not None:
            params.append(resource)
            where.append(f"resource = {self._mark(len(params))}")
        if since is not None:
            params.append(self._bind_time(since))
            where.append(f"ts >= {self._mark(len(params))}")
        return where, params

    async def _events(
        self, where: list[str], params: list[Any], order: str, limit: int | None
    ) -> list[Event]:
        # Built from constants and placeholders only; every value is a parameter.
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608
        if where:
            sql += f" WHERE {' AND '.join(where)}"
        sql += f" ORDER BY {order}"
        if limit is not None:
            params = [*params, limit]
            sql += f" LIMIT {self._mark(len(params))}"
        rows = await self._query(sql, params)
        return readable_events(self._event_row(row) for row in rows)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        async with self._lock:  # one connection: one query at a time
            return await self._fetch(sql, params)

    def _event_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(row)
        values["ts"] = self._time(values["ts"])
        values["payload"] = json.loads(values["payload"])
        return values

    def _retry_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(row)
        values["attempts"] = json.loads(values["attempts"])
        values["retry_after"] = self._time(values["retry_after"])
        values["updated_at"] = self._time(values["updated_at"])
        return values


class _SqliteReader(DirectReader):
    """SQLite, through stdlib ``sqlite3`` on a ``mode=ro`` connection, in a worker thread."""

    def __init__(self, url: str, connection: sqlite3.Connection) -> None:
        super().__init__(url)
        self._connection = connection

    def _mark(self, number: int) -> str:
        return "?"

    def _bind_time(self, moment: datetime) -> Any:
        return sqlite_time(moment)

    def _time(self, value: Any) -> datetime | None:
        """Stored UTC text back as an aware time, as `tables.UtcDateTime` gives it."""
        return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        def run() -> list[dict[str, Any]]:
            return self._connection.execute(sql, params).fetchall()

        try:
            return list(await anyio.to_thread.run_sync(run))
        except sqlite3.Error as exc:
            raise self._refused(exc) from exc

    async def _close(self) -> None:
        self._connection.close()


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class _PgReader(DirectReader):
    """PostgreSQL, through ``asyncpg``, each query in a read-only transaction."""

    def __init__(self, url: str, connection: asyncpg.Connection[Any]) -> None:
        super().__init__(url)
        self._connection = connection

    def _mark(self, number: int) -> str:
        return f"${number}"

    def _bind_time(self, moment: datetime) -> Any:
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment.isoformat()} (store needs timezone-aware)")
        return moment

    def _time(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        import asyncpg  # noqa: PLC0415 - imported already by `_open_postgres`

        failures = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
        try:
            transaction = self._connection.transaction(readonly=True)
            await transaction.start()
            try:
                rows = await self._connection.fetch(sql, *params)
            except failures:
                # The query's failure is the reason: rolling back on a connection lost with
                # it fails too ("cannot call Transaction.__aexit__()"), and would hide it.
                with contextlib.suppress(*failures):
                    await transaction.rollback()
                raise
            await transaction.commit()
        except failures as exc:
            raise self._refused(exc) from exc
        return list(rows)

    async def _close(self) -> None:
        await self._connection.close()


_READ_ONLY_SWITCH = "the kill switch is open read-only here: flip it with `jarvis killswitch`"


class KillSwitchReader:
    """The database kill switch, read through a `DirectReader`; `jarvis plan` never flips it."""

    def __init__(self, reader: DirectReader) -> None:
        self._reader = reader

    async def read(self) -> KillSwitchState | None:
        return await self._reader.killswitch()

    async def write(self, state: KillSwitchState) -> None:
        raise StoreError(_READ_ONLY_SWITCH)

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        raise StoreError(_READ_ONLY_SWITCH)

    async def aclose(self) -> None:
        """The reader is the store's; the store closes it."""
