"""Policies' history from the store: events by event time, and the window cached in front.

Every case runs on SQLite, PostgreSQL and the in-memory backend (the `store` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jarvis.model import Event, EventHistory, EventKind
from jarvis.store import EventStore
from jarvis.store.history import StoreHistory

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CHANGED = EventKind.RESOURCE_CHANGED
FAILED = EventKind.ACTION_FAILED
KINDS = (CHANGED.value, FAILED.value)


def event(
    key: str, minutes: float, kind: EventKind = CHANGED, resource: str = "sim://api"
) -> Event:
    return Event(
        kind=kind, ts=T0 + timedelta(minutes=minutes), idempotency_key=key, resource=resource
    )


def keys(events: list[Event] | tuple[Event, ...]) -> list[str]:
    return [e.idempotency_key for e in events]


async def write(store: EventStore, *events: Event) -> None:
    store.append(events)
    await store.flush()


async def test_events_by_time_come_back_in_time_order_when_ids_are_not(
    store: EventStore,
) -> None:
    """Rows written out of time order (a late spool replay) are read back by ts, then id."""
    await write(store, event("late", 3), event("early", 1), event("tie-a", 2), event("tie-b", 2))
    found = await store.events_by_time()
    assert keys(found) == ["early", "tie-a", "tie-b", "late"]
    assert keys(await store.events(limit=10)) == ["late", "early", "tie-a", "tie-b"]


async def test_events_by_time_filter_by_kind_resource_and_range(store: EventStore) -> None:
    """Kinds, resource and the inclusive [since, until] range narrow the answer."""
    await write(
        store,
        event("a", 1),
        event("b", 2, FAILED),
        event("c", 3, resource="sim://web"),
        event("d", 4),
        event("e", 5, EventKind.TICK_STARTED),
    )
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)
    assert keys(await store.events_by_time(kinds=KINDS, since=since, until=until)) == [
        "b",
        "c",
        "d",
    ]
    assert keys(await store.events_by_time(resource="sim://api", kinds=[CHANGED.value])) == [
        "a",
        "d",
    ]


async def test_events_by_time_with_a_limit_keep_the_newest(store: EventStore) -> None:
    """A limit keeps the newest events by time, still oldest first."""
    await write(store, event("c", 3), event("a", 1), event("d", 4), event("b", 2))
    assert keys(await store.events_by_time(limit=2)) == ["c", "d"]


async def test_load_fills_the_window_in_time_order(store: EventStore) -> None:
    """At start the window holds the newest events of its kinds since the horizon, by time."""
    await write(
        store,
        event("old", -100),
        event("late", 3),
        event("early", 1, FAILED),
        event("other-kind", 2, EventKind.TICK_STARTED),
    )
    history = StoreHistory(store, kinds=KINDS, size=10)
    await history.load(T0)
    assert keys(history.window) == ["early", "late"]


async def test_an_event_older_than_the_window_is_found_through_the_store(
    store: EventStore,
) -> None:
    """The window drops what it cannot hold; asking further back reaches the store."""
    await write(store, *(event(f"e{i}", i) for i in range(5)))
    history = StoreHistory(store, kinds=KINDS, size=3)
    await history.load(T0 - timedelta(hours=1))
    assert keys(history.window) == ["e2", "e3", "e4"]

    seam: EventHistory = history  # the store's implementation of the model's protocol
    found = list(await seam.events_since(T0, kinds=[CHANGED.value]))
    assert keys(found) == ["e0", "e1", "e2", "e3", "e4"]
    found = await history.events_since(T0 + timedelta(minutes=1), kinds=[CHANGED.value])
    assert keys(found) == ["e1", "e2", "e3", "e4"]


async def test_the_window_answers_what_it_holds_without_the_store(store: EventStore) -> None:
    """A range the window covers is served from memory, unflushed events included."""
    await write(store, event("stored", 1))
    history = StoreHistory(store, kinds=KINDS, size=10)
    await history.load(T0)
    appended = event("recorded", 2, FAILED)
    store.append([appended])  # buffered, not flushed: only the window knows it
    history.append(appended)

    assert keys(await history.events_since(T0, kinds=KINDS)) == ["stored", "recorded"]
    assert keys(await history.events_since(T0, kinds=[FAILED.value])) == ["recorded"]
    assert keys(await history.events_since(T0, kinds=KINDS, resource="sim://web")) == []


async def test_appending_past_the_size_moves_the_window_and_the_store_fills_in(
    store: EventStore,
) -> None:
    """Events pushed out of a full window are still found, through the store, in time order."""
    history = StoreHistory(store, kinds=KINDS, size=2)
    await history.load(T0)
    for i in range(4):
        recorded = event(f"r{i}", i)
        await write(store, recorded)
        history.append(recorded)
    assert keys(history.window) == ["r2", "r3"]
    assert keys(await history.events_since(T0, kinds=KINDS)) == ["r0", "r1", "r2", "r3"]


async def test_kinds_outside_the_window_are_asked_of_the_store(store: EventStore) -> None:
    """A kind the window does not hold, or every kind, is answered by the store alone."""
    await write(store, event("tick", 1, EventKind.TICK_STARTED), event("changed", 2))
    history = StoreHistory(store, kinds=KINDS, size=10)
    await history.load(T0)
    assert keys(await history.events_since(T0, kinds=[EventKind.TICK_STARTED.value])) == ["tick"]
    assert keys(await history.events_since(T0)) == ["tick", "changed"]


async def test_forgetting_past_the_horizon_leaves_what_a_restart_would_load(
    store: EventStore,
) -> None:
    """A window kept live for days, cut at the horizon, is the window a restart loads then.

    Policies decide the same after a restart as before it, and memory stops
    growing once the horizon is full (the simulated month's window had held
    a week of 50 services' events).
    """
    live = StoreHistory(store, kinds=KINDS, size=100)
    await live.load(T0)
    for i, minutes in enumerate([0, 60, 120, 120, 180, 240]):
        recorded = event(f"r{i}", minutes, FAILED if i % 2 else CHANGED)
        await write(store, recorded)
        live.append(recorded)
    cut = T0 + timedelta(minutes=120)
    live.forget_before(cut)
    restarted = StoreHistory(store, kinds=KINDS, size=100)
    await restarted.load(cut)
    assert keys(live.window) == keys(restarted.window) == ["r2", "r3", "r4", "r5"]
    # What was forgotten is still the store's to answer.
    found = await live.events_since(T0, kinds=KINDS)
    assert keys(found) == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert keys(await live.events_since(cut, kinds=KINDS)) == ["r2", "r3", "r4", "r5"]
