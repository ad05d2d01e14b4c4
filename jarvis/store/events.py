"""The event store: buffered appends, one-transaction flushes with a spool, and queries.

The reconciler appends every event of a tick and stages retry-ledger changes,
then calls `flush()` once; the CLI, the admin API and policies' history read
through the query methods. One implementation serves PostgreSQL (asyncpg) and
SQLite (aiosqlite). When the database is unreachable, a flush parks its events
in the spool file instead of failing the tick; the next successful flush
replays them first, and the unique idempotency key makes any replay harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import ColumnElement, delete, exists, func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.model import Event, EventKind, RetryState
from jarvis.store.codec import event_from_row, retry_from_row
from jarvis.store.engine import create_engine, masked, normalize_url, unreachable
from jarvis.store.errors import is_operational
from jarvis.store.migrate import check_revision, upgrade_engine
from jarvis.store.spool import Spool
from jarvis.store.tables import events, retry_state
from jarvis.store.writer import event_writer

__all__ = ["EventStore", "FlushResult"]

_T = TypeVar("_T")

OUTCOME_KINDS = (EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN)
"""The events that close an `action.started` intent with the same action id."""


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush did.

    ``written``: events sent to the database in the committed transaction
    (replayed ones included; any already present were skipped by their key).
    ``spooled``: events waiting in the spool file afterwards (0 on success).
    ``replayed``: how many of ``written`` came from the spool file.
    """

    written: int
    spooled: int
    replayed: int = 0


