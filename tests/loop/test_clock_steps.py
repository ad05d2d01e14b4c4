"""The loop when the wall clock steps (NTP, a resumed VM, a hand-set date): ticks keep
their interval and /healthz its judgement, measured on the monotonic clock, and an open
breaker's cool-down does not grow by a step back.

`VirtualClock.jump` steps `now` and leaves `monotonic` alone, as a step of the
wall clock leaves `time.monotonic`; tests/cli/test_clock_steps.py does the same
to a real `jarvis run` under libfaketime.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import Scheduler, TickResult
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory
from tests.loop.test_breakers import COOLDOWN_TICKS, NAMES, gauge, scale_all, throttled, tick

pytestmark = pytest.mark.anyio


class StepAfter:
    """Steps the wall clock by ``step`` once tick ``after`` has finished; notes each
    tick's start on the monotonic clock and /healthz's judgement right after the step."""

    def __init__(self, clock: VirtualClock, step: timedelta, *, after: int, ticks: int) -> None:
        self.clock = clock
        self.step = step
        self.after = after
        self.ticks = ticks
        self.starts: list[float] = []
        self.finished = 0
        self.scheduler: Scheduler | None = None
        self.health_after_step: tuple[bool, str] | None = None

    async def before_tick(self, now: datetime) -> bool:
        self.starts.append(self.clock.monotonic())
        return len(self.starts) <= self.ticks

    async def after_tick(self, result: TickResult) -> bool:
        self.finished += 1
        if self.finished == self.after:
            self.clock.jump(self.clock.now() + self.step)
            assert self.scheduler is not None
            self.health_after_step = self.scheduler.healthy()
        return True


async def run_with_step(
    make_app: AppFactory, clock: VirtualClock, step: timedelta
) -> tuple[Scheduler, StepAfter]:
    app = await make_app()
    hooks = StepAfter(clock, step, after=2, ticks=4)
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, hooks=hooks)
    hooks.scheduler = scheduler
    await scheduler.run()
    return scheduler, hooks


async def test_a_step_back_of_an_hour_does_not_hold_the_next_tick_back(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """After the wall clock steps back an hour, the next tick still starts one interval on."""
    scheduler, hooks = await run_with_step(make_app, clock, timedelta(hours=-1))
    assert hooks.starts[:4] == [0, 30, 60, 90]
    assert scheduler.overruns == 0


async def test_a_step_forward_of_a_day_is_not_an_overrun(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """After the wall clock steps forward a day, no boundary is counted as skipped and the
    next tick starts one interval on, not at once."""
    scheduler, hooks = await run_with_step(make_app, clock, timedelta(days=1))
    assert hooks.starts[:4] == [0, 30, 60, 90]
    assert scheduler.overruns == 0
    assert scheduler.metrics.registry.get_sample_value("jarvis_tick_overruns_total") == 0


async def test_health_stays_true_across_a_step_forward(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """A tick that just finished is fresh whatever the wall clock did since."""
    _, hooks = await run_with_step(make_app, clock, timedelta(days=1))
    assert hooks.health_after_step is not None
    healthy, detail = hooks.health_after_step
    assert healthy, detail
    assert detail == "last tick finished 0.0s ago"


async def test_health_turns_bad_after_a_step_back_when_ticks_stop(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """A step back does not hide a stalled loop: three intervals without a tick, measured
    on the monotonic clock, are unhealthy, and the age is never negative."""
    app = await make_app()
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30)
    await scheduler.run(max_ticks=1)
    clock.jump(clock.now() - timedelta(hours=1))
    healthy, detail = scheduler.healthy()
    assert healthy and detail == "last tick finished 0.0s ago"
    clock.advance(91)
    healthy, detail = scheduler.healthy()
    assert not healthy and detail == "last tick finished 91.0s ago"


async def test_an_open_breaker_probes_one_cool_down_after_a_step_back_of_an_hour(
    make_app: AppFactory, clock: VirtualClock, fleet: FakeActuator
) -> None:
    """A breaker that opened just before the wall clock stepped back an hour lets its
    probe through after one cool-down (5 min) from the step, not after the hour too."""
    fleet.services.clear()
    fleet.add(*NAMES)
    fleet.on_apply = throttled
    app = await make_app([scale_all()])
    await tick(app.reconciler, clock)
    assert len(fleet.applied) == 3  # tripped: held from here on
    clock.jump(clock.now() - timedelta(hours=1))
    fleet.on_apply = None
    await tick(app.reconciler, clock, COOLDOWN_TICKS + 1)
    assert len(fleet.applied) > 3, "no probe went out in the cool-down after the step"
    assert gauge(app.reconciler, "provider", "sim") == 0
