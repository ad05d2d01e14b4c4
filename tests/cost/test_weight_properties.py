"""Properties of routing weights: they always sum to 1 and never break a floor."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import History
from jarvis.policies.budget import Budget
from jarvis.policies.cost_settings import Route
from jarvis.policies.model_selection import SelectionRules, quantize
from tests import actions as typed
from tests.cost.builders import NOW, cost_state, policy, route_state, snapshot, stats

MODELS = ("gpt-4o", "claude", "claude-sonnet", "gemini")
TOLERANCE = 1e-9


@st.composite
def routes(draw: st.DrawFn) -> Route:
    """A route over 1-4 priced models with floors its configured weights respect."""
    models = tuple(draw(st.permutations(MODELS))[: draw(st.integers(1, len(MODELS)))])
    raw = [draw(st.integers(0, 100)) for _ in models]
    if sum(raw) == 0:
        raw[0] = 1
    weights = quantize(dict(zip(models, (r / sum(raw) for r in raw), strict=True)), {})
    floors = {
        m: round(w * draw(st.sampled_from((0.0, 0.25, 0.5, 1.0))), 6)
        for m, w in weights.items()
        if draw(st.booleans())
    }
    return Route("r", weights, models, {m: f for m, f in floors.items() if f > 0})


weight_maps = st.dictionaries(
    st.sampled_from(MODELS),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
).filter(lambda w: math.fsum(w.values()) > 0)


@given(weights=weight_maps)
def test_quantized_weights_sum_to_one_in_whole_millionths(weights: dict[str, float]) -> None:
    """Any positive weight map quantizes to non-negative millionths summing to 1."""
    out = quantize(weights, {})
    assert set(out) == set(weights)
    assert sum(round(w * 1_000_000) for w in out.values()) == 1_000_000
    assert all(w >= 0 for w in out.values())
    assert abs(math.fsum(out.values()) - 1) <= TOLERANCE


@settings(max_examples=300)
@given(
    route=routes(),
    spend=st.floats(min_value=0, max_value=2000),
    current=weight_maps,
    share=st.floats(min_value=0, max_value=1),
    success=st.lists(st.floats(min_value=0.5, max_value=1), min_size=4, max_size=4),
    max_shift=st.sampled_from((0.1, 0.5, 1.0)),
)
def test_proposals_sum_to_one_and_respect_floors(
    route: Route,
    spend: float,
    current: dict[str, float],
    share: float,
    success: list[float],
    max_shift: float,
) -> None:
    """Whatever the spend, current weights and usage, proposals sum to 1 and keep every floor."""
    performance = {
        "r": {
            m: stats(500, s, 500 + 100 * i, 5.0 + i)
            for i, (m, s) in enumerate(zip(MODELS, success, strict=True))
        }
    }
    snap = snapshot(cost_state(spend, performance=performance), route_state("r", current))
    rules = SelectionRules(min_requests=100)
    cost = policy(route, budget=Budget(shift_share=share), selection=rules, max_shift=max_shift)
    for action in cost.evaluate(snap, History(), NOW).actions:
        assert typed.weights(action) is not None
        assert abs(math.fsum(typed.weights(action).values()) - 1) <= TOLERANCE
        # A model the route no longer allows never gains a share of the traffic
        # (but for rounding to the millionth, which the routing actuator allows).
        total = math.fsum(current.values())
        for model in set(typed.weights(action)) - set(route.models):
            assert typed.weights(action)[model] <= current.get(model, 0.0) / total + 1e-6
        for model, floor in route.floors.items():
            assert typed.weights(action)[model] >= floor - TOLERANCE


@settings(max_examples=300)
@given(
    route=routes(),
    spend=st.floats(min_value=0, max_value=2000),
    mix=st.lists(st.integers(0, 100), min_size=4, max_size=4),
    max_shift=st.sampled_from((0.05, 0.2, 0.5)),
    removed=st.integers(0, 400),
)
def test_no_weight_moves_further_than_the_guard_allows(
    route: Route, spend: float, mix: list[int], max_shift: float, removed: int
) -> None:
    """From any valid weights, each proposal moves every model by at most max_shift.

    Every model counts, one the route no longer allows (llama, with no price
    left either) included: the guard bounds the move of each.
    """
    raw = {m: float(mix[i]) for i, m in enumerate(route.models)}
    raw["llama"] = float(removed)
    if math.fsum(raw.values()) == 0:
        raw[route.models[0]] = 1.0
    current = quantize(
        {m: w + route.floors.get(m, 0.0) * math.fsum(raw.values()) * 4 for m, w in raw.items()},
        route.floors,
    )
    snap = snapshot(cost_state(spend), route_state("r", current))
    for action in policy(route, max_shift=max_shift).evaluate(snap, History(), NOW).actions:
        assert typed.weights(action) is not None
        proposed = typed.weights(action)
        for model in proposed.keys() | current.keys():
            assert abs(proposed.get(model, 0.0) - current.get(model, 0.0)) <= max_shift + 1e-6
