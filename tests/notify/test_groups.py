"""Alertmanager's timers in the pure grouper: group_wait, group_interval, repeat_interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.model import Event, EventKind
from jarvis.notify.alerts import AlertChange, Severity, changes_for
from jarvis.notify.groups import Grouper, Route, Silence, Timing
from jarvis.notify.notice import Notice

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ALL = frozenset(Severity)


def fire(resource: str, at: datetime, cause: str = "escalated") -> AlertChange:
    return AlertChange(
        fingerprint=f"escalated:{resource}:restart",
        firing=True,
        at=at,
        event_id=1,
        cause=cause,
        provider="sim",
        resource=resource,
        severity=Severity.CRITICAL,
        summary=f"{resource} escalated",
    )


def run(grouper: Grouper, start: datetime, seconds: int) -> list[Notice]:
    notices: list[Notice] = []
    for s in range(seconds):
        notices += grouper.due(start + timedelta(seconds=s))
    return notices


def grouper() -> Grouper:
    timing = Timing(
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
        repeat_interval=timedelta(hours=1),
    )
    return Grouper([Route("pagerduty", ALL)], timing)


def test_an_unresolved_incident_repeats_every_repeat_interval_with_the_same_dedup_key() -> None:
    """Unchanged and unresolved: one notice after group_wait, then one per repeat_interval."""
    g = grouper()
    g.ingest(fire("sim://a", T0), T0)
    notices = run(g, T0, 3 * 3600 + 60)
    assert [n.action for n in notices] == ["trigger"] * 4
    assert len({n.incident for n in notices}) == 1
    assert (notices[1].sequence, notices[3].sequence) == (2, 4)


def test_an_alert_joining_a_notified_group_waits_for_the_group_interval() -> None:
    """A second resource in the same cause is sent as an update at the next group interval."""
    g = grouper()
    g.ingest(fire("sim://a", T0), T0)
    first = run(g, T0, 60)
    assert len(first) == 1
    later = T0 + timedelta(seconds=60)
    g.ingest(fire("sim://b", later), later)
    # The first notice went out at T0 + 30 s, so the update is due at T0 + 330 s.
    assert run(g, later, 270) == []
    (notice,) = run(g, T0 + timedelta(seconds=330), 60)
    assert [a["resource"] for a in notice.alerts] == ["sim://a", "sim://b"]
    assert notice.incident == first[0].incident


def test_two_causes_are_two_incidents_and_an_alert_resolved_before_group_wait_sends_nothing() -> (
    None
):
    """Grouping is by cause; a blip that heals inside group_wait never reaches anyone."""
    g = grouper()
    g.ingest(fire("sim://a", T0), T0)
    g.ingest(fire("sim://b", T0, cause="provider_breaker"), T0)
    g.ingest(fire("sim://c", T0, cause="blip"), T0)
    g.ingest(AlertChange("escalated:sim://c:", firing=False, at=T0, event_id=2, prefix=True), T0)
    notices = run(g, T0, 60)
    assert sorted(n.cause for n in notices) == ["escalated", "provider_breaker"]
    assert len({n.incident for n in notices}) == 2


def test_the_state_survives_a_round_trip_through_json() -> None:
    """What is saved with the cursor restores the same timers and incident."""
    g = grouper()
    g.ingest(fire("sim://a", T0), T0)
    (first,) = run(g, T0, 60)
    restored = grouper()
    restored.load_json(g.to_json())
    later = T0 + timedelta(minutes=10)
    resolve_a = AlertChange("escalated:sim://a:", firing=False, at=later, event_id=3, prefix=True)
    restored.ingest(resolve_a, later)
    (resolve,) = run(restored, later, 60)
    assert (resolve.action, resolve.incident) == ("resolve", first.incident)


def test_routes_match_by_severity_and_resource_glob() -> None:
    """A route for ecs://prod/* critical alerts gets neither a sim alert nor a warning."""
    g = Grouper(
        [
            Route("pagerduty", frozenset({Severity.CRITICAL}), ("ecs://prod/*",)),
            Route("slack", ALL),
        ],
        grouper().timing,
    )
    g.ingest(fire("sim://a", T0), T0)
    g.ingest(fire("ecs://prod/api", T0, cause="ecs_outage"), T0)
    warning = AlertChange(
        "alert:budget:", firing=True, at=T0, event_id=5, cause="budget", severity=Severity.WARNING
    )
    g.ingest(warning, T0)
    notices = run(g, T0, 60)
    assert sorted((n.channel, n.cause) for n in notices) == [
        ("pagerduty", "ecs_outage"),
        ("slack", "budget"),
        ("slack", "ecs_outage"),
        ("slack", "escalated"),
    ]


def test_an_alert_that_gets_worse_is_sent_again() -> None:
    """The same alert at a higher severity (a budget's next stage) is a change, not a repeat."""
    g = grouper()
    stage = AlertChange(
        "alert:budget:",
        firing=True,
        at=T0,
        event_id=5,
        cause="budget",
        severity=Severity.WARNING,
        summary="80% of budget",
    )
    g.ingest(stage, T0)
    assert len(run(g, T0, 60)) == 1
    later = T0 + timedelta(minutes=10)
    worse = AlertChange(
        "alert:budget:",
        firing=True,
        at=later,
        event_id=6,
        cause="budget",
        severity=Severity.CRITICAL,
        summary="budget exhausted: hard stop",
    )
    g.ingest(worse, later)
    (notice,) = run(g, later, 60)
    assert notice.severity is Severity.CRITICAL
    assert notice.alerts[0]["summary"] == "budget exhausted: hard stop"


def test_a_silence_is_forgotten_once_it_has_ended() -> None:
    """`due` drops a silence after its end, so the saved state stops carrying it."""
    g = grouper()
    g.add_silence(Silence("s1", match="sim://*", until=T0 + timedelta(minutes=10)))
    g.add_silence(Silence("s2", match="sim://*", until=T0 + timedelta(hours=1)))
    g.due(T0 + timedelta(minutes=5))
    assert sorted(g.to_json()["silences"]) == ["s1", "s2"]
    g.due(T0 + timedelta(minutes=11))
    assert sorted(g.to_json()["silences"]) == ["s2"]
    g.due(T0 + timedelta(hours=2))
    assert g.to_json()["silences"] == {}


def test_an_alert_resolving_leaves_the_alert_whose_resource_name_extends_its_own_firing() -> None:
    """``aws://vm-1`` healthy again resolves its own alert, never ``aws://vm-10``'s."""
    g = grouper()

    def alert(resource: str, *, resolved: bool = False) -> Event:
        return Event(
            kind=EventKind.ALERT,
            ts=T0,
            idempotency_key=f"alert:{resource}:{resolved}",
            resource=resource,
            reason=f"{resource} disk full",
            payload={"cause": "disk", "severity": "critical", "resolved": resolved},
        )

    for resource in ("aws://vm-1", "aws://vm-10"):
        for change in changes_for(alert(resource)):
            g.ingest(change, T0)
    first = run(g, T0, 60)
    assert [len(n.alerts) for n in first] == [2]
    later = T0 + timedelta(minutes=1)
    for change in changes_for(alert("aws://vm-1", resolved=True)):
        g.ingest(change, later)
    notices = run(g, later, 600)
    assert [n.action for n in notices] == ["trigger"]
    assert [a["resource"] for a in notices[0].alerts] == ["aws://vm-10"]
