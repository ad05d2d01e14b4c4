"""The breakers' invariant catches what a broken breaker would do, in hand-built records."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

from jarvis.model import Event, EventKind
from jarvis.simulation import InvariantChecker
from tests.simulation.test_invariants import RULES, T0, Record

BREAKER_RULES = dataclasses.replace(RULES, breaker_cooldown=timedelta(minutes=5))


def alert(record: Record, state: str, at: timedelta, refunded: Sequence[list[str]] = ()) -> Record:
    record.events.append(
        Event(
            kind=EventKind.ALERT,
            ts=T0 + at,
            idempotency_key=f"alert:{state}:{at}",
            payload={
                "breaker": "provider",
                "provider": "sim",
                "state": state,
                "failures": 3,
                "refunded": list(refunded),
            },
        )
    )
    return record


def escalate(record: Record, at: timedelta) -> Record:
    record.events.append(
        Event(
            kind=EventKind.ACTION_ESCALATED,
            ts=T0 + at,
            idempotency_key=f"esc:{at}",
            resource="sim://api",
            action_kind="restart",
        )
    )
    return record


def check(record: Record) -> list[str]:
    """The violations but the witness's: these records come with no provider calls."""
    checker = InvariantChecker(BREAKER_RULES)
    checker.feed_events(record.events)
    checker.end_tick("t9", [])
    return [v.invariant for v in checker.violations if v.invariant != "witness"]


def test_an_action_started_while_the_breaker_cools_down_is_caught() -> None:
    """Between the opening and the end of the cool-down nothing may start on the provider."""
    record = alert(Record(), "open", timedelta(0))
    record.start(at=T0 + timedelta(minutes=1), tick="t2").outcome(tick="t2")
    assert check(record) == ["breakers"]


def test_one_probe_per_tick_after_the_cooldown_is_fine_two_are_not() -> None:
    """Half-open: one probe per tick passes; a second in the same tick is caught."""
    later = T0 + timedelta(minutes=6)
    one = alert(Record(), "open", timedelta(0)).start(at=later, tick="t2").outcome(tick="t2")
    assert check(one) == []
    two = alert(Record(), "open", timedelta(0))
    two.start(at=later, tick="t2").start("sim://web", at=later, tick="t2")
    two.outcome(tick="t2").outcome("sim://web", tick="t2")
    assert "breakers" in check(two)


def test_after_the_closing_alert_actions_flow_again() -> None:
    """A closed breaker holds nothing."""
    record = alert(alert(Record(), "open", timedelta(0)), "closed", timedelta(minutes=6))
    record.start(at=T0 + timedelta(minutes=6), tick="t3").outcome(tick="t3")
    record.start("sim://web", at=T0 + timedelta(minutes=6), tick="t3").outcome(
        "sim://web", tick="t3"
    )
    assert check(record) == []


def test_an_escalation_while_the_breaker_is_open_is_caught() -> None:
    """A degraded provider's failures must not spend a resource's budget into an escalation."""
    assert check(escalate(alert(Record(), "open", timedelta(0)), timedelta(minutes=1))) == [
        "breakers"
    ]


def test_refunded_attempts_do_not_count_against_the_retry_budget() -> None:
    """Attempts an opening refunds leave the window; without the refund a fourth is caught."""
    record = Record()
    for i in range(3):
        record.start(at=T0 + timedelta(minutes=i), tick=f"t{i}").outcome(tick=f"t{i}", ok=False)
    refunded = [["sim://api", "restart", (T0 + timedelta(minutes=2)).isoformat()]]
    closed_at = timedelta(minutes=8)
    alert(record, "open", timedelta(minutes=2), refunded)
    alert(record, "closed", closed_at)
    fourth = T0 + closed_at
    record.start(at=fourth, tick="t8").outcome(tick="t8")
    assert check(record) == []
    unrefunded = Record()
    unrefunded.events = [e for e in record.events if e.kind is not EventKind.ALERT]
    assert check(unrefunded) == ["retry_budget"]
