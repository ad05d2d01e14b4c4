"""Fleet-wide caps staged with an intent are counted in the transaction that writes it,
alike on every backend (`jarvis.store.fleetcap`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jarvis.loop import events as ev
from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Event,
    EventKind,
    Outcome,
    ResourceRef,
    Scale,
)
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


def closed(intent_event: Event, outcome: Outcome) -> Event:
    """The outcome the loop writes for ``intent_event`` (`jarvis.loop.events.outcome_event`)."""
    action = Action(
        ResourceRef.parse(intent_event.resource or ""), Scale(replicas=2), "heal", "why"
    )
    action_id = intent_event.action_id or ""
    return ev.outcome_event("tick", intent_event.ts, action, action_id, outcome)


async def test_an_intent_the_kill_switch_withheld_counts_against_no_cap(
    store: EventStore,
) -> None:
    """A withheld intent (`Outcome.withheld`) reached no provider: a cap counts only
    the intents still open or sent, a failed one among them, as the guard's
    pre-check (`jarvis.loop.budgets.ChangeLog`) does."""
    withheld, failed = intent("w", "sim://a"), intent("f", "sim://b")
    store.append([withheld, failed])
    await store.flush()
    store.append([closed(withheld, Outcome.withheld(BlockReason.KILLSWITCH, "engaged"))])
    store.append([closed(failed, Outcome.failure("throttled", code="Throttling"))])
    await store.flush()
    store.append([intent("c", "sim://c", T0 + timedelta(seconds=1))])
    store.stage_caps("c", [at_most(2)])
    await store.flush()
    store.append([intent("d", "sim://d", T0 + timedelta(seconds=2))])
    store.stage_caps("d", [at_most(2)])
    with pytest.raises(FleetCapError) as refused:
        await store.flush()
    assert refused.value.verdict.detail == "2 of 2"


async def test_an_intent_whose_target_was_gone_counts_against_no_cap(
    store: EventStore,
) -> None:
    """An intent closed gone (`Outcome.gone`: its target deleted since observe) changed
    nothing: as the guard's pre-check, a cap leaves it out, and counts an unknown one."""
    gone, unknown = intent("g", "sim://a"), intent("u", "sim://b")
    store.append([gone, unknown])
    await store.flush()
    deleted = Outcome.failure("sim://a not found", kind=ErrorKind.GONE, code="NotFound")
    store.append([closed(gone, deleted), closed(unknown, Outcome.timed_out("no answer"))])
    await store.flush()
    store.append([intent("c", "sim://c", T0 + timedelta(seconds=1))])
    store.stage_caps("c", [at_most(2)])
    await store.flush()
    store.append([intent("d", "sim://d", T0 + timedelta(seconds=2))])
    store.stage_caps("d", [at_most(2)])
    with pytest.raises(FleetCapError) as refused:
        await store.flush()
    assert refused.value.verdict.detail == "2 of 2"
