"""The provider and fleet breakers through the whole loop, on the real store.

A provider that throttles every write trips its breaker: its actions are held
(`provider_degraded`), one alert is raised, no resource's retry budget is
charged, and after the cool-down one probe per tick goes out until one succeeds.
"""

from __future__ import annotations

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.loop.reconciler import Reconciler
from jarvis.model import Action, Event, Outcome, ResourceRef, Scale
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

NAMES = ("a", "b", "c", "d", "e")
COOLDOWN_TICKS = 10  # the default 300 s cool-down at 30 s ticks


def scale_all() -> ProposeEach:
    return ProposeEach(
        [Action(ResourceRef("sim", name), Scale(replicas=3), "scaling", "demand") for name in NAMES]
    )


async def throttled(action: Action) -> Outcome:
    return Outcome.failure("Rate exceeded", code="Throttling")


async def tick(reconciler: Reconciler, clock: VirtualClock, n: int = 1) -> None:
    for _ in range(n):
        await reconciler.tick()
        clock.advance(30)


def breaker_alerts(events: list[Event]) -> list[str]:
    return [str(e.payload["state"]) for e in events if "breaker" in e.payload]


def gauge(reconciler: Reconciler, scope: str, provider: str) -> float | None:
    return reconciler.metrics.registry.get_sample_value(
        "jarvis_breaker_open", {"scope": scope, "provider": provider}
    )


