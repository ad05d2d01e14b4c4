"""The page's overrides: queued for the scheduler's own next tick, through its guard."""

from __future__ import annotations

from datetime import datetime

import anyio
import pytest

from jarvis.app import App
from jarvis.loop.clock import VirtualClock, WallClock
from jarvis.loop.overrides import OverrideQueue
from jarvis.loop.scheduler import Scheduler, TickResult
from jarvis.model import (
    Action,
    ErrorKind,
    Outcome,
    ResourceRef,
    Restart,
    RetryState,
    Rollback,
    Scale,
)
from jarvis.policies.base import Evaluation
from jarvis.policies.operator import operator_action
from jarvis.telemetry.web.view import OverrideResult
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import ALLOW_SIM, AppFactory

pytestmark = pytest.mark.anyio

#: Generous: a loaded machine is slow, and nothing here waits for time to pass.
WAIT = 120.0


class Ticked:
    """The queue's hooks, and an event set when the first tick has finished."""

    def __init__(self, queue: OverrideQueue) -> None:
        self.queue = queue
        self.first = anyio.Event()

    async def before_tick(self, now: datetime) -> bool:
        return await self.queue.before_tick(now)

    async def after_tick(self, result: TickResult) -> bool:
        self.first.set()
        return await self.queue.after_tick(result)


def woken_by(queue: OverrideQueue, app: App, clock: VirtualClock) -> Scheduler:
    """The daemon's scheduler over ``app``, every 30 s, woken by each override ``queue`` takes."""
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, hooks=queue)
    queue.wake = scheduler.wake
    return scheduler


def scale(replicas: int) -> Action:
    return operator_action(
        ResourceRef("sim", "api"), Scale(replicas=replicas), actor="admin-token", reason=None
    )


