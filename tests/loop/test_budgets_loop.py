"""Disruption budgets through the whole loop, against the simulated fleet: a window's
budget holds restarts across ticks, survives a restart of Jarvis, and refills."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.sim import SimulatedActuator, SimulatedFleet
from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, BlockReason, ErrorKind, Health, Outcome, ResourceRef, Restart
from jarvis.policies.heal import HealPolicy
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

BUDGET = [
    {
        "name": "restarts-per-hour",
        "provider": "sim",
        "actions": ["restart"],
        "max": 2,
        "window_seconds": 3600,
    }
]
REMAINING = "jarvis_disruption_budget_remaining"
LABELS = {"kind": "restart", "provider": "sim", "budget": "restarts-per-hour"}


@pytest.fixture
def db_url(sqlite_or_postgres: str) -> str:
    """Each test here runs on the embedded SQLite default and on a real PostgreSQL."""
    return sqlite_or_postgres


async def ticks(app: App, clock: VirtualClock, n: int) -> None:
    for _ in range(n):
        await app.reconciler.tick()
        clock.advance(30)


def crashed(fleet: SimulatedFleet) -> list[str]:
    return [n for n in fleet.names if fleet.state(n).health is Health.UNHEALTHY]


async def test_a_fleet_wide_budget_holds_restarts_across_ticks_and_a_restart(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """Four crashes, two restarts an hour: two heal, two wait (reason budget) through a
    restart of Jarvis, and heal once the first two restarts are an hour old."""
    fleet = SimulatedFleet(seed=3, services=6, script=False, start=clock.now())
    down = fleet.names[:4]
    for name in down:
        fleet.crash(name)
    app = await make_app(
        [HealPolicy()], actuators=[SimulatedActuator(fleet, clock)], budgets=BUDGET
    )
    await ticks(app, clock, 5)
    assert len(crashed(fleet)) == 2
    blocked = await app.store.events(kinds=["action.blocked"], limit=100)
    assert blocked and {e.payload["blocked"] for e in blocked} == {"budget"}
    assert app.metrics.registry.get_sample_value(REMAINING, LABELS) == 0

    # A new process on the same database counts the restarts the first one made.
    await app.aclose()
    clock.advance(600)
    again = await make_app(
        [HealPolicy()], actuators=[SimulatedActuator(fleet, clock)], budgets=BUDGET
    )
    await ticks(again, clock, 5)
    assert len(crashed(fleet)) == 2
    assert again.metrics.registry.get_sample_value(REMAINING, LABELS) == 0

    # An hour after the first restarts, the window has room again.
    clock.advance(3600)
    await ticks(again, clock, 3)
    assert crashed(fleet) == []
    started = await again.store.events(kinds=["action.started"], limit=100)
    assert len(started) == 4


async def test_the_daemon_counts_the_changes_of_a_second_process(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """A one-shot `jarvis tick` beside the daemon spends the budget; the daemon's next tick
    reads it back from the store and holds its own restart."""
    fleet = SimulatedFleet(seed=3, services=6, script=False, start=clock.now())
    for name in fleet.names[:2]:
        fleet.crash(name)
    one = [{**BUDGET[0], "max": 1}]
    daemon = await make_app(
        [HealPolicy()], actuators=[SimulatedActuator(fleet, clock)], budgets=one
    )
    one_shot = await make_app(
        [HealPolicy()], actuators=[SimulatedActuator(fleet, clock)], budgets=one
    )
    await one_shot.reconciler.tick()
    await one_shot.aclose()
    assert len(crashed(fleet)) == 1
    clock.advance(30)
    report = await daemon.reconciler.tick()
    assert len(crashed(fleet)) == 1
    assert [d.verdict.reason for d in report.decisions] == [BlockReason.BUDGET]


async def test_a_per_resource_budget_on_a_deployment_survives_a_restart_of_jarvis(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A Deployment's restart (its ref's kind is not "service") still counts once read back."""
    budget = [
        {
            "name": "one-restart",
            "provider": "sim",
            "actions": ["restart"],
            "max": 1,
            "per": "resource",
        }
    ]
    # Kubernetes names its refs' kind "deployment", Route 53 "dns_record".
    restart = Action(ResourceRef("sim", "api", kind="deployment"), Restart(), "heal", "stuck")
    first = await make_app([ProposeEach([restart])], budgets=budget)
    await ticks(first, clock, 1)
    assert len(fleet.applied) == 1
    await first.aclose()

    again = await make_app([ProposeEach([restart])], budgets=budget)
    await ticks(again, clock, 1)

    assert len(fleet.applied) == 1
    blocked = await again.store.events(kinds=["action.blocked"])
    assert [e.payload["blocked"] for e in blocked] == ["budget"]


async def test_a_restart_whose_target_is_gone_spends_no_budget(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """One restart an hour: a restart of a service deleted since observe (gone) disrupted
    nothing, so the gauge, a later tick and a restarted Jarvis all leave the budget whole;
    the next real restart spends it and holds the one after."""
    one = [{**BUDGET[0], "max": 1}]

    async def deleted(action: Action) -> Outcome | None:
        if action.target.name != "api":
            return None
        del fleet.services["api"]  # deleted by a human as the call reaches the provider
        error = ActuatorError("sim://api not found", kind=ErrorKind.GONE, code="NotFound")
        return error.outcome()

    fleet.services["api"].health = Health.UNHEALTHY
    fleet.on_apply = deleted
    first = await make_app([HealPolicy()], budgets=one)
    await ticks(first, clock, 1)
    (failed,) = await first.store.events(kinds=["action.failed"])
    assert failed.gone
    assert first.metrics.registry.get_sample_value(REMAINING, LABELS) == 1
    await first.aclose()

    # A new process reads the gone intent back from the store and does not count it.
    fleet.services["web"].health = Health.UNHEALTHY
    again = await make_app([HealPolicy()], budgets=one)
    report = await again.reconciler.tick()
    assert [d.verdict.reason for d in report.decisions] == [None]
    clock.advance(30)
    fleet.services["worker"].health = Health.UNHEALTHY
    report = await again.reconciler.tick()
    assert [d.verdict.reason for d in report.decisions] == [BlockReason.BUDGET]
    assert [a.target.name for a in fleet.applied] == ["api", "web"]
    assert again.metrics.registry.get_sample_value(REMAINING, LABELS) == 0
