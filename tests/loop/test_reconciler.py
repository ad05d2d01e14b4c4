"""One tick through the real reconciler, guard and store, in virtual time."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.model import (
    Action,
    ActionKind,
    Deploy,
    Event,
    EventKind,
    Health,
    Outcome,
    ResourceRef,
    Restart,
    Rollback,
)
from jarvis.policies.base import Evaluation
from jarvis.policies.heal import HealPolicy
from jarvis.store import EventStore
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


def restart(name: str) -> Action:
    return Action(ResourceRef("sim", name), Restart(), "scripted", "test")


async def kinds(store: EventStore, *wanted: EventKind) -> list[tuple[str, str | None]]:
    events = await store.events(limit=1000, kinds=[k.value for k in wanted])
    return [(e.kind.value, e.resource) for e in events]


async def test_an_unhealthy_service_is_restarted_and_recorded(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """Heal proposes a restart, the guard allows it, intent and outcome are recorded."""
    fleet.services["web"].health = Health.UNHEALTHY
    app = await make_app([HealPolicy()])
    report = await app.reconciler.tick()
    assert [str(d.action.target) for d in report.applied] == ["sim://web"]
    assert fleet.services["web"].health is Health.HEALTHY
    recorded = await kinds(
        app.store,
        EventKind.ACTION_PROPOSED,
        EventKind.ACTION_STARTED,
        EventKind.ACTION_APPLIED,
    )
    assert recorded == [
        ("action.proposed", "sim://web"),
        ("action.started", "sim://web"),
        ("action.applied", "sim://web"),
    ]
    started, applied = await app.store.events(kinds=["action.started", "action.applied"], limit=10)
    assert started.action_id == applied.action_id is not None


async def test_a_kill_switch_flip_mid_tick_blocks_the_rest_of_the_tick(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """Engaging the switch during one apply stops every later action in the same tick."""
    app = await make_app([ProposeEach([restart("api"), restart("web"), restart("worker")])])

    async def engage_on_first(action: Action) -> Outcome | None:
        if len(fleet.applied) == 1:
            await app.killswitch.set(engaged=True, actor="op", reason="stop now")
        return None

    fleet.on_apply = engage_on_first
    report = await app.reconciler.tick()
    assert [str(a.target) for a in fleet.applied] == ["sim://api"]
    blocked = [d for d in report.decisions if not d.verdict.allowed]
    assert [(str(d.action.target), d.verdict.reason) for d in blocked] == [
        ("sim://web", "killswitch"),
        ("sim://worker", "killswitch"),
    ]
    flips = await app.store.events(kinds=["killswitch.engaged"])
    assert flips[0].payload["actor"] == "op"


async def test_an_unreadable_kill_switch_counts_as_engaged(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """With the kill-switch backend unreachable nothing is applied (fail-safe)."""
    app = await make_app([ProposeEach([restart("api")])], redis_url="redis://127.0.0.1:1/0")
    report = await app.reconciler.tick()
    assert fleet.applied == []
    assert report.decisions[0].verdict.reason == "killswitch"
    assert "unreadable" in report.decisions[0].verdict.detail


async def test_an_empty_allow_list_applies_nothing(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """Deny by default: with no allow-list entry every action is blocked as allowlist."""
    app = await make_app([ProposeEach([restart("api")])], allowlist=[])
    report = await app.reconciler.tick()
    assert fleet.applied == []
    assert [d.verdict.reason for d in report.decisions] == ["allowlist"]


async def test_dry_run_records_everything_and_applies_nothing(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """A dry-run tick records proposals and dry_run blocks but calls no actuator."""
    app = await make_app([ProposeEach([restart("api")])], dry_run=True)
    await app.reconciler.tick()
    assert fleet.applied == []
    blocked = await app.store.events(kinds=["action.blocked"])
    assert blocked[0].payload["blocked"] == "dry_run"


async def test_one_failing_provider_does_not_stop_the_others(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """An actuator whose observe raises is recorded; the others are observed and acted on."""
    broken = FakeActuator(clock, provider="other", name="other").add("x")
    broken.observe_error = "throttled"
    fleet.services["web"].health = Health.UNHEALTHY
    app = await make_app([HealPolicy()], actuators=[broken, fleet])
    report = await app.reconciler.tick()
    assert report.snapshot.errors == {"other": "Boom: throttled"}
    assert [str(d.action.target) for d in report.applied] == ["sim://web"]
    failed = await app.store.events(kinds=["observe.failed"])
    assert failed[0].payload["actuator"] == "other"


async def test_a_provider_that_hangs_is_recorded_as_timed_out(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """An observe past the observe timeout is cut off and recorded; the others are acted on."""
    hung = FakeActuator(clock, provider="other", name="other").add("x")
    hung.on_observe = anyio.sleep_forever
    fleet.services["web"].health = Health.UNHEALTHY
    app = await make_app([HealPolicy()], actuators=[hung, fleet], loop={"observe_timeout": 0.05})
    report = await app.reconciler.tick()
    assert report.snapshot.errors == {"other": "observe timed out after 0.05s"}
    assert "other://x" not in report.snapshot.resources
    assert [str(d.action.target) for d in report.applied] == ["sim://web"]
    failed = await app.store.events(kinds=["observe.failed"])
    assert failed[0].payload["actuator"] == "other"


async def test_a_rollback_beats_a_restart_on_the_same_resource(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """One action per resource per tick: the higher priority wins, the other is blocked."""
    rollback = Action(ResourceRef("sim", "api"), Rollback("v0"), "rollback", "bad", priority=10)
    app = await make_app([ProposeEach([restart("api"), rollback])])
    report = await app.reconciler.tick()
    assert [a.kind for a in fleet.applied] == [ActionKind.ROLLBACK]
    loser = next(d for d in report.decisions if not d.verdict.allowed)
    assert loser.action.kind == ActionKind.RESTART
    assert loser.verdict.reason == "bounds"


async def test_only_state_transitions_are_recorded(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """resource.changed is written when a resource changes, not on every observation."""
    app = await make_app()
    await app.reconciler.tick()
    clock.advance(30)
    await app.reconciler.tick()
    fleet.services["api"].health = Health.UNHEALTHY
    clock.advance(30)
    await app.reconciler.tick()
    changed = await kinds(app.store, EventKind.RESOURCE_CHANGED)
    assert changed == [
        ("resource.changed", "sim://api"),
        ("resource.changed", "sim://web"),
        ("resource.changed", "sim://worker"),
        ("resource.changed", "sim://api"),
    ]


async def test_an_action_the_owning_actuator_does_not_support_fails_terminally(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Routing honours action kinds; observe-only actuators never receive actions."""
    fleet.action_kinds = frozenset({ActionKind.RESTART})
    probes = FakeActuator(clock, provider="sim", name="probes", action_kinds=frozenset())
    deploy = Action(ResourceRef("sim", "api"), Deploy("api:2"), "op", "ship")
    app = await make_app([ProposeEach([deploy])], actuators=[fleet, probes])
    report = await app.reconciler.tick()
    outcome = report.decisions[0].outcome
    assert outcome is not None and not outcome.ok
    assert outcome.error_kind == "terminal" and "cannot deploy" in outcome.detail
    assert fleet.applied == [] and probes.applied == []


