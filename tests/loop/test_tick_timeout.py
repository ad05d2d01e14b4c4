"""A tick timeout never leaves an intent open in a live process.

Before, a tick cut short while an intent was being written counted an attempt
and left the intent open without calling the provider (at the next start it
became `action.unknown`, a failed attempt that never happened), and actions
planned but not reached vanished from the record. Now intent, provider call
and outcome form one shielded unit, and the actions not reached are recorded
as blocked with reason ``tick_timeout``. The settings refuse a tick timeout
shorter than an observe and an apply together.
"""

from __future__ import annotations

import anyio
import pytest

from jarvis.config import ConfigError, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import Scheduler
from jarvis.model import Action, Outcome, ResourceRef, Restart
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

TICK_TIMEOUT = 3.0


async def test_actions_not_reached_are_blocked_and_the_one_in_flight_completes(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """The apply in flight finishes and is recorded; the rest are blocked as tick_timeout."""

    async def slow(action: Action) -> Outcome | None:
        # Real time, past the tick's deadline; the deadline itself is generous so
        # that a loaded machine still reaches this first apply before it.
        await anyio.sleep(TICK_TIMEOUT + 1)
        return None

    fleet.on_apply = slow
    restarts = [Action(ResourceRef("sim", name), Restart(), "p", "r") for name in ("api", "web")]
    app = await make_app([ProposeEach(restarts)])
    scheduler = Scheduler(
        app.reconciler, clock, app.metrics, interval=30, tick_timeout=TICK_TIMEOUT
    )
    await scheduler.run(max_ticks=1)

    assert scheduler.timed_out == 1
    assert [a.target.name for a in fleet.applied] == ["api"]
    events = await app.store.events(limit=100)
    by_kind = [(e.kind.value, e.resource) for e in events if e.kind.value.startswith("action.")]
    assert ("action.started", "sim://api") in by_kind
    assert ("action.applied", "sim://api") in by_kind
    blocked = [e for e in events if e.kind.value == "action.blocked"]
    assert [(e.resource, e.payload["blocked"]) for e in blocked] == [("sim://web", "tick_timeout")]
    assert await app.store.open_intents() == []


async def test_a_deadline_passed_during_the_last_apply_cuts_the_tick(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """The deadline passes while the tick's only apply runs on: the apply is recorded and
    the tick is cut there, as one cut between two applies, with no `tick.finished`."""

    async def slow(action: Action) -> Outcome | None:
        await anyio.sleep(TICK_TIMEOUT + 1)
        return None

    fleet.on_apply = slow
    restart = Action(ResourceRef("sim", "api"), Restart(), "p", "r")
    app = await make_app([ProposeEach([restart])])
    scheduler = Scheduler(
        app.reconciler, clock, app.metrics, interval=30, tick_timeout=TICK_TIMEOUT
    )
    await scheduler.run(max_ticks=1)

    assert scheduler.timed_out == 1
    kinds = [e.kind.value for e in await app.store.events(limit=100)]
    assert "action.applied" in kinds
    assert "action.blocked" not in kinds
    assert "tick.finished" not in kinds


def test_a_tick_timeout_shorter_than_observe_and_apply_is_refused() -> None:
    """An explicit tick timeout must leave room for one observe and one apply."""
    with pytest.raises(ConfigError, match=r"loop.tick_timeout 12 s is shorter .* \(30 s\)"):
        load_settings(loop={"tick_timeout": 12})


def test_without_an_explicit_tick_timeout_a_short_interval_still_leaves_room() -> None:
    """The default is the interval, but never less than an observe and an apply."""
    assert load_settings(loop={"interval": 0.05}).tick_timeout == 30.0
    assert load_settings().tick_timeout == 30.0
    assert load_settings(loop={"interval": 120}).tick_timeout == 120.0
