"""Appending, flushing and querying events on both backends."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from jarvis.model import Event, EventKind
from jarvis.store import EventStore, FlushResult

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(
    key: str,
    kind: EventKind = EventKind.TICK_STARTED,
    *,
    resource: str | None = None,
    action_id: str | None = None,
    at: datetime = T0,
) -> Event:
    return Event(kind=kind, ts=at, idempotency_key=key, resource=resource, action_id=action_id)


async def test_flush_round_trips_every_event_field(store: EventStore) -> None:
    """An event read back equals the one appended, every field included, with an id."""
    original = Event(
        kind=EventKind.ACTION_FAILED,
        ts=datetime(2025, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        idempotency_key="tick-7:sim://api:scale:outcome",
        tick_id="tick-7",
        resource="sim://api",
        action_kind="scale",
        policy="scaling",
        reason="cpu 91% > 80% for 3 ticks — scale out",
        payload={
            "replicas": {"from": 2, "to": 4},
            "ratio": 0.25,
            "ok": False,
            "tags": ["a", "ü"],
            "none": None,
        },
        action_id="act-42",
    )
    assert await store.flush() == FlushResult(written=0, spooled=0)
    store.append([original])
    assert await store.flush() == FlushResult(written=1, spooled=0)

    [stored] = await store.events()
    assert stored.id is not None
    assert stored == dataclasses.replace(original, id=stored.id)
    assert stored.ts.utcoffset() == timedelta(0)
    assert isinstance(stored.kind, EventKind)


async def test_duplicate_idempotency_key_is_written_once(store: EventStore) -> None:
    """The same idempotency key, in one flush or across flushes, makes one row."""
    store.append([event("a"), event("a"), event("b")])
    await store.flush()
    store.append([event("a")])
    await store.flush()
    assert [e.idempotency_key for e in await store.events()] == ["a", "b"]
    assert await store.count_events() == 2


async def test_a_flush_with_some_stored_keys_writes_the_new_ones_in_order(
    store: EventStore,
) -> None:
    """A replay mixed with new events (PostgreSQL's direct COPY then fails on the key and
    the flush falls back to the deduplicating path) stores each new one once, in order,
    and the next all-new flush goes on from there."""
    store.append([event("a"), event("b")])
    await store.flush()
    store.append([event("c"), event("a"), event("d"), event("d")])
    await store.flush()
    store.append([event("e"), event("f")])
    await store.flush()
    stored = await store.events()
    assert [e.idempotency_key for e in stored] == ["a", "b", "c", "d", "e", "f"]
    ids = [e.id for e in stored if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert await store.count_events() == 6


async def test_events_without_after_id_are_the_last_ones_oldest_first(store: EventStore) -> None:
    """Without after_id, `limit` picks the newest matching events, returned in id order."""
    store.append([event(f"e{i}") for i in range(10)])
    await store.flush()
    found = await store.events(limit=3)
    assert [e.idempotency_key for e in found] == ["e7", "e8", "e9"]
    assert [e.id for e in found] == sorted(e.id for e in found if e.id is not None)


async def test_after_id_pages_forward_through_events(store: EventStore) -> None:
    """With after_id, each page is the next `limit` events after the last one seen."""
    store.append([event(f"e{i}") for i in range(7)])
    await store.flush()
    seen: list[str] = []
    cursor = 0
    while page := await store.events(after_id=cursor, limit=3):
        seen.extend(e.idempotency_key for e in page)
        last_id = page[-1].id
        assert last_id is not None
        cursor = last_id
    assert seen == [f"e{i}" for i in range(7)]


async def test_events_filter_by_kind_resource_and_time(store: EventStore) -> None:
    """kinds, resource and since narrow the result; they combine."""
    store.append(
        [
            event("t1", EventKind.TICK_STARTED, at=T0),
            event("c1", EventKind.RESOURCE_CHANGED, resource="sim://a", at=T0),
            event("c2", EventKind.RESOURCE_CHANGED, resource="sim://b", at=T0 + timedelta(1)),
            event("p1", EventKind.ACTION_PROPOSED, resource="sim://a", at=T0 + timedelta(2)),
        ]
    )
    await store.flush()

    def keys(found: list[Event]) -> list[str]:
        return [e.idempotency_key for e in found]

    changed = await store.events(kinds=[EventKind.RESOURCE_CHANGED])
    assert keys(changed) == ["c1", "c2"]
    assert keys(await store.events(resource="sim://a")) == ["c1", "p1"]
    assert keys(await store.events(since=T0 + timedelta(hours=1))) == ["c2", "p1"]
    assert keys(
        await store.events(kinds=["resource.changed", "action.proposed"], resource="sim://a")
    ) == ["c1", "p1"]
    assert await store.count_events([EventKind.RESOURCE_CHANGED, EventKind.TICK_STARTED]) == 3


async def test_open_intents_are_started_actions_without_an_outcome(store: EventStore) -> None:
    """An `action.started` with no outcome for its action id is open; one with an outcome is not."""
    store.append(
        [
            event("s1", EventKind.ACTION_STARTED, resource="sim://a", action_id="act-1"),
            event("s2", EventKind.ACTION_STARTED, resource="sim://b", action_id="act-2"),
            event("s3", EventKind.ACTION_STARTED, resource="sim://c", action_id="act-3"),
            event("o2", EventKind.ACTION_APPLIED, resource="sim://b", action_id="act-2"),
            event("o3", EventKind.ACTION_UNKNOWN, resource="sim://c", action_id="act-3"),
            # An outcome for a different action closes nothing.
            event("o9", EventKind.ACTION_FAILED, resource="sim://a", action_id="act-9"),
        ]
    )
    await store.flush()
    assert [e.action_id for e in await store.open_intents()] == ["act-1"]
    store.append([event("o1", EventKind.ACTION_FAILED, resource="sim://a", action_id="act-1")])
    await store.flush()
    assert await store.open_intents() == []


async def test_a_naive_timestamp_raises_and_keeps_the_buffer(store: EventStore) -> None:
    """A programming error is raised, not spooled, and the events stay buffered."""
    naive = Event(kind=EventKind.TICK_STARTED, ts=datetime(2025, 1, 1), idempotency_key="n")  # noqa: DTZ001 - the error under test
    store.append([naive])
    with pytest.raises((ValueError, StatementError), match="naive"):
        await store.flush()
    assert store.spooled == 0
    assert await store.count_events() == 0


async def test_a_bad_event_late_in_a_big_batch_writes_none_of_the_batch(
    store: EventStore,
) -> None:
    """PostgreSQL streams a big batch's COPY as it builds each row: one that cannot be
    built, after many that were sent, still leaves nothing written and the store usable."""
    good = [event(f"g{i}", resource=f"sim://svc-{i}") for i in range(8_000)]
    naive = Event(kind=EventKind.TICK_STARTED, ts=datetime(2025, 1, 1), idempotency_key="n")  # noqa: DTZ001 - the error under test
    store.append([*good, naive])
    with pytest.raises((ValueError, StatementError), match="naive"):
        await store.flush()
    assert store.spooled == 0
    assert await store.count_events() == 0
    assert await store.events(limit=5) == []
