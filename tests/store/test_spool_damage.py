"""A spool damaged by a crash, a disk or a hand: what waits in it is neither lost nor stuck.

The damage is done to the real files the spool keeps (the journal, its cursor)
between or during the store's own calls, as a crash, a full disk or an
operator's shell would leave them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jarvis.model import Event, EventKind
from jarvis.store.spool import Spool

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ev(key: str) -> Event:
    return Event(kind=EventKind.RESOURCE_CHANGED, ts=T0, idempotency_key=key, payload={"k": key})


def keys(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [e.idempotency_key for e in events]


def test_a_cursor_past_the_end_does_not_skip_lines_spooled_after_it(tmp_path: Path) -> None:
    """A cursor left past the end of the spool is reset at open, so a later crash loses nothing."""
    path = tmp_path / "spool.jsonl"
    # What a crash between emptying the spool and zeroing its cursor leaves.
    (tmp_path / "spool.jsonl.cursor").write_text("300\n")
    spool = Spool(path)
    spool.append([ev(f"e{i}") for i in range(4)])
    spool.close()  # the process dies before the database is back

    reopened = Spool(path)
    try:
        assert reopened.count == 4
        head = reopened.head()
        assert keys(head.events) == ["e0", "e1", "e2", "e3"]
        assert head.dead == ()
    finally:
        reopened.close()
