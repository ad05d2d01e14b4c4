"""Recovery on its own: the events and ledger rows that close intents a crash left open."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from jarvis.loop.events import idempotency_key
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.recovery import close_orphan, recover
from jarvis.loop.unknowns import QUESTIONS_AT_ONCE
from jarvis.model import Event, EventKind, RetryState
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
BUDGET = RetryBudget(max_attempts=3)


def intent(action_id: str = "tick-1:sim://api:restart", at: datetime = T0) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=at,
        idempotency_key=f"{action_id}:started",
        tick_id="tick-1",
        resource="sim://api",
        action_kind="restart",
        policy="heal",
        reason="unhealthy",
        payload={"params": {}, "proposal": "unhealthy"},
        action_id=action_id,
        id=7,
    )


def test_an_orphan_becomes_unknown_and_a_failed_attempt() -> None:
    """With budget left, an orphan is one action.unknown event and one more failure."""
    closed = close_orphan(intent(), None, BUDGET, NOW)
    [unknown] = closed.events
    assert unknown.kind is EventKind.ACTION_UNKNOWN
    assert unknown.idempotency_key == "tick-1:sim://api:restart:unknown"
    assert unknown.payload == {"outcome": "failed", "intent_id": 7}
    assert not closed.escalated
    assert closed.state.attempts == (T0,)
    assert closed.state.consecutive_failures == 1
    assert closed.state.last_error == "outcome unknown: the process ended mid-apply"


def test_an_attempt_already_on_the_ledger_is_not_counted_twice() -> None:
    """When the ledger row already holds the intent's start, the attempt is not added again."""
    state = RetryState("sim://api", "restart", attempts=(T0,))
    closed = close_orphan(intent(), state, BUDGET, NOW)
    assert closed.state.attempts == (T0,)


def test_an_orphan_that_spends_the_budget_is_escalated_in_the_shape_recovery_writes() -> None:
    """The last failure escalates with the intent's names, key, reason and payload, exactly."""
    state = RetryState("sim://api", "restart", attempts=(T0,), consecutive_failures=2)
    closed = close_orphan(intent(), state, BUDGET, NOW)
    assert closed.escalated
    assert closed.state.quarantined
    assert closed.events[1] == Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=NOW,
        idempotency_key="tick-1:sim://api:restart:escalated",
        tick_id="tick-1",
        resource="sim://api",
        action_kind="restart",
        policy="heal",
        reason="3 failed attempts; quarantined",
        payload={"attempts": 3, "last_error": "outcome unknown: the process ended mid-apply"},
        action_id="tick-1:sim://api:restart",
    )


async def test_recover_closes_every_open_intent_and_stages_its_row() -> None:
    """Two orphans of one pair close in turn, the second on the row the first left."""
    store = await EventStore.in_memory()
    store.append([intent("a", T0), intent("b", T0 + timedelta(minutes=1))])
    await store.flush()
    ledger = RetryLedger(store, BUDGET)

    closed = await recover(ledger, NOW)
    assert [c.intent.action_id for c in closed] == ["a", "b"]
    assert [c.state.consecutive_failures for c in closed] == [1, 2]
    assert closed[1].state.attempts == (T0, T0 + timedelta(minutes=1))
    assert ledger.get(("sim://api", "restart")) == closed[1].state
    await store.flush()
    assert await store.load_retries() == {("sim://api", "restart"): closed[1].state}


async def test_recover_with_nothing_open_changes_nothing() -> None:
    """No open intent: no events, no ledger rows."""
    store = await EventStore.in_memory()
    ledger = RetryLedger(store, BUDGET)
    ledger.stage(replace(RetryState("sim://web", "scale"), consecutive_failures=1))
    assert await recover(ledger, NOW) == []
    assert list(ledger.states) == [("sim://web", "scale")]


