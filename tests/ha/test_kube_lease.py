"""The Kubernetes Lease backend: elected by a real client on the fake API server, fenced by
the PostgreSQL row.

Each candidate's monotonic clock is its own virtual one, so "unrenewed for a whole
lease" is stepped, not slept; the database and the API server are real enough to
refuse what they would refuse in production (a stale resourceVersion, a stale epoch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from kubernetes import client
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jarvis.actuators.kubernetes.lease import LeaseLock
from jarvis.loop.leases import KubeLease
from jarvis.store import LeaseLostError, upgrade
from jarvis.store.fence import Fence, check_fence
from jarvis.store.lease import PgLease, lease_status
from jarvis.store.tables import leases
from tests.kubernetes.conftest import role_rules, ungranted
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

DURATION = 15.0


class Monotonic:
    """One candidate's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(pg_url)
    engine = create_async_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server
        assert not ungranted(server.calls)


Candidate = Callable[[str, Monotonic], KubeLease]


@pytest.fixture
def candidate(apiserver: FakeApiServer, engine: AsyncEngine) -> Iterator[Candidate]:
    """Makes a contender ``holder`` with its own API client and clock; closed after the test."""
    made: list[LeaseLock] = []

    def make(holder: str, clock: Monotonic) -> KubeLease:
        api = client.ApiClient(client.Configuration(host=apiserver.url))
        lock = LeaseLock(
            api,
            namespace="default",
            name="jarvis",
            holder=holder,
            duration=DURATION,
            request_timeout=5.0,
            monotonic=clock,
        )
        made.append(lock)
        return KubeLease(lock, PgLease(engine, holder, duration=DURATION))

    yield make
    for lock in made:
        lock.close()


async def fenced_write(engine: AsyncEngine, fence: Fence) -> None:
    async with engine.begin() as connection:
        await check_fence(connection, fence)


async def test_one_candidate_holds_the_lease_and_the_row_follows_it(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """The first candidate takes the Lease (term 1) and the row (epoch 1); the next one waits."""
    a = candidate("a", Monotonic())
    b = candidate("b", Monotonic())

    assert await a.acquire() == 1
    assert await b.acquire() is None
    assert await a.renew(1)

    status = await lease_status(engine)
    assert status.lease is not None
    assert (status.lease.holder, status.lease.epoch) == ("a", 1)
    assert status.lease.expires_at > status.now
    spec = apiserver.leases.get("default", "jarvis")["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"], spec["leaseDurationSeconds"]) == (
        "a",
        1,
        15,
    )
    await fenced_write(engine, Fence("loop", "a", 1))


