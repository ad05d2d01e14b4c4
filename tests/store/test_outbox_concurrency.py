"""Notifiers of several replicas on one PostgreSQL outbox, at the same time.

Each claims with SKIP LOCKED and moves the claimed row's next attempt, so two never
send one row; a row is claimed only once the rows of its incident before it on its
channel have left the pending rows. A pending row is marked ``waiting`` behind an
older one when it is written, and released when the row before it leaves: a write
and a send of the row before it, at the same instant, must not leave it waiting
behind none (never sent), nor may a replica of an older Jarvis that sends without
releasing. The interleavings here are forced with locks the test holds, through
triggers that wait on them; nothing is timed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.store.engine import create_engine, normalize_url
from jarvis.store.events import EventStore
from jarvis.store.outbox import PENDING, SENT, STRANDED_EVERY, Outbox, notifications

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CLAIM = NOW + timedelta(hours=1)
"""Claimed until: longer than the test, so a claimed row is never claimed again by expiry."""


def _row(key: str, channel: str, incident: str) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "channel": channel,
        "incident": incident,
        "action": key,
        "message": {"text": key},
    }


@pytest.fixture
async def engines(pg_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two replicas' engines on one migrated PostgreSQL database."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    other = create_engine(normalize_url(pg_url))
    try:
        yield store.engine, other
    finally:
        await other.dispose()
        await store.aclose()


async def test_two_notifiers_never_take_one_row_nor_a_row_behind_a_pending_one(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Two notifiers claim and send side by side until the outbox is empty: every row is
    claimed once, and the rows of an incident on a channel in the order they were written."""
    groups = [(channel, f"i-{n}") for channel in ("slack", "pagerduty") for n in range(8)]
    rows = [_row(f"{c}-{i}-{k}", c, i) for k in range(4) for c, i in groups]
    first, second = Outbox(engines[0]), Outbox(engines[1])
    assert await first.commit({}, rows, NOW) == len(rows)
    claimed: list[tuple[str, int, str]] = []

    async def notifier(name: str, outbox: Outbox) -> None:
        while len(claimed) < len(rows):
            row = await outbox.claim(NOW, CLAIM)
            if row is None:  # the next of each incident waits on the other's send
                await anyio.sleep(0.01)
                continue
            claimed.append((name, row.id, f"{row.channel}/{row.incident}"))
            await outbox.mark_sent(row.id, 1, NOW)

    with anyio.fail_after(120):  # a deadline for a hang, not a measure
        async with anyio.create_task_group() as group:
            group.start_soon(notifier, "first", first)
            group.start_soon(notifier, "second", second)

    ids = [row_id for _, row_id, _ in claimed]
    assert sorted(ids) == list(range(1, len(rows) + 1))  # each once
    by_group: dict[str, list[int]] = defaultdict(list)
    for _, row_id, key in claimed:
        by_group[key].append(row_id)
    assert all(got == sorted(got) for got in by_group.values()), by_group
    assert {name for name, _, _ in claimed} == {"first", "second"}  # both took part
    assert await first.rows(PENDING) == []


async def _hold(conn: AsyncConnection, key: int) -> None:
    await conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
    await conn.commit()  # the session's lock outlives the transaction


async def _let_go(conn: AsyncConnection, key: int) -> None:
    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
    await conn.commit()


async def _waiting_on_locks(conn: AsyncConnection, count: int) -> None:
    """Return once ``count`` sessions of this database wait on a lock (a generous deadline)."""
    with anyio.fail_after(60):
        while True:
            found = await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            waiting = found.scalar_one()
            await conn.commit()
            if waiting >= count:
                return
            await anyio.sleep(0.02)


async def test_a_row_written_while_the_one_before_it_is_sent_still_goes(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """The trigger is being marked sent by one replica while another writes the resolve behind
    it: whichever commits first, the resolve is claimable once the trigger is sent."""
    first, second = Outbox(engines[0]), Outbox(engines[1])
    assert await first.commit({}, [_row("trigger", "pagerduty", "i-1")], NOW) == 1
    trigger = await first.claim(NOW, CLAIM)
    assert trigger is not None
    async with engines[0].connect() as test:
        # The send stops after its update (the trigger is locked, not yet released); the
        # write stops before its insert, once it has read whether it waits.
        await test.exec_driver_sql(
            "CREATE FUNCTION hold_sent() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " PERFORM pg_advisory_xact_lock_shared(1081); RETURN NEW; END $$"
        )
        await test.exec_driver_sql(
            "CREATE FUNCTION hold_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " PERFORM pg_advisory_xact_lock_shared(1082); RETURN NEW; END $$"
        )
        await test.exec_driver_sql(
            "CREATE TRIGGER sent AFTER UPDATE OF status ON notifications"
            " FOR EACH ROW EXECUTE FUNCTION hold_sent()"
        )
        await test.exec_driver_sql(
            "CREATE TRIGGER inserted BEFORE INSERT ON notifications"
            " FOR EACH ROW EXECUTE FUNCTION hold_insert()"
        )
        await test.commit()
        await _hold(test, 1081)
        await _hold(test, 1082)

        async def run(call: Awaitable[object]) -> None:
            await call

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(run, first.mark_sent(trigger.id, 1, NOW))
                await _waiting_on_locks(test, 1)
                resolve = _row("resolve", "pagerduty", "i-1")
                group.start_soon(run, second.commit({}, [resolve], NOW))
                await _waiting_on_locks(test, 2)
                await _let_go(test, 1081)  # the send commits first
                await _let_go(test, 1082)
    claimed = await second.claim(NOW, CLAIM)
    assert claimed is not None
    assert claimed.dedup_key == "resolve"


async def test_a_row_an_older_jarvis_left_waiting_behind_none_goes_after_a_while(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A replica from before migration 0013 marks the trigger sent without releasing the
    resolve behind it (a rolling update); this replica's notifier releases it within
    `STRANDED_EVERY`, and a notifier that starts releases it at its first claim."""
    outbox = Outbox(engines[0])
    rows = [_row("trigger", "pagerduty", "i-1"), _row("resolve", "pagerduty", "i-1")]
    assert await outbox.commit({}, rows, NOW) == 2
    trigger = await outbox.claim(NOW, CLAIM)
    assert trigger is not None
    assert trigger.dedup_key == "trigger"
    async with engines[1].begin() as conn:  # what 0012's `mark_sent` wrote, and no more
        await conn.execute(
            update(notifications)
            .where(notifications.c.id == trigger.id)
            .values(status=SENT, attempts=1)
        )
    assert await outbox.claim(NOW, CLAIM) is None
    assert await Outbox(engines[1]).due(NOW) == []
    later = NOW + STRANDED_EVERY
    claimed = await outbox.claim(later, later + timedelta(minutes=1))
    assert claimed is not None
    assert claimed.dedup_key == "resolve"
    await outbox.mark_retry(claimed.id, 1, NOW, "timeout")
    async with engines[1].begin() as conn:
        await conn.execute(update(notifications).values(waiting=True))
    started = await Outbox(engines[1]).claim(NOW, CLAIM)
    assert started is not None
    assert started.dedup_key == "resolve"
