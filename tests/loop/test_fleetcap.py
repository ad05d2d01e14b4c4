"""With shards the fleet-wide caps are exact: replicas that all pre-checked under a limit
at the same instant still start no more than it (`jarvis.store.fleetcap`).

Three reconcilers on one PostgreSQL database stand for three replicas, each
holding one shard's real lease and writing under its fence. The interleaving
is forced, not hoped for: the test holds ``retry_state`` in SHARE mode, which
lets every read and the proposals' flush through but stops each intent's
transaction at its ledger upsert. Only once all three replicas are waiting
on a lock (each having passed the guard's pre-check on an empty window) is
it released.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

from jarvis.app import App
from jarvis.loop import events as ev
from jarvis.loop.clock import VirtualClock
from jarvis.loop.fleetcap import FleetCaps
from jarvis.loop.shards import shard_name, shard_of
from jarvis.model import Action, BlockReason, Outcome, ResourceRef, Scale
from jarvis.safety.bounds import Bounds
from jarvis.safety.budgets import Budgets, DisruptionBudget
from jarvis.store import upgrade
from jarvis.store.fence import Fence
from jarvis.store.lease import PgLease
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

SHARDS = 3
WAITING = """
SELECT count(*) FROM pg_locks l JOIN pg_database d ON l.database = d.oid
WHERE NOT l.granted AND d.datname = current_database()
"""


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """Shards run on PostgreSQL."""
    await upgrade(pg_url)
    return pg_url


def one_per_shard() -> list[str]:
    """A resource name in each shard: replica i acts on the i-th."""
    found: dict[int, str] = {}
    for n in (f"r{i:02d}" for i in range(100)):
        found.setdefault(shard_of(f"sim://{n}", SHARDS), n)
    return [found[i] for i in range(SHARDS)]


async def replica(make_app: AppFactory, index: int, name: str, **settings: Any) -> App:
    """Replica ``r<index>`` holding shard ``index``'s lease, proposing to scale ``name``."""
    action = Action(ResourceRef("sim", name), Scale(replicas=3), "scaling", "demand")
    app = await make_app([ProposeEach([action])], loop={"shards": SHARDS}, **settings)
    holder = f"r{index}"
    lease = PgLease(app.store.engine, holder, duration=3600, name=shard_name(index), shards=SHARDS)
    epoch = await lease.acquire()
    assert epoch is not None
    app.reconciler.act_as((Fence(shard_name(index), holder, epoch),))
    app.reconciler.owns = lambda uri: shard_of(uri, SHARDS) == index
    return app


async def race(apps: list[App], db_url: str) -> None:
    """Tick every replica at once, letting their intents commit only when all wait."""
    holder = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE retry_state IN SHARE MODE")
        async with anyio.create_task_group() as group:
            for app in apps:
                group.start_soon(app.reconciler.tick)
            with anyio.fail_after(120):  # a generous deadline on a loaded machine
                # PostgreSQL's lock table is polled: no event says a backend started waiting.
                while await holder.fetchval(WAITING) < len(apps):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            await transaction.rollback()
    finally:
        await holder.close()


CASES: dict[str, dict[str, Any]] = {
    "bounds": {"bounds": {"max_actions_per_tick": 2}},
    "budget": {
        "budgets": [
            {"name": "scales", "provider": "sim", "actions": ["scale"], "max": 2},
        ],
    },
}


