"""Fleet-wide caps staged with an intent are counted in the transaction that writes it,
alike on every backend (`jarvis.store.fleetcap`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jarvis.model import BlockReason, Event, EventKind
from jarvis.store import EventStore
from jarvis.store.fleetcap import Cap, FleetCapError
from tests.store.test_events import T0, event

pytestmark = pytest.mark.anyio


def intent(key: str, resource: str, at: datetime = T0) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=at,
        idempotency_key=key,
        resource=resource,
        action_kind="scale",
        action_id=key,
    )


def at_most(limit: int, since: datetime = T0) -> Cap:
    return Cap(
        BlockReason.BOUNDS,
        limit,
        since=since,
        counts=lambda ts, _resource, _kind: ts >= since,
        detail=lambda used: f"{used} of {limit}",
    )


async def test_an_intent_past_a_cap_is_refused_by_whichever_flush_takes_it(
    store: EventStore,
) -> None:
    """The second intent under a cap of 1 raises with the cap's block; nothing of its
    flush is written and it is not an outage. The intent stays buffered with its caps
    (another task's flush may have taken it) until the caller retracts it."""
    store.append([intent("a", "sim://a")])
    store.stage_caps("a", [at_most(1)])
    await store.flush()
    store.append([event("fact"), intent("b", "sim://b", T0 + timedelta(seconds=1))])
    store.stage_caps("b", [at_most(1)])
    for _ in range(2):
        with pytest.raises(FleetCapError) as refused:
            await store.flush()
        assert refused.value.verdict.reason is BlockReason.BOUNDS
        assert refused.value.verdict.detail == "1 of 1"
        assert store.write_error is None
        assert [e.idempotency_key for e in await store.events()] == ["a"]
    store.retract("b")
    await store.flush()
    assert [e.idempotency_key for e in await store.events()] == ["a", "fact"]


async def test_caps_count_only_intents_inside_their_window(store: EventStore) -> None:
    """An intent older than the cap's window does not count against it."""
    store.append([intent("old", "sim://a", T0 - timedelta(minutes=5))])
    await store.flush()
    store.append([intent("new", "sim://b")])
    store.stage_caps("new", [at_most(1)])
    await store.flush()
    assert [e.idempotency_key for e in await store.events()] == ["old", "new"]