async def test_a_throttling_provider_is_held_alerted_once_uncharged_and_resumes(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Throttled writes trip the breaker; nothing is charged; a good probe resumes acting."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()])
    reconciler = app.reconciler

    await tick(reconciler, clock)
    assert [a.target.name for a in fleet.applied] == ["a", "b", "c"]
    blocked = await app.store.events(kinds=["action.blocked"])
    assert {e.resource: e.payload["blocked"] for e in blocked} == {
        "sim://d": "provider_degraded",
        "sim://e": "provider_degraded",
    }
    assert gauge(reconciler, "provider", "sim") == 1
    # The three failures that tripped it are refunded: no attempt, no failure, no backoff.
    for name in "abc":
        row = reconciler.ledger.get((f"sim://{name}", "scale"))
        assert row is not None and row.attempts == () and row.consecutive_failures == 0
        assert row.retry_after is None
    stored = await app.store.load_retries()
    assert all(not row.attempts for row in stored.values())

    # Cooling down: nothing reaches the provider.
    await tick(reconciler, clock, COOLDOWN_TICKS - 1)
    assert len(fleet.applied) == 3

    # Half-open and still throttled: one probe, which fails and re-opens silently.
    await tick(reconciler, clock)
    assert len(fleet.applied) == 4
    assert fleet.applied[-1].target.name == "a"

    # The provider recovers: after another cool-down one probe succeeds and everything resumes.
    fleet.on_apply = None
    await tick(reconciler, clock, COOLDOWN_TICKS - 1)
    assert len(fleet.applied) == 4
    await tick(reconciler, clock)
    assert [a.target.name for a in fleet.applied[4:]] == list(NAMES)
    assert gauge(reconciler, "provider", "sim") == 0

    alerts = await app.store.events(kinds=["alert"])
    assert breaker_alerts(alerts) == ["open", "closed"]
    assert await app.store.events(kinds=["action.escalated"]) == []
    stored = await app.store.load_retries()
    assert all(row.consecutive_failures == 0 and not row.quarantined for row in stored.values())


async def test_failed_observes_trip_the_breaker(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Three failed observes of a provider within the window hold its actions too."""
    fleet.services.clear()
    fleet.add(*NAMES)
    app = await make_app([scale_all()])
    fleet.observe_error = "Rate exceeded"
    await tick(app.reconciler, clock, 3)
    # The first two ticks acted; the third failed observe opened it before acting.
    applied_before = len(fleet.applied)
    assert applied_before == 2 * len(NAMES)
    fleet.observe_error = None
    await tick(app.reconciler, clock, 2)
    assert len(fleet.applied) == applied_before
    blocked = await app.store.events(kinds=["action.blocked"], limit=100)
    assert {e.payload["blocked"] for e in blocked} == {"provider_degraded"}
    assert breaker_alerts(await app.store.events(kinds=["alert"])) == ["open"]


async def test_failures_across_half_the_fleet_pause_acting(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Failed actions on max(3, half the fleet) resources pause the fleet, with one alert."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()], breakers={"provider_threshold": 100})
    await tick(app.reconciler, clock)
    assert [a.target.name for a in fleet.applied] == ["a", "b", "c"]
    blocked = await app.store.events(kinds=["action.blocked"])
    assert {e.payload["blocked"] for e in blocked} == {"fleet_paused"}
    assert breaker_alerts(await app.store.events(kinds=["alert"])) == ["open"]
    assert gauge(app.reconciler, "fleet", "all") == 1


async def test_breakers_can_be_turned_off(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """With breakers off every failure is charged to its resource, as before."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()], breakers={"enabled": False})
    await tick(app.reconciler, clock)
    assert len(fleet.applied) == len(NAMES)
    assert await app.store.events(kinds=["alert"]) == []


async def test_one_resource_meeting_5xx_again_and_again_trips_and_is_not_charged(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Three 5xx answers in the window are the provider's, even on one resource: no escalation."""
    fleet.services.clear()
    fleet.add("a")

    async def internal_error(action: Action) -> Outcome:
        return Outcome.failure("InternalError: try again later", code="InternalError")

    fleet.on_apply = internal_error
    app = await make_app([ProposeEach([scale_all().actions[0]])])
    await tick(app.reconciler, clock, 8)
    assert len(fleet.applied) == 3
    assert breaker_alerts(await app.store.events(kinds=["alert"])) == ["open"]
    assert await app.store.events(kinds=["action.escalated"]) == []
    row = app.reconciler.ledger.get(("sim://a", "scale"))
    assert row is not None and row.attempts == () and not row.quarantined


async def test_one_crash_looping_resource_is_left_to_its_retry_budget(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """A resource's own temporary failure counts once per resource: it escalates, no breaker."""
    fleet.services.clear()
    fleet.add("a")

    async def crash_loop(action: Action) -> Outcome:
        return Outcome.failure("ImagePullBackOff", code="RestartFailed")

    fleet.on_apply = crash_loop
    app = await make_app([ProposeEach([scale_all().actions[0]])])
    await tick(app.reconciler, clock, 8)
    assert len(fleet.applied) == 3
    assert await app.store.events(kinds=["alert"]) == []
    escalated = await app.store.events(kinds=["action.escalated"])
    assert [e.resource for e in escalated] == ["sim://a"]


async def test_an_open_breaker_stays_open_across_a_restart(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """A new process reads the last breaker alert: still held, and no second opening alert."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()])
    await tick(app.reconciler, clock)
    assert len(fleet.applied) == 3
    await app.aclose()

    restarted = await make_app([scale_all()])
    assert gauge(restarted.reconciler, "provider", "sim") == 1
    await tick(restarted.reconciler, clock, 2)
    assert len(fleet.applied) == 3
    blocked = await restarted.store.events(kinds=["action.blocked"], limit=100)
    assert {e.payload["blocked"] for e in blocked} == {"provider_degraded"}
    assert breaker_alerts(await restarted.store.events(kinds=["alert"])) == ["open"]


async def test_a_restart_without_the_tripped_provider_exports_no_breaker_for_it(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """A breaker left open by a provider no longer configured is not restored: nothing
    would ever close it, and JarvisBreakerTripped would fire for good."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()])
    await tick(app.reconciler, clock)
    assert gauge(app.reconciler, "provider", "sim") == 1
    await app.aclose()

    other = FakeActuator(clock, provider="other", name="other").add("api")
    restarted = await make_app([scale_all()], actuators=[other])
    await tick(restarted.reconciler, clock)

    assert gauge(restarted.reconciler, "provider", "sim") is None
    assert gauge(restarted.reconciler, "provider", "other") == 0
    assert restarted.reconciler.breakers.state("sim").opened_at is None
