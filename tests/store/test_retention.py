"""Event retention on SQLite and PostgreSQL: what goes, and what always stays."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jarvis.config.sections import KindRetention, RetentionSettings
from jarvis.model import Event, EventKind, RetryState
from jarvis.notify.groups import Silence
from jarvis.notify.silences import active_silences, added_event, expired_event
from jarvis.store import EventStore
from jarvis.store.backend import OUTCOME_KINDS

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HORIZON = NOW - timedelta(days=1)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def event(kind: EventKind, ts: datetime, key: str, **fields: Any) -> Event:
    return Event(kind=kind, ts=ts, idempotency_key=key, **fields)


@pytest.fixture
async def sql_store(db_url: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    store = await EventStore.connect(db_url, spool_path=tmp_path / "spool.jsonl", auto_migrate=True)
    try:
        yield store
    finally:
        await store.aclose()


async def write(store: EventStore, events: Sequence[Event]) -> None:
    store.append(events)
    await store.flush()


async def keys(store: EventStore, *kinds: EventKind) -> list[str]:
    found = await store.events(limit=100_000, kinds=[k.value for k in kinds] or None)
    return [e.idempotency_key for e in found]


async def test_events_older_than_their_kind_allows_go_and_the_newest_stays(
    sql_store: EventStore,
) -> None:
    """Age per kind, with per-kind overrides; the newest event of a kind is never deleted."""
    await write(
        sql_store,
        [
            event(EventKind.TICK_STARTED, days_ago(40), "tick-old"),
            event(EventKind.TICK_STARTED, days_ago(35), "tick-old-2"),
            event(EventKind.TICK_STARTED, days_ago(2), "tick-young"),
            event(EventKind.RESOURCE_CHANGED, days_ago(10), "changed-10d"),
            event(EventKind.RESOURCE_CHANGED, days_ago(3), "changed-3d"),
            event(EventKind.KILLSWITCH_ENGAGED, days_ago(90), "engaged-only"),
        ],
    )
    retention = RetentionSettings(kinds={"resource.changed": KindRetention(max_age_days=7)})
    deleted = await sql_store.prune(retention, now=NOW, keep_after=HORIZON)
    assert deleted == {"tick.started": 2, "resource.changed": 1}
    assert await keys(sql_store) == ["tick-young", "changed-3d", "engaged-only"]


async def test_a_kind_keeps_its_newest_max_count_but_never_inside_the_horizon(
    sql_store: EventStore,
) -> None:
    """Past the count the oldest go first; nothing younger than the horizon goes."""
    await write(
        sql_store,
        [
            event(EventKind.TICK_FINISHED, days_ago(3) + timedelta(seconds=i), f"f{i}")
            for i in range(1_050)
        ]
        + [
            event(EventKind.TICK_FINISHED, NOW - timedelta(minutes=i), f"young{i}")
            for i in range(20)
        ],
    )
    retention = RetentionSettings(max_count=1_000)
    deleted = await sql_store.prune(retention, now=NOW, keep_after=HORIZON)
    assert deleted == {"tick.finished": 70}
    assert (await keys(sql_store))[:2] == ["f70", "f71"]
    # Over the count by 1,000 young ones: the horizon protects them all.
    again = await sql_store.prune(
        RetentionSettings(max_count=1_000), now=NOW, keep_after=days_ago(3) - timedelta(hours=1)
    )
    assert again == {}


async def test_open_intents_and_the_outcomes_of_kept_intents_stay(sql_store: EventStore) -> None:
    """An open intent stays; a closed pair goes together; no outcome leaves its intent behind."""
    old = days_ago(60)
    await write(
        sql_store,
        [
            event(EventKind.ACTION_STARTED, old, "open", action_id="a-open", resource="sim://x"),
            event(
                EventKind.ACTION_STARTED, old, "closed", action_id="a-closed", resource="sim://x"
            ),
            event(
                EventKind.ACTION_APPLIED,
                old,
                "closed-out",
                action_id="a-closed",
                resource="sim://x",
            ),
            event(EventKind.ACTION_STARTED, old, "kept", action_id="a-kept", resource="sim://y"),
            event(EventKind.ACTION_FAILED, old, "kept-out", action_id="a-kept", resource="sim://y"),
            # The newest of each kind stays anyway; these make the old ones prunable.
            event(EventKind.ACTION_STARTED, NOW, "new", action_id="a-new"),
            event(EventKind.ACTION_APPLIED, NOW, "new-applied", action_id="a-new"),
            event(EventKind.ACTION_FAILED, NOW, "new-failed", action_id="a-new-f"),
        ],
    )
    open_before = [e.idempotency_key for e in await sql_store.open_intents()]
    # Intents kept for a year: their outcomes must stay too, though over their own age.
    keep_intents = RetentionSettings(kinds={"action.started": KindRetention(max_age_days=365)})
    assert await sql_store.prune(keep_intents, now=NOW, keep_after=HORIZON) == {}
    deleted = await sql_store.prune(RetentionSettings(), now=NOW, keep_after=HORIZON)
    assert deleted == {"action.started": 2, "action.applied": 1, "action.failed": 1}
    assert "open" in await keys(sql_store)
    assert [e.idempotency_key for e in await sql_store.open_intents()] == open_before


async def test_the_escalation_of_a_quarantined_resource_stays(sql_store: EventStore) -> None:
    """Quarantine outlives the event that explains it only while the ledger holds it."""
    sql_store.stage_retry(RetryState("sim://brain", "restart", quarantined=True))
    await write(
        sql_store,
        [
            event(EventKind.ACTION_ESCALATED, days_ago(60), "brain", resource="sim://brain"),
            event(EventKind.ACTION_ESCALATED, days_ago(60), "coach", resource="sim://coach"),
            event(EventKind.ACTION_ESCALATED, NOW, "newest", resource="sim://z"),
        ],
    )
    assert await sql_store.prune(RetentionSettings(), now=NOW, keep_after=HORIZON) == {
        "action.escalated": 1
    }
    assert await keys(sql_store) == ["brain", "newest"]


async def test_a_dry_run_counts_exactly_and_deletes_nothing(sql_store: EventStore) -> None:
    """The dry run's counts are a real prune's (a closed pair included), and every row stays."""
    old = days_ago(60)
    await write(
        sql_store,
        [
            event(EventKind.ACTION_STARTED, old, "s", action_id="a1"),
            event(EventKind.ACTION_APPLIED, old, "o", action_id="a1"),
            event(EventKind.ACTION_STARTED, NOW, "s2", action_id="a2"),
            event(EventKind.ACTION_APPLIED, NOW, "o2", action_id="a2"),
        ],
    )
    before = await keys(sql_store)
    dry = await sql_store.prune(RetentionSettings(), now=NOW, keep_after=HORIZON, dry_run=True)
    assert await keys(sql_store) == before
    assert dry == await sql_store.prune(RetentionSettings(), now=NOW, keep_after=HORIZON)
    assert dry == {"action.started": 1, "action.applied": 1}


def test_retention_limits_have_floors_and_known_kinds() -> None:
    """A day, a thousand rows, and a real event kind: a typo cannot empty the record."""
    for bad in (
        {"max_age_days": 0.5},
        {"max_count": 10},
        {"kinds": {"resource.changd": {"max_age_days": 7}}},
    ):
        with pytest.raises(ValueError, match=r"max_age_days|max_count|unknown event kind"):
            RetentionSettings.model_validate(bad)


async def test_a_silence_still_in_force_keeps_its_events(sql_store: EventStore) -> None:
    """A year-long silence added two months ago stays listed, and expirable; a year on, it goes."""
    long = Silence(id="long", match="sim://*", until=NOW + timedelta(days=300), reason="migration")
    await write(
        sql_store,
        [
            added_event(Silence("ancient", "sim://*", days_ago(399)), "alice", days_ago(400)),
            added_event(long, "alice", days_ago(60)),
            added_event(Silence("newer", "sim://b", NOW + timedelta(hours=1)), "bob", NOW),
            expired_event("newer", "bob", NOW),
        ],
    )
    deleted = await sql_store.prune(RetentionSettings(), now=NOW, keep_after=HORIZON)
    assert deleted == {"silence.added": 1}
    kinds = [EventKind.SILENCE_ADDED.value, EventKind.SILENCE_EXPIRED.value]
    silences = active_silences(await sql_store.events(limit=10_000, kinds=kinds), NOW)
    assert [s.id for s in silences] == ["long"]


async def _other_half_lookups(url: str) -> list[str]:
    """How each statement of a (dry-run) prune of ``url``, seeded with a backlog, looks up
    the other half of an action, as SQLite plans it for a connection of its own."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.engine import Connection

    from jarvis.store.sql import SqlBackend

    old = days_ago(60)

    def intent(action_id: str) -> Event:
        return event(EventKind.ACTION_STARTED, old, action_id, action_id=action_id)

    def outcome(action_id: str) -> Event:
        return event(EventKind.ACTION_FAILED, old, action_id, action_id=action_id)

    deletes: list[tuple[str, Any]] = []

    def capture(_c: Connection, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((statement, params))

    backend = await SqlBackend.connect(url)
    try:
        await backend.write(
            [
                # Open intents (they stay), and more outcomes whose intents are gone (they
                # go), as after a prune that took the intents of a backlog first.
                *(intent(f"open-{n}") for n in range(50)),
                *(outcome(f"done-{n}") for n in range(100)),
                *(event(kind, NOW, f"newest-{kind.value}") for kind in EventKind),
            ],
            [],
        )
        sa_event.listen(backend.engine.sync_engine, "before_cursor_execute", capture)
        await backend.prune(RetentionSettings(), now=NOW, keep_after=HORIZON, dry_run=True)
    finally:
        await backend.aclose()
    explain = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))
    try:
        return [
            str(row[-1])
            for statement, params in deletes
            for row in explain.execute(f"EXPLAIN QUERY PLAN {statement}", params)
            if "other" in str(row[-1])
        ]
    finally:
        explain.close()


async def test_sqlite_prune_finds_an_events_intent_or_outcome_by_its_action_id(
    tmp_path: Path,
) -> None:
    """Each prune statement looks up the other half of an action by the ``action_id`` index,
    never by reading every event of the other kind: that made a prune quadratic, and a
    backlog of 15,000 intents and outcomes held SQLite's write lock for a minute (the
    daemon spooled, `jarvis killswitch engage` could not write). SQLite chose either
    plan from one run to the next (two runs in three the slow one here), so several
    new files are planned."""
    for n in range(6):
        lookups = await _other_half_lookups(f"sqlite+aiosqlite:///{tmp_path}/jarvis-{n}.db")
        assert len(lookups) == len(OUTCOME_KINDS) + 1, lookups  # the intents, each outcome
        assert all("USING INDEX ix_events_action_id" in line for line in lookups), lookups
