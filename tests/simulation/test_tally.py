"""The simulation report's action counts, from hand-built events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.loop.events import confirmed_applied
from jarvis.model import Event, EventKind
from jarvis.simulation.tracking import Tally

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def action(kind: EventKind, key: str, **payload: object) -> Event:
    return Event(kind, T0, key, resource="sim://api", action_kind="restart", payload=payload)


def test_an_action_the_kill_switch_withheld_after_its_intent_counts_as_blocked_only() -> None:
    """Its `action.failed` only closes the intent: the report counts the block, not a failure."""
    tally = Tally()
    tally.feed(
        [
            action(EventKind.ACTION_STARTED, "s"),
            action(EventKind.ACTION_FAILED, "o", error_kind=None, error_code="killswitch"),
            action(EventKind.ACTION_BLOCKED, "b", blocked="killswitch"),
            action(EventKind.ACTION_FAILED, "f", error_kind="temporary", error_code="Throttling"),
        ]
    )
    assert tally.as_dict()["actions"] == {"restart": {"blocked": 1, "failed": 1, "started": 1}}
    assert tally.as_dict()["blocked_by_reason"] == {"killswitch": 1}


def test_a_timed_out_call_counts_as_timed_out_and_an_orphan_as_unknown() -> None:
    """Both are `action.unknown`; the report keeps a call with no answer in time apart
    from an intent a stopped process left open."""
    tally = Tally()
    tally.feed(
        [
            action(EventKind.ACTION_UNKNOWN, "t", outcome="timed_out", error_kind="temporary"),
            action(EventKind.ACTION_UNKNOWN, "u", outcome="failed", intent_id=7),
        ]
    )
    assert tally.as_dict()["actions"] == {"restart": {"timed_out": 1, "unknown": 1}}


def test_an_action_whose_target_was_gone_counts_as_gone() -> None:
    """A target deleted since observe is tallied and shown apart from the failures."""
    tally = Tally()
    tally.feed(
        [
            action(EventKind.ACTION_FAILED, "g", error_kind="gone", error_code="NotFound"),
            action(EventKind.ACTION_FAILED, "f", error_kind="terminal", error_code="Denied"),
        ]
    )
    assert tally.as_dict()["actions"] == {"restart": {"failed": 1, "gone": 1}}


def test_an_unknown_outcome_confirmed_later_counts_as_applied_only() -> None:
    """A call with no answer in time that the provider later proves made is one action,
    applied: the report counts it applied, not also timed out, as the daily report does."""
    intent = Event(
        EventKind.ACTION_STARTED, T0, "a", resource="sim://api", action_kind="restart",
        action_id="a",
    )  # fmt: skip
    tally = Tally()
    tally.feed(
        [
            intent,
            Event(
                EventKind.ACTION_UNKNOWN, T0, "a:outcome", resource="sim://api",
                action_kind="restart", action_id="a",
                payload={"outcome": "timed_out", "error_kind": "temporary"},
            ),
            action(EventKind.ACTION_UNKNOWN, "b", outcome="timed_out", error_kind="temporary"),
        ]
    )  # fmt: skip
    tally.feed([confirmed_applied(intent, T0 + timedelta(minutes=1), "tagged", quarantined=False)])
    assert tally.as_dict()["actions"] == {"restart": {"applied": 1, "started": 1, "timed_out": 1}}
