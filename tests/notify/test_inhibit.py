"""Inhibition as Alertmanager does it: a firing source mutes matching targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.config.notify import NotifySettings
from jarvis.notify.alerts import AlertChange, Severity
from jarvis.notify.groups import Grouper, Route, Timing
from jarvis.notify.inhibit import DEFAULT_RULES, Inhibitor, InhibitRule, Matcher, rules_from
from jarvis.notify.notice import Notice

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TIMING = Timing(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4))


def escalated(resource: str, at: datetime = T0) -> AlertChange:
    provider = resource.partition("://")[0]
    return AlertChange(
        f"escalated:{resource}:restart", True, at, 1, cause="escalated", provider=provider,
        resource=resource, severity=Severity.CRITICAL, summary=f"{resource} escalated",
    )  # fmt: skip


def breaker(provider: str, *, opened: bool = True, scope: str = "provider") -> AlertChange:
    cause = f"breaker:{scope}:{provider}"
    return AlertChange(
        f"alert:{cause}:", opened, T0, 2, cause=cause, provider=provider if scope == "provider"
        else "", severity=Severity.WARNING, summary="breaker tripped",
    )  # fmt: skip


def pager(rules: Inhibitor | None = None) -> Grouper:
    return Grouper([Route("pagerduty", frozenset({Severity.CRITICAL}))], TIMING, rules)


def run(g: Grouper, start: datetime, seconds: int, step: int = 10) -> list[Notice]:
    return [n for s in range(0, seconds, step) for n in g.due(start + timedelta(seconds=s))]


def test_an_open_provider_breaker_mutes_that_providers_escalations_only() -> None:
    """The breaker is a warning no route pages, yet it inhibits (sources need no route)."""
    g = pager()
    g.ingest(breaker("sim"), T0)
    for name in ("a", "b", "c"):
        g.ingest(escalated(f"sim://{name}"), T0)
    g.ingest(escalated("k8s://web"), T0)
    notices = run(g, T0, 120)
    assert [(n.action, [a["resource"] for a in n.alerts]) for n in notices] == [
        ("trigger", ["k8s://web"])
    ]


def test_when_the_breaker_closes_an_escalation_still_unresolved_is_sent() -> None:
    """Inhibition holds, it does not drop: the escalation that outlives its cause pages."""
    g = pager()
    g.ingest(breaker("sim"), T0)
    g.ingest(escalated("sim://a"), T0)
    assert run(g, T0, 120) == []
    later = T0 + timedelta(seconds=120)
    g.ingest(breaker("sim", opened=False), later)
    (notice,) = run(g, later, 600)
    assert (notice.action, notice.alerts[0]["resource"]) == ("trigger", "sim://a")


def test_the_fleet_breaker_mutes_every_escalation_and_state_survives_a_restart() -> None:
    g = pager()
    g.ingest(breaker("", scope="fleet"), T0)
    g.ingest(escalated("sim://a"), T0)
    restored = pager()
    restored.load_json(g.to_json())
    restored.ingest(escalated("k8s://web"), T0)
    assert run(restored, T0, 120) == []


def test_rules_come_from_settings_and_an_empty_list_inhibits_nothing() -> None:
    assert rules_from(None) == DEFAULT_RULES
    settings = NotifySettings.model_validate(
        {
            "inhibit": [
                {
                    "source": {"cause": "killswitch"},
                    "target": {"cause": "loop_stalled", "severities": ["critical"]},
                }
            ]
        }
    )
    g = pager(Inhibitor(rules_from(settings.inhibit)))
    g.ingest(AlertChange("killswitch", True, T0, 3, cause="killswitch"), T0)
    stalled = AlertChange(
        "loop_stalled", True, T0, 0, cause="loop_stalled", severity=Severity.CRITICAL
    )
    g.ingest(stalled, T0)
    g.ingest(breaker("sim"), T0)
    g.ingest(escalated("sim://a"), T0)  # the defaults are replaced, so this pages
    assert [n.cause for n in run(g, T0, 120)] == ["escalated"]
    none = pager(Inhibitor(rules_from([])))
    none.ingest(breaker("sim"), T0)
    none.ingest(escalated("sim://a"), T0)
    assert len(run(none, T0, 120)) == 1


def test_alerts_on_both_sides_of_a_rule_do_not_mute_each_other() -> None:
    """As in Alertmanager: two alerts each matching source and target both page."""
    critical = frozenset({Severity.CRITICAL})
    rule = InhibitRule(Matcher("escalated", critical), Matcher("escalated"), equal=("provider",))
    g = pager(Inhibitor((rule,)))
    g.ingest(escalated("sim://a"), T0)
    g.ingest(escalated("sim://b"), T0)
    (notice,) = run(g, T0, 120)
    assert [a["resource"] for a in notice.alerts] == ["sim://a", "sim://b"]