async def test_a_stale_leader_wakes_to_a_refused_renewal_and_a_refused_write(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """B takes over only after a whole lease without change; then A's renew and write both fail."""
    a_clock, b_clock = Monotonic(), Monotonic()
    a = candidate("a", a_clock)
    b = candidate("b", b_clock)
    assert await a.acquire() == 1
    assert await b.acquire() is None  # B first sees A's record now

    b_clock.now += DURATION - 1  # A is paused, renewing nothing; not yet a whole lease for B
    assert await b.acquire() is None
    b_clock.now += 1
    assert await b.acquire() == 2

    # A wakes believing it leads under epoch 1.
    assert not await a.renew(1)
    with pytest.raises(LeaseLostError):
        await fenced_write(engine, Fence("loop", "a", 1))
    await fenced_write(engine, Fence("loop", "b", 2))
    status = await lease_status(engine)
    assert status.lease is not None
    assert (status.lease.holder, status.lease.epoch) == ("b", 2)


async def test_a_renewal_seen_by_a_follower_restarts_its_wait(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """A follower counts the lease from the last change it saw, not from the record's times."""
    b_clock = Monotonic()
    a = candidate("a", Monotonic())
    b = candidate("b", b_clock)
    assert await a.acquire() == 1
    assert await b.acquire() is None
    b_clock.now += DURATION - 1
    assert await a.renew(1)
    assert await b.acquire() is None  # sees the renewal: a new record, a new wait
    b_clock.now += DURATION - 1
    assert await b.acquire() is None


async def test_a_released_lease_is_taken_at_once_under_the_next_epoch(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """A clean stop empties the holder; a follower need not wait out the lease."""
    a = candidate("a", Monotonic())
    b = candidate("b", Monotonic())
    assert await a.acquire() == 1
    assert await b.acquire() is None

    await a.release(1)

    assert await b.acquire() == 2
    with pytest.raises(LeaseLostError):
        await fenced_write(engine, Fence("loop", "a", 1))


async def test_a_winner_that_writes_the_row_late_cannot_take_it_back(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """Paused between winning term 1 and writing the row, A finds term 2 there: not acquired."""
    a_clock, b_clock = Monotonic(), Monotonic()
    a = candidate("a", a_clock)
    b = candidate("b", b_clock)
    assert await a.lock.acquire(0) == 1  # won the Lease; the row not written yet (paused)
    assert await b.acquire() is None
    b_clock.now += DURATION
    assert await b.acquire() == 2

    assert not await a.row.adopt(1)
    status = await lease_status(engine)
    assert status.lease is not None
    assert (status.lease.holder, status.lease.epoch) == ("b", 2)


async def test_a_lease_created_again_continues_the_rows_epochs(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """A Lease deleted and created again starts from the row's epoch, never below it."""
    a = candidate("a", Monotonic())
    assert await a.acquire() == 1
    await a.release(1)
    assert await a.acquire() == 2
    apiserver.leases.forget("default", "jarvis")

    b = candidate("b", Monotonic())
    assert await b.acquire() == 3


async def test_the_lease_calls_are_exactly_the_leader_election_role(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """Create, read, take, renew and release use every rule of that Role and no other."""
    a = candidate("a", Monotonic())
    assert await a.acquire() == 1
    assert await a.renew(1)
    await a.release(1)

    assert {call.rule for call in apiserver.calls} == role_rules("jarvis-leader-election")


async def shard_leases(engine: AsyncEngine, holder: str, count: int) -> list[int | None]:
    """A sharded replica on the PostgreSQL backend tries every shard lease of ``count``."""
    rows = (
        PgLease(engine, holder, duration=DURATION, name=f"shard-{i}", shards=count)
        for i in range(count)
    )
    return [await row.acquire() for row in rows]


async def test_a_kubernetes_leader_is_not_elected_beside_live_shard_leases(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """A sharded replica on the row backend holds the shards; the Lease's winner does not lead.

    The Lease is contended only by the Kubernetes candidates, so it excludes nothing
    the shard leases hold: the row's own exclusions must. Before, A adopted the ``loop``
    row beside live shard leases and both fences held.
    """
    assert await shard_leases(engine, "sharded", 2) == [1, 1]
    a = candidate("a", Monotonic())

    assert await a.acquire() is None
    with pytest.raises(LeaseLostError):
        await fenced_write(engine, Fence("loop", "a", 1))
    status = await lease_status(engine)
    assert status.lease is None or status.lease.expires_at <= status.now
    await fenced_write(engine, Fence("shard-0", "sharded", 1))


async def test_shard_leases_are_not_taken_beside_a_kubernetes_leader(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """The other way round: the adopted ``loop`` row keeps a sharded replica from its shards."""
    a = candidate("a", Monotonic())
    assert await a.acquire() == 1

    assert await shard_leases(engine, "sharded", 2) == [None, None]
    await fenced_write(engine, Fence("loop", "a", 1))


async def test_a_late_renewal_does_not_revive_the_row_beside_shard_leases(
    apiserver: FakeApiServer, engine: AsyncEngine, candidate: Candidate
) -> None:
    """A's row expired (its renewal reached a slow database late); a sharded replica took
    the shards meanwhile. The renewal must not make the row live again beside them.

    Before, `extend` moved the expiry of A's row whatever else was live: A's fence held
    again, and so did the shards', and both led.
    """
    a = candidate("a", Monotonic())
    assert await a.acquire() == 1
    async with engine.begin() as connection:  # the database's clock passes A's expiry
        await connection.execute(
            update(leases).where(leases.c.name == "loop").values(expires_at=func.now())
        )
    assert await shard_leases(engine, "sharded", 2) == [1, 1]

    assert not await a.renew(1)
    with pytest.raises(LeaseLostError):
        await fenced_write(engine, Fence("loop", "a", 1))
    await fenced_write(engine, Fence("shard-1", "sharded", 1))
