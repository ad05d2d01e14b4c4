"""The retry limit across a shard handover: two reconcilers on one PostgreSQL store stand
for two replicas, each holding a real shard lease under its own epoch (no processes).

The replica that takes a shard over inherits its resources' ledger rows and closes the
intent the dying one left open as an attempt, so a resource gets three attempts in all,
not three per replica.
"""

from __future__ import annotations

import pytest

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.loop.shards import owner, shard_name, shard_of
from jarvis.model import Action, ErrorKind, Event, Health, Outcome
from jarvis.policies.heal import HealPolicy
from jarvis.store import upgrade
from jarvis.store.fence import Fence
from jarvis.store.lease import PgLease
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

SHARDS = 2
WEB = "sim://web"
SHARD = shard_of(WEB, SHARDS)


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """Shards run on PostgreSQL."""
    await upgrade(pg_url)
    return pg_url


class Died(BaseException):
    """The replica's process ends in the middle of a provider call."""


async def take(app: App, holder: str) -> PgLease:
    """Hold web's shard as ``holder`` and take it over, as `ShardLeadership.ready` does."""
    lease = PgLease(app.store.engine, holder, duration=600, name=shard_name(SHARD), shards=SHARDS)
    epoch = await lease.acquire()
    assert epoch is not None
    app.reconciler.owns = owner(SHARDS, [SHARD])

    def stopped(intent: Event) -> bool:
        written = intent.payload.get("shards")
        older = written.get(shard_name(SHARD)) if isinstance(written, dict) else None
        return isinstance(older, int) and older < epoch

    await app.reconciler.take_over((Fence(shard_name(SHARD), holder, epoch),), stopped)
    return lease


async def test_a_shard_taken_over_mid_budget_gets_only_the_attempts_left(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """One failed restart, one cut short by the replica dying, then the next replica's one:
    three calls in all, one escalation, and the quarantine holds on every later tick."""
    calls = 0

    async def fail_then_die(action: Action) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Died
        return Outcome.failure("ImagePullBackOff", kind=ErrorKind.TEMPORARY)

    fleet.services["web"].health = Health.UNHEALTHY
    fleet.on_apply = fail_then_die
    a = await make_app([HealPolicy()], loop={"shards": SHARDS})
    b = await make_app([HealPolicy()], loop={"shards": SHARDS})
    held = await take(a, "a")
    await a.reconciler.tick()
    clock.advance(60)
    with pytest.raises(Died):
        await a.reconciler.tick()
    assert len(await a.store.open_intents()) == 1

    await held.release(1)  # its lease runs out; b's elector takes the shard
    await take(b, "b")
    for _ in range(6):
        clock.advance(60)
        await b.reconciler.tick()

    assert [str(x.target) for x in fleet.applied] == [WEB] * 3
    assert await b.store.open_intents() == []
    (escalated,) = await b.store.events(kinds=["action.escalated"], limit=10)
    assert escalated.resource == WEB
    row = (await b.store.load_retries())[(WEB, "restart")]
    assert row.quarantined and row.consecutive_failures == 3


async def test_an_engage_through_one_replica_stops_the_one_holding_the_shard(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """The kill switch is the fleet's: flipped through a replica holding no shard (its API,
    its page), the replica that took the shard over applies nothing."""
    fleet.services["web"].health = Health.UNHEALTHY
    a = await make_app([HealPolicy()], loop={"shards": SHARDS})
    b = await make_app([HealPolicy()], loop={"shards": SHARDS})
    await take(b, "b")
    await a.killswitch.set(engaged=True, actor="admin-token", reason="incident")

    report = await b.reconciler.tick()

    assert [(str(d.action.target), d.verdict.reason) for d in report.decisions] == [
        (WEB, "killswitch")
    ]
    assert fleet.applied == []
