"""The notification outbox: the `notifications` table and the notifier's saved state.

Defined on the store's shared `metadata` (migration 0004_notifications creates
both tables). The notifier (`jarvis.notify`) writes the notifications an
incident needs together with its event cursor and grouping state in one
transaction (`commit`), then claims each due row (`claim`: every replica runs a
notifier, and one row is sent by one of them), delivers it and marks it sent
(with an error when some recipients refused it), or failed after its last
attempt. A notification's ``dedup_key`` is unique, so recomputing it after a
restart inserts nothing: a restart never double-sends. Every replica's notifier
consumes too, and saves only over the state it read (``revision``): the other's
save in between makes it read the state again, so the grouping is one history,
never two whose notices share keys.

Only the oldest pending row of an incident on a channel can go. Each row says
whether it is ``waiting`` behind an older one (migration 0013_outbox_waiting): set
when it is inserted behind a pending row of its incident on its channel, cleared when
the rows before it have left (`_release`). A claim walks only the pending rows that
do not wait, oldest first, through their own partial index: its cost follows the
incidents pending on each channel, not the rows piled up behind them. The mark only
narrows the search: the claim still asks each row it reaches whether an older pending
row holds it back (one lookup in migration 0012_outbox_pending_index's index), so a
row written ``waiting`` false (the column's default) is held back all the same. The
other way round would be a row never sent, waiting behind none; `_insert_behind` and
`_release` lock so that none is, and what writes the outbox without them (a replica of a
Jarvis before 0013, beside this one during a rolling update) is undone by each notifier
every `STRANDED_EVERY` (`Outbox.release_stranded`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Exists,
    Index,
    Integer,
    Select,
    Table,
    Text,
    exists,
    false,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.store.engine import unreachable
from jarvis.store.errors import is_operational
from jarvis.store.tables import UtcDateTime, json_type, metadata, upsert_into

__all__ = [
    "REVISION",
    "STRANDED_EVERY",
    "NotificationOutbox",
    "NotificationRow",
    "Outbox",
    "StaleStateError",
    "claimable",
    "notifications",
    "notify_state",
    "revision_of",
]

PENDING, SENT, FAILED = "pending", "sent", "failed"

STRANDED_EVERY = timedelta(minutes=10)
"""How often `Outbox.claim` releases the rows left waiting behind no pending row, if any:
the longest such a row waits. The release reads every waiting row, as a claim did before
migration 0013."""

REVISION = "revision"
"""The saved state's entry counting its saves: ``{"n": 3}``, absent before the first."""


class StaleStateError(Exception):
    """The notifier's state was saved by another replica since this one read it."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"the notifier's state moved past revision {revision}")


def revision_of(value: Any) -> int:
    """The number in a saved ``revision`` entry; 0 when there is none."""
    return int(value["n"]) if isinstance(value, dict) and "n" in value else 0


notifications = Table(
    "notifications",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("dedup_key", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("incident", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("message", json_type(), nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    # An older row of its incident is pending on its channel: this one cannot go yet.
    Column("waiting", Boolean(), nullable=False, server_default=false()),
    # The dispatcher's question: which pending rows are due now.
    Index(None, "status", "next_attempt_at"),
    # And two partial indexes, declared in `jarvis.store.indexes`: of each due row, is an
    # older row of its incident pending on its channel; and the rows that can go once due.
)

notify_state = Table(
    "notify_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", json_type(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """One row of the outbox, as the dispatcher and the tests read it."""

    id: int
    dedup_key: str
    channel: str
    incident: str
    action: str
    message: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    sent_at: datetime | None


class NotificationOutbox(Protocol):
    """What the notifier needs of an outbox: `Outbox` (SQL) or `MemoryOutbox` (simulation)."""

    async def load_state(self) -> dict[str, Any]: ...

    async def commit(
        self,
        state: dict[str, Any],
        new: Sequence[dict[str, Any]],
        now: datetime,
        revision: int | None = None,
    ) -> int:
        """Save ``state`` and insert ``new`` (skipping known keys) atomically; with
        ``revision``, only over the state of that revision (``state["revision"]``), else
        `StaleStateError` and nothing is written: another replica's notifier saved since."""
        ...

    async def due(self, now: datetime, limit: int = 50) -> list[NotificationRow]:
        """Pending rows whose next attempt is due, oldest first; a row waits while an older
        one of its incident on its channel is pending (a resolve never overtakes the
        trigger still being retried: PagerDuty would open an incident nothing resolves)."""
        ...

    async def claim(
        self, now: datetime, until: datetime, skip: Collection[str] = ()
    ) -> NotificationRow | None:
        """The first row `due` would give on a channel not in ``skip``, its next attempt moved
        to ``until`` in the same transaction: another replica's notifier passes it by while
        this one sends it, and takes it after ``until`` if this one never recorded it."""
        ...

    async def rows(self, status: str | None = None) -> list[NotificationRow]: ...

    async def mark_sent(
        self, row_id: int, attempts: int, now: datetime, error: str = ""
    ) -> None: ...

    async def mark_retry(
        self,
        row_id: int,
        attempts: int,
        at: datetime,
        error: str,
        message: dict[str, Any] | None = None,
    ) -> None: ...

    async def mark_failed(self, row_id: int, attempts: int, error: str) -> None: ...


