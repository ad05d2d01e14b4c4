"""Which notifications are due: the in-memory outbox answers as the SQL one does.

`MemoryOutbox` keeps its pending rows apart so that `due` does not scan every
row ever written; these checks put the same history to both outboxes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jarvis.store.events import EventStore
from jarvis.store.memory_outbox import MemoryOutbox
from jarvis.store.outbox import (
    PENDING,
    REVISION,
    NotificationOutbox,
    Outbox,
    StaleStateError,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _row(key: str) -> dict[str, object]:
    return {
        "dedup_key": key,
        "channel": "slack",
        "incident": f"incident-{key}",
        "action": "open",
        "message": {"text": key},
    }


@pytest.fixture(params=["memory", "sqlite"])
async def outbox(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[NotificationOutbox]:
    if request.param == "memory":
        yield MemoryOutbox()
        return
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/o.db", auto_migrate=True)
    try:
        yield Outbox(store.engine)
    finally:
        await store.aclose()


async def _ids(outbox: NotificationOutbox, now: datetime, limit: int = 50) -> list[int]:
    return [row.id for row in await outbox.due(now, limit)]


async def test_due_is_the_pending_rows_whose_time_has_come_oldest_first(
    outbox: NotificationOutbox,
) -> None:
    assert await outbox.commit({}, [_row(k) for k in "abcde"], T0) == 5
    assert await outbox.commit({}, [_row("a")], T0) == 0  # a known key is skipped
    assert await _ids(outbox, T0) == [1, 2, 3, 4, 5]
    await outbox.mark_sent(2, 1, T0)
    await outbox.mark_failed(4, 3, "410 Gone")
    await outbox.mark_retry(1, 1, T0 + timedelta(minutes=5), "timeout")
    assert await _ids(outbox, T0) == [3, 5]
    assert await _ids(outbox, T0 + timedelta(minutes=5)) == [1, 3, 5]
    assert await _ids(outbox, T0 + timedelta(minutes=5), limit=2) == [1, 3]
    await outbox.mark_retry(3, 2, T0 + timedelta(minutes=1), "timeout")
    await outbox.mark_sent(1, 2, T0 + timedelta(minutes=5))
    assert await _ids(outbox, T0 + timedelta(minutes=5)) == [3, 5]
    pending = [row.id for row in await outbox.rows(PENDING)]
    assert pending == [3, 5]


async def test_a_row_waits_while_an_older_one_of_its_incident_and_channel_is_pending(
    outbox: NotificationOutbox,
) -> None:
    """A resolve queued behind its trigger's retry goes after it; other incidents do not wait."""
    trigger = {**_row("t"), "channel": "pagerduty", "incident": "i-1", "action": "trigger"}
    other = {**_row("o"), "channel": "slack", "incident": "i-1", "action": "trigger"}
    assert await outbox.commit({}, [trigger, other, _row("x")], T0) == 3
    await outbox.mark_retry(1, 1, T0 + timedelta(minutes=10), "429")
    resolve = {**trigger, "dedup_key": "r", "action": "resolve"}
    assert await outbox.commit({}, [resolve], T0 + timedelta(minutes=5)) == 1
    assert await _ids(outbox, T0 + timedelta(minutes=5)) == [2, 3]
    assert await _ids(outbox, T0 + timedelta(minutes=10)) == [1, 2, 3]
    await outbox.mark_sent(1, 2, T0 + timedelta(minutes=10))
    assert await _ids(outbox, T0 + timedelta(minutes=10)) == [2, 3, 4]
    await outbox.mark_failed(4, 1, "400")
    assert await _ids(outbox, T0 + timedelta(minutes=10)) == [2, 3]


async def test_a_claimed_row_is_passed_by_until_its_claim_runs_out(
    outbox: NotificationOutbox,
) -> None:
    """A second claim takes the next row, not the one claimed; an unrecorded claim runs out."""
    await outbox.commit({}, [_row(k) for k in "ab"], T0)
    until = T0 + timedelta(seconds=80)
    first, second = await outbox.claim(T0, until), await outbox.claim(T0, until)
    assert (first and first.id, second and second.id) == (1, 2)
    assert await outbox.claim(T0, until) is None
    await outbox.mark_sent(2, 1, T0)
    again = await outbox.claim(until, until + timedelta(seconds=80))
    assert again is not None
    assert again.id == 1


async def test_a_save_over_a_state_another_saved_since_writes_nothing(
    outbox: NotificationOutbox,
) -> None:
    """Two notifiers read revision 0; the second to save is refused, its rows not inserted."""
    first = {REVISION: {"n": 1}, "cursor": {"event_id": 7}}
    assert await outbox.commit(first, [_row("a")], T0, revision=0) == 1
    with pytest.raises(StaleStateError):
        await outbox.commit({REVISION: {"n": 1}, "cursor": {"event_id": 9}}, [_row("b")], T0, 0)
    assert await outbox.load_state() == first
    assert await _ids(outbox, T0) == [1]
    assert await outbox.commit({REVISION: {"n": 2}}, [_row("b")], T0, revision=1) == 1
