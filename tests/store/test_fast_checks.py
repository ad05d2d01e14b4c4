"""The ingest's one-pass checks answer exactly as the walks they stand in front of.

`safe_event` and `Redactor.event` look at an event through its payload's JSON
text (one C encode) and fall back to walking it in Python only when that text
shows something; these properties hold the fast answer equal to the walk's
(`_safe_json`, `Redactor.json`) on hostile strings, and a round trip keeps
text the checks must leave alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from jarvis.store.redact import Redactor, Storable
from jarvis.store.storable import _safe_json, safe_event, safe_text

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SECRETS = ["s3cret-token", 'pa"ss\\word', "db-pass"]
PLAIN = [SECRETS[0], SECRETS[2]]
"""Secrets JSON does not escape: `Redactor.storable` then takes its one-pass path."""
TEXT_FIELDS = ("idempotency_key", "tick_id", "resource", "action_kind", "policy", "reason")

# Pieces that make the checks' shortcuts go wrong if they can: NUL, both halves of a
# surrogate pair apart, a literal backslash-u0000, JSON's escaped characters, secrets
# and their halves, so a match can span two fields or two values.
pieces = st.sampled_from(
    ["a", "ü", "\x00", "\ud800", "\udc00", "\\u0000", '"', "\\", "\n", "s3cret", "-token", *SECRETS]
)
texts = st.lists(pieces, max_size=4).map("".join)
floats = st.sampled_from([1.5, float("nan"), float("inf"), -float("inf")])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
events = st.builds(
    Event,
    kind=st.just(EventKind.ALERT),
    ts=st.just(NOW),
    idempotency_key=texts,
    tick_id=st.none() | texts,
    resource=st.none() | texts,
    action_kind=st.none() | texts,
    policy=st.none() | texts,
    reason=st.none() | texts,
    payload=st.dictionaries(texts, json_values, max_size=4),
    action_id=st.none() | texts,
)


def fields(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


def walked_safe(event: Event) -> dict[str, Any]:
    """What `safe_event` must give: every text and the payload walked, value by value."""
    out = fields(event)
    for name in (*TEXT_FIELDS, "action_id"):
        if out[name] is not None:
            out[name] = safe_text(out[name])
    out["payload"] = _safe_json(event.payload)
    return out


@given(events)
@example(Event(EventKind.ALERT, NOW, "k", payload={"\x00": "\ud800"}))
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": ["\\u0000", float("nan")]}))
def test_safe_event_answers_as_the_walk_does(event: Event) -> None:
    """The one-pass check returns the event itself exactly when the walk changes nothing."""
    expected = walked_safe(event)
    made = safe_event(event)
    assert fields(made) == expected
    assert (made is event) == _same(expected, fields(event))


@given(events, st.sampled_from([SECRETS, SECRETS[:1], [SECRETS[1]]]))
@example(Event(EventKind.ALERT, NOW, "k", payload={"x": [SECRETS[1]]}), [SECRETS[1]])
@example(Event(EventKind.ALERT, NOW, "k", payload={SECRETS[0]: 1}), SECRETS[:1])
@example(Event(EventKind.ALERT, NOW, "s3cret", reason="-token"), SECRETS[:1])
def test_redaction_misses_no_secret_and_copies_no_clean_event(
    event: Event, secrets: list[str]
) -> None:
    """Each secret is replaced wherever the walk finds it; a clean event comes back as is."""
    redactor = Redactor(secrets)
    expected = fields(event)
    for name in (*TEXT_FIELDS, "action_id"):
        expected[name] = redactor.optional(expected[name])
    expected["payload"] = redactor.json(event.payload)
    made = redactor.event(event)
    assert _same(fields(made), expected)
    assert (made is event) == _same(expected, fields(event))


@given(events, st.sampled_from([SECRETS, PLAIN, [SECRETS[1]], []]))
@example(Event(EventKind.ALERT, NOW, "k", payload={"x": [SECRETS[2]]}), PLAIN)
@example(Event(EventKind.ALERT, NOW, "db-", reason="pass"), PLAIN)
@example(Event(EventKind.ALERT, NOW, "k", tick_id="\ud800", payload={"a": "\udc00"}), PLAIN)
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": float("nan")}), PLAIN)
@example(Event(EventKind.ALERT, NOW, "k", action_id="\x00"), [])
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": ["\x00"]}), PLAIN)
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": SECRETS[1]}), SECRETS)
def test_storable_answers_as_redaction_then_safe_event(event: Event, secrets: list[str]) -> None:
    """`Redactor.storable`, the store's one pass at append, is the two checks in a row."""
    redactor = Redactor(secrets)
    expected = safe_event(redactor.event(event))
    made = redactor.storable(event)
    assert _same(fields(made), fields(expected))
    assert (made is event) == (expected is event)


@given(events, st.sampled_from([SECRETS, PLAIN, []]))
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": SECRETS[0]}), PLAIN)
@example(Event(EventKind.ALERT, NOW, "k", payload={"a": (1, {"b": "ü"})}), [])
def test_encoded_gives_the_storable_event_and_the_json_of_its_payload(
    event: Event, secrets: list[str]
) -> None:
    """`Storable.encoded` reads as `Storable` does; any JSON it gives is the event's payload."""
    redactor = Redactor(secrets)
    [(made, text)] = list(Storable([event], redactor).encoded())
    expected = redactor.storable(event)
    assert _same(fields(made), fields(expected))
    if text is not None:
        assert made is event
        assert json.loads(text) == json.loads(json.dumps(dict(made.payload), allow_nan=False))


def _same(a: Any, b: Any) -> bool:
    """Equality that takes NaN as equal to NaN (payloads may hold one before `safe_event`)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.anyio
async def test_text_the_checks_leave_alone_reads_back_unchanged(store: EventStore) -> None:
    """A literal backslash-u0000, quotes, newlines and non-ASCII keys and values round-trip."""
    payload = {"ünï": ["\\u0000", 'say "hi"\n', {"k\\": "€"}], "n": 2.5}
    reason = "\\u0000 is six characters"
    original = Event(EventKind.ALERT, NOW, "k-1", reason=reason, payload=payload)
    assert safe_event(original) is original
    store.append([original])
    await store.flush()
    (stored,) = await store.events()
    assert stored == dataclasses.replace(original, id=stored.id)
