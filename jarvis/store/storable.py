"""Outside text made storable before it is buffered: NUL, lone surrogates, non-finite floats.

`safe_event` and `safe_text` run on every event the store buffers (`EventStore.append`)
and on each kill-switch flip: PostgreSQL refuses NUL in text and JSONB, and no
UTF-8 encoder takes a lone surrogate, so one such character in an admin
request's reason, a Redis value or a provider's error message would otherwise
fail every flush after it. NUL becomes U+FFFD, a lone surrogate ``?``, a
non-finite float in a payload ``null``; everything else passes through
untouched (and unallocated). The check runs once per event appended, so it
looks through one C encoding of the payload (`payload_json`, also what
PostgreSQL's COPY sends) and walks values in Python only when that text
shows something to replace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import Any

from jarvis.model import Event, RetryState

__all__ = ["payload_json", "safe_event", "safe_retry", "safe_text", "storable_text", "text_fields"]


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


def storable_text(value: str) -> bool:
    """Whether `safe_text` would leave ``value`` as it is (no NUL, no lone surrogate)."""
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
        return storable_text(value)
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
        if not (isinstance(k, str) and storable_text(k) and _storable(v)):
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


def text_fields(event: Event) -> tuple[str, ...]:
    """The event's text columns, an absent one as ``""``: what every check at append scans."""
    return (
        event.idempotency_key,
        event.tick_id or "",
        event.resource or "",
        event.action_kind or "",
        event.policy or "",
        event.reason or "",
        event.action_id or "",
    )


def _storable_event(event: Event) -> bool:
    # One scan of the fields joined: Python never pairs two lone surrogates
    # across a join, so the joined text is storable exactly when each field is.
    return storable_text("".join(text_fields(event))) and _storable_payload(event.payload)


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
    return text.isascii() or storable_text(text)


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
