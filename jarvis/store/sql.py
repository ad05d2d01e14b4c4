"""The SQL backend of the event store: PostgreSQL (asyncpg) or SQLite (aiosqlite).

`EventStore.connect` builds one from a URL; the store's buffer, spool and
flush sit in front of it (`jarvis.store.events`). Writes take one transaction
per flush through the dialect's batch writer (`jarvis.store.writer`); reads
take a pooled connection each. A database that does not answer becomes
`StoreError` with a one-line message naming where it was expected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, delete, exists, func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.config.sections import RetentionSettings
from jarvis.model import Event, EventKind, RetryState
from jarvis.store.codec import readable_events, retry_from_row
from jarvis.store.engine import (
    SQLITE_IMMEDIATE,
    STATEMENT_TIMEOUT_S,
    cannot_write,
    create_engine,
    location,
    masked,
    normalize_url,
    unreachable,
)
from jarvis.store.errors import StoreError, is_operational
from jarvis.store.fence import Fences, check_fence, each
from jarvis.store.fleetcap import Cap, check_caps
from jarvis.store.migrate import check_revision, upgrade_engine
from jarvis.store.retention import OUTCOME_KINDS, prune_events
from jarvis.store.tables import events, retry_state
from jarvis.store.writer import event_writer

__all__ = ["OUTCOME_KINDS", "SqlBackend"]

_T = TypeVar("_T")


class SqlBackend:
    """Events and the retry ledger in tables, over one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writer = event_writer(engine.dialect.name)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        auto_migrate: bool | None = None,
        statement_timeout: float = STATEMENT_TIMEOUT_S,
        read_only: bool = False,
    ) -> SqlBackend:
        """Open the database at `url`, checking (or, for SQLite by default, migrating) its schema.

        Raises NotMigratedError when the schema is behind and not migrated
        here, and StoreError with a one-line message when it cannot be reached.
        ``read_only`` (a command that only reads) opens a SQLite file this
        process cannot write without writing (`jarvis.store.engine.cannot_write`);
        such a file is only checked, never migrated.
        """
        parsed = normalize_url(url)
        reading = read_only and cannot_write(parsed)
        engine = create_engine(parsed, statement_timeout=statement_timeout, read_only=read_only)
        try:
            migrate = (
                parsed.get_backend_name() == "sqlite" if auto_migrate is None else auto_migrate
            ) and not reading
            if migrate:
                await upgrade_engine(engine)
            else:
                await check_revision(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        return masked(self.engine.url)

    @property
    def where(self) -> str:
        return location(self.engine.url)

    def unreachable(self, exc: BaseException) -> StoreError:
        return unreachable(self.engine.url, exc)

    async def write(
        self,
        pending: Sequence[Event],
        retries: Sequence[RetryState],
        fence: Fences | None = None,
        caps: Sequence[Cap] = (),
    ) -> None:
        # A pooled connection killed by a database restart fails on first use
        # and is invalidated; the second attempt gets a fresh connection.
        for attempt in (1, 2):
            try:
                async with self.engine.begin() as connection:
                    for one in each(fence):
                        await check_fence(connection, one)
                    await check_caps(connection, caps)
                    await self._writer.write(connection, pending, retries)
                return
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise

    async def events(
        self,
        *,
        limit: int,
        kinds: Sequence[str] | None,
        resource: str | None,
        after_id: int | None,
        since: datetime | None,
    ) -> list[Event]:
        conditions = _filters(kinds, resource, since)
        query = select(events).where(*conditions).limit(limit)
        if after_id is not None:
            query = query.where(events.c.id > after_id).order_by(events.c.id)
        else:
            query = query.order_by(events.c.id.desc())

        async def run(connection: AsyncConnection) -> list[Event]:
            result = await connection.execute(query)
            return readable_events(result.mappings())

        found = await self._read(run)
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
        conditions = _filters(kinds, resource, since)
        if until is not None:
            conditions.append(events.c.ts <= until)
        query = select(events).where(*conditions)
        if limit is None:
            query = query.order_by(events.c.ts, events.c.id)
        else:
            # The newest `limit`, walked backwards on the ts index, then turned round.
            query = query.order_by(events.c.ts.desc(), events.c.id.desc()).limit(limit)

        async def run(connection: AsyncConnection) -> list[Event]:
            result = await connection.execute(query)
            return readable_events(result.mappings())

        found = await self._read(run)
        return found if limit is None else found[::-1]

    async def open_intents(self) -> list[Event]:
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
            return readable_events(result.mappings())

        return await self._read(run)

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        async def run(connection: AsyncConnection) -> dict[tuple[str, str], RetryState]:
            result = await connection.execute(select(retry_state))
            states = [retry_from_row(row) for row in result.mappings()]
            return {(state.resource, state.action_kind): state for state in states}

        return await self._read(run)

    async def delete_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        async def run(connection: AsyncConnection) -> int:
            # The event and the delete commit together: a role that may delete the rows
            # but not record the event (no INSERT on events) resets nothing.
            async with connection.begin():
                result = await connection.execute(
                    delete(retry_state).where(retry_state.c.resource == resource)
                )
                if recorded:
                    await self._writer.write_events(connection, recorded)
            return result.rowcount

        try:
            return await self._read(run)
        except StoreError:
            raise
        except Exception as exc:
            # PostgreSQL's COPY runs on the driver's own connection: its refusal comes
            # unwrapped by SQLAlchemy (asyncpg's InsufficientPrivilegeError, say).
            if is_operational(exc):
                raise self.unreachable(exc) from exc
            raise

    async def count_events(self, kinds: Sequence[str] | None) -> int:
        query = select(func.count()).select_from(events)
        if kinds is not None:
            query = query.where(events.c.kind.in_([str(kind) for kind in kinds]))

        async def run(connection: AsyncConnection) -> int:
            return int((await connection.execute(query)).scalar_one())

        return await self._read(run)

    async def prune(
        self, retention: RetentionSettings, *, now: datetime, keep_after: datetime, dry_run: bool
    ) -> dict[str, int]:
        """Delete old events in one transaction (`jarvis.store.retention`); roll back a dry run."""
        writer = self.engine.execution_options(**{SQLITE_IMMEDIATE: True})
        try:
            async with writer.connect() as connection:
                transaction = await connection.begin()
                deleted = await prune_events(connection, retention, now=now, keep_after=keep_after)
                await (transaction.rollback() if dry_run else transaction.commit())
                return deleted
        except DBAPIError as exc:
            if is_operational(exc):
                raise self.unreachable(exc) from exc
            raise
        except OSError as exc:
            raise self.unreachable(exc) from exc

    async def ping(self) -> None:
        async def run(connection: AsyncConnection) -> None:
            await connection.execute(text("SELECT 1"))

        try:
            await self._read(run)
        except SQLAlchemyError as exc:
            raise self.unreachable(exc) from exc

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def _read(self, run: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run a query on a pooled connection; a lost database becomes StoreError."""
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as connection:
                    return await run(connection)
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                if is_operational(exc):
                    raise self.unreachable(exc) from exc
                raise
            except OSError as exc:
                raise self.unreachable(exc) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")


def _filters(
    kinds: Sequence[str] | None, resource: str | None, since: datetime | None
) -> list[ColumnElement[bool]]:
    """The WHERE conditions every events query shares: kinds, resource, earliest time."""
    conditions: list[ColumnElement[bool]] = []
    if kinds is not None:
        conditions.append(events.c.kind.in_([str(kind) for kind in kinds]))
    if resource is not None:
        conditions.append(events.c.resource == resource)
    if since is not None:
        conditions.append(events.c.ts >= since)
    return conditions
