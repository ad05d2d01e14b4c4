"""The report's pure builder on hand-written events: incidents, escalations, savings, spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jarvis.model import Event, EventKind, RetryState
from jarvis.report import build_figures
from jarvis.report.figures import percentile

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


def test_percentile_is_nearest_rank() -> None:
    """p95 of twenty values is the nineteenth; of none, None."""
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert percentile([], 50) is None
