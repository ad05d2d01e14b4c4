"""The in-memory lease table keeps the PostgreSQL lease's rules, on a clock the test moves.

The simulation's replicas elect and fence through it (`jarvis.simulation.replicas`),
so it must refuse what `jarvis.store.lease` and `jarvis.store.fence` refuse.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jarvis.model import Event, EventKind
from jarvis.store import LeaseLostError, MemoryBackend
from jarvis.store.fence import Fence
from jarvis.store.lease import LOOP_LEASE
from jarvis.store.memory_lease import MemoryLease, MemoryLeases

pytestmark = pytest.mark.anyio


class Time:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def intent(n: int) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=datetime(2026, 1, 5, tzinfo=UTC),
        idempotency_key=f"a{n}:started",
        resource="sim://api",
        action_kind="restart",
        action_id=f"a{n}",
    )


async def test_one_holder_at_a_time_and_each_takeover_raises_the_epoch() -> None:
    time = Time()
    table = MemoryLeases(time)
    a = MemoryLease(table, "a", duration=15)
    b = MemoryLease(table, "b", duration=15)
    assert await a.acquire() == 1
    assert await b.acquire() is None  # held, not expired
    time.now = 15.0
    assert not await a.renew(1)  # expired at 15: too late to renew
    assert await b.acquire() == 2
    assert await a.acquire() is None
    time.now = 20.0
    assert await b.renew(2)
    assert table.current() == ("b", 2)
    await b.release(2)
    assert table.current() is None
    assert await a.acquire() == 3  # a released lease is free at once


async def test_a_fenced_write_needs_the_current_unexpired_epoch() -> None:
    time = Time()
    table = MemoryLeases(time)
    backend = MemoryBackend()
    backend.leases = table
    lease = MemoryLease(table, "a", duration=15)
    assert await lease.acquire() == 1
    await backend.write([intent(1)], [], Fence(LOOP_LEASE, "a", 1))
    time.now = 16.0  # expired, nobody took it yet: still refused
    with pytest.raises(LeaseLostError):
        await backend.write([intent(2)], [], Fence(LOOP_LEASE, "a", 1))
    assert await MemoryLease(table, "b", duration=15).acquire() == 2
    with pytest.raises(LeaseLostError):
        await backend.write([intent(3)], [], Fence(LOOP_LEASE, "a", 1))
    assert table.refused == 2
    stored = await backend.events(limit=10, kinds=None, resource=None, after_id=None, since=None)
    assert [e.action_id for e in stored] == ["a1"]


async def test_an_unreachable_replica_cannot_take_or_keep_the_lease() -> None:
    time = Time()
    table = MemoryLeases(time)
    up = True
    lease = MemoryLease(table, "a", duration=15, reachable=lambda: up)
    assert await lease.acquire() == 1
    up = False
    with pytest.raises(ConnectionRefusedError):
        await lease.renew(1)
    with pytest.raises(ConnectionRefusedError):
        await lease.heartbeat(1)
