"""Events for the spool's tests: one per idempotency key, the keys read back, and a
spool file with a damaged line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from jarvis.model import Event, EventKind
from jarvis.store.spool import Spool

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ev(key: str) -> Event:
    return Event(kind=EventKind.RESOURCE_CHANGED, ts=T0, idempotency_key=key, payload={"k": key})


def keys(events: Sequence[Event]) -> list[str]:
    return [e.idempotency_key for e in events]


def damaged_spool(path: Path, line: bytes, *, after: str | None = "after") -> None:
    """A spool file of ``before``, then ``line`` as written, then ``after`` unless None."""
    spool = Spool(path)
    spool.append([ev("before")])
    with path.open("ab") as handle:
        handle.write(line)
    spool.close()
    if after is not None:
        spool = Spool(path)
        spool.append([ev(after)])
        spool.close()
