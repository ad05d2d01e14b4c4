"""The ``cost://llm`` resource, built from usage rows: the one builder of the LLM-usage facet.

Called by `jarvis.actuators.llm.usage.LlmUsageActuator` with the rows of its
SQL aggregates and by `jarvis.simulation.llm.SimulatedLlm` with rows from its
counters, so the real and the simulated resource cannot drift apart. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from jarvis.model import (
    Health,
    LlmUsage,
    Metric,
    ModelPerformance,
    ModelSpend,
    ResourceRef,
    ResourceState,
    RouteUsage,
)

REF = ResourceRef("cost", "llm", "cost")


class MonthRow(NamedTuple):
    """One (route, model) pair's usage this month.

    A tuple, like the SQL row it stands for: the simulated platform builds
    one per pair every tick, and `usage_state` unpacks it.
    """

    route: str
    model: str
    requests: int
    cost_usd: float
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One (route, model) pair's record over the performance window."""

    route: str
    model: str
    requests: int
    success_rate: float
    mean_latency_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int


@dataclass(slots=True)
class _RouteSum:
    cost_usd: float = 0.0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def performance_of(window_rows: Iterable[WindowRow]) -> dict[str, dict[str, ModelPerformance]]:
    """Route → model → record over the performance window, for `usage_state`.

    Apart so a caller whose window changes less often than it observes (the
    simulated platform's, hourly) builds it once and passes it to every state.
    """
    performance: dict[str, dict[str, ModelPerformance]] = {}
    for w in window_rows:
        performance.setdefault(w.route, {})[w.model] = ModelPerformance(
            requests=w.requests,
            success_rate=w.success_rate,
            mean_latency_ms=w.mean_latency_ms,
            cost_usd=round(w.cost_usd, 6),
            input_tokens=w.input_tokens,
            output_tokens=w.output_tokens,
        )
    return performance


def usage_state(
    month_rows: Iterable[MonthRow],
    performance: Mapping[str, Mapping[str, ModelPerformance]],
    *,
    month: str,
    window_days: int,
    month_seconds: float,
    elapsed_seconds: float,
    observed_at: datetime,
    unpriced: Mapping[str, ModelSpend] | None = None,
) -> ResourceState:
    """The ``cost://llm`` state of ``month`` ("YYYY-MM"); ``performance`` from `performance_of`.

    The forecast extrapolates linearly over ``elapsed_seconds`` (at least an
    hour) of the month's ``month_seconds``. ``unpriced``: the spend of models
    that match no configured price (counted in ``month_rows`` too). The month's total is summed per
    route first, in the order routes first appear in ``month_rows``; the
    simulation's pinned record depends on that order of float additions.
    """
    by_model: dict[str, tuple[float, int]] = {}
    sums: dict[str, _RouteSum] = {}
    costs: dict[str, dict[str, float]] = {}
    for route, model, count, cost, input_tokens, output_tokens in month_rows:
        s = sums.get(route)
        if s is None:
            s = sums[route] = _RouteSum()
            costs[route] = {}
        s.cost_usd += cost
        s.requests += count
        s.input_tokens += input_tokens
        s.output_tokens += output_tokens
        costs[route][model] = round(cost, 6)
        model_cost, model_requests = by_model.get(model, (0.0, 0))
        by_model[model] = (model_cost + cost, model_requests + count)
    total = 0.0
    requests = 0
    for s in sums.values():
        total += s.cost_usd
        requests += s.requests
    forecast = total * month_seconds / max(elapsed_seconds, 3600.0)
    usage = LlmUsage(
        month=month,
        window_days=window_days,
        month_to_date_usd=round(total, 6),
        forecast_month_end_usd=round(forecast, 6),
        requests_month_to_date=requests,
        by_model={m: ModelSpend(round(c, 6), n) for m, (c, n) in sorted(by_model.items())},
        by_route={
            r: RouteUsage(
                cost_usd=round(s.cost_usd, 6),
                requests=s.requests,
                input_tokens=s.input_tokens,
                output_tokens=s.output_tokens,
                by_model=costs[r],
            )
            for r, s in sorted(sums.items())
        },
        performance=performance,
        unpriced=unpriced or {},
    )
    return ResourceState(
        ref=REF,
        health=Health.HEALTHY,
        observed_at=observed_at,
        detail=f"LLM usage for {month}",
        metrics={
            Metric.MONTH_TO_DATE_USD: usage.month_to_date_usd,
            Metric.FORECAST_MONTH_END_USD: usage.forecast_month_end_usd,
            Metric.REQUESTS_MONTH_TO_DATE: float(requests),
        },
        llm_usage=usage,
    )
