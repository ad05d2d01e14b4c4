"""The loop's own `alert` events speak the notifier's payload: cause, severity, resolved.

A breaker that closes must resolve the incident its opening started (before,
its ``state: closed`` read as a second firing alert, so the incident never
ended), two providers' breakers are two incidents, and neither pages.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jarvis.loop.events import breaker_alert, spool_dead_letters
from jarvis.notify.alerts import AlertChange, Severity, changes_for

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _breaker(provider: str, *, opened: bool) -> list[AlertChange]:
    event = breaker_alert(
        "t1", T0, scope="provider", provider=provider, opened=opened, failures=3, detail="x"
    )
    return changes_for(event)


def test_a_closing_breaker_resolves_the_incident_its_opening_started() -> None:
    [opened] = _breaker("ecs", opened=True)
    [closed] = _breaker("ecs", opened=False)
    assert opened.firing and not closed.firing
    assert opened.fingerprint == closed.fingerprint


def test_two_providers_breakers_are_two_incidents_and_warn_without_paging() -> None:
    [ecs] = _breaker("ecs", opened=True)
    [k8s] = _breaker("kubernetes", opened=True)
    assert ecs.fingerprint != k8s.fingerprint
    assert ecs.severity is Severity.WARNING


def test_spool_dead_letters_warn_under_their_own_cause() -> None:
    [change] = changes_for(spool_dead_letters(T0, 2, 2, "/x.dead"))
    assert change.firing
    assert change.cause == "spool.dead_letters"
    assert change.severity is Severity.WARNING