class Outbox:
    """Reads and writes the outbox over the event database's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._stranded_at: datetime | None = None
        """When `claim` next releases the rows left waiting behind none; None: at the first."""

    @asynccontextmanager
    async def _connection(self, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection, in a transaction with ``begin``. A database that does not answer is
        a `StoreError`, as everywhere in the store: the notifier reports an outage it meets
        here (even at its start, before any event was read) instead of dying of it."""
        try:
            async with self.engine.begin() if begin else self.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            if is_operational(exc):
                raise unreachable(self.engine.url, exc) from exc
            raise

    async def load_state(self) -> dict[str, Any]:
        """The notifier's saved state by name (``cursor``, ``groups``), empty at first start."""
        async with self._connection() as conn:
            rows = await conn.execute(select(notify_state.c.name, notify_state.c.value))
            return {row.name: row.value for row in rows}

    async def commit(
        self,
        state: dict[str, Any],
        new: Sequence[dict[str, Any]],
        now: datetime,
        revision: int | None = None,
    ) -> int:
        """Save ``state`` and insert ``new`` atomically (`NotificationOutbox.commit`)."""
        dialect = self.engine.dialect.name
        async with self._connection(begin=True) as conn:
            if revision is not None:
                await self._hold(conn, revision, now)
            for name, value in state.items():
                statement = upsert_into(notify_state, dialect).values(
                    name=name, value=value, updated_at=now
                )
                await conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["name"], set_={"value": value, "updated_at": now}
                    )
                )
            inserted = 0
            for row in new:
                statement = upsert_into(notifications, dialect).values(
                    **row,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    last_error="",
                    created_at=now,
                    waiting=await _insert_behind(conn, row["channel"], row["incident"]),
                )
                result = await conn.execute(
                    statement.on_conflict_do_nothing(index_elements=["dedup_key"])
                )
                inserted += result.rowcount or 0
            return inserted

    async def _hold(self, conn: AsyncConnection, revision: int, now: datetime) -> None:
        """Lock the saved revision till the commit, or raise StaleStateError if it moved on.

        The other replica's save waits on the lock, then finds the revision past its own.
        """
        if revision == 0:
            # Nothing saved a revision yet: the first to insert it holds it.
            first = await conn.execute(
                upsert_into(notify_state, self.engine.dialect.name)
                .values(name=REVISION, value={"n": 0}, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            if first.rowcount:
                return
        saved = await conn.execute(
            select(notify_state.c.value).where(notify_state.c.name == REVISION).with_for_update()
        )
        if revision_of(saved.scalar_one_or_none()) != revision:
            raise StaleStateError(revision)

    async def due(self, now: datetime, limit: int = 50) -> list[NotificationRow]:
        """Pending rows whose next attempt is due, oldest first, each its incident's oldest
        pending row on its channel (`NotificationOutbox.due`)."""
        return await self._rows(_due(now).limit(limit))

    async def claim(
        self, now: datetime, until: datetime, skip: Collection[str] = ()
    ) -> NotificationRow | None:
        """The oldest due row, claimed until ``until`` (`NotificationOutbox.claim`).

        Every replica runs a notifier on the one outbox; SKIP LOCKED passes by a row
        another is claiming this instant, and the moved ``next_attempt_at`` by one it
        claimed before (SQLite is one node and ignores the lock).
        """
        if self._stranded_at is None or now >= self._stranded_at:
            await self.release_stranded()
            self._stranded_at = now + STRANDED_EVERY
        async with self._connection(begin=True) as conn:
            found = self._read((await conn.execute(claimable(now, skip))).all())
            if not found:
                return None
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == found[0].id)
                .values(next_attempt_at=until)
            )
            return found[0]

    async def release_stranded(self) -> int:
        """Release the rows waiting behind no pending row of their incident on their channel;
        return how many. None is left so by this code: a replica of a Jarvis before migration
        0013 marks a row sent without releasing the next (during a rolling update)."""
        async with self._connection(begin=True) as conn:
            released = await conn.execute(
                update(notifications)
                .where(notifications.c.status == _pending(), notifications.c.waiting, ~_behind())
                .values(waiting=False)
            )
            return released.rowcount or 0

    async def rows(self, status: str | None = None) -> list[NotificationRow]:
        """Every row (or those with ``status``), oldest first: for the CLI and tests."""
        query = select(notifications).order_by(notifications.c.id)
        if status is not None:
            query = query.where(notifications.c.status == status)
        return await self._rows(query)

    async def mark_sent(self, row_id: int, attempts: int, now: datetime, error: str = "") -> None:
        """Sent; ``error`` names the recipients who refused it while the others took it."""
        await self._update(row_id, status=SENT, attempts=attempts, sent_at=now, last_error=error)

    async def mark_retry(
        self,
        row_id: int,
        attempts: int,
        at: datetime,
        error: str,
        message: dict[str, Any] | None = None,
    ) -> None:
        """Due again at ``at``; ``message``, when given, replaces the row's (what is left)."""
        changed = {} if message is None else {"message": message}
        await self._update(
            row_id, attempts=attempts, next_attempt_at=at, last_error=error, **changed
        )

    async def mark_failed(self, row_id: int, attempts: int, error: str) -> None:
        await self._update(row_id, status=FAILED, attempts=attempts, last_error=error)

    async def _update(self, row_id: int, **values: Any) -> None:
        async with self._connection(begin=True) as conn:
            await conn.execute(
                update(notifications).where(notifications.c.id == row_id).values(**values)
            )
            if values.get("status", PENDING) != PENDING:
                await _release(conn, row_id)

    async def _rows(self, query: Any) -> list[NotificationRow]:
        async with self._connection() as conn:
            return self._read(await conn.execute(query))

    @staticmethod
    def _read(result: Any) -> list[NotificationRow]:
        return [
            NotificationRow(
                id=r.id,
                dedup_key=r.dedup_key,
                channel=r.channel,
                incident=r.incident,
                action=r.action,
                message=dict(r.message),
                status=r.status,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                last_error=r.last_error,
                sent_at=r.sent_at,
            )
            for r in result
        ]


