"""With shards the fleet-wide limits count every replica: two reconcilers on one
store, each owning half the fleet, stand for two replicas (no processes).

"This tick" across replicas is the interval-long window aligned on the epoch
(`jarvis.loop.peers.tick_window`); the fleet breaker counts the failures the
other replica recorded, on the whole fleet's size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.loop.peers import tick_window
from jarvis.model import Action, Event, Outcome, ResourceRef, Restart, Scale
from jarvis.policies.base import Policy
from jarvis.policies.operator import operator_action
from jarvis.store import upgrade
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory
from tests.loop.test_breakers import breaker_alerts, throttled

pytestmark = pytest.mark.anyio

NAMES = tuple(f"r{i:02d}" for i in range(20))
A_OWNS, B_OWNS = frozenset(NAMES[:10]), frozenset(NAMES[10:])


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """Shards run on PostgreSQL."""
    await upgrade(pg_url)
    return pg_url


def scale(names: tuple[str, ...]) -> ProposeEach:
    return ProposeEach(
        [Action(ResourceRef("sim", n), Scale(replicas=3), "scaling", "demand") for n in names]
    )


async def replica(
    make_app: AppFactory,
    name: str,
    owns: frozenset[str],
    names: tuple[str, ...],
    *,
    also: Sequence[Policy] = (),
    **settings: Any,
) -> App:
    """A reconciler as a replica holding the shards of ``owns`` would run it."""
    app = await make_app([scale(names), *also], loop={"shards": 2}, **settings)
    app.reconciler.owns = lambda uri: ResourceRef.parse(uri).name in owns
    app.reconciler.recorder.identity = {"replica": name}  # what `act_as` writes with shards
    return app


def by(events: list[Event], replica: str) -> list[Event]:
    return [e for e in events if e.payload.get("replica") == replica]


async def test_the_per_tick_bound_counts_every_replicas_intents_in_the_window(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    fleet.services.clear()
    fleet.add(*NAMES)
    bound = {"max_actions_per_tick": 3}
    a = await replica(make_app, "a", A_OWNS, NAMES[:10], bounds=bound)
    b = await replica(make_app, "b", B_OWNS, NAMES[10:], bounds=bound)
    window = tick_window(clock.now(), timedelta(seconds=30))
    await a.reconciler.tick()
    clock.advance(1)  # b ticks a second later, in the same window
    assert tick_window(clock.now(), timedelta(seconds=30)) == window
    await b.reconciler.tick()
    assert len(fleet.applied) == 3  # not 3 per replica
    assert {a.target.name for a in fleet.applied} <= A_OWNS
    blocked = by(await b.store.events(kinds=["action.blocked"]), "b")
    assert blocked and {e.payload["blocked"] for e in blocked} == {"bounds"}
    clock.advance(29)  # the next window: its own three
    await b.reconciler.tick()
    assert len(fleet.applied) == 6
    assert {a.target.name for a in fleet.applied[3:]} <= B_OWNS


async def timed_out(action: Action) -> Outcome:
    return Outcome.timed_out("apply did not finish within 20s")


@pytest.mark.parametrize("failing", [throttled, timed_out], ids=["failed", "unknown"])
async def test_the_fleet_breaker_counts_failures_across_shards_on_the_whole_fleet(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    failing: Callable[[Action], Awaitable[Outcome]],
) -> None:
    """Half of 20 resources is 10: b's 6 failures and a's 4 open it, on both replicas;
    a call with no answer in time (recorded `action.unknown`) counts as a failure does."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = failing
    settings: dict[str, Any] = {
        "breakers": {"provider_threshold": 100},
        "bounds": {"max_actions_per_tick": 100},
    }
    a = await replica(make_app, "a", A_OWNS, NAMES[:5], **settings)
    b = await replica(make_app, "b", B_OWNS, NAMES[10:16], **settings)
    await b.reconciler.tick()
    # Six failures on its own shard are not half the fleet (they would be half of b's ten).
    assert len(fleet.applied) == 6
    clock.advance(1)
    await a.reconciler.tick()
    # a counts b's six: its fourth failure is the fleet's tenth; its fifth action is held.
    assert len(fleet.applied) == 10
    events = await a.store.events(kinds=["action.blocked", "alert"])
    assert [e.payload["blocked"] for e in by(events, "a") if "blocked" in e.payload] == [
        "fleet_paused"
    ]
    assert breaker_alerts(by(events, "a")) == ["open"]
    clock.advance(30)
    await b.reconciler.tick()  # b reads a's four failures: open on b too
    assert len(fleet.applied) == 10
    events = await b.store.events(kinds=["action.blocked", "alert"])
    assert breaker_alerts(by(events, "b")) == ["open"]


