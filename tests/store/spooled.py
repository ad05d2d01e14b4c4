"""Events for the spool's tests: one per idempotency key, and the keys read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from jarvis.model import Event, EventKind

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ev(key: str) -> Event:
    return Event(kind=EventKind.RESOURCE_CHANGED, ts=T0, idempotency_key=key, payload={"k": key})


def keys(events: Sequence[Event]) -> list[str]:
    return [e.idempotency_key for e in events]
