"""What one spool line holds: an event, or a retry-ledger row.

The spool (`jarvis.store.spool`) journals both, because an attempt is only
safe to make when its intent *and* its ledger update are durable: an event
line is the event's JSON object (the format the spool has always had), a
ledger line is ``{"retry_state": {...}}``. Decoding raises ValueError,
KeyError or TypeError on a damaged line; the spool sets such a line aside.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jarvis.model import Event, RetryState
from jarvis.store.codec import event_from_json, event_to_json, retry_row

__all__ = ["RETRY_PREFIX", "decode_line", "encode_lines"]

_RETRY = "retry_state"
RETRY_PREFIX = b'{"' + _RETRY.encode() + b'"'
"""How a ledger line starts, so lines can be told apart without parsing them."""


def encode_lines(events: list[Event], retries: list[RetryState]) -> bytes:
    """The lines for ``events`` then ``retries``, each ending in a newline, as UTF-8.

    Raises TypeError/ValueError for a value that cannot be JSON (a bug).
    """
    lines = [event_to_json(event) for event in events]
    lines.extend(_retry_to_json(state) for state in retries)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def decode_line(line: bytes) -> Event | RetryState:
    """The event or ledger row one line (without its newline) holds."""
    text = line.decode("utf-8")
    if line.startswith(RETRY_PREFIX):
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get(_RETRY), dict):
            raise TypeError("spool ledger line is not a JSON object")
        return _retry_from_dict(data[_RETRY])
    return event_from_json(text)


def _retry_to_json(state: RetryState) -> str:
    row = retry_row(state)
    row["retry_after"] = _iso(state.retry_after)
    row["updated_at"] = _iso(state.updated_at)
    return json.dumps({_RETRY: row}, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _retry_from_dict(row: dict[str, Any]) -> RetryState:
    attempts = row["attempts"]
    if not isinstance(attempts, list) or not all(isinstance(a, str) for a in attempts):
        raise TypeError(f"attempts {attempts!r} is not a list of ISO times")
    failures = row["consecutive_failures"]
    if not isinstance(failures, int):
        raise TypeError(f"consecutive_failures {failures!r} is not a number")
    return RetryState(
        resource=str(row["resource"]),
        action_kind=str(row["action_kind"]),
        attempts=tuple(datetime.fromisoformat(moment) for moment in attempts),
        consecutive_failures=failures,
        retry_after=_datetime(row.get("retry_after")),
        quarantined=bool(row["quarantined"]),
        last_error=str(row.get("last_error") or ""),
        updated_at=_datetime(row.get("updated_at")),
    )


def _iso(moment: datetime | None) -> str | None:
    if moment is not None and moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} is a naive datetime")
    return None if moment is None else moment.isoformat()


def _datetime(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not an ISO time")
    return datetime.fromisoformat(value)
