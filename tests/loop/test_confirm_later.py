"""Unknown outcomes confirmed later, through the whole loop on a real store.

An apply that timed out may have made its change: it is recorded
``action.unknown`` and charged as a failure. For as long as its attempt counts
in the retry budget's window, each tick asks the owning actuator, if it
`ConfirmsKeys`, whether the change with the action's key was made; a proof
records ``action.applied`` for the same action id and takes the failure back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from jarvis.actuators.base import ActuatorError
from jarvis.app import App
from jarvis.loop import events as ev
from jarvis.loop.clock import VirtualClock
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.unknowns import QUESTIONS_AT_ONCE, Ask, OpenUnknowns, confirm
from jarvis.model import Action, Event, EventKind, Outcome, ResourceRef, Restart, RetryState
from jarvis.policies.base import Policy
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

RESTART = Action(ResourceRef("sim", "api"), Restart(), "scripted", "because")
PAIR = ("sim://api", "restart")


@dataclass
class LandingFleet(FakeActuator):
    """A fleet whose applies time out; the keys in ``landed`` were made, and it can say so."""

    landed: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)
    """Every key `confirm_applied` was asked about, in order."""
    readable: bool = True
    hanging: bool = False
    """Every question waits for an answer that never comes (a provider that hangs)."""

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        self.asked.append(key)
        if self.hanging:
            await anyio.sleep_forever()
        if not self.readable:
            raise ActuatorError("provider unreachable", code="Unavailable")
        return f"{target} carries {key}" if key in self.landed else None


@pytest.fixture
def fleet(clock: VirtualClock) -> LandingFleet:
    landing = LandingFleet(clock)
    landing.add("api", "web")
    return landing


@pytest.fixture
def db_url(sqlite_or_postgres: str) -> str:
    """Each test here runs on the embedded SQLite default and on a real PostgreSQL."""
    return sqlite_or_postgres


def times_out(fleet: LandingFleet, *, lands: bool) -> None:
    """Every apply answers nothing in time; with ``lands`` its change was made all the same."""

    async def hook(action: Action) -> Outcome:
        if lands:
            fleet.landed.add(fleet.keys[-1])
        return Outcome.timed_out("read timeout: the change may or may not have taken effect")

    fleet.on_apply = hook


async def loop_app(
    make_app: AppFactory, policies: Sequence[Policy] = (ProposeEach([RESTART]),), **settings: Any
) -> App:
    """An app proposing RESTART every tick, with the breakers off: three timeouts in five
    minutes would open the provider breaker, which takes their failures off the ledger."""
    return await make_app(list(policies), breakers={"enabled": False}, **settings)


async def ticks(app: App, clock: VirtualClock, n: int) -> None:
    for _ in range(n):
        await app.reconciler.tick()
        clock.advance(30)


async def of_kind(app: App, kind: EventKind) -> list[Event]:
    return await app.store.events(kinds=[kind.value], limit=1000)


async def test_three_unknown_outcomes_the_provider_proves_made_do_not_escalate(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """Three applies that time out but made their change are each confirmed the next tick:
    ``action.applied`` for the same action id, no escalation, no quarantine."""
    times_out(fleet, lands=True)
    app = await loop_app(make_app)
    await ticks(app, clock, 8)

    assert await of_kind(app, EventKind.ACTION_ESCALATED) == []
    row = (await app.store.load_retries())[PAIR]
    assert (row.consecutive_failures, row.quarantined) == (0, False)
    unknown = await of_kind(app, EventKind.ACTION_UNKNOWN)
    applied = await of_kind(app, EventKind.ACTION_APPLIED)
    assert len(unknown) == 3
    assert [e.action_id for e in applied] == [e.action_id for e in unknown]
    for event in applied:
        assert event.payload["confirmed"] is True
        assert str(event.payload["detail"]).startswith("confirmed after an unknown outcome: ")
        assert event.payload["params"] == RESTART.params_json()
    assert await app.store.open_intents() == []
    # One question per open unknown per tick, and none once it is confirmed.
    assert len(fleet.asked) == len(set(fleet.asked)) == 3


async def test_a_confirmed_unknown_is_one_action_in_the_actions_counter(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """Each action proposed has one outcome in ``jarvis_actions_total``: a timeout confirmed
    later stays counted ``timed_out`` there, and its confirmation goes to
    ``jarvis_unknown_outcomes_resolved_total{outcome="applied"}``."""
    times_out(fleet, lands=True)
    app = await loop_app(make_app)
    await ticks(app, clock, 8)
    sample = app.metrics.registry.get_sample_value

    def actions(outcome: str) -> float:
        return sample("jarvis_actions_total", {"kind": "restart", "outcome": outcome}) or 0.0

    outcomes = ("applied", "failed", "gone", "timed_out", "unknown", "blocked")
    assert len(await of_kind(app, EventKind.ACTION_APPLIED)) == 3  # all three confirmed
    assert actions("proposed") == 8
    assert sum(actions(outcome) for outcome in outcomes) == actions("proposed")
    assert (actions("applied"), actions("timed_out")) == (0, 3)
    resolved = {"kind": "restart", "outcome": "applied"}
    assert sample("jarvis_unknown_outcomes_resolved_total", resolved) == 3


async def test_an_unknown_never_proven_stays_unknown_and_still_counts(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """Applies that time out without their change being made stay unknown: asked once a tick,
    charged as failures, escalated and quarantined after three."""
    times_out(fleet, lands=False)
    app = await loop_app(make_app)
    await ticks(app, clock, 10)

    assert len(await of_kind(app, EventKind.ACTION_UNKNOWN)) == 3
    assert await of_kind(app, EventKind.ACTION_APPLIED) == []
    assert len(await of_kind(app, EventKind.ACTION_ESCALATED)) == 1
    assert (await app.store.load_retries())[PAIR].quarantined
    assert set(fleet.asked) == set(fleet.keys)
    # Ticks after the first apply: at most one question for each open unknown in each.
    assert len(fleet.asked) <= 9 * 3


async def test_the_questions_stop_when_the_attempt_leaves_the_retry_window(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """An unknown is asked about while its attempt counts in the retry window, then never;
    a change that lands after that stays unknown."""
    times_out(fleet, lands=False)
    app = await loop_app(make_app, retry={"window_seconds": 300})
    await app.reconciler.tick()
    fleet.on_apply = None
    (key,) = fleet.keys
    app.reconciler.policies = []
    await ticks(app, clock, 20)  # ten minutes: twice the window

    asked = fleet.asked.count(key)
    assert 1 <= asked <= 10
    fleet.landed.add(key)
    await ticks(app, clock, 3)
    assert fleet.asked.count(key) == asked
    assert await of_kind(app, EventKind.ACTION_APPLIED) == []


async def test_a_provider_that_cannot_be_read_is_asked_again_next_tick(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """A question that fails is not certain: the unknown stays open and is asked again."""
    times_out(fleet, lands=True)
    fleet.readable = False
    app = await loop_app(make_app)
    await ticks(app, clock, 1)
    app.reconciler.policies = []
    await ticks(app, clock, 2)
    assert await of_kind(app, EventKind.ACTION_APPLIED) == []
    fleet.readable = True
    await ticks(app, clock, 1)

    (applied,) = await of_kind(app, EventKind.ACTION_APPLIED)
    assert applied.action_id == (await of_kind(app, EventKind.ACTION_UNKNOWN))[0].action_id
    assert fleet.asked == [fleet.keys[0]] * 3


async def test_a_confirmation_after_escalation_leaves_the_quarantine_to_the_operator(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """Unknowns proven only after they escalated are recorded applied, and say the quarantine
    stays until `jarvis retries reset`; the ledger row stays quarantined."""
    times_out(fleet, lands=False)
    app = await loop_app(make_app)
    await ticks(app, clock, 10)
    assert len(await of_kind(app, EventKind.ACTION_ESCALATED)) == 1
    fleet.landed.update(fleet.keys)
    await ticks(app, clock, 1)

    applied = await of_kind(app, EventKind.ACTION_APPLIED)
    assert len(applied) == 3
    assert all("jarvis retries reset" in str(e.payload["detail"]) for e in applied)
    row = (await app.store.load_retries())[PAIR]
    assert row.quarantined and row.consecutive_failures == 3


async def test_an_unknown_a_previous_process_recorded_is_confirmed_after_a_restart(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """The open unknowns are read back at start: a new process confirms its predecessor's,
    including one recovery recorded for an intent it found open."""
    times_out(fleet, lands=False)
    first = await loop_app(make_app)
    await ticks(first, clock, 1)
    (key,) = fleet.keys
    # An intent the first process left open (it ended mid-apply).
    web = Action(ResourceRef("sim", "web"), Restart(), "scripted", "because")
    tick_id = ev.tick_id_for(clock.now(), "gone")
    orphan_id = ev.action_id_for(tick_id, web)
    first.store.append([ev.started(tick_id, clock.now(), web, orphan_id)])
    await first.store.flush()

    second = await loop_app(make_app, policies=[])
    unknown = await of_kind(second, EventKind.ACTION_UNKNOWN)
    assert len(unknown) == 2
    fleet.landed.update({key, ev.idempotency_key(orphan_id)})
    await ticks(second, clock, 1)

    applied = await of_kind(second, EventKind.ACTION_APPLIED)
    assert sorted(str(e.action_id) for e in applied) == sorted(str(e.action_id) for e in unknown)
    rows = await second.store.load_retries()
    assert rows[PAIR].consecutive_failures == 0
    assert rows[("sim://web", "restart")].consecutive_failures == 0


async def test_only_the_holder_of_the_resources_shard_asks(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """With shards, an unknown on a resource this replica does not hold is not asked about."""
    times_out(fleet, lands=True)
    app = await loop_app(make_app)
    await ticks(app, clock, 1)
    app.reconciler.policies = []
    app.reconciler.owns = lambda uri: uri != "sim://api"
    await ticks(app, clock, 2)
    assert fleet.asked == []
    app.reconciler.owns = None
    await ticks(app, clock, 1)
    assert fleet.asked == fleet.keys


def test_a_confirmed_attempt_with_failed_ones_after_it_leaves_theirs_counted() -> None:
    """Confirming the latest attempt resets the failures as an applied outcome would; an
    earlier one takes back only its own failure, and the later attempts' backoff stands."""
    t0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=2)
    budget = RetryBudget()
    row = RetryState(*PAIR, attempts=(t0, t1), consecutive_failures=2, retry_after=t1)
    tick_id = ev.tick_id_for(t0, "test")
    first = ev.started(tick_id, t0, RESTART, ev.action_id_for(tick_id, RESTART))
    later = replace(first, ts=t1)

    earlier = confirm(first, row, budget, t1, "proof").state
    latest = confirm(later, row, budget, t1, "proof").state

    assert earlier is not None and latest is not None
    assert (earlier.consecutive_failures, earlier.retry_after) == (1, t1)
    assert (latest.consecutive_failures, latest.retry_after) == (0, None)
    held = confirm(first, replace(row, quarantined=True), budget, t1, "proof")
    assert held.state is None
    assert "jarvis retries reset" in str(held.event.payload["detail"])


