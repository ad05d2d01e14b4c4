"""Conversions between the model's frozen types and rows or JSON lines.

Used by the event store (rows to insert, rows read back, spool lines) and the
kill-switch backends. Enums travel as their values and datetimes as ISO-8601
with their timezone, so an event survives a trip through the spool file
unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from jarvis.model import Event, EventKind, RetryState

__all__ = [
    "event_from_json",
    "event_from_row",
    "event_row",
    "event_to_json",
    "retry_from_row",
    "retry_row",
]


def event_row(event: Event) -> dict[str, Any]:
    """The column values of an event to insert (no ``id``: the database assigns it)."""
    return {
        "ts": event.ts,
        "tick_id": event.tick_id,
        "kind": EventKind(event.kind).value,
        "resource": event.resource,
        "action_kind": event.action_kind,
        "policy": event.policy,
        "reason": event.reason,
        "payload": dict(event.payload),
        "action_id": event.action_id,
        "idempotency_key": event.idempotency_key,
    }


def event_from_row(row: RowMapping | Mapping[str, Any]) -> Event:
    """An event read back from the ``events`` table, with its ``id``."""
    return Event(
        kind=EventKind(row["kind"]),
        ts=row["ts"],
        idempotency_key=row["idempotency_key"],
        tick_id=row["tick_id"],
        resource=row["resource"],
        action_kind=row["action_kind"],
        policy=row["policy"],
        reason=row["reason"],
        payload=row["payload"],
        action_id=row["action_id"],
        id=row["id"],
    )


def event_to_json(event: Event) -> str:
    """One spool line (without the newline). Raises TypeError on a non-JSON payload."""
    if event.ts.tzinfo is None:
        raise ValueError(f"event {event.idempotency_key!r} has a naive timestamp")
    row = event_row(event)
    row["ts"] = event.ts.isoformat()
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_from_json(line: str) -> Event:
    """The event a spool line holds; raises ValueError (or KeyError) on a damaged line."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError("spool line is not a JSON object")
    return Event(
        kind=EventKind(data["kind"]),
        ts=datetime.fromisoformat(data["ts"]),
        idempotency_key=data["idempotency_key"],
        tick_id=data.get("tick_id"),
        resource=data.get("resource"),
        action_kind=data.get("action_kind"),
        policy=data.get("policy"),
        reason=data.get("reason"),
        payload=data.get("payload") or {},
        action_id=data.get("action_id"),
    )


def retry_row(state: RetryState) -> dict[str, Any]:
    """The column values of one retry-ledger row."""
    for moment in state.attempts:
        if moment.tzinfo is None:
            raise ValueError(f"retry attempt {moment.isoformat()} is a naive datetime")
    return {
        "resource": state.resource,
        "action_kind": state.action_kind,
        "attempts": [moment.isoformat() for moment in state.attempts],
        "consecutive_failures": state.consecutive_failures,
        "retry_after": state.retry_after,
        "quarantined": state.quarantined,
        "last_error": state.last_error,
        "updated_at": state.updated_at,
    }


def retry_from_row(row: RowMapping | Mapping[str, Any]) -> RetryState:
    """A retry-ledger row read back as the model's `RetryState`."""
    return RetryState(
        resource=row["resource"],
        action_kind=row["action_kind"],
        attempts=tuple(datetime.fromisoformat(moment) for moment in row["attempts"]),
        consecutive_failures=row["consecutive_failures"],
        retry_after=row["retry_after"],
        quarantined=bool(row["quarantined"]),
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )
