"""Conversions between the model's frozen types and rows or JSON lines.

Used by the event store (rows to insert, rows read back, spool lines) and the
kill-switch backends. Enums travel as their values and datetimes as ISO-8601
with their timezone, so an event survives a trip through the spool file
unchanged. What makes outside text storable first is `jarvis.store.storable`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from jarvis.model import Event, EventKind, RetryState
from jarvis.store.errors import StoreError, said
from jarvis.store.storable import payload_json
from jarvis.text import command

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

log = structlog.get_logger("jarvis.store")


class DamagedRowError(StoreError):
    """A row is not what Jarvis writes: changed by hand, or by another program."""

    lasting = True  # it stays damaged until someone resets or repairs it


__all__ = [
    "EVENT_COLUMNS",
    "event_from_json",
    "event_from_row",
    "event_record",
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


EVENT_COLUMNS = (
    "ts",
    "tick_id",
    "kind",
    "resource",
    "action_kind",
    "policy",
    "reason",
    "payload",
    "action_id",
    "idempotency_key",
)
"""The columns of `event_record`, in order: every column of ``events`` but ``id``."""


def event_record(event: Event) -> tuple[Any, ...]:
    """One event's values in `EVENT_COLUMNS` order, for asyncpg (COPY and INSERT).

    The hottest function of an ingest: no call it can spare (not even the
    enum's ``.value`` property: a `StrEnum` member is already the text).

    Non-ASCII text goes as UTF-8 rather than ``\\u`` escapes: `safe_event` has
    made it encodable, and it is fewer bytes for the server to parse.
    """
    if event.ts.tzinfo is None:
        raise ValueError(f"event {event.idempotency_key!r} has a naive timestamp")
    kind = event.kind
    return (
        event.ts,
        event.tick_id,
        kind if type(kind) is EventKind else EventKind(kind).value,  # a StrEnum is its text
        event.resource,
        event.action_kind,
        event.policy,
        event.reason,
        payload_json(event.payload),
        event.action_id,
        event.idempotency_key,
    )


def event_from_row(row: RowMapping | Mapping[str, Any]) -> Event:
    """An event read back from the ``events`` table, with its ``id``.

    Raises `DamagedRowError` naming the row when it is not what Jarvis writes
    (an unknown kind, a payload that is not an object, a time without a zone).
    """
    try:
        return _event_from_row(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise DamagedRowError(f"events row {row.get('id')} is damaged: {exc}") from exc


def readable_events(rows: Iterable[RowMapping | Mapping[str, Any]]) -> list[Event]:
    """The events of ``rows``, leaving out (and logging) any damaged one.

    One hand-edited row must not make `jarvis events`, the history load or a
    following reader fail for every other row.
    """
    found = []
    for row in rows:
        try:
            found.append(event_from_row(row))
        except DamagedRowError as exc:
            log.warning("damaged event row skipped", error=said(exc))
    return found


def _event_from_row(row: RowMapping | Mapping[str, Any]) -> Event:
    if not isinstance(row["payload"], Mapping):
        raise TypeError(f"payload is {type(row['payload']).__name__}, not an object")
    if not isinstance(row["ts"], datetime) or row["ts"].tzinfo is None:
        raise TypeError(f"ts {row['ts']!r} is not a time with a zone")
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
    """A retry-ledger row read back as the model's `RetryState`.

    Raises `DamagedRowError` naming the row, and how to clear it, when it is
    not what Jarvis writes: the ledger is safety state, so a damaged row stops
    start-up with that one line rather than being skipped.
    """
    try:
        return _retry_from_row(row)
    except (KeyError, TypeError, ValueError) as exc:
        resource = row.get("resource")
        raise DamagedRowError(
            f"retry_state row ({resource!r}, {row.get('action_kind')!r}) is damaged: {exc}; "
            f"inspect it, or clear it with `{command('jarvis', 'retries', 'reset', resource)}`"
        ) from exc


def _retry_from_row(row: RowMapping | Mapping[str, Any]) -> RetryState:
    attempts = row["attempts"]
    if not isinstance(attempts, list) or not all(isinstance(a, str) for a in attempts):
        raise TypeError(f"attempts {attempts!r} is not a list of ISO times")
    if not isinstance(row["consecutive_failures"], int):
        raise TypeError(f"consecutive_failures {row['consecutive_failures']!r} is not a number")
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
