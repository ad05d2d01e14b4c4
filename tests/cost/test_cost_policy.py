"""The cost policy's budget stages, as table tests over hand-built snapshots."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from jarvis.config.cost import CostSettings, ModelPrice, RouteSettings, RoutingSettings
from jarvis.loop.events import note_event
from jarvis.model import (
    ActionKind,
    CloudSpend,
    History,
    ModelSpend,
    ResourceRef,
    ResourceState,
)
from jarvis.policies.budget import Budget
from jarvis.policies.cost import CostPolicy
from jarvis.policies.cost_settings import Route
from jarvis.policies.model_selection import SelectionRules
from tests import actions as typed
from tests.cost.builders import (
    CHAT,
    CODE,
    NOW,
    cost_state,
    policy,
    route_state,
    route_usage,
    snapshot,
    stats,
)

SEED_SPEND = {"gpt-4o": 300.0, "gemini": 100.0, "claude": 50.0}


def test_seed_scenario_moves_half_of_gpt4o_traffic_to_gemini_with_an_alert() -> None:
    """At $450 of $500, half of gpt-4o's traffic moves to gemini, with savings and an alert."""
    snap = snapshot(
        cost_state(450.0, by_model=SEED_SPEND, by_route={"chat": route_usage(100_000)}),
        route_state("chat", CHAT.weights),
    )

    result = policy(CHAT).evaluate(snap, History(), NOW)

    (action,) = result.actions
    assert action.kind == ActionKind.SET_WEIGHTS
    assert action.target == ResourceRef("route", "chat", "route")
    assert typed.weights(action) == {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    assert action.cost_delta_per_hour is not None
    assert action.cost_delta_per_hour < 0
    assert "moving 50% of gpt-4o traffic to gemini" in action.reason
    assert "projected saving $" in action.reason
    (note,) = result.notes
    assert note.alert
    assert "autonomous cost optimization applied" in note.message
    assert note.payload["spend_usd"] == 450.0


def test_projected_saving_covers_the_rest_of_the_month() -> None:
    """The saving is the hourly delta times the hours left in the month."""
    snap = snapshot(
        cost_state(450.0, by_route={"chat": route_usage(100_000)}),
        route_state("chat", CHAT.weights),
    )
    (action,) = policy(CHAT).evaluate(snap, History(), NOW).actions
    hours_elapsed = (NOW - datetime(2025, 6, 1, tzinfo=UTC)).total_seconds() / 3600
    per_request = {"gpt-4o": 0.00625, "gemini": 0.0001875}
    expected = 100_000 / hours_elapsed * 0.3 * (per_request["gemini"] - per_request["gpt-4o"])
    assert action.cost_delta_per_hour == pytest.approx(expected)
    hours_left = (datetime(2025, 7, 1, tzinfo=UTC) - NOW).total_seconds() / 3600
    assert f"${-expected * hours_left:.2f}" in action.reason


@pytest.mark.parametrize(
    ("spend", "weights", "alert"),
    [
        (100.0, None, False),
        (399.0, None, False),
        (400.0, None, True),
        (449.0, None, True),
        (450.0, {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}, True),
        (499.0, {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}, True),
        (500.0, {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}, True),
        (900.0, {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}, True),
    ],
)
def test_each_budget_stage_targets_its_weights(
    spend: float, weights: dict[str, float] | None, alert: bool
) -> None:
    """Below 80% nothing happens; 80% alerts; 90% shifts half; 100% sends all to the cheapest."""
    snap = snapshot(cost_state(spend), route_state("chat", CHAT.weights))
    result = policy(CHAT).evaluate(snap, History(), NOW)
    assert [typed.weights(a) for a in result.actions] == ([weights] if weights else [])
    assert [n.alert for n in result.notes] == ([True] if alert else [])


def test_large_moves_walk_to_the_target_within_the_guards_per_tick_bound() -> None:
    """A move bigger than max_shift is split into steps the bounds guard lets through."""
    cost = policy(CHAT, max_shift=0.5)
    current = dict(CHAT.weights)
    steps = []
    for _ in range(5):
        snap = snapshot(cost_state(510.0), route_state("chat", current))
        actions = cost.evaluate(snap, History(), NOW).actions
        if not actions:
            break
        (action,) = actions
        assert typed.weights(action) is not None
        assert all(
            abs(typed.weights(action)[m] - current.get(m, 0.0)) <= 0.5
            for m in typed.weights(action)
        )
        current = dict(typed.weights(action))
        steps.append(action)
    assert current == {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}
    assert len(steps) == 2
    assert "stepping at most 50% per tick" in steps[0].reason


def test_floors_hold_when_the_budget_is_exhausted() -> None:
    """At 100% the cheapest model takes everything except what a floor keeps."""
    snap = snapshot(cost_state(510.0), route_state("code", CODE.weights))
    (action,) = policy(CODE).evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == {"claude-sonnet": 0.5, "gpt-4o": 0.0, "gemini": 0.5}


def test_shift_stops_at_the_floor_of_the_most_expensive_model() -> None:
    """At 90% a floored model gives up only what lies above its floor."""
    snap = snapshot(cost_state(460.0), route_state("code", CODE.weights))
    (action,) = policy(CODE).evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == {"claude-sonnet": 0.5, "gpt-4o": 0.3, "gemini": 0.2}
    assert "moving 50% of claude-sonnet traffic to gemini" in action.reason


def test_new_month_restores_the_configured_weights() -> None:
    """When a new month starts, shifted weights go back to the configured ones."""
    july = datetime(2025, 7, 1, 0, 5, tzinfo=UTC)
    snap = snapshot(
        cost_state(0.4, now=july),
        route_state("chat", {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}, now=july),
        now=july,
    )
    (action,) = policy(CHAT).evaluate(snap, History(), july).actions
    assert typed.weights(action) == {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}
    assert "configured weights" in action.reason


def test_stale_or_missing_spend_proposes_nothing() -> None:
    """Without this month's spend the policy neither shifts nor restores weights."""
    shifted = route_state("chat", {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0})
    last_month = cost_state(450.0, month="2025-05")
    for snap in (snapshot(shifted), snapshot(last_month, shifted)):
        result = policy(CHAT).evaluate(snap, History(), NOW)
        assert result.actions == ()
        assert result.notes == ()


def test_cloud_spend_counts_toward_the_budget() -> None:
    """AWS month-to-date spend from cost://aws is added to the LLM spend."""
    aws = ResourceState(
        ref=ResourceRef("cost", "aws", "cost"),
        health=cost_state(0).health,
        observed_at=NOW,
        metrics={"month_to_date_usd": 160.0},
        cloud_spend=CloudSpend(month_to_date_usd=160.0, forecast_month_end_usd=240.0),
    )
    snap = snapshot(cost_state(300.0), aws, route_state("chat", CHAT.weights))
    result = policy(CHAT).evaluate(snap, History(), NOW)
    assert [typed.weights(a) for a in result.actions] == [
        {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    ]
    assert result.notes[0].payload["cloud_spend_usd"] == 160.0

    without_cloud = policy(CHAT, budget=Budget(include_cloud_spend=False))
    assert without_cloud.evaluate(snap, History(), NOW).actions == ()


def test_last_months_cloud_bill_does_not_count_toward_the_new_month() -> None:
    """A cost://aws answer fetched last month (cached for an hour) is not this month's spend."""
    july = datetime(2025, 7, 1, 0, 10, tzinfo=UTC)
    june_bill = ResourceState(
        ref=ResourceRef("cost", "aws", "cost"),
        health=cost_state(0).health,
        observed_at=datetime(2025, 6, 30, 23, 40, tzinfo=UTC),
        metrics={"month_to_date_usd": 480.0},
        cloud_spend=CloudSpend(month_to_date_usd=480.0, forecast_month_end_usd=495.0),
    )
    configured = route_state("chat", CHAT.weights, now=july)
    snap = snapshot(cost_state(1.0, now=july), june_bill, configured, now=july)
    result = policy(CHAT).evaluate(snap, History(), july)
    assert result.actions == ()
    assert result.notes == ()


def test_alert_fires_once_when_the_threshold_is_crossed() -> None:
    """An alert is raised on the tick spend crosses a threshold, not on every tick after."""
    route = route_state("chat", CHAT.weights)
    before = snapshot(cost_state(420.0), route)
    now = snapshot(cost_state(430.0), route)
    assert policy(CHAT).evaluate(now, History(snapshots=(before,)), NOW).notes == ()
    below = snapshot(cost_state(390.0), route)
    (note,) = policy(CHAT).evaluate(now, History(snapshots=(below,)), NOW).notes
    assert note.key == "budget:2025-06:alert"


def test_a_tick_without_spend_does_not_raise_the_alert_again() -> None:
    """One tick whose cost://llm is missing (its observe failed) is no new crossing after it."""
    route = route_state("chat", CHAT.weights)
    known, blip = snapshot(cost_state(430.0), route), snapshot(route)
    cost = policy(CHAT)
    assert cost.evaluate(blip, History(snapshots=(known,)), NOW).notes == ()
    assert (
        cost.evaluate(
            snapshot(cost_state(431.0), route), History(snapshots=(known, blip)), NOW
        ).notes
        == ()
    )


def test_weights_already_at_target_need_no_action() -> None:
    """Once the target weights are in place the policy proposes nothing more."""
    shifted = {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    snap = snapshot(cost_state(470.0), route_state("chat", shifted))
    assert policy(CHAT).evaluate(snap, History(), NOW).actions == ()


def test_a_model_no_longer_allowed_leaves_even_below_the_smallest_change() -> None:
    """min_change spares small moves between allowed models, not a model the route dropped."""
    left = {"gpt-4o": 0.595, "gemini": 0.2, "claude": 0.2, "llama": 0.005}
    snap = snapshot(cost_state(10.0), route_state("chat", left))
    (action,) = policy(CHAT).evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == CHAT.weights
    assert "draining llama" in action.reason


def test_routes_that_were_not_observed_are_left_alone() -> None:
    """A route missing from the snapshot (Redis down) gets no proposal."""
    snap = snapshot(cost_state(470.0), route_state("chat", CHAT.weights))
    result = policy(CHAT, CODE).evaluate(snap, History(), NOW)
    assert [a.target.name for a in result.actions] == ["chat"]


def test_from_settings_builds_the_policy_from_both_sections() -> None:
    """CostSettings and RoutingSettings make the same policy as the hand-built one."""
    cost = CostSettings(
        enabled=True,
        prices={
            "gpt-4o": ModelPrice(input_per_1k=0.0025, output_per_1k=0.01),
            "claude": ModelPrice(input_per_1k=0.0008, output_per_1k=0.004),
            "gemini": ModelPrice(input_per_1k=0.000075, output_per_1k=0.0003),
        },
    )
    routing = RoutingSettings(routes={"chat": RouteSettings(weights=dict(CHAT.weights))})
    built = CostPolicy.from_settings(cost, routing)
    snap = snapshot(cost_state(450.0), route_state("chat", CHAT.weights))
    (action,) = built.evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    assert built.name == "cost"


def test_a_model_without_a_price_is_a_configuration_error() -> None:
    """Every model a route allows must have a price, or the policy refuses to start."""
    route = Route("chat", {"gpt-4o": 1.0}, ("gpt-4o", "mystery"))
    with pytest.raises(ValueError, match="mystery"):
        policy(route)


def test_weights_of_every_proposal_sum_to_one() -> None:
    """Proposed weights sum to 1 at every stage."""
    for spend in (0.0, 450.0, 500.0):
        snap = snapshot(cost_state(spend), route_state("chat", {"claude": 1.0}))
        for action in policy(CHAT).evaluate(snap, History(), NOW).actions:
            assert typed.weights(action) is not None
            assert math.fsum(typed.weights(action).values()) == pytest.approx(1, abs=1e-12)


#: The last week on chat: gemini, the cheapest, answers 3 requests in 10.
GEMINI_FAILING = {"chat": {"gemini": stats(500, 0.3, 450.0, 0.2)}}


@pytest.mark.parametrize(
    ("spend", "expected"),
    [
        (460.0, {"gpt-4o": 0.3, "gemini": 0.2, "claude": 0.5}),
        (510.0, {"gpt-4o": 0.0, "gemini": 0.0, "claude": 1.0}),
    ],
)
def test_the_budget_passes_over_a_cheapest_model_that_fails_its_requests(
    spend: float, expected: dict[str, float]
) -> None:
    """The budget moves traffic to the cheapest model whose success rate passes the quality gate."""
    snap = snapshot(
        cost_state(spend, performance=GEMINI_FAILING), route_state("chat", CHAT.weights)
    )
    cost = policy(CHAT, selection=SelectionRules())
    (action,) = cost.evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == expected
    assert "gemini (success 30.0% over 500 requests, below 90%)" in action.reason


def test_with_every_model_failing_the_budget_still_takes_the_cheapest() -> None:
    """When no model passes the quality gate, the cheapest one takes the traffic as before."""
    failing = {m: stats(500, 0.3, 450.0, 0.2) for m in CHAT.models}
    snap = snapshot(
        cost_state(510.0, performance={"chat": failing}), route_state("chat", CHAT.weights)
    )
    (action,) = policy(CHAT, selection=SelectionRules()).evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}


def test_the_shift_never_moves_traffic_to_a_pricier_model() -> None:
    """With the cheaper models failing, the shift stage moves nothing rather than raise the cost."""
    route = Route("chat", {"gemini": 0.5, "claude": 0.5}, ("gemini", "claude", "gpt-4o"))
    failing = {m: stats(500, 0.3, 450.0, 0.2) for m in ("gemini", "claude")}
    snap = snapshot(
        cost_state(460.0, performance={"chat": failing}), route_state("chat", route.weights)
    )
    assert policy(route, selection=SelectionRules()).evaluate(snap, History(), NOW).actions == ()


@pytest.mark.parametrize("bill", [math.nan, math.inf])
def test_a_cloud_bill_that_is_not_a_number_leaves_the_spend_unknown(bill: float) -> None:
    """A NaN or infinite cloud bill is unknown spend: nothing moves, shifted traffic stays."""
    aws = ResourceState(
        ref=ResourceRef("cost", "aws", "cost"),
        health=cost_state(0).health,
        observed_at=NOW,
        metrics={"month_to_date_usd": bill},
        cloud_spend=CloudSpend(month_to_date_usd=bill, forecast_month_end_usd=bill),
    )
    shifted = {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    snap = snapshot(cost_state(460.0), aws, route_state("chat", shifted))
    result = policy(CHAT).evaluate(snap, History(), NOW)
    assert result.actions == ()
    assert result.notes == ()


def test_a_route_recorded_without_tokens_is_priced_at_the_default_mix() -> None:
    """Usage recorded with no tokens does not make every model free: the cheapest still wins."""
    usage = {"chat": route_usage(100, input_tokens=0, output_tokens=0)}
    snap = snapshot(cost_state(510.0, by_route=usage), route_state("chat", CHAT.weights))
    (action,) = policy(CHAT).evaluate(snap, History(), NOW).actions
    assert typed.weights(action) == {"gpt-4o": 0.0, "gemini": 1.0, "claude": 0.0}


def test_usage_under_a_model_no_price_matches_is_told_once_a_month() -> None:
    """A model the usage names that no price matches raises one alert naming it and what
    was counted; the next tick, and after a restart (the alert read back), it does not."""
    unpriced = {"gpt-5": ModelSpend(0.007, 1)}
    snap = snapshot(cost_state(1.0, unpriced=unpriced), route_state("chat", CHAT.weights))

    first = policy(CHAT).evaluate(snap, History(), NOW)
    alerts = tuple(note_event("t1", NOW, "cost", note) for note in first.notes)
    again = policy(CHAT).evaluate(snap, History(alerts=alerts), NOW)
    july = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)
    next_month = snapshot(
        cost_state(1.0, now=july, unpriced=unpriced), route_state("chat", CHAT.weights), now=july
    )
    in_july = policy(CHAT).evaluate(next_month, History(alerts=alerts), july)

    (note,) = first.notes
    assert note.alert
    assert "'gpt-5' matches no price" in note.message
    assert "$0.01 over 1 request(s)" in note.message
    assert note.payload == {
        "unpriced": True,
        "model": "gpt-5",
        "month": "2025-06",
        "counted_usd": 0.007,
        "requests": 1,
    }
    assert again.notes == ()
    assert [n.payload["month"] for n in in_july.notes] == ["2025-07"]


def test_a_budget_raised_across_a_restart_alerts_at_its_own_thresholds() -> None:
    """After a restart, alerts raised against the old budget do not hide the new one's stages."""
    first = policy(CHAT).evaluate(
        snapshot(cost_state(510.0), route_state("chat", CHAT.weights)), History(), NOW
    )
    alerts = tuple(note_event("before", NOW, "cost", note) for note in first.notes)
    assert [a.payload["stage"] for a in alerts] == ["cheapest"]
    later = datetime(2025, 6, 20, 13, 0, tzinfo=UTC)
    raised = policy(CHAT, budget=Budget(monthly_usd=600.0))
    result = raised.evaluate(
        snapshot(cost_state(520.0, now=later), route_state("chat", CHAT.weights), now=later),
        History(alerts=alerts),
        later,
    )
    assert [n.payload["stage"] for n in result.notes] == ["alert"]
    assert result.notes[0].payload["budget_usd"] == 600.0