def intents(n: int) -> list[Event]:
    """``n`` intents of restarts of ``sim://api-<i>``, a second apart."""
    t0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
    made = []
    for i in range(n):
        action = replace(RESTART, target=ResourceRef("sim", f"api-{i}"))
        tick_id = ev.tick_id_for(t0 + timedelta(seconds=i), "test")
        made.append(ev.started(tick_id, t0 + timedelta(seconds=i), action, f"a{i}"))
    return made


async def unknowns_asking(ask: Ask, *, patience: float = 60) -> OpenUnknowns:
    store = await EventStore.in_memory()
    return OpenUnknowns(RetryLedger(store, RetryBudget()), ask, lambda _: True, patience=patience)


async def test_a_tick_waits_on_a_bounded_number_of_questions_at_once() -> None:
    """Twenty open unknowns: never more than `QUESTIONS_AT_ONCE` providers' answers awaited
    together, and every one asked."""
    in_flight: list[int] = [0]
    most: list[int] = [0]

    async def ask(intent: Event) -> str | None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await anyio.lowlevel.checkpoint()  # let every other question that may start, start
        await anyio.lowlevel.checkpoint()
        in_flight[0] -= 1
        return None

    unknowns = await unknowns_asking(ask)
    for intent in intents(20):
        unknowns.opened(intent)
    await unknowns.ask(datetime(2026, 1, 5, 8, 1, tzinfo=UTC), None)

    assert most[0] == QUESTIONS_AT_ONCE
    assert len(unknowns.open) == 20  # no proof: all still open


