"""Batch statements for `EventStore.flush`: insert events, upsert the retry ledger.

Both backends insert with ON CONFLICT (idempotency_key) DO NOTHING, so a
replayed event is a no-op. SQLite takes one executemany. PostgreSQL takes a
binary COPY straight into ``events`` inside a savepoint: a batch whose keys
are all new (nearly every flush) is written by that one COPY. A batch with a
key already stored or repeated in itself makes the COPY fail on the unique
index; the savepoint is rolled back and the batch takes the deduplicating
path, a binary COPY into a session temp table followed by one INSERT … SELECT
… ON CONFLICT DO NOTHING in arrival order, so a replayed event is still a
no-op. The direct COPY spares the server the temp table and the INSERT …
SELECT (docs/benchmarks.md, benchmark 3). Every statement runs on the
connection (and in the transaction) the caller passes in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from jarvis.model import Event, RetryState
from jarvis.store.codec import EVENT_COLUMNS, event_record, event_row, retry_row
from jarvis.store.tables import events, retry_state, upsert_into

__all__ = ["EventWriter", "PostgresEventWriter", "SqliteEventWriter", "event_writer"]

_INCOMING = "jarvis_incoming_events"  # a session temp table, emptied at commit
_CREATE_INCOMING = text(
    "CREATE TEMP TABLE IF NOT EXISTS jarvis_incoming_events ("
    "seq bigint, ts timestamptz, tick_id text, kind text, resource text, action_kind text,"
    " policy text, reason text, payload json, action_id text, idempotency_key text"
    ") ON COMMIT DELETE ROWS"
)
_MOVE_INCOMING = text(
    "INSERT INTO events"
    " (ts, tick_id, kind, resource, action_kind, policy, reason, payload, action_id,"
    " idempotency_key)"
    " SELECT ts, tick_id, kind, resource, action_kind, policy, reason, payload, action_id,"
    " idempotency_key"
    " FROM jarvis_incoming_events ORDER BY seq"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)


class EventWriter:
    """Writes a batch of events and retry states on an open transaction (SQLite form)."""

    def __init__(self, dialect_name: str) -> None:
        self._insert_events: Insert = upsert_into(events, dialect_name).on_conflict_do_nothing(
            index_elements=[events.c.idempotency_key]
        )
        upsert = upsert_into(retry_state, dialect_name)
        self._upsert_retries: Insert = upsert.on_conflict_do_update(
            index_elements=[retry_state.c.resource, retry_state.c.action_kind],
            set_={
                column.name: upsert.excluded[column.name]
                for column in retry_state.columns
                if not column.primary_key
            },
        )

    async def write(
        self,
        connection: AsyncConnection,
        batch: Sequence[Event],
        retries: Sequence[RetryState],
    ) -> None:
        if batch:
            await self.write_events(connection, batch)
        if retries:
            await connection.execute(self._upsert_retries, [retry_row(state) for state in retries])

    async def write_events(self, connection: AsyncConnection, batch: Sequence[Event]) -> None:
        await connection.execute(self._insert_events, [event_row(event) for event in batch])


class SqliteEventWriter(EventWriter):
    def __init__(self) -> None:
        super().__init__("sqlite")


class PostgresEventWriter(EventWriter):
    """COPY into a temp table, then one INSERT … SELECT … ON CONFLICT DO NOTHING."""

    def __init__(self) -> None:
        super().__init__("postgresql")

    async def write_events(self, connection: AsyncConnection, batch: Sequence[Event]) -> None:
        import asyncpg  # noqa: PLC0415 -- a daemon on SQLite never loads the driver

        raw = (await connection.get_raw_connection()).driver_connection
        # SAVEPOINT through SQLAlchemy, which also opens the transaction the raw COPY joins.
        savepoint = await connection.begin_nested()
        refused: list[Exception] = []
        try:
            await raw.copy_records_to_table(  # type: ignore[union-attr]  # asyncpg is untyped
                "events", records=_records(batch, refused), columns=EVENT_COLUMNS
            )
        except asyncpg.UniqueViolationError:
            await savepoint.rollback()
        else:
            if refused:  # the COPY ended early and short: write none of it
                await savepoint.rollback()
                raise refused[0]
            await savepoint.commit()
            return
        records = [event_record(event) for event in batch]
        await connection.execute(_CREATE_INCOMING)
        await raw.copy_records_to_table(  # type: ignore[union-attr]  # asyncpg is untyped
            _INCOMING,
            records=[(seq, *record) for seq, record in enumerate(records)],
            columns=("seq", *EVENT_COLUMNS),
        )
        await connection.execute(_MOVE_INCOMING)


def _records(batch: Sequence[Event], refused: list[Exception]) -> Iterator[tuple[Any, ...]]:
    """The batch's COPY records, each built as asyncpg sends the one before.

    asyncpg streams the COPY in chunks of about 512 KiB as it iterates, so the
    server parses and indexes one chunk while this redacts and builds the next
    (the store's `Storable` batch redacts as it is read), instead of waiting
    for the whole batch (docs/benchmarks.md, benchmark 3). An event
    that cannot be encoded ends the records there, and is left in ``refused``
    for the caller to roll the short COPY back and raise: an exception inside
    asyncpg's COPY would abort it with a CopyFail and a cancel request that
    can race the statements after it.
    """
    events = iter(batch)  # a `Storable` batch redacts each event as it is read
    while True:
        try:
            event = next(events, None)
            if event is None:
                return
            record = event_record(event)
        except (TypeError, ValueError, RecursionError) as exc:
            refused.append(exc)
            return
        yield record


def event_writer(dialect_name: str) -> EventWriter:
    """The writer for a backend: ``postgresql`` or ``sqlite``."""
    return PostgresEventWriter() if dialect_name == "postgresql" else SqliteEventWriter()
