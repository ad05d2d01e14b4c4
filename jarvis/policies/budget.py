"""The month's spend against the budget, and the budget stage it reaches.

Used by the cost policy (`jarvis.policies.cost`), which calls `read_spend` on
the current snapshot each tick (and on the previous one, unless it read that one
the tick before) and asks its `Budget` which `Stage` the total is in.
`read_spend` reads the ``cost://llm`` resource (published by the `llm_usage`
actuator) and, when asked, ``cost://aws``; LLM spend from another month, or none
at all, or a total that is not a finite number, reads as unknown (None). What
counts against the budget is one definition, `Spend.against_budget`, which the
daily report (`jarvis.report`) uses too on the same facts as recorded: the LLM
spend, plus the cloud bill when the budget includes it and it was observed in
the same month (a bill observed in another month counts as none).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import (
    ModelPerformance,
    ModelSpend,
    RouteUsage,
    Snapshot,
    month_bounds,
    month_key,
)

__all__ = ["DEFAULT_TOKENS", "Budget", "CloudBill", "Spend", "Stage", "read_spend"]


class Stage(enum.IntEnum):
    """How far into the budget the month's spend is."""

    NORMAL = 0
    ALERT = 1
    SHIFT = 2
    CHEAPEST = 3


@dataclass(frozen=True, slots=True)
class Budget:
    """The monthly budget and its thresholds, as fractions of it."""

    monthly_usd: float = 500.0
    alert_at: float = 0.8
    shift_at: float = 0.9
    cheapest_at: float = 1.0
    shift_share: float = 0.5
    include_cloud_spend: bool = True
    min_change: float = 0.01

    def stage(self, spend_usd: float) -> Stage:
        """The highest stage whose threshold the spend has reached (NORMAL below all)."""
        used = spend_usd / self.monthly_usd
        if used >= self.cheapest_at:
            return Stage.CHEAPEST
        if used >= self.shift_at:
            return Stage.SHIFT
        if used >= self.alert_at:
            return Stage.ALERT
        return Stage.NORMAL


@dataclass(frozen=True, slots=True)
class CloudBill:
    """A cloud bill as observed: month to date, its month-end forecast, and when."""

    observed_at: datetime
    month_to_date_usd: float
    forecast_usd: float


#: The token mix assumed for a route with no usage recorded this month.
DEFAULT_TOKENS = (1000.0, 1000.0)


@dataclass(frozen=True, slots=True)
class Spend:
    """This month's spend as observed: LLM usage plus cloud bills, and usage by route."""

    month: str
    llm_usd: float
    cloud_usd: float
    forecast_usd: float
    routes: Mapping[str, RouteUsage] = field(default_factory=dict)
    performance: Mapping[str, Mapping[str, ModelPerformance]] = field(default_factory=dict)
    unpriced: Mapping[str, ModelSpend] = field(default_factory=dict)
    """Models no configured price matches, as recorded → their spend (in ``llm_usd``)."""

    @classmethod
    def against_budget(
        cls,
        month: str,
        llm_usd: float,
        llm_forecast_usd: float,
        cloud: CloudBill | None,
        *,
        include_cloud: bool,
        routes: Mapping[str, RouteUsage] | None = None,
        performance: Mapping[str, Mapping[str, ModelPerformance]] | None = None,
        unpriced: Mapping[str, ModelSpend] | None = None,
    ) -> Spend:
        """The spend of ``month`` that counts against the budget: the LLM spend, plus
        ``cloud`` when ``include_cloud`` and it was observed in ``month``.

        The AWS answer is cached for an hour and served stale while Cost
        Explorer fails: one fetched last month is last month's bill, not this
        month's.
        """
        counted = include_cloud and cloud is not None and month_key(cloud.observed_at) == month
        return cls(
            month=month,
            llm_usd=llm_usd,
            cloud_usd=cloud.month_to_date_usd if counted and cloud else 0.0,
            forecast_usd=llm_forecast_usd + (cloud.forecast_usd if counted and cloud else 0.0),
            routes=routes or {},
            performance=performance or {},
            unpriced=unpriced or {},
        )

    @property
    def total_usd(self) -> float:
        return self.llm_usd + self.cloud_usd

    def requests_per_hour(self, route: str, now: datetime) -> float:
        """The route's average request rate so far this month."""
        start, _ = month_bounds(now)
        hours = max(1.0, (now - start).total_seconds() / 3600)
        usage = self.routes.get(route)
        return (0.0 if usage is None else float(usage.requests)) / hours

    def token_mix(self, route: str) -> tuple[float, float]:
        """Mean input and output tokens per request on the route this month.

        `DEFAULT_TOKENS` for a route with no requests, or with none of their
        tokens recorded (usage recorded by cost alone): at no tokens every model
        cost 0 a request, and the cheapest was the first configured, often the
        priciest, which then took all the traffic when the budget ran out.
        """
        usage = self.routes.get(route)
        if usage is None or usage.requests <= 0 or usage.input_tokens + usage.output_tokens <= 0:
            return DEFAULT_TOKENS
        requests = float(usage.requests)
        return (usage.input_tokens / requests, usage.output_tokens / requests)


def read_spend(snapshot: Snapshot, now: datetime, *, include_cloud: bool) -> Spend | None:
    """The spend in ``snapshot`` for the month of ``now``; None if unknown, stale or not finite."""
    llm = snapshot.get("cost://llm")
    usage = None if llm is None else llm.llm_usage
    if usage is None:
        return None
    month = month_key(now)
    if usage.month != month:
        return None
    cloud = snapshot.get("cost://aws") if include_cloud else None
    bill = None if cloud is None else cloud.cloud_spend
    spend = Spend.against_budget(
        month,
        usage.month_to_date_usd,
        usage.forecast_month_end_usd,
        None
        if cloud is None or bill is None
        else CloudBill(cloud.observed_at, bill.month_to_date_usd, bill.forecast_month_end_usd),
        include_cloud=include_cloud,
        routes=usage.by_route,
        performance=usage.performance,
        unpriced=usage.unpriced,
    )
    # A NaN bill reached no stage, so shifted traffic went back to the priciest
    # models; an infinite one sent everything to the cheapest. Neither is a spend.
    if not (math.isfinite(spend.total_usd) and math.isfinite(spend.forecast_usd)):
        return None
    return spend