def _pending() -> Any:
    """``'pending'`` written into the SQL, not bound: a planner uses a partial index of pending
    rows only where it sees the query implies its WHERE (a prepared statement's generic plan
    would not)."""
    return literal(PENDING, literal_execute=True)


def _due(now: datetime) -> Select[Any]:
    """Pending rows whose next attempt is due, oldest first, none behind a pending row of its
    incident on its channel.

    Read from the rows not ``waiting`` (their partial index, in id order), so the rows
    behind them are never looked at; of those, a row an older pending row still holds back
    (written beside it, not behind it) is left out by the anti-join, one index lookup each.
    """
    return (
        select(notifications)
        .where(
            notifications.c.status == _pending(),
            ~notifications.c.waiting,
            notifications.c.next_attempt_at <= now,
            ~_behind(),
        )
        .order_by(notifications.c.id)
    )


def _behind() -> Exists:
    """An older row of the row's incident is pending on its channel: one lookup in the pending
    rows' (channel, incident, id) index."""
    earlier = notifications.alias("earlier")
    return exists().where(
        earlier.c.channel == notifications.c.channel,
        earlier.c.incident == notifications.c.incident,
        earlier.c.status == _pending(),
        earlier.c.id < notifications.c.id,
    )


async def _insert_behind(conn: AsyncConnection, channel: str, incident: str) -> bool:
    """Whether a row inserted now on ``channel`` for ``incident`` waits: a row of the incident
    is pending on the channel.

    The newest such row stays locked (shared) till the insert commits, so a notifier sending
    it meanwhile waits, and its `_release` then sees the new row. Unlocked, the send could
    commit between this read and the insert, release nothing, and leave the new row waiting
    behind no row at all: never sent. (A lock another notifier's claim passes by, as it
    passes by a row being claimed: it is claimed the next round.)
    """
    newest = await conn.execute(
        select(notifications.c.id)
        .where(
            notifications.c.channel == channel,
            notifications.c.incident == incident,
            notifications.c.status == _pending(),
        )
        .order_by(notifications.c.id.desc())
        .limit(1)
        .with_for_update(read=True)
    )
    return newest.first() is not None


async def _release(conn: AsyncConnection, row_id: int) -> None:
    """Row ``row_id`` left the pending rows: the oldest pending row of its incident on its
    channel, if one waits, waits no longer."""
    left, same = notifications.alias("left"), notifications.alias("same")
    head = (
        select(func.min(same.c.id))
        .where(
            left.c.id == row_id,
            same.c.channel == left.c.channel,
            same.c.incident == left.c.incident,
            same.c.status == _pending(),
        )
        .scalar_subquery()
    )
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == head, notifications.c.waiting)
        .values(waiting=False)
    )


def claimable(now: datetime, skip: Collection[str]) -> Select[Any]:
    """The row `Outbox.claim` takes: the oldest due on a channel not in ``skip``, locked,
    or passed by when another notifier holds its lock."""
    query = _due(now).limit(1).with_for_update(skip_locked=True, of=notifications)
    if skip:
        query = query.where(notifications.c.channel.not_in(skip))
    return query
