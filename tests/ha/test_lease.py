"""The PostgreSQL lease and the fence, on a real database, without a clock of their own.

Expiry is the database's: short leases (a fraction of a second) let a test
see a lease expire by waiting for the row to say so, never by counting time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from sqlalchemy import func, update

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore, LeaseLostError
from jarvis.store.fence import Fence
from jarvis.store.lease import FORGET_REPLICAS_AFTER, LOOP_LEASE, PgLease, lease_status
from jarvis.store.tables import replicas

pytestmark = pytest.mark.anyio

LONG = 600.0
SHORT = 0.3


def intent(n: int) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=datetime.now(UTC),
        idempotency_key=f"a{n}:started",
        resource="sim://api",
        action_kind="restart",
        action_id=f"a{n}",
    )


def fact(n: int) -> Event:
    return Event(kind=EventKind.TICK_STARTED, ts=datetime.now(UTC), idempotency_key=f"t{n}")


async def expired(lease: PgLease) -> None:
    """Wait (generously) until the database says the lease has expired."""
    with anyio.fail_after(30):
        while True:
            status = await lease_status(lease.engine)
            if status.lease is not None and status.lease.expires_at <= status.now:
                return
            await anyio.sleep(0.05)


async def test_one_holder_at_a_time_and_each_takeover_raises_the_epoch(pg_url: str) -> None:
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        a = PgLease(store.engine, "a", duration=SHORT)
        b = PgLease(store.engine, "b", duration=LONG)
        assert await a.acquire() == 1
        assert await b.acquire() is None  # held and not expired
        await expired(a)
        assert not await a.renew(1)  # too late: an expired lease is not renewed
        assert await b.acquire() == 2
        assert await a.acquire() is None
        assert await b.renew(2)
        await b.release(2)
        assert await a.acquire() == 3  # a released lease is free at once
        status = await lease_status(store.engine)
        assert status.lease is not None
        assert (status.lease.holder, status.lease.epoch) == ("a", 3)
    finally:
        await store.aclose()


async def test_a_stale_epoch_writes_no_intent_and_no_ledger_row(pg_url: str) -> None:
    """The paused leader's first fenced write fails; its other events still land."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        old = PgLease(store.engine, "old", duration=SHORT)
        new = PgLease(store.engine, "new", duration=LONG)
        epoch = await old.acquire()
        assert epoch == 1
        store.fence = Fence(LOOP_LEASE, "old", epoch)
        store.append([intent(1)])
        await store.flush()  # current: written
        await expired(old)
        assert await new.acquire() == 2

        store.append([fact(1), intent(2)])
        store.stage_retry(RetryState(resource="sim://api", action_kind="restart"))
        with pytest.raises(LeaseLostError):
            await store.flush()
        store.fence = None  # stepped down
        await store.flush()  # the facts the fenced flush kept
        stored = {e.idempotency_key for e in await store.events(limit=100)}
        assert stored == {"a1:started", "t1"}
        assert await store.load_retries() == {}
    finally:
        await store.aclose()


async def test_heartbeats_show_in_status_and_the_leader_forgets_long_silent_replicas(
    pg_url: str,
) -> None:
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        leader = PgLease(store.engine, "leader", duration=LONG)
        gone = PgLease(store.engine, "gone", duration=LONG)
        await gone.heartbeat(None)
        async with store.engine.begin() as connection:
            await connection.execute(
                update(replicas).values(heartbeat_at=func.now() - FORGET_REPLICAS_AFTER * 2)
            )
        await leader.heartbeat(await leader.acquire())
        status = await lease_status(store.engine)
        assert [(r.replica_id, r.leader_epoch) for r in status.replicas] == [("leader", 1)]
        await leader.leave()
        assert (await lease_status(store.engine)).replicas == ()
    finally:
        await store.aclose()