async def test_an_orphans_escalation_joins_the_history_policies_read() -> None:
    """The unknown outcome and the escalation recovery records are in the history window,
    not only in the store."""
    from jarvis.loop.record import HISTORY_KINDS, Recorder
    from jarvis.store.history import StoreHistory
    from jarvis.telemetry.metrics import Metrics

    store = await EventStore.in_memory()
    try:
        history = StoreHistory(store, kinds=HISTORY_KINDS, size=100)
        recorder = Recorder(store, history, Metrics())
        spent = RetryState(
            "sim://api", "restart", attempts=(T0, T0 + timedelta(minutes=1)), consecutive_failures=2
        )
        closed = close_orphan(intent(), spent, BUDGET, NOW)
        assert closed.escalated
        recorder.recovered(closed)
        assert [e.kind for e in history.window] == [
            EventKind.ACTION_UNKNOWN,
            EventKind.ACTION_ESCALATED,
        ]
    finally:
        await store.aclose()


def test_an_orphan_the_provider_proves_applied_closes_as_applied_and_a_success() -> None:
    """With a proof, the orphan is one action.applied in the outcome's shape, marked
    recovered, and the attempt a success even when the row had failures."""
    state = RetryState("sim://api", "restart", attempts=(T0,), consecutive_failures=2)
    closed = close_orphan(intent(), state, BUDGET, NOW, "the service carries key k")
    assert closed.applied
    assert not closed.escalated
    assert closed.events == (
        Event(
            kind=EventKind.ACTION_APPLIED,
            ts=NOW,
            idempotency_key="tick-1:sim://api:restart:outcome",
            tick_id="tick-1",
            resource="sim://api",
            action_kind="restart",
            policy="heal",
            reason="unhealthy",
            payload={
                "params": {},
                "proposal": "unhealthy",
                "outcome": "ok",
                "detail": "applied before the process ended, found at start: "
                "the service carries key k",
                "error_kind": None,
                "error_code": None,
                "recovered": True,
                "intent_id": 7,
            },
            action_id="tick-1:sim://api:restart",
        ),
    )
    assert closed.state.consecutive_failures == 0
    assert not closed.state.quarantined
    assert closed.state.attempts == (T0,)


class HalfReadable:
    """An actuator that confirms the key of action ``a``; for any other its provider fails."""

    name = "half-readable"
    provider = "sim"
    action_kinds = frozenset({"restart"})

    async def observe(self, scope: object = None, /) -> list[object]:
        return []

    async def apply(self, action: object, key: str) -> object:
        raise AssertionError("recovery never applies")

    async def confirm_applied(self, target: object, kind: str, key: str) -> str | None:
        if key == idempotency_key("a"):
            return f"{target} carries {key}"
        raise ConnectionError("provider unreachable")

    async def aclose(self) -> None:
        return None


async def test_an_orphan_whose_provider_cannot_be_asked_stays_unknown() -> None:
    """A provider that fails to answer proves nothing: that orphan is unknown, a failure;
    the one it confirmed is applied."""
    from jarvis.loop.dispatch import Dispatcher

    store = await EventStore.in_memory()
    try:
        store.append([intent("a", T0), intent("b", T0 + timedelta(minutes=1))])
        await store.flush()
        dispatcher = Dispatcher([HalfReadable()], apply_timeout=5)  # type: ignore[list-item]
        closed = await recover(RetryLedger(store, BUDGET), NOW, None, dispatcher.confirmed)
        assert [[e.kind for e in c.events] for c in closed] == [
            [EventKind.ACTION_APPLIED],
            [EventKind.ACTION_UNKNOWN],
        ]
        assert closed[1].state.consecutive_failures == 1
    finally:
        await store.aclose()


class SlowProvider:
    """An actuator whose provider answers the key question slowly: every key of an action
    id in ``landed`` was made; the most questions it had in flight at once is ``most``."""

    name = "slow"
    provider = "sim"
    action_kinds = frozenset({"restart"})

    def __init__(self, landed: set[str], hang: bool = False) -> None:
        self.landed = {idempotency_key(a) for a in landed}
        self.hang = hang
        self.asked: list[str] = []
        self.in_flight = 0
        self.most = 0

    async def observe(self, scope: object = None, /) -> list[object]:
        return []

    async def apply(self, action: object, key: str) -> object:
        raise AssertionError("recovery never applies")

    async def confirm_applied(self, target: object, kind: str, key: str) -> str | None:
        self.asked.append(key)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            if self.hang:
                await anyio.sleep_forever()
            for _ in range(3):  # let every other question that may start, start
                await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
        return f"{target} carries {key}" if key in self.landed else None

    async def aclose(self) -> None:
        return None


