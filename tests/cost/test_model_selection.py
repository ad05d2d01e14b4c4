"""Performance-based selection: the best model per route for its success, latency and cost."""

from __future__ import annotations

from jarvis.model import History
from jarvis.policies.model_selection import ModelStats, SelectionRules, select
from tests import actions as typed
from tests.cost.builders import (
    CODE,
    CREATIVE,
    NOW,
    cost_state,
    policy,
    route_state,
    snapshot,
    stats,
)

RULES = SelectionRules()

#: Last week on the code route: Claude Sonnet succeeds far more often than GPT-4o.
CODE_WEEK = {
    "claude-sonnet": stats(4000, 0.97, 1400, 60.0),
    "gpt-4o": stats(2000, 0.88, 900, 20.0),
}
#: Last week on the creative route: equal quality, GPT-4o faster and cheaper.
CREATIVE_WEEK = {
    "gpt-4o": stats(3000, 0.96, 800, 30.0),
    "claude-sonnet": stats(3000, 0.955, 1500, 45.0),
}


def test_claude_is_preferred_for_code_and_gpt_for_creative() -> None:
    """The seed's "Claude for code, GPT for creative" falls out of a week of usage."""
    snap = snapshot(
        cost_state(100.0, performance={"code": CODE_WEEK, "creative": CREATIVE_WEEK}),
        route_state("code", CODE.weights),
        route_state("creative", CREATIVE.weights),
    )
    result = policy(CODE, CREATIVE, selection=RULES).evaluate(snap, History(), NOW)
    by_route = {a.target.name: a for a in result.actions}
    # A quarter of every other model's share moves to the winner.
    assert typed.weights(by_route["code"]) == {
        "claude-sonnet": 0.775,
        "gpt-4o": 0.225,
        "gemini": 0.0,
    }
    assert "preferring claude-sonnet on performance" in by_route["code"].reason
    assert typed.weights(by_route["creative"]) == {
        "gpt-4o": 0.625,
        "claude-sonnet": 0.375,
        "gemini": 0.0,
    }
    assert "preferring gpt-4o on performance" in by_route["creative"].reason


def test_budget_rules_apply_on_top_of_the_performance_choice() -> None:
    """At 90% of budget the shift to the cheapest model starts from the preferred weights."""
    snap = snapshot(
        cost_state(455.0, performance={"code": CODE_WEEK}), route_state("code", CODE.weights)
    )
    (action,) = policy(CODE, selection=RULES).evaluate(snap, History(), NOW).actions
    # Preferred: sonnet 0.775, gpt-4o 0.225; sonnet (priciest) gives 0.275 down to its floor.
    assert typed.weights(action) == {"claude-sonnet": 0.5, "gpt-4o": 0.225, "gemini": 0.275}


def test_too_few_requests_mean_no_preference() -> None:
    """A model with fewer requests than the minimum is not judged."""
    thin = {"claude-sonnet": stats(99, 0.99, 100, 0.1), "gpt-4o": stats(5000, 0.9, 900, 50.0)}
    parsed = {m: ModelStats.parse(s) for m, s in thin.items()}
    assert select({m: s for m, s in parsed.items() if s}, CODE.models, RULES) is None


def test_near_ties_prefer_nobody() -> None:
    """A winner must beat the runner-up's score by the margin, so near-ties do not flap."""
    tie = {
        "gpt-4o": ModelStats(1000, 0.95, 1000, 10.0),
        "claude-sonnet": ModelStats(1000, 0.95, 1050, 10.0),
    }
    assert select(tie, CREATIVE.models, RULES) is None
    assert select(tie, CREATIVE.models, SelectionRules(score_margin=0.01)) is not None


def test_a_model_failing_the_quality_gate_never_wins_on_price() -> None:
    """A cheap, fast model with a poor success rate loses to a reliable one."""
    week = {
        "gemini": ModelStats(5000, 0.80, 300, 1.0),
        "gpt-4o": ModelStats(5000, 0.96, 900, 50.0),
    }
    chosen = select(week, CREATIVE.models, RULES)
    assert chosen is not None
    assert chosen.model == "gpt-4o"


def test_models_the_route_does_not_allow_are_not_judged() -> None:
    """Statistics for a model outside the route's allowed list are ignored."""
    week = {
        "mystery": ModelStats(5000, 0.99, 100, 1.0),
        "gpt-4o": ModelStats(5000, 0.96, 900, 50.0),
    }
    assert select(week, CREATIVE.models, RULES) is None


def test_malformed_statistics_are_skipped() -> None:
    """Entries missing a field or of the wrong type parse to None."""
    assert ModelStats.parse({"requests": 10}) is None
    assert ModelStats.parse("nope") is None
    assert ModelStats.parse(stats(10, 1.0, 5, 0.1)) == ModelStats(10, 1.0, 5, 0.1)
