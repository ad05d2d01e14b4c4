"""AWS spend: month to date and a month-end forecast, from Cost Explorer.

An observe-only actuator built by `jarvis.actuators.aws.ecs.aws_actuators` when
``[aws] cost = true``; the cost policy reads its one resource, ``cost://aws``
(kind ``cost``), from the snapshot. Cost Explorer charges per request, so the
answer is cached for ``cost_refresh_seconds`` (an hour at least) and a failed
call waits ``cost_retry_seconds``; every other tick returns the cached state.

Facet `CloudSpend` (and the same numbers as metrics): ``month_to_date_usd``,
``forecast_month_end_usd`` (month to date extrapolated linearly over the days
it covers: the whole days before today, or on the 1st the 1st so far; Cost
Explorer's own forecast API costs another request and needs a history Jarvis
does not wait for).
Attributes: ``by_service_usd`` (AWS service name to month-to-date USD),
``period_start`` and ``period_end`` (the days asked for, the end exclusive),
``fetched_at``, ``estimated`` (AWS has not closed the figures), ``error`` (the
last failure's code, while serving a stale answer).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from jarvis.actuators.aws.clients import aws_call
from jarvis.actuators.base import ActuatorError, Scope
from jarvis.model import (
    Clock,
    CloudSpend,
    Health,
    Metric,
    ResourceRef,
    ResourceState,
)

if TYPE_CHECKING:
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_ce.type_defs import GetCostAndUsageResponseTypeDef

PROVIDER = "cost"
REF = ResourceRef(PROVIDER, "aws", "cost")
METRIC = "UnblendedCost"


class CostActuator:
    """Observes AWS spend at most once per refresh period; owns no action kinds."""

    name = "aws-cost"
    provider = PROVIDER

    def __init__(
        self,
        client: CostExplorerClient,
        *,
        clock: Clock,
        limiter: anyio.CapacityLimiter,
        refresh_seconds: float,
        retry_seconds: float,
    ) -> None:
        self._client = client
        self._clock = clock
        self._limiter = limiter
        self._refresh = timedelta(seconds=refresh_seconds)
        self._retry = timedelta(seconds=retry_seconds)
        self._cached: ResourceState | None = None
        self._next_call: datetime | None = None

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        if self._next_call is not None and now < self._next_call and self._cached is not None:
            return [self._cached]
        try:
            answer = await self._fetch(now)
        except ActuatorError as exc:
            self._next_call = now + self._retry
            if self._cached is None:
                raise
            stale = dict(self._cached.attributes) | {"error": exc.code or "Error"}
            return [
                ResourceState(
                    ref=REF,
                    health=Health.UNKNOWN,
                    observed_at=self._cached.observed_at,
                    detail=f"serving the answer of {self._cached.observed_at:%H:%M}: {exc}",
                    metrics=self._cached.metrics,
                    attributes=stale,
                    cloud_spend=self._cached.cloud_spend,
                )
            ]
        self._next_call = now + self._refresh
        self._cached = _state(answer, now)
        return [self._cached]

    async def _fetch(self, now: datetime) -> GetCostAndUsageResponseTypeDef:
        start, end = _period(now)
        return await aws_call(
            "ce:GetCostAndUsage",
            lambda: self._client.get_cost_and_usage(
                TimePeriod={"Start": start.isoformat(), "End": end.isoformat()},
                Granularity="MONTHLY",
                Metrics=[METRIC],
                GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
            ),
            self._limiter,
        )

    async def aclose(self) -> None:
        """The Cost Explorer client belongs to the ECS actuator, which closes it."""


def _period(now: datetime) -> tuple[date, date]:
    """The days asked of Cost Explorer: from the 1st up to today, which is left out.

    End is exclusive, so today's partial figures are not asked for, and must
    follow Start: on the 1st, the 1st alone (its figures so far stand for the day).
    """
    start = now.date().replace(day=1)
    return start, max(now.date(), start + timedelta(days=1))


def _state(answer: GetCostAndUsageResponseTypeDef, now: datetime) -> ResourceState:
    by_service: dict[str, float] = {}
    total = 0.0
    estimated = False
    for period in answer.get("ResultsByTime", []):
        estimated = estimated or bool(period.get("Estimated"))
        groups = period.get("Groups", [])
        for group in groups:
            amount = float(group.get("Metrics", {}).get(METRIC, {}).get("Amount", "0"))
            name = (group.get("Keys") or ["unknown"])[0]
            by_service[name] = by_service.get(name, 0.0) + amount
        if not groups:
            total += float(period.get("Total", {}).get(METRIC, {}).get("Amount", "0"))
    total += sum(by_service.values())
    days = calendar.monthrange(now.year, now.month)[1]
    # Divided by the days the spend covers, not the time elapsed: counting today's
    # hours, whose spend was not asked for, ran the forecast low by up to a day's share.
    start, end = _period(now)
    spend = CloudSpend(
        month_to_date_usd=round(total, 4),
        forecast_month_end_usd=round(total * days / (end - start).days, 4),
    )
    return ResourceState(
        ref=REF,
        health=Health.HEALTHY,
        observed_at=now,
        metrics={
            Metric.MONTH_TO_DATE_USD: spend.month_to_date_usd,
            Metric.FORECAST_MONTH_END_USD: spend.forecast_month_end_usd,
        },
        cloud_spend=spend,
        attributes={
            "by_service_usd": {k: round(v, 4) for k, v in sorted(by_service.items())},
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "fetched_at": now.isoformat(),
            "estimated": estimated,
        },
    )
