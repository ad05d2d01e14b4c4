"""The simulation's in-memory backend: what it does that the SQL one does not.

Everything they share is pinned by the `store` fixture, which runs the store
tests on SQLite, PostgreSQL and this backend alike.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from jarvis.model import BlockReason, Event, EventKind, RetryState
from jarvis.store import EventStore, FlushResult, MemoryBackend, StoreError
from jarvis.store.fleetcap import Cap, FleetCapError

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ev(key: str, kind: EventKind = EventKind.RESOURCE_CHANGED, **fields: str) -> Event:
    return Event(kind=kind, ts=T0, idempotency_key=key, **fields)  # type: ignore[arg-type]


async def test_an_unavailable_backend_spools_then_replays_in_order_once(tmp_path: Path) -> None:
    """Events flushed while the backend is away wait in the spool and land in order, once."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(spool_path=tmp_path / "spool.jsonl", backend=backend)
    store.append([ev("before-1"), ev("before-2")])
    assert await store.flush() == FlushResult(written=2, spooled=0)

    backend.available = False
    store.append([ev("down-1"), ev("before-2")])
    retry = RetryState("sim://a", "restart", attempts=(T0,), consecutive_failures=1)
    store.stage_retry(retry)
    assert await store.flush() == FlushResult(written=0, spooled=2)
    with pytest.raises(StoreError, match="in-memory database"):
        await store.events()
    with pytest.raises(StoreError, match="in-memory database"):
        await store.load_retries()

    backend.available = True
    store.append([ev("after-1")])
    assert await store.flush() == FlushResult(written=3, spooled=0, replayed=2)
    assert [e.idempotency_key for e in await store.events()] == [
        "before-1", "before-2", "down-1", "after-1"
    ]  # fmt: skip
    assert await store.load_retries() == {("sim://a", "restart"): retry}


async def test_without_a_spool_an_unavailable_backend_raises_and_keeps_the_buffer() -> None:
    """With nowhere to park them, the events stay buffered and the error names the store."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(backend=backend)
    backend.available = False
    store.append([ev("a")])
    with pytest.raises(StoreError, match="cannot reach the in-memory database"):
        await store.flush()
    backend.available = True
    assert await store.flush() == FlushResult(written=1, spooled=0)


async def test_only_the_newest_events_are_retained_but_counts_stay_exact() -> None:
    """Past the retention, the oldest events go; ids, paging and counts are unaffected."""
    store = await EventStore.in_memory(backend=MemoryBackend(retain=10))
    for batch in range(5):
        store.append([ev(f"e{batch}-{i}", EventKind.TICK_STARTED) for i in range(7)])
        await store.flush()
    assert await store.count_events() == 35
    assert await store.count_events([EventKind.TICK_STARTED.value]) == 35
    kept = await store.events(limit=100)
    assert 10 <= len(kept) <= 15
    assert kept[-1].idempotency_key == "e4-6"
    assert kept[-1].id == 35
    assert [e.id for e in await store.events(after_id=32)] == [33, 34, 35]


async def test_an_open_intent_stays_open_until_its_outcome_even_when_evicted() -> None:
    """Retention never hides an intent a crash left without an outcome."""
    store = await EventStore.in_memory(backend=MemoryBackend(retain=2))
    store.append([ev("s1", EventKind.ACTION_STARTED, action_id="a1")])
    store.append([ev(f"filler-{i}") for i in range(10)])
    store.append([ev("s2", EventKind.ACTION_STARTED, action_id="a2")])
    store.append([ev("o2", EventKind.ACTION_APPLIED, action_id="a2")])
    await store.flush()
    assert [e.action_id for e in await store.open_intents()] == ["a1"]


async def test_fleet_caps_count_the_retained_intents_as_trimming_drops_the_oldest() -> None:
    """A cap counts the intents still retained, the same before and after a trim.

    The backend keeps its intents apart from the events it scans for reads; this
    holds that index to a plain count over what `events` returns, less the
    intents a withheld outcome closed (`Event.withheld`)."""
    backend = MemoryBackend(retain=6)
    cap = Cap(BlockReason.BUDGET, 4, T0, lambda *_: True, lambda used: f"{used} intents")
    for i in range(40):
        kept = await backend.events(limit=99, kinds=None, resource=None, after_id=None, since=None)
        unsent = {e.action_id for e in kept if e.withheld is not None}
        retained = [
            e for e in kept if e.kind is EventKind.ACTION_STARTED and e.action_id not in unsent
        ]
        intent = ev(f"s{i}", EventKind.ACTION_STARTED, action_id=f"a{i}")
        filler = [ev(f"f{i}-{j}") for j in range(i % 3)]
        if i % 4 == 1:
            filler.append(withheld(f"a{i}"))
        try:
            await backend.write([intent], [], caps=[cap])
        except FleetCapError:
            assert len(retained) >= cap.limit, i
            await backend.write(filler, [])  # pushes the oldest intents out
        else:
            assert len(retained) < cap.limit, i
            await backend.write(filler, [])


def withheld(action_id: str) -> Event:
    """The outcome closing ``action_id``'s intent unsent (`jarvis.model.Outcome.withheld`)."""
    payload = {"outcome": "failed", "error_kind": None, "error_code": "killswitch"}
    return Event(
        EventKind.ACTION_FAILED, T0, f"{action_id}:outcome", action_id=action_id, payload=payload
    )


async def test_events_read_back_as_a_database_gives_them() -> None:
    """Times come back in UTC and payloads as their JSON, as from a real database."""
    store = await EventStore.in_memory()
    local = datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    store.append([Event(EventKind.TICK_STARTED, local, "k", payload={"pair": (1, 2), "n": 1.5})])
    await store.flush()
    [stored] = await store.events()
    assert stored.ts == local
    assert stored.ts.utcoffset() == timedelta(0)
    assert stored.payload == {"pair": [1, 2], "n": 1.5}


async def test_a_stored_event_keeps_every_field() -> None:
    """Each field of `Event` is stored as given; only the id and the time zone are the store's."""
    local = datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    given = {
        "kind": EventKind.ACTION_APPLIED,
        "ts": local,
        "idempotency_key": "k",
        "tick_id": "tick",
        "resource": "sim://a",
        "action_kind": "restart",
        "policy": "heal",
        "reason": "why",
        "payload": {"n": [1, {"m": "x"}]},
        "action_id": "act-1",
        "id": None,
    }
    assert given.keys() == {f.name for f in fields(Event)}, "give the new field a value here"
    original = Event(**given)  # type: ignore[arg-type]
    store = await EventStore.in_memory()
    store.append([original])
    await store.flush()
    [stored] = await store.events()
    assert stored == replace(original, id=1)
    assert stored.ts.utcoffset() == timedelta(0)


async def test_a_non_json_payload_fails_the_whole_flush() -> None:
    """One unencodable event raises and nothing of its batch is stored, as in a transaction."""
    store = await EventStore.in_memory()
    store.append([ev("good"), Event(EventKind.TICK_STARTED, T0, "bad", payload={"x": object()})])
    with pytest.raises(TypeError):
        await store.flush()
    assert await store.count_events() == 0
