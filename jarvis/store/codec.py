"""Conversions between the model's frozen types and rows or JSON lines.

Used by the event store (rows to insert, rows read back, spool lines) and the
kill-switch backends. Enums travel as their values and datetimes as ISO-8601
with their timezone, so an event survives a trip through the spool file
unchanged.

`safe_event` and `safe_text` make outside strings storable before they are
buffered: PostgreSQL refuses NUL in text and JSONB, and no UTF-8 encoder
takes a lone surrogate, so one such character in an admin request's reason, a
Redis value or a provider's error message would otherwise fail every flush
after it. NUL becomes U+FFFD, a lone surrogate ``?``, a non-finite float in a
payload ``null``; everything else passes through untouched (and unallocated).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

import structlog

from jarvis.model import Event, EventKind, RetryState
from jarvis.store.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

log = structlog.get_logger("jarvis.store")


class DamagedRowError(StoreError):
    """A row is not what Jarvis writes: changed by hand, or by another program."""


__all__ = [
    "EVENT_COLUMNS",
    "event_from_json",
    "event_from_row",
    "event_record",
    "event_row",
    "event_to_json",
    "payload_json",
    "retry_from_row",
    "retry_row",
    "safe_event",
    "safe_retry",
    "safe_text",
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

    The hottest function of an ingest: no call it can spare.

    Non-ASCII text goes as UTF-8 rather than ``\\u`` escapes: `safe_event` has
    made it encodable, and it is fewer bytes for the server to parse.
    """
    if event.ts.tzinfo is None:
        raise ValueError(f"event {event.idempotency_key!r} has a naive timestamp")
    kind = event.kind
    return (
        event.ts,
        event.tick_id,
        kind.value if type(kind) is EventKind else EventKind(kind).value,
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


def readable_events(rows: Iterable[RowMapping]) -> list[Event]:
    """The events of ``rows``, leaving out (and logging) any damaged one.

    One hand-edited row must not make `jarvis events`, the history load or a
    following reader fail for every other row.
    """
    found = []
    for row in rows:
        try:
            found.append(event_from_row(row))
        except DamagedRowError as exc:
            log.warning("damaged event row skipped", error=str(exc))
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
            f"inspect it, or clear it with `jarvis retries reset {resource}`"
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


def safe_text(value: str) -> str:
    """``value`` with what no database or UTF-8 file can hold replaced; usually itself."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(value: Any) -> bool:
    """Whether `_safe_json` would leave ``value`` as it is; allocates nothing.

    Nearly every event is storable as it comes, so `safe_event` asks this
    first and copies only when something needs replacing.
    """
    # Concrete types first: an ABC isinstance check costs far more, per value.
    # Plain loops, not all() over a generator: this runs for every value of
    # every event appended, and the generator frames cost a third of it.
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, bool | int) or value is None:
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict | Mapping):
        return _storable_mapping(value)
    if isinstance(value, list | tuple):
        for v in value:
            if not _storable(v):
                return False
    return True


def _storable_mapping(value: Mapping[Any, Any]) -> bool:
    for k, v in value.items():  # noqa: SIM110 - a loop: all() would add a generator frame
        if not (isinstance(k, str) and _storable_text(k) and _storable(v)):
            return False
    return True


def _safe_json(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        cleaned = {safe_text(str(k)): _safe_json(v) for k, v in value.items()}
        same = len(cleaned) == len(value) and all(
            k in value and cleaned[k] is value[k] for k in cleaned
        )
        return value if same else cleaned
    if isinstance(value, list | tuple):
        items = [_safe_json(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _optional(value: str | None) -> str | None:
    return None if value is None else safe_text(value)


def _storable_event(event: Event) -> bool:
    # One scan of the fields joined: Python never pairs two lone surrogates
    # across a join, so the joined text is storable exactly when each field is.
    fields = (
        event.idempotency_key,
        event.tick_id or "",
        event.resource or "",
        event.action_kind or "",
        event.policy or "",
        event.reason or "",
        event.action_id or "",
    )
    return _storable_text("".join(fields)) and _storable_payload(event.payload)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


_encoder = c_make_encoder(None, _refuse, c_encode_basestring, None, ":", ",", False, False, False)


def payload_json(payload: Mapping[str, Any]) -> str:
    """A payload as compact JSON text, non-ASCII kept as is; ValueError on NaN or infinity.

    The C encoder built once, without the circular-reference check: a payload
    is a tree, and `json.JSONEncoder.encode` builds a new C encoder per call,
    which costs as much as the encoding of a small payload.
    """
    return "".join(_encoder(payload if type(payload) is dict else dict(payload), 0))


def _storable_payload(payload: Mapping[str, Any]) -> bool:
    """Whether `_safe_json` would leave ``payload`` as it is, in one pass of the C encoder.

    Walking every value in Python cost about half of an event's ingest
    (docs/benchmarks.md, benchmark 3). JSON encoding refuses non-finite floats,
    escapes NUL as ``\\u0000`` and keeps lone surrogates raw (with
    ``ensure_ascii=False``), so one encode and two scans of its text answer for
    nearly every payload. Anything the encoder refuses or whose text shows a
    possible NUL (a literal backslash-u0000 too) takes the exact Python walk.
    """
    try:
        text = payload_json(payload)
    except (TypeError, ValueError, RecursionError):
        return _storable(payload)
    if "\\u0000" in text:
        return _storable(payload)
    return text.isascii() or _storable_text(text)


def safe_event(event: Event) -> Event:
    """The event with its strings and payload storable; the same object when already so."""
    if _storable_event(event):
        return event
    cleaned = {
        "idempotency_key": safe_text(event.idempotency_key),
        "tick_id": _optional(event.tick_id),
        "resource": _optional(event.resource),
        "action_kind": _optional(event.action_kind),
        "policy": _optional(event.policy),
        "reason": _optional(event.reason),
        "action_id": _optional(event.action_id),
        "payload": _safe_json(event.payload),
    }
    if all(value is getattr(event, name) for name, value in cleaned.items()):
        return event
    return replace(event, **cleaned)


def safe_retry(state: RetryState) -> RetryState:
    """The ledger row with its strings storable; the same object when already so."""
    resource = safe_text(state.resource)
    action_kind = safe_text(state.action_kind)
    last_error = safe_text(state.last_error)
    if (resource, action_kind, last_error) == (state.resource, state.action_kind, state.last_error):
        return state
    return replace(state, resource=resource, action_kind=action_kind, last_error=last_error)