class EventStore:
    """Append-only events, the retry ledger and their queries, over one async engine."""

    def __init__(self, engine: AsyncEngine, spool: Spool | None = None) -> None:
        self._engine = engine
        self._spool = spool
        self._buffer: list[Event] = []
        self._retries: dict[tuple[str, str], RetryState] = {}
        self._lock = anyio.Lock()
        self._writer = event_writer(engine.dialect.name)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        spool_path: Path | None = None,
        auto_migrate: bool | None = None,
    ) -> EventStore:
        """Open the database at `url`, checking (or, for SQLite by default, migrating) its schema.

        Raises NotMigratedError when the schema is behind and not migrated
        here, and StoreError with a one-line message when it cannot be reached.
        """
        parsed = normalize_url(url)
        engine = create_engine(parsed)
        try:
            migrate = (
                parsed.get_backend_name() == "sqlite" if auto_migrate is None else auto_migrate
            )
            if migrate:
                await upgrade_engine(engine)
            else:
                await check_revision(engine)
            spool = (
                None if spool_path is None else await anyio.to_thread.run_sync(Spool, spool_path)
            )
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, spool)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return masked(self._engine.url)

    @property
    def spooled(self) -> int:
        """Events waiting in the spool file for the database to come back."""
        return 0 if self._spool is None else self._spool.count

    def append(self, events: Iterable[Event]) -> None:
        """Buffer events for the next flush; no I/O."""
        self._buffer.extend(events)

    def stage_retry(self, state: RetryState) -> None:
        """Buffer an upsert of one retry-ledger row; the latest per key wins."""
        self._retries[(state.resource, state.action_kind)] = state

    async def flush(self) -> FlushResult:
        """Write spooled events, buffered events and staged retries in one transaction.

        On an operational failure with a spool file, the buffered events move
        to the spool and the staged retries stay for the next flush; without
        a spool file, StoreError is raised and the buffer is kept. A
        programming error (an unencodable value) raises and keeps the buffer.
        """
        async with self._lock:
            batch, self._buffer = self._buffer, []
            retries, self._retries = self._retries, {}
            try:
                replay = [] if self._spool is None else await self._in_thread(self._spool.read)
                pending = [*replay, *batch]
                if pending or retries:
                    await self._write(pending, list(retries.values()))
            except Exception as exc:
                if self._spool is None or not is_operational(exc):
                    self._restore(batch, retries)
                    if is_operational(exc):
                        raise unreachable(self._engine.url, exc) from exc
                    raise
                self._restore([], retries)
                try:
                    await self._in_thread(self._spool.append, batch)
                except BaseException:
                    self._restore(batch, {})
                    raise
                return FlushResult(written=0, spooled=self._spool.count)
            except BaseException:
                # Cancelled mid-write: keep everything. If the commit did land,
                # replaying it is a no-op thanks to the idempotency keys.
                self._restore(batch, retries)
                raise
            if replay and self._spool is not None:
                await self._in_thread(self._spool.clear)
            return FlushResult(written=len(pending), spooled=0, replayed=len(replay))

    def _restore(self, batch: list[Event], retries: dict[tuple[str, str], RetryState]) -> None:
        """Put back what a failed flush took; anything staged since then is newer and wins."""
        self._buffer[:0] = batch
        self._retries = {**retries, **self._retries}

    async def _write(self, pending: list[Event], retries: list[RetryState]) -> None:
        # A pooled connection killed by a database restart fails on first use
        # and is invalidated; the second attempt gets a fresh connection.
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as connection:
                    await self._writer.write(connection, pending, retries)
                return
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise

    async def events(
        self,
        *,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
        resource: str | None = None,
        after_id: int | None = None,
        since: datetime | None = None,
    ) -> list[Event]:
        """Matching events, oldest first.

        With `after_id`, the first `limit` after it (for following); without, the last `limit`.
        """
        conditions: list[ColumnElement[bool]] = []
        if kinds is not None:
            conditions.append(events.c.kind.in_([str(kind) for kind in kinds]))
        if resource is not None:
            conditions.append(events.c.resource == resource)
        if since is not None:
            conditions.append(events.c.ts >= since)
        query = select(events).where(*conditions).limit(limit)
        if after_id is not None:
            query = query.where(events.c.id > after_id).order_by(events.c.id)
        else:
            query = query.order_by(events.c.id.desc())

        async def run(connection: AsyncConnection) -> list[Event]:
            result = await connection.execute(query)
            return [event_from_row(row) for row in result.mappings()]

        found = await self._read(run)
        return found if after_id is not None else found[::-1]

    async def open_intents(self) -> list[Event]:
        """`action.started` events whose action id has no outcome event yet, oldest first."""
        outcome = events.alias("outcome")
        query = (
            select(events)
            .where(
                events.c.kind == EventKind.ACTION_STARTED.value,
                events.c.action_id.is_not(None),
                ~exists().where(
                    outcome.c.action_id == events.c.action_id,
                    outcome.c.kind.in_([kind.value for kind in OUTCOME_KINDS]),
                ),
            )
            .order_by(events.c.id)
        )

        async def run(connection: AsyncConnection) -> list[Event]:
            result = await connection.execute(query)
            return [event_from_row(row) for row in result.mappings()]

        return await self._read(run)

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        """The whole retry ledger, keyed by (resource, action kind)."""

        async def run(connection: AsyncConnection) -> dict[tuple[str, str], RetryState]:
            result = await connection.execute(select(retry_state))
            states = [retry_from_row(row) for row in result.mappings()]
            return {(state.resource, state.action_kind): state for state in states}

        return await self._read(run)

    async def reset_retries(self, resource: str) -> int:
        """Forget a resource's retry ledger (and unflushed changes to it); return rows deleted."""
        self._retries = {key: s for key, s in self._retries.items() if key[0] != resource}

        async def run(connection: AsyncConnection) -> int:
            result = await connection.execute(
                delete(retry_state).where(retry_state.c.resource == resource)
            )
            await connection.commit()
            return result.rowcount

        return await self._read(run)

    async def count_events(self, kinds: Sequence[str] | None = None) -> int:
        """How many events are stored, optionally only of some kinds."""
        query = select(func.count()).select_from(events)
        if kinds is not None:
            query = query.where(events.c.kind.in_([str(kind) for kind in kinds]))

        async def run(connection: AsyncConnection) -> int:
            return int((await connection.execute(query)).scalar_one())

        return await self._read(run)

    async def ping(self) -> None:
        """One round trip to the database; raises StoreError when it does not answer."""

        async def run(connection: AsyncConnection) -> None:
            await connection.execute(text("SELECT 1"))

        try:
            await self._read(run)
        except SQLAlchemyError as exc:
            raise unreachable(self._engine.url, exc) from exc

    async def aclose(self) -> None:
        """Release every pooled connection. Buffered events are not flushed."""
        await self._engine.dispose()

    async def _read(self, run: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run a query on a pooled connection; a lost database becomes StoreError."""
        for attempt in (1, 2):
            try:
                async with self._engine.connect() as connection:
                    return await run(connection)
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                if is_operational(exc):
                    raise unreachable(self._engine.url, exc) from exc
                raise
            except OSError as exc:
                raise unreachable(self._engine.url, exc) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(function, *args)
