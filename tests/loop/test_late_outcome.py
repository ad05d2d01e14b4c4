"""A real outcome that arrives after recovery closed its intent as unknown is recorded.

Before, `action.unknown` took the outcome's idempotency key, so the process
that really did apply the action (a paused leader, a one-shot command's
neighbour) had its `action.applied` silently dropped by the unique key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jarvis.loop import events as ev
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.recovery import recover
from jarvis.model import Action, EventKind, Outcome, ResourceRef, Restart
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def test_a_late_real_outcome_after_unknown_is_recorded_and_wins(sqlite_url: str) -> None:
    store = await EventStore.connect(sqlite_url, auto_migrate=True)
    try:
        action = Action(
            target=ResourceRef.parse("sim://api"),
            params=Restart(),
            policy="heal",
            reason="unhealthy",
        )
        tick_id = ev.tick_id_for(T0, "leader1")
        action_id = ev.action_id_for(tick_id, action)
        store.append([ev.started(tick_id, T0, action, action_id)])
        await store.flush()

        # Another process takes over and closes the intent as unknown.
        ledger = RetryLedger(store, RetryBudget(max_attempts=3))
        for closed in await recover(ledger, T0 + timedelta(seconds=30)):
            store.append(closed.events)
        await store.flush()

        # The first process wakes and records what the provider really said.
        late = T0 + timedelta(seconds=40)
        store.append([ev.outcome_event(tick_id, late, action, action_id, Outcome.success("ok"))])
        await store.flush()

        kinds = [e.kind for e in await store.events(limit=10) if e.action_id == action_id]
        assert kinds == [
            EventKind.ACTION_STARTED,
            EventKind.ACTION_UNKNOWN,
            EventKind.ACTION_APPLIED,
        ]
        assert await store.open_intents() == []
    finally:
        await store.aclose()
