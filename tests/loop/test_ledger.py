"""The retry ledger on its own: its decisions, its staging, and its per-tick refresh."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from jarvis.loop.ledger import RetryLedger, exhaustion, log_resets, quarantined_count
from jarvis.model import Action, Event, EventKind, Outcome, ResourceRef, Restart, RetryState
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore, MemoryBackend

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
BUDGET = RetryBudget(max_attempts=3, window=timedelta(hours=1))
RESTART = Action(ResourceRef("sim", "api"), Restart(), "heal", "unhealthy")


def spent(n: int = 3, failures: int = 0) -> RetryState:
    attempts = tuple(T0 + timedelta(minutes=i) for i in range(n))
    return RetryState("sim://api", "restart", attempts=attempts, consecutive_failures=failures)


def test_a_budget_with_attempts_left_is_not_exhausted() -> None:
    """Two attempts of three in the window, or no row at all, lead to no quarantine."""
    assert exhaustion(BUDGET, spent(2), T0 + timedelta(minutes=5)) is None
    assert exhaustion(BUDGET, None, T0) is None


def test_a_spent_budget_quarantines_with_the_attempts_and_why() -> None:
    """Every attempt of the window spent quarantines the pair and says how many did not fix it."""
    now = T0 + timedelta(minutes=5)
    result = exhaustion(BUDGET, spent(3), now)
    assert result is not None
    assert result.attempts == 3
    assert result.reason == "3 attempts in the window did not fix it"
    assert result.state == replace(
        spent(3), quarantined=True, last_error=result.reason, updated_at=now
    )


def test_a_quarantined_pair_is_not_exhausted_again() -> None:
    """Once quarantined, a pair does not escalate a second time."""
    assert exhaustion(BUDGET, replace(spent(3), quarantined=True), T0) is None


def test_quarantined_count_counts_resources_not_pairs() -> None:
    """Two quarantined action kinds of one resource count as one quarantined resource."""
    states = {
        ("sim://api", "restart"): replace(spent(), quarantined=True),
        ("sim://api", "scale"): replace(spent(), action_kind="scale", quarantined=True),
        ("sim://web", "restart"): replace(spent(), resource="sim://web"),
    }
    assert quarantined_count(states) == 1


async def test_an_attempt_and_its_failure_are_staged_for_the_next_flush() -> None:
    """What the ledger stages reaches the store on the next flush, and is held meanwhile."""
    store = await EventStore.in_memory()
    ledger = RetryLedger(store, BUDGET)
    state = ledger.attempted(RESTART, T0)
    state, escalate = ledger.finished(state, Outcome.failure("boom"), T0 + timedelta(seconds=1))
    assert not escalate
    assert ledger.get(RESTART.key) == state
    assert await store.load_retries() == {}
    await store.flush()
    assert await store.load_retries() == {RESTART.key: state}


async def test_exhaust_stages_the_quarantine_only_when_the_budget_is_spent() -> None:
    """`exhaust` leaves a pair with attempts left alone and quarantines a spent one."""
    store = await EventStore.in_memory()
    ledger = RetryLedger(store, BUDGET)
    ledger.stage(spent(2))
    assert ledger.exhaust(RESTART.key, T0 + timedelta(minutes=5)) is None
    ledger.stage(spent(3))
    result = ledger.exhaust(RESTART.key, T0 + timedelta(minutes=5))
    assert result is not None and ledger.get(RESTART.key) == result.state
    assert ledger.quarantined == 1


async def test_undoing_a_first_attempt_already_written_leaves_no_attempt_in_the_store() -> None:
    """An attempt made durable and then not made (withheld) is taken back in the stored row."""
    store = await EventStore.in_memory()
    ledger = RetryLedger(store, BUDGET)
    attempted = ledger.attempted(RESTART, T0)
    await store.flush()
    assert (await store.load_retries())[RESTART.key].attempts == (T0,)

    ledger.undo(attempted, None)
    await store.flush()

    stored = (await store.load_retries())[RESTART.key]
    assert (stored.attempts, stored.consecutive_failures, stored.quarantined) == ((), 0, False)
    assert BUDGET.check(stored, T0).allowed
    assert ledger.get(RESTART.key) == stored


async def test_refresh_takes_a_reset_made_by_another_process() -> None:
    """A row deleted in the store by `jarvis retries reset` is gone after the next refresh."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(backend=backend)
    ledger = RetryLedger(store, BUDGET)
    ledger.stage(spent())
    await store.flush()
    other = await EventStore.in_memory(backend=backend)
    assert await other.reset_retries("sim://api") == 1

    await ledger.refresh(store.flush)
    assert ledger.states == {}


async def test_refresh_keeps_the_in_memory_ledger_while_events_stay_spooled(
    tmp_path: Path,
) -> None:
    """During an outage the refresh flushes first; still spooled, the in-memory rows stand."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(spool_path=tmp_path / "spool.jsonl", backend=backend)
    ledger = RetryLedger(store, BUDGET)
    backend.available = False
    store.append([Event(kind=EventKind.TICK_STARTED, ts=T0, idempotency_key="t1")])
    ledger.stage(spent(failures=1))
    await store.flush()
    assert store.spooled == 1
    flushes: list[int] = []

    async def flush() -> None:
        flushes.append(store.spooled)
        await store.flush()

    await ledger.refresh(flush)
    assert flushes == [1]
    assert ledger.get(RESTART.key) == spent(failures=1)

    # Back: the spool and the staged row are written first, so the re-read has them.
    backend.available = True
    await ledger.refresh(flush)
    assert store.spooled == 0
    assert await store.load_retries() == {RESTART.key: spent(failures=1)}
    assert ledger.get(RESTART.key) == spent(failures=1)


def test_log_resets_names_each_row_cleared_elsewhere_and_nothing_when_none_was() -> None:
    """A lifted quarantine (row kept or gone) and a deleted row are logged; a same ledger is not."""
    lifted = replace(spent(), resource="sim://kept", quarantined=True)
    gone = replace(spent(), resource="sim://gone", quarantined=True)
    plain = spent()
    before = {(s.resource, s.action_kind): s for s in (lifted, gone, plain)}
    key = ("sim://kept", "restart")
    after = {key: replace(lifted, quarantined=False)}
    with capture_logs() as logs:
        log_resets(before, dict(before))
        log_resets(before, {key: replace(state) for key, state in before.items()})
    assert logs == []
    with capture_logs() as logs:
        log_resets(before, after)
    assert [(entry["event"], entry["resource"]) for entry in logs] == [
        ("retry record reset", "sim://api"),
        ("quarantine lifted", "sim://gone"),
        ("quarantine lifted", "sim://kept"),
    ]
    with capture_logs() as logs:
        log_resets({key: lifted}, {key: after[key]})
    assert [entry["event"] for entry in logs] == ["quarantine lifted"]


async def test_an_unreadable_store_without_a_spool_leaves_the_ledger_as_it_was() -> None:
    """A failed re-read is logged and the in-memory ledger stands."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(backend=backend)
    ledger = RetryLedger(store, BUDGET)
    ledger.stage(spent())
    backend.available = False
    await ledger.refresh(store.flush)
    assert ledger.get(RESTART.key) == spent()


def test_a_spent_budget_on_a_target_no_longer_broken_does_not_escalate() -> None:
    """Three scales that each did what they asked hold the next one, and page nobody."""
    now = T0 + timedelta(minutes=5)
    assert exhaustion(BUDGET, spent(3), now, broken=False) is None
    assert exhaustion(BUDGET, spent(3), now, broken=True) is not None