@pytest.mark.parametrize("reason", sorted(CASES))
async def test_replicas_racing_past_the_pre_check_start_no_more_than_the_fleet_wide_limit(
    make_app: AppFactory, fleet: FakeActuator, db_url: str, reason: str
) -> None:
    """Three replicas pre-checked under a limit of 2 at once: two intents land, one is
    blocked with the guard's reason, not failed, and its retry budget is not charged."""
    names = one_per_shard()
    fleet.services.clear()
    fleet.add(*names)
    apps = [await replica(make_app, i, n, **CASES[reason]) for i, n in enumerate(names)]
    await race(apps, db_url)

    assert len(fleet.applied) == 2
    store = apps[0].store
    started = await store.events(kinds=["action.started"])
    assert len(started) == 2
    blocked = [
        e
        for e in await store.events(kinds=["action.blocked"])
        if e.payload.get("blocked") in ("bounds", "budget")
    ]
    assert [e.payload["blocked"] for e in blocked] == [reason]
    refused = blocked[0].resource
    assert refused is not None
    assert refused not in {e.resource for e in started}
    assert "counted across replicas" in blocked[0].payload["detail"]
    assert await store.events(kinds=["action.failed"]) == []
    ledger = await store.load_retries()
    assert sorted(resource for resource, _ in ledger) == sorted(e.resource or "" for e in started)
    for app in apps:
        assert app.reconciler.ledger.get((refused, "scale")) is None


@pytest.mark.parametrize("reason", sorted(CASES))
async def test_an_intent_another_replica_s_kill_switch_withheld_takes_no_place_under_a_cap(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock, db_url: str, reason: str
) -> None:
    """Under a limit of 1, another replica's intent closed unsent (`Outcome.withheld`) in
    this tick window leaves room for this replica's action, at the pre-check and at write."""
    mine, theirs = one_per_shard()[:2]
    fleet.services.clear()
    fleet.add(mine, theirs)
    limit_one: dict[str, dict[str, Any]] = {
        "bounds": {"bounds": {"max_actions_per_tick": 1}},
        "budget": {
            "budgets": [{"name": "scales", "provider": "sim", "actions": ["scale"], "max": 1}]
        },
    }
    app = await replica(make_app, 0, mine, **limit_one[reason])
    other = Action(ResourceRef("sim", theirs), Scale(replicas=3), "scaling", "demand")
    now = clock.now()
    withheld = Outcome.withheld(BlockReason.KILLSWITCH, "engaged while the intent was written")
    app.store.append(
        [
            ev.started("t-other", now, other, "a-other"),
            ev.outcome_event("t-other", now, other, "a-other", withheld),
        ]
    )
    await app.store.flush()

    report = await app.reconciler.tick()

    assert [d.verdict.reason for d in report.decisions] == [None]
    assert [str(a.target) for a in fleet.applied] == [f"sim://{mine}"]


def test_an_intent_is_capped_by_the_bound_and_each_fleet_wide_budget_it_matches() -> None:
    """Per-resource budgets and budgets of other kinds add no cap; each cap counts as the
    guard does: the bound from its tick window's start, a budget inside its window only."""
    budgets = Budgets(
        [
            DisruptionBudget(
                "scales", timedelta(minutes=10), max_percent=50, kinds=frozenset({"scale"})
            ),
            DisruptionBudget("each", timedelta(minutes=10), max_changes=1, per_resource=True),
            DisruptionBudget(
                "restarts", timedelta(minutes=10), max_changes=1, kinds=frozenset({"restart"})
            ),
        ]
    )
    caps = FleetCaps(Bounds(max_actions_per_tick=3), budgets, timedelta(seconds=30))
    at = datetime(2026, 1, 5, 8, 0, 10, tzinfo=UTC)
    action = Action(ResourceRef("sim", "a"), Scale(replicas=3), "scaling", "demand")
    fleet = [ResourceRef("sim", n) for n in "abcde"]
    bound, budget = caps.of(action, at, fleet)
    assert (bound.reason, bound.limit) == (BlockReason.BOUNDS, 3)
    start = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
    assert bound.counts(start, "k8s://x", "restart")
    assert not bound.counts(start - timedelta(microseconds=1), "sim://b", "scale")
    assert (budget.reason, budget.limit, budget.kinds) == (
        BlockReason.BUDGET,
        3,
        frozenset({"scale"}),
    )
    edge = at - timedelta(minutes=10)
    assert budget.counts(edge + timedelta(seconds=1), "sim://b", "scale")
    assert not budget.counts(edge, "sim://b", "scale")
    assert not budget.counts(at, "sim://b", "restart")
    assert budget.detail(3).startswith("disruption budget 'scales' spent: 3 of 3 changes")