class Broken:
    """A policy whose evaluation raises."""

    name = "broken"

    def evaluate(self, snapshot: object, history: object, now: object) -> Evaluation:
        raise RuntimeError("bad rule")


async def test_a_failing_policy_is_counted_and_alerted_while_the_others_run(
    make_app: AppFactory,
) -> None:
    """A policy that raises adds one to its failure counter and one alert; the rest still act."""
    app = await make_app([Broken(), ProposeEach([restart("api")])])
    sample = "jarvis_policy_failures_total"
    assert app.metrics.registry.get_sample_value(sample, {"policy": "broken"}) == 0
    report = await app.reconciler.tick()
    assert app.metrics.registry.get_sample_value(sample, {"policy": "broken"}) == 1
    assert app.metrics.registry.get_sample_value(sample, {"policy": "scripted"}) == 0
    assert [d.action.target.name for d in report.applied] == ["api"]
    [alert] = await app.store.events(kinds=["alert"])
    assert (alert.policy, alert.reason) == (
        "broken",
        "policy broken failed: RuntimeError('bad rule')",
    )


class LongMemory(ProposeEach):
    """A policy that states it reads three days of history."""

    history_horizon = timedelta(days=3)


class ShortMemory(ProposeEach):
    """A policy that states it reads an hour of history."""

    history_horizon = timedelta(hours=1)


async def test_history_loads_at_start_by_event_time_for_the_longest_stated_horizon(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """A restart reads history by event time, 24 hours back unless a policy states longer,
    and reads none when no policy reads it (`jarvis plan` on a busy database)."""
    app = await make_app()
    now = clock.now()
    app.store.append(
        [
            Event(EventKind.RESOURCE_CHANGED, now - timedelta(hours=1), "recent"),
            Event(EventKind.RESOURCE_CHANGED, now - timedelta(hours=2), "older"),
            Event(EventKind.RESOURCE_CHANGED, now - timedelta(hours=48), "two-days"),
        ]
    )
    await app.store.flush()
    await app.aclose()

    restarted = await make_app()
    assert restarted.reconciler.history.window == ()  # no policy reads History.events
    short = await make_app([ShortMemory([])])
    window = short.reconciler.history.window
    assert [e.idempotency_key for e in window] == ["older", "recent"]
    remembering = await make_app([LongMemory([])])
    window = remembering.reconciler.history.window
    assert [e.idempotency_key for e in window] == ["two-days", "older", "recent"]


async def test_a_running_loop_holds_the_history_a_restart_would_load(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """The window a loop hands policies after days of running is the one a restart loads:
    events past the longest stated horizon are let go, and none are held when no policy
    reads them."""
    app = await make_app([LongMemory([])])
    quiet = await make_app()  # the same store, no policy reading History.events
    for hours in (0, 30, 60, 90):
        changed = Event(EventKind.RESOURCE_CHANGED, clock.now(), f"changed-{hours}")
        for running in (app, quiet):
            running.reconciler.recorder.remember(changed)
        await app.reconciler.tick()
        await quiet.reconciler.tick()
        clock.advance(30 * 3600)
    await app.reconciler.tick()
    await quiet.reconciler.tick()

    window = [e.idempotency_key for e in app.reconciler.history.window]
    ours = [key for key in window if key.startswith("changed-")]
    assert ours == ["changed-60", "changed-90"]  # 3 days back from 120 h is 48 h
    assert quiet.reconciler.history.window == ()
    restarted = await make_app([LongMemory([])])
    assert [e.idempotency_key for e in restarted.reconciler.history.window] == window
