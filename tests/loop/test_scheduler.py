"""The scheduler in virtual time: cadence, overrun without stacking, shutdown."""

from __future__ import annotations

from datetime import datetime

import anyio
import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import Scheduler, TickResult
from jarvis.model import Action, Outcome, ResourceRef, Restart
from jarvis.store import EventStore
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


class Hooks:
    """Lets ``ticks`` ticks start, then ends the run before the next; keeps every result."""

    def __init__(self, ticks: int, *, stop_after: int | None = None) -> None:
        self.ticks = ticks
        self.stop_after = stop_after
        self.before: list[datetime] = []
        self.results: list[TickResult] = []

    async def before_tick(self, now: datetime) -> bool:
        self.before.append(now)
        return len(self.before) <= self.ticks

    async def after_tick(self, result: TickResult) -> bool:
        self.results.append(result)
        return self.stop_after is None or len(self.results) < self.stop_after


async def tick_starts(store: EventStore, origin: datetime) -> list[float]:
    started = await store.events(kinds=["tick.started"], limit=100)
    return [(e.ts - origin).total_seconds() for e in started]


async def test_ticks_start_on_interval_boundaries(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """With no jitter, ticks start every interval exactly, the first at once."""
    app = await make_app()
    origin = clock.now()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30)
    await scheduler.run(max_ticks=5)
    assert await tick_starts(app.store, origin) == [0, 30, 60, 90, 120]
    assert scheduler.overruns == 0


async def test_jitter_delays_a_tick_by_at_most_its_fraction(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """Jittered starts stay within jitter times the interval after their boundary."""
    app = await make_app()
    origin = clock.now()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, jitter=0.1)
    await scheduler.run(max_ticks=20)
    for i, offset in enumerate(await tick_starts(app.store, origin)):
        assert 30 * i <= offset <= 30 * i + 3


async def test_an_overrunning_tick_is_counted_not_stacked(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A 70 s tick skips the boundaries it overran; the next starts on the next one."""
    calls = 0

    async def slow_second_observe() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            await clock.sleep(70)

    fleet.on_observe = slow_second_observe
    app = await make_app(loop={"observe_timeout": 1000})
    origin = clock.now()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30)
    await scheduler.run(max_ticks=4)
    assert await tick_starts(app.store, origin) == [0, 30, 120, 150]
    assert scheduler.overruns == 1
    assert app.metrics.registry.get_sample_value("jarvis_tick_overruns_total") == 1


async def test_stop_lets_the_apply_in_flight_finish_and_takes_no_new_actions(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """On stop, the running apply completes, later actions are not taken, events are flushed."""
    scheduler: Scheduler | None = None
    release = anyio.Event()

    async def stop_during_first(action: Action) -> Outcome | None:
        if len(fleet.applied) == 1:
            assert scheduler is not None
            scheduler.stop()
            release.set()
            await release.wait()
        return None

    fleet.on_apply = stop_during_first
    targets = [ResourceRef("sim", n) for n in ("api", "web", "worker")]
    app = await make_app([ProposeEach([Action(t, Restart(), "p", "r") for t in targets])])
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, shutdown_grace=5)
    with anyio.fail_after(10):
        await scheduler.run()
    assert [str(a.target) for a in fleet.applied] == ["sim://api"]
    applied = await app.store.events(kinds=["action.applied"])
    assert [e.resource for e in applied] == ["sim://api"]
    blocked = await app.store.events(kinds=["action.blocked"])
    assert {e.payload["blocked"] for e in blocked} == {"shutdown"}
    assert scheduler.ticks == 1


async def test_an_apply_hanging_at_stop_is_cut_by_the_shutdown_deadline_and_says_so(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """An apply still running at the shutdown deadline times out as cut by the shutdown,
    not as a breach of ``apply_timeout``, and is recorded as unknown: it may have landed."""
    scheduler: Scheduler | None = None

    async def stop_and_hang(action: Action) -> Outcome | None:
        assert scheduler is not None
        scheduler.stop()
        await anyio.sleep(3600)
        return None

    fleet.on_apply = stop_and_hang
    app = await make_app([ProposeEach([Action(ResourceRef("sim", "api"), Restart(), "p", "r")])])
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, shutdown_grace=0.2)
    with anyio.fail_after(60):  # a hang guard, not a timing assertion
        await scheduler.run()
    assert await app.store.events(kinds=["action.failed"]) == []
    [unknown] = await app.store.events(kinds=["action.unknown"])
    assert unknown.payload["outcome"] == "timed_out"
    assert "shutdown" in str(unknown.payload["detail"]), unknown.payload


async def test_health_turns_bad_when_no_tick_finished_in_three_intervals(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """/healthz's judgement: fresh ticks are healthy, a stalled loop is not."""
    app = await make_app()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30)
    await scheduler.run(max_ticks=1)
    assert scheduler.healthy()[0]
    clock.advance(91)
    healthy, detail = scheduler.healthy()
    assert not healthy and "ago" in detail


async def test_hooks_see_each_tick_and_end_the_run_before_the_next_without_a_shutdown(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """Hooks get every tick's report; False before a tick ends the run, no shutdown requested."""
    app = await make_app()
    origin = clock.now()
    hooks = Hooks(3)
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, hooks=hooks)
    await scheduler.run()
    assert [(t - origin).total_seconds() for t in hooks.before] == [0, 30, 60, 90]
    assert [r.outcome for r in hooks.results] == ["ok", "ok", "ok"]
    started = await app.store.events(kinds=["tick.started"], limit=100)
    assert [r.report.tick_id for r in hooks.results if r.report] == [e.tick_id for e in started]
    assert scheduler.ticks == 3
    assert not scheduler.stopping and not app.reconciler.stopping


async def test_false_after_a_tick_ends_the_run_with_that_tick_recorded(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """False after a tick ends the run there; the tick's events are flushed."""
    app = await make_app()
    hooks = Hooks(10, stop_after=2)
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, hooks=hooks)
    await scheduler.run()
    assert scheduler.ticks == 2
    assert len(hooks.before) == 2
    assert len(await app.store.events(kinds=["tick.finished"], limit=100)) == 2
    assert not app.reconciler.stopping


async def test_a_tick_past_its_timeout_is_counted_and_handed_to_the_hooks_without_a_report(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A tick cut short by the tick timeout is counted as timed out, and the run goes on."""
    calls = 0

    async def hang_on_second_observe() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            await anyio.sleep_forever()

    fleet.on_observe = hang_on_second_observe
    app = await make_app(loop={"observe_timeout": 1000})
    hooks = Hooks(3)
    # The timeout is real time (the event loop's), and ticks 1 and 3 must beat it
    # on a loaded machine (their SQLite commits and all): seconds, not milliseconds.
    scheduler = Scheduler(
        app.reconciler, clock, app.metrics, interval=30, tick_timeout=3, hooks=hooks
    )
    with anyio.fail_after(60):
        await scheduler.run()
    assert [r.outcome for r in hooks.results] == ["ok", "timed_out", "ok"]
    assert [r.report is None for r in hooks.results] == [False, True, False]
    assert scheduler.timed_out == 1 and scheduler.failed == 0
    registry = app.metrics.registry
    assert registry.get_sample_value("jarvis_ticks_total", {"outcome": "timed_out"}) == 1
