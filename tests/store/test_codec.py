"""Spool lines: events survive the trip through JSON unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jarvis.model import Event, EventKind
from jarvis.store.codec import event_from_json, event_to_json


def test_spool_line_round_trips_an_event_losslessly() -> None:
    """Enums travel as values, timestamps keep their offset, payloads their structure."""
    original = Event(
        kind=EventKind.KILLSWITCH_ENGAGED,
        ts=datetime(2025, 3, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5))),
        idempotency_key="ks:1",
        tick_id="t-1",
        resource=None,
        action_kind="scale",
        policy="operator",
        reason="stop — now",
        payload={"nested": {"list": [1, 2.5, None, True]}, "text": "日本"},
        action_id="act-1",
    )
    line = event_to_json(original)
    assert "\n" not in line
    assert json.loads(line)["kind"] == "killswitch.engaged"
    back = event_from_json(line)
    assert back == original
    assert back.ts.utcoffset() == timedelta(hours=-5)


def test_a_payload_that_is_not_json_is_refused() -> None:
    """A payload JSON cannot hold is a programming error, raised when it is serialised."""
    bad = Event(
        kind=EventKind.ALERT,
        ts=datetime(2025, 3, 1, tzinfo=UTC),
        idempotency_key="bad",
        payload={"when": datetime(2025, 3, 1, tzinfo=UTC)},
    )
    with pytest.raises(TypeError):
        event_to_json(bad)