async def test_questions_not_started_within_the_ticks_patience_wait_for_the_next_tick() -> None:
    """A provider that hangs holds a tick for its patience, not for every open unknown's
    question in turn: past it no question starts, and the unknowns stay open."""
    asked: list[str] = []

    async def ask(intent: Event) -> str | None:
        asked.append(intent.action_id or "")
        return "made"

    unknowns = await unknowns_asking(ask, patience=0)
    for intent in intents(3):
        unknowns.opened(intent)
    assert await unknowns.ask(datetime(2026, 1, 5, 8, 1, tzinfo=UTC), None) == []
    assert asked == []
    assert len(unknowns.open) == 3
    unknowns.patience = 60
    closed = await unknowns.ask(datetime(2026, 1, 5, 8, 1, tzinfo=UTC), None)
    assert [c.intent.action_id for c in closed] == ["a0", "a1", "a2"]
    assert unknowns.open == []


async def test_a_ticks_questions_in_flight_at_its_patience_are_cut_and_stay_open() -> None:
    """A tick's questions keep to its patience (the observe timeout) as a whole: the one
    answered is closed, the one whose provider hangs is cut there, unproven, and stays
    open for the next tick, rather than holding the tick for its own bound."""

    async def ask(intent: Event) -> str | None:
        if intent.action_id == "a1":
            await anyio.sleep_forever()
        return "made"

    unknowns = await unknowns_asking(ask, patience=0.5)
    for intent in intents(2):
        unknowns.opened(intent)
    with anyio.fail_after(30):  # a generous bound: before, the hung question held on
        closed = await unknowns.ask(datetime(2026, 1, 5, 8, 1, tzinfo=UTC), None)
    assert [c.intent.action_id for c in closed] == ["a0"]
    assert [i.action_id for i in unknowns.open] == ["a1"]