async def test_a_queued_override_is_applied_by_the_next_tick_and_blocked_by_the_switch(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """The scheduler's tick applies it once, as the actor; the kill switch blocks the next."""
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    scheduler = woken_by(queue, app, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        applied = await queue.submit(scale(3))
        await app.killswitch.set(engaged=True, actor="cli:test", reason="incident")
        blocked = await queue.submit(
            operator_action(
                ResourceRef("sim", "web"), Restart(), actor="admin-token", reason="stuck"
            )
        )
        scheduler.stop()
    assert applied.state == "applied", applied
    assert applied.detail.startswith("scale sim://api: applied")
    assert blocked.state == "blocked" and "(killswitch)" in blocked.detail, blocked
    assert [(str(a.target), a.kind, a.actor) for a in fleet.applied] == [
        ("sim://api", "scale", "admin-token")
    ]
    proposed = await app.store.events(kinds=["action.proposed"], limit=100)
    assert [(e.resource, e.policy) for e in proposed] == [
        ("sim://api", "operator"),
        ("sim://web", "operator"),
    ]
    (done,) = await app.store.events(kinds=["action.applied"], limit=10)
    assert done.payload["actor"] == "admin-token"


async def test_an_override_wakes_a_scheduler_sleeping_until_its_next_boundary(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """With an hour between ticks, the override is applied now, not in an hour."""
    wall = WallClock()
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    hooks = Ticked(queue)
    scheduler = Scheduler(app.reconciler, wall, app.metrics, interval=3600, hooks=hooks)
    queue.wake = scheduler.wake
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        with anyio.fail_after(WAIT):
            await hooks.first.wait()  # the first tick, at once; the next is an hour away
        result = await queue.submit(scale(2))
        scheduler.stop()
    assert result.state == "applied", result
    assert scheduler.ticks == 2
    assert [a.kind for a in fleet.applied] == ["scale"]


async def test_an_override_whose_target_is_deleted_meanwhile_says_gone_not_failed(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A service deleted between the tick's observe and the apply: the page says gone."""

    async def deleted(action: Action) -> Outcome:
        del fleet.services[action.target.name]
        message = f"{action.target} not found"
        return Outcome.failure(message, kind=ErrorKind.GONE, code="NotFound")

    fleet.on_apply = deleted
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    scheduler = woken_by(queue, app, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(scale(3))
        scheduler.stop()
    assert (result.state, result.detail) == (
        "gone",
        "scale sim://api: gone (deleted since observed). sim://api not found",
    )


async def test_an_override_no_tick_takes_is_withdrawn_and_never_applied(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """Nothing ticks within the wait: the page is told, and a later tick does not apply it."""
    queue = OverrideQueue(wait=0.2)
    app = await make_app([queue])
    result = await queue.submit(scale(4))
    assert result.state == "refused" and "withdrawn" in result.detail
    await app.reconciler.tick()
    assert fleet.applied == []


async def test_a_replica_that_does_not_lead_queues_nothing(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """A follower does not tick, so it refuses at once and sends the operator to the leader."""
    queue = OverrideQueue(wait=WAIT, leading=lambda: False)
    app = await make_app([queue])
    result = await queue.submit(scale(4))
    assert result.state == "refused" and "does not lead" in result.detail
    await app.reconciler.tick()
    assert fleet.applied == []


async def test_an_override_outranks_a_policy_proposal_for_the_same_resource(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A policy's restart of the same resource in the same tick is superseded by the operator's."""
    queue = OverrideQueue(wait=WAIT)
    api = ResourceRef("sim", "api")
    policy = ProposeEach([Action(api, Restart(), policy="heal", reason="policy", priority=10)])
    app = await make_app([policy, queue])
    scheduler = woken_by(queue, app, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(scale(5))
        scheduler.stop()
    assert result.state == "applied", result
    assert [(str(a.target), a.kind) for a in fleet.applied[:1]] == [("sim://api", "scale")]


class WakeOnce:
    """A policy that wakes the scheduler from inside the first tick (an override queued then)."""

    name = "wake-once"

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.scheduler: Scheduler | None = None
        self.calls = 0

    def evaluate(self, snapshot: object, history: object, now: datetime) -> Evaluation:
        self.calls += 1
        if self.calls == 1 and self.scheduler is not None:
            self.scheduler.wake()
            self.clock.advance(1)  # the tick takes a second
        return Evaluation()


async def test_a_wake_during_a_tick_starts_the_next_one_when_it_ends(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """Woken mid-tick, the next tick starts when this one ends (and stands for the next boundary):
    a queued override waits for one tick, not an interval."""
    policy = WakeOnce(clock)
    app = await make_app([policy])
    origin = clock.now()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30)
    policy.scheduler = scheduler
    await scheduler.run(max_ticks=3)
    started = await app.store.events(kinds=["tick.started"], limit=10)
    assert [(e.ts - origin).total_seconds() for e in started] == [0, 1, 60]


async def test_an_override_naming_no_observed_resource_is_refused_and_never_sent(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A typo on the page is refused as the CLI refuses it: nothing sent, nothing quarantined."""

    async def not_found(action: Action) -> Outcome:
        return Outcome.failure("not found", kind=ErrorKind.TERMINAL, code="NotFound")

    fleet.on_apply = not_found  # what a provider answers for a name it does not have
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    scheduler = woken_by(queue, app, clock)
    typo = operator_action(ResourceRef("sim", "apii"), Restart(), actor="admin-token", reason=None)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(typo)
        scheduler.stop()

    assert result.state == "refused" and "no such resource" in result.detail, result
    assert fleet.applied == []
    assert await app.store.events(kinds=["action.escalated"]) == []
    assert app.reconciler.ledger.states == {}


async def test_a_typo_is_refused_while_another_provider_fails_and_its_own_is_sent(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A name its own provider answered without is refused whatever another provider did;
    one on the provider that failed to answer may be there, and is proposed."""
    # It has the service, but cannot list it this tick.
    down = FakeActuator(clock, provider="k8s", name="kubernetes", observe_error="unreachable")
    down.add("default/web")
    queue = OverrideQueue(wait=WAIT)
    app = await make_app(
        [queue],
        actuators=[fleet, down],
        allowlist=[*ALLOW_SIM, {"provider": "k8s", "resources": "*", "actions": ["*"]}],
    )
    scheduler = woken_by(queue, app, clock)
    typo = operator_action(ResourceRef("sim", "apii"), Restart(), actor="admin-token", reason=None)
    unread = operator_action(
        ResourceRef("k8s", "default/web"), Restart(), actor="admin-token", reason=None
    )
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        refused = await queue.submit(typo)
        sent = await queue.submit(unread)
        scheduler.stop()

    assert refused.state == "refused" and "no such resource" in refused.detail, refused
    assert fleet.applied == []
    assert sent.state == "applied", sent
    assert [str(a.target) for a in down.applied] == ["k8s://default/web"]


async def test_a_page_rollback_naming_no_version_with_none_before_is_refused_and_never_sent(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """An empty version field is not sent as a rollback to nothing, failing and quarantining."""
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    scheduler = woken_by(queue, app, clock)
    back = operator_action(
        ResourceRef("sim", "api"), Rollback(""), actor="admin-token", reason=None
    )
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(back)
        scheduler.stop()

    assert result.state == "refused" and "name the one to return to" in result.detail, result
    assert fleet.applied == []
    assert app.reconciler.ledger.states == {}


async def test_a_page_override_of_a_kind_the_scheme_never_takes_is_refused_and_never_sent(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A scale of a resource whose provider only restarts is refused, not failed and quarantined."""
    queue = OverrideQueue(wait=WAIT, schemes={"sim": frozenset({"restart"})})
    app = await make_app([queue])
    scheduler = woken_by(queue, app, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(scale(3))
        scheduler.stop()

    assert result.state == "refused" and "no provider applies scale on sim://" in result.detail
    assert fleet.applied == []
    assert app.reconciler.ledger.states == {}


async def submit_all(
    app: App, clock: VirtualClock, queue: OverrideQueue, actions: list[Action]
) -> list[OverrideResult]:
    """Each action submitted from the page in turn, decided by the scheduler's own ticks."""
    scheduler = woken_by(queue, app, clock)
    results = []
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        for action in actions:
            results.append(await queue.submit(action))
        scheduler.stop()
    return results


def restart(name: str) -> Action:
    return operator_action(ResourceRef("sim", name), Restart(), actor="admin-token", reason=None)


async def test_a_page_override_the_allow_list_does_not_name_is_blocked_and_never_sent(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """An operator's action from the page meets the allow-list as a policy's does."""
    queue = OverrideQueue(wait=WAIT)
    app = await make_app(
        [queue], allowlist=[{"provider": "sim", "resources": "api", "actions": ["scale"]}]
    )

    results = await submit_all(app, clock, queue, [restart("api"), restart("web"), scale(3)])

    assert [(r.state, r.detail.split(". ")[0]) for r in results] == [
        ("blocked", "restart sim://api: blocked (allowlist)"),
        ("blocked", "restart sim://web: blocked (allowlist)"),
        ("applied", "scale sim://api: applied"),
    ]
    assert [(str(a.target), a.kind) for a in fleet.applied] == [("sim://api", "scale")]


async def test_page_overrides_are_held_to_the_retry_limit_and_its_quarantine(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """Overrides that keep failing spend the same three attempts as a policy's, then stop
    at the quarantine until an operator resets it; a quarantine set elsewhere holds too."""
    fleet.on_apply = failing
    queue = OverrideQueue(wait=WAIT)
    app = await make_app([queue])
    app.store.stage_retry(
        RetryState("sim://worker", "restart", consecutive_failures=3, quarantined=True)
    )
    await app.store.flush()

    tries = [restart("api") for _ in range(8)]
    results = await submit_all(app, clock, queue, [restart("worker"), *tries])

    assert results[0].state == "blocked" and "(quarantine)" in results[0].detail
    assert [str(a.target) for a in fleet.applied] == ["sim://api"] * 3
    assert [r.state for r in results[1:]].count("failed") == 3
    assert results[-1].state == "blocked" and "(quarantine)" in results[-1].detail
    (escalated,) = await app.store.events(kinds=["action.escalated"], limit=10)
    assert escalated.resource == "sim://api"


async def failing(action: Action) -> Outcome:
    return Outcome.failure("ImagePullBackOff", kind=ErrorKind.TEMPORARY)
