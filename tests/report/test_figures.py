"""The report's pure builder on hand-written events: incidents, escalations, savings, spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jarvis.model import (
    CloudSpend,
    Event,
    EventKind,
    Health,
    ResourceRef,
    ResourceState,
    RetryState,
)
from jarvis.policies.budget import read_spend
from jarvis.report import build_figures
from jarvis.report.deliver import key_figures
from jarvis.report.figures import percentile
from jarvis.report.markdown import markdown
from tests.cost.builders import cost_state, snapshot

DAY = datetime(2026, 3, 10, tzinfo=UTC)


def ev(kind: EventKind, minute: float, resource: str, **fields: Any) -> Event:
    ts = DAY + timedelta(minutes=minute)
    return Event(kind, ts, f"{kind}-{resource}-{minute}", resource=resource, **fields)


def health(minute: float, resource: str, state: str) -> Event:
    return ev(EventKind.RESOURCE_CHANGED, minute, resource, payload={"health": state})


def test_an_escalation_inside_an_incident_marks_it_as_needing_a_human() -> None:
    """Unhealthy, escalated, reset, healthy: one human incident; a plain crash is Jarvis's."""
    events = [
        health(10, "sim://a", "unhealthy"),
        health(11, "sim://b", "unhealthy"),
        health(12, "sim://b", "healthy"),
        ev(EventKind.ACTION_ESCALATED, 20, "sim://a", action_kind="restart"),
        ev(EventKind.RETRIES_RESET, 40, "sim://a"),
        health(70, "sim://a", "healthy"),
        health(100, "sim://c", "degraded"),
    ]
    figures = build_figures(events, start=DAY)
    got = [(i.resource, i.seconds, i.human) for i in figures.incidents]
    assert got == [("sim://a", 3600.0, True), ("sim://b", 60.0, False), ("sim://c", None, False)]
    assert figures.median_seconds == 60.0
    assert figures.p95_seconds == 3600.0
    assert figures.escalations_open == []
    assert figures.actions == {"restart": {"escalated": 1}}


def test_an_action_the_kill_switch_withheld_after_its_intent_counts_as_blocked_only() -> None:
    """Its `action.failed` closes the intent; the day counts one block (killswitch), no failure."""
    withheld = {"outcome": "failed", "error_kind": None, "error_code": "killswitch"}
    events = [
        ev(EventKind.ACTION_FAILED, 1, "sim://a", action_kind="restart", payload=withheld),
        ev(EventKind.ACTION_BLOCKED, 1, "sim://a", action_kind="restart", reason="killswitch"),
        ev(
            EventKind.ACTION_FAILED,
            2,
            "sim://b",
            action_kind="restart",
            payload={"error_kind": "temporary"},
        ),
    ]
    figures = build_figures(events, start=DAY)
    assert figures.actions == {"restart": {"blocked": 1, "failed": 1}}
    assert figures.blocked_reasons == {"killswitch": 1}


def test_an_unknown_outcome_confirmed_later_counts_as_applied_only() -> None:
    """An ``action.unknown`` and the ``action.applied`` confirming it are one applied action;
    a confirmation of an unknown of an earlier day is the day's applied action."""

    def outcome(kind: EventKind, minute: float, resource: str, action_id: str) -> Event:
        confirmed = {"confirmed": True} if kind is EventKind.ACTION_APPLIED else {}
        fields = {"action_kind": "restart", "action_id": action_id, "payload": confirmed}
        return ev(kind, minute, resource, **fields)

    events = [
        outcome(EventKind.ACTION_UNKNOWN, 1, "sim://a", "x"),
        outcome(EventKind.ACTION_UNKNOWN, 2, "sim://b", "y"),
        outcome(EventKind.ACTION_APPLIED, 3, "sim://a", "x"),
        outcome(EventKind.ACTION_APPLIED, 4, "sim://c", "yesterday"),
    ]
    figures = build_figures(events, start=DAY)
    assert figures.actions == {"restart": {"applied": 2, "unknown": 1}}
    assert sum(figures.actions_per_hour) == 2


def test_an_action_whose_target_was_gone_counts_as_gone_not_failed() -> None:
    """A target deleted since observe is its own column and key figure, never a failure."""
    gone = {"outcome": "failed", "error_kind": "gone", "error_code": "NotFound"}
    events = [
        ev(EventKind.ACTION_FAILED, minute, uri, action_kind="restart", payload=gone)
        for minute, uri in enumerate(("sim://a", "sim://b", "sim://c"))
    ]
    figures = build_figures(events, start=DAY)
    assert figures.actions == {"restart": {"gone": 3}}
    assert "Actions: 0 applied, 0 failed, 3 gone (deleted since observed), 0 blocked" in (
        key_figures(figures)
    )
    assert "| kind | gone |" in markdown(figures)


def test_an_escalation_without_reset_or_recovery_stays_open() -> None:
    """An escalation nothing answered by the day's end is listed as open."""
    events = [
        health(10, "sim://a", "unhealthy"),
        ev(EventKind.ACTION_ESCALATED, 20, "sim://a", action_kind="restart"),
    ]
    figures = build_figures(
        events,
        start=DAY,
        quarantined=[
            RetryState("sim://a", "restart", quarantined=True),
            RetryState("sim://b", "restart"),
        ],
    )
    assert [e.resource for e in figures.escalations_open] == ["sim://a"]
    assert [q.resource for q in figures.quarantined] == ["sim://a"]


