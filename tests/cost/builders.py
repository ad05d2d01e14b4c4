"""Snapshots and policies for the cost tests, shaped like the actuators' output.

`cost_state` mirrors what `jarvis.actuators.llm.usage` publishes as
``cost://llm``; `route_state` mirrors ``route://<name>`` from the routing
actuator. Prices are list prices per 1k tokens (GPT-4o, Claude 3.5 Haiku and
Sonnet, Gemini 1.5 Flash), so "most expensive" and "cheapest" mean what they
mean in the seed scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from jarvis.model import (
    JSON,
    Health,
    LlmUsage,
    ModelPerformance,
    ModelSpend,
    ResourceRef,
    ResourceState,
    RouteUsage,
    RouteWeights,
    Snapshot,
)
from jarvis.policies.budget import Budget
from jarvis.policies.cost import CostPolicy
from jarvis.policies.cost_settings import Price, Route
from jarvis.policies.model_selection import SelectionRules

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)

PRICES = {
    "gpt-4o": Price(0.0025, 0.01),
    "claude": Price(0.0008, 0.004),
    "claude-sonnet": Price(0.003, 0.015),
    "gemini": Price(0.000075, 0.0003),
}

CHAT = Route("chat", {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}, ("gpt-4o", "gemini", "claude"))
CODE = Route(
    "code",
    {"claude-sonnet": 0.7, "gpt-4o": 0.3},
    ("claude-sonnet", "gpt-4o", "gemini"),
    {"claude-sonnet": 0.5},
)
CREATIVE = Route(
    "creative", {"gpt-4o": 0.5, "claude-sonnet": 0.5}, ("gpt-4o", "claude-sonnet", "gemini")
)


def policy(
    *routes: Route,
    budget: Budget | None = None,
    selection: SelectionRules | None = None,
    max_shift: float = 1.0,
) -> CostPolicy:
    """A cost policy over ``routes``; by default any step size passes the guard."""
    return CostPolicy(
        routes=routes or (CHAT,),
        prices=PRICES,
        budget=budget,
        selection=selection,
        max_shift=max_shift,
    )


def cost_state(
    month_to_date: float,
    *,
    now: datetime = NOW,
    by_model: Mapping[str, float] | None = None,
    by_route: Mapping[str, JSON] | None = None,
    performance: Mapping[str, JSON] | None = None,
    month: str | None = None,
    unpriced: Mapping[str, ModelSpend] | None = None,
) -> ResourceState:
    """``cost://llm`` with its `LlmUsage` facet; routes and performance as `route_usage`/`stats`."""
    return ResourceState(
        ref=ResourceRef("cost", "llm", "cost"),
        health=Health.HEALTHY,
        observed_at=now,
        metrics={
            "month_to_date_usd": month_to_date,
            "forecast_month_end_usd": month_to_date * 1.5,
        },
        llm_usage=LlmUsage(
            month=month or f"{now:%Y-%m}",
            window_days=7,
            month_to_date_usd=month_to_date,
            forecast_month_end_usd=month_to_date * 1.5,
            requests_month_to_date=0,
            by_model={m: ModelSpend(c, 0) for m, c in (by_model or {}).items()},
            by_route={r: _route(u) for r, u in (by_route or {}).items()},
            performance={
                r: {m: _performance(s) for m, s in models.items()}
                for r, models in (performance or {}).items()
            },
            unpriced=unpriced or {},
        ),
    )


def _route(usage: JSON) -> RouteUsage:
    return RouteUsage(
        cost_usd=float(usage.get("cost_usd", 0.0)),
        requests=int(usage["requests"]),
        input_tokens=int(usage["input_tokens"]),
        output_tokens=int(usage["output_tokens"]),
        by_model=dict(usage.get("by_model", {})),
    )


def _performance(stats: JSON) -> ModelPerformance:
    return ModelPerformance(
        requests=int(stats["requests"]),
        success_rate=float(stats["success_rate"]),
        mean_latency_ms=float(stats["mean_latency_ms"]),
        cost_usd=float(stats["cost_usd"]),
        input_tokens=0,
        output_tokens=0,
    )


def route_usage(requests: int, input_tokens: int = 500, output_tokens: int = 500) -> JSON:
    """A route's month-to-date usage: ``requests`` with the given mean token counts."""
    return {
        "requests": requests,
        "input_tokens": requests * input_tokens,
        "output_tokens": requests * output_tokens,
    }


def stats(requests: int, success_rate: float, latency_ms: float, cost_usd: float) -> JSON:
    return {
        "requests": requests,
        "success_rate": success_rate,
        "mean_latency_ms": latency_ms,
        "cost_usd": cost_usd,
    }


def route_state(name: str, weights: Mapping[str, float], *, now: datetime = NOW) -> ResourceState:
    return ResourceState(
        ref=ResourceRef("route", name, "route"),
        health=Health.HEALTHY,
        observed_at=now,
        weights=RouteWeights(dict(weights), 1, {}),
    )


def snapshot(*states: ResourceState, now: datetime = NOW) -> Snapshot:
    return Snapshot(taken_at=now, resources={str(s.ref): s for s in states})