async def test_orphans_a_hung_provider_cannot_answer_at_start_are_confirmed_by_the_loop(
    make_app: AppFactory, fleet: LandingFleet, clock: VirtualClock
) -> None:
    """Twelve orphans, a provider that hangs at start: recovery asks eight at once, starts
    no more past its patience (the apply timeout) and closes all twelve unknown, escalating
    the pair as three failures do; the first tick asks again and confirms each applied,
    nothing is applied twice, and the quarantine stays the operator's to lift."""
    first = await loop_app(make_app, policies=[])
    web = Action(ResourceRef("sim", "web"), Restart(), "scripted", "because")
    started = []
    for i in range(12):
        tick_id = ev.tick_id_for(clock.now() + timedelta(seconds=i), "crashed")
        started.append(ev.started(tick_id, clock.now(), web, ev.action_id_for(tick_id, web)))
    first.store.append(started)
    await first.store.flush()
    await first.aclose()

    fleet.hanging = True
    second = await loop_app(make_app, policies=[], loop={"apply_timeout": 1})
    assert len(fleet.asked) == QUESTIONS_AT_ONCE
    unknown = await of_kind(second, EventKind.ACTION_UNKNOWN)
    assert sorted(str(e.action_id) for e in unknown) == sorted(str(e.action_id) for e in started)
    assert await of_kind(second, EventKind.ACTION_APPLIED) == []
    assert (await second.store.load_retries())[("sim://web", "restart")].quarantined

    fleet.hanging = False
    fleet.landed.update(ev.idempotency_key(str(e.action_id)) for e in started)
    await ticks(second, clock, 1)

    applied = await of_kind(second, EventKind.ACTION_APPLIED)
    assert sorted(str(e.action_id) for e in applied) == sorted(str(e.action_id) for e in started)
    assert fleet.applied == []
    assert (await second.store.load_retries())[("sim://web", "restart")].quarantined