def test_savings_come_from_applied_actions_only_biggest_first() -> None:
    """A proposal's projected saving is not a saving until the action is applied."""
    events = [
        ev(
            EventKind.ACTION_PROPOSED,
            1,
            "route://x",
            action_kind="set_weights",
            payload={"params": {"cost_delta_per_hour": -9.0}},
        ),
        ev(
            EventKind.ACTION_APPLIED,
            2,
            "route://y",
            action_kind="set_weights",
            payload={"params": {"cost_delta_per_hour": -0.5}},
        ),
        ev(
            EventKind.ACTION_APPLIED,
            65,
            "route://z",
            action_kind="set_weights",
            payload={"params": {"cost_delta_per_hour": -2.0}},
        ),
        ev(
            EventKind.ACTION_APPLIED,
            66,
            "sim://s",
            action_kind="scale",
            payload={"params": {"cost_delta_per_hour": 1.0}},
        ),
    ]
    figures = build_figures(events, start=DAY)
    assert figures.savings == [("route://z", "set_weights", 2.0), ("route://y", "set_weights", 0.5)]
    assert figures.actions_per_hour[:2] == [1, 2]


def test_spend_is_the_last_observation_before_the_days_end_with_a_linear_forecast() -> None:
    """Per model and per provider from the last cost://llm record; forecast over the month."""

    def obs(day: int, gpt: float, claude: float) -> Event:
        by_model = {"gpt-4o": {"cost_usd": gpt}, "claude-haiku": {"cost_usd": claude}}
        return Event(
            EventKind.RESOURCE_CHANGED,
            datetime(2026, 3, day, tzinfo=UTC),
            f"llm-{day}",
            resource="cost://llm",
            payload={"attributes": {"month": "2026-03", "by_model": by_model}},
        )

    figures = build_figures(
        [],
        start=DAY,
        llm_observations=[obs(1, 0, 0), obs(10, 10, 20), obs(11, 99, 99)],
        budget_usd=100.0,
    )
    spend = figures.spend
    assert spend is not None
    assert spend.by_model == {"claude-haiku": 20.0, "gpt-4o": 10.0}
    assert spend.by_provider == {"anthropic": 20.0, "openai": 10.0}
    assert spend.forecast_usd == 30.0 * 31 / 9
    assert [u for _, u in spend.series] == [0.0, 30.0]


def _spend_events(llm_usd: float, cloud_usd: float, cloud_at: datetime) -> tuple[Event, Event]:
    llm = Event(
        EventKind.RESOURCE_CHANGED,
        datetime(2026, 3, 10, tzinfo=UTC),
        "llm-10",
        resource="cost://llm",
        payload={"attributes": {"month": "2026-03", "by_model": {"gpt-4o": {"cost_usd": llm_usd}}}},
    )
    cloud = Event(
        EventKind.RESOURCE_CHANGED,
        cloud_at,
        "aws",
        resource="cost://aws",
        payload={"attributes": {"by_service_usd": {"ec2": cloud_usd}}},
    )
    return llm, cloud


def _policy_spend(llm_usd: float, cloud_usd: float, cloud_at: datetime, *, cloud: bool) -> float:
    """What the cost policy counts against the budget from the same observations."""
    aws = ResourceState(
        ResourceRef("cost", "aws", "cost"),
        Health.HEALTHY,
        cloud_at,
        cloud_spend=CloudSpend(month_to_date_usd=cloud_usd, forecast_month_end_usd=0.0),
    )
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    snap = snapshot(cost_state(llm_usd, now=now), aws, now=now)
    spend = read_spend(snap, now, include_cloud=cloud)
    assert spend is not None
    return spend.total_usd


@pytest.mark.parametrize(
    ("cloud_at", "include_cloud", "counted", "verdict"),
    [
        (datetime(2026, 3, 10, tzinfo=UTC), True, 40.0, "over budget"),
        (datetime(2026, 3, 10, tzinfo=UTC), False, 20.0, "within budget"),
        (datetime(2026, 2, 28, tzinfo=UTC), True, 20.0, "within budget"),
    ],
)
def test_spend_against_the_budget_is_what_the_cost_policy_counts(
    cloud_at: datetime, include_cloud: bool, counted: float, verdict: str
) -> None:
    """LLM spend plus this month's cloud bill (when the budget includes it), as the policy sums."""
    llm, cloud = _spend_events(20.0, 20.0, cloud_at)
    figures = build_figures(
        [],
        start=DAY,
        llm_observations=[llm],
        cloud_observations=[cloud],
        budget_usd=100.0,
        include_cloud=include_cloud,
    )
    spend = figures.spend
    assert spend is not None
    assert spend.against_budget.total_usd == counted
    assert counted == _policy_spend(20.0, 20.0, cloud_at, cloud=include_cloud)
    assert f"{verdict}." in markdown(figures)


def test_percentile_is_nearest_rank() -> None:
    """p95 of twenty values is the nineteenth; of none, None."""
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert percentile([], 50) is None