async def orphans(store: EventStore, n: int) -> list[str]:
    ids = [f"o{i:02d}" for i in range(n)]
    store.append([intent(a, T0 + timedelta(seconds=i)) for i, a in enumerate(ids)])
    await store.flush()
    return ids


async def test_orphans_are_asked_together_a_bounded_number_at_once() -> None:
    """Twenty orphans on a slow provider: at most `QUESTIONS_AT_ONCE` questions in flight,
    not one after another; every one asked, each proof closing its own orphan as applied,
    and all closed oldest first on one pair's ledger row."""
    from jarvis.loop.dispatch import Dispatcher

    store = await EventStore.in_memory()
    try:
        ids = await orphans(store, 20)
        slow = SlowProvider(landed=set(ids[::2]))
        dispatcher = Dispatcher([slow], apply_timeout=60)  # type: ignore[list-item]
        closed = await recover(RetryLedger(store, BUDGET), NOW, None, dispatcher.confirmed)

        assert slow.most == QUESTIONS_AT_ONCE
        assert sorted(slow.asked) == sorted(idempotency_key(a) for a in ids)
        assert [c.intent.action_id for c in closed] == ids
        assert [c.applied for c in closed] == [i % 2 == 0 for i in range(20)]
    finally:
        await store.aclose()


async def test_orphans_not_asked_within_the_patience_stay_unknown_for_the_loop() -> None:
    """A provider that hangs: recovery waits out its patience and one question's bound, not
    one per orphan; the questions cut and those never started leave their orphans unknown
    (failed attempts, never applied), for the loop to ask about from its first tick."""
    from jarvis.loop.dispatch import Dispatcher

    store = await EventStore.in_memory()
    try:
        ids = await orphans(store, 20)
        hung = SlowProvider(landed=set(ids), hang=True)
        dispatcher = Dispatcher([hung], apply_timeout=2)  # type: ignore[list-item]
        ledger = RetryLedger(store, RetryBudget(max_attempts=30))
        with capture_logs() as logs:
            closed = await recover(ledger, NOW, None, dispatcher.confirmed, patience=1)

        assert len(hung.asked) == QUESTIONS_AT_ONCE  # the first eight; none after
        assert [c.intent.action_id for c in closed] == ids
        assert all(not c.applied for c in closed)
        assert ledger.get(("sim://api", "restart")) == closed[-1].state
        assert closed[-1].state.consecutive_failures == 20
        unasked = [e for e in logs if e["event"] == "orphaned intents not asked about"]
        assert unasked == [
            {
                "event": "orphaned intents not asked about",
                "log_level": "warning",
                "orphans": 20,
                "asked": 8,
                "proven": 0,
                "unasked": 12,
                "detail": "recovery asked about 8 of 20 orphaned intents within its 1 s "
                "(0 proven applied); 12 were not asked in time and are closed unknown, "
                "counted as failed attempts: the loop asks about them from its first tick",
            }
        ]
    finally:
        await store.aclose()


async def test_recovery_that_asks_about_every_orphan_logs_no_warning() -> None:
    """Every orphan asked within the patience, proven or not: no line about unasked ones."""
    from jarvis.loop.dispatch import Dispatcher

    store = await EventStore.in_memory()
    try:
        ids = await orphans(store, 3)
        slow = SlowProvider(landed={ids[0]})
        dispatcher = Dispatcher([slow], apply_timeout=60)  # type: ignore[list-item]
        with capture_logs() as logs:
            await recover(RetryLedger(store, BUDGET), NOW, None, dispatcher.confirmed)
        assert [e for e in logs if e["log_level"] == "warning"] == []
    finally:
        await store.aclose()