async def test_a_percentage_budget_is_of_the_whole_fleet_and_spent_by_every_replica(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """10% of 20 resources is 2 changes an hour, not 10% of a replica's ten."""
    fleet.services.clear()
    fleet.add(*NAMES)
    budgets = [
        {
            "name": "scales",
            "provider": "sim",
            "actions": ["scale"],
            "max_percent": 10,
            "window_seconds": 3600,
        }
    ]
    a = await replica(make_app, "a", A_OWNS, NAMES[:10], budgets=budgets)
    b = await replica(make_app, "b", B_OWNS, NAMES[10:], budgets=budgets)
    await a.reconciler.tick()
    assert len(fleet.applied) == 2
    clock.advance(30)
    await b.reconciler.tick()
    assert len(fleet.applied) == 2  # a spent the fleet's budget
    blocked = by(await b.store.events(kinds=["action.blocked"]), "b")
    assert blocked and {e.payload["blocked"] for e in blocked} == {"budget"}


async def test_a_budget_spent_by_another_replica_mid_tick_holds_the_next_action(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """b ticks while a is applying its first action: a's second sees b's intent."""
    fleet.services.clear()
    fleet.add(*NAMES)
    budgets = [
        {
            "name": "scales",
            "provider": "sim",
            "actions": ["scale"],
            "max": 2,
            "window_seconds": 3600,
        }
    ]
    a = await replica(make_app, "a", A_OWNS, NAMES[:2], budgets=budgets)
    b = await replica(make_app, "b", B_OWNS, NAMES[10:12], budgets=budgets)

    async def b_ticks_once(action: Action) -> Outcome | None:
        fleet.on_apply = None
        await b.reconciler.tick()
        return None

    fleet.on_apply = b_ticks_once
    await a.reconciler.tick()
    assert [x.target.name for x in fleet.applied] == [NAMES[0], NAMES[10]]
    blocked = by(await a.store.events(kinds=["action.blocked"]), "a")
    assert [e.resource for e in blocked] == [f"sim://{NAMES[1]}"]
    assert {e.payload["blocked"] for e in blocked} == {"budget"}


async def test_a_replica_never_acts_on_a_resource_of_a_shard_it_does_not_hold(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """An override naming another shard's resource is blocked `other_shard`, not applied twice."""
    fleet.services.clear()
    fleet.add(*NAMES)
    theirs = NAMES[15]  # b's: the page of replica a names it in a POST
    page = operator_action(ResourceRef("sim", theirs), Restart(), actor="admin", reason=None)
    queued = [ProposeEach([page], name="operator")]  # what the page's queue proposes
    a = await replica(make_app, "a", A_OWNS, (), also=queued)
    b = await replica(make_app, "b", B_OWNS, (), also=queued)

    await a.reconciler.tick()
    await b.reconciler.tick()

    assert [(x.target.name, x.kind) for x in fleet.applied] == [(theirs, "restart")]  # b's
    blocked = by(await a.store.events(kinds=["action.blocked"]), "a")
    assert [(e.resource, e.payload["blocked"]) for e in blocked] == [
        (f"sim://{theirs}", "other_shard")
    ]
    assert ("sim://" + theirs, "restart") in b.reconciler.ledger.states
