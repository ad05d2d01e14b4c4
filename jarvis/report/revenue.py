"""The report's revenue figures: MRR and its movements beside what running the product costs.

Pure, like `jarvis.report.figures`, which calls `revenue_figures` with the
month's settled days (`revenue_daily`, read by `jarvis.report.load`), the
cloud bill `last_cloud_bill` finds in the month's ``cost://aws`` observations
and the LLM spend's month-end forecast.
Cost is a month's: the LLM forecast plus the cloud's, each extrapolated
linearly, so it compares with MRR, which is a month's revenue too. The cloud
figure is the last ``cost://aws`` record of the month up to the day's end (a
record is written when the resource changes, so it may be hours old; its time
is shown).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jarvis.model import Event, Movement, RevenueDay
from jarvis.policies.budget import CloudBill

__all__ = ["RevenueFigures", "last_cloud_bill", "revenue_figures"]


@dataclass(frozen=True, slots=True)
class RevenueFigures:
    latest: RevenueDay
    """The last settlement on or before the report's day."""
    month: dict[Movement, float]
    """Movements of the month's settled days up to the report's day, by kind."""
    cloud: CloudBill | None
    """The cloud bill as last recorded (`last_cloud_bill`)."""
    llm_forecast_usd: float | None

    @property
    def cost_usd(self) -> float | None:
        """This month's cost forecast, LLM plus cloud; None when neither is recorded."""
        parts = [p for p in (self.llm_forecast_usd, self.cloud and self.cloud.forecast_usd) if p]
        if self.llm_forecast_usd is None and self.cloud is None:
            return None
        return sum(parts)

    def per_customer(self, *, paying: bool) -> float | None:
        """The month's cost divided by the customers (or the paying ones); None without either."""
        count = self.latest.paying if paying else self.latest.customer_count
        cost = self.cost_usd
        return None if cost is None or count == 0 else cost / count


def revenue_figures(
    days: Sequence[RevenueDay],
    *,
    start: datetime,
    cloud: CloudBill | None = None,
    llm_forecast_usd: float | None = None,
) -> RevenueFigures | None:
    """The figures for the day beginning at ``start``; None when no day is settled by then."""
    settled = [d for d in days if d.day <= start.date()]
    if not settled:
        return None
    month = [d for d in settled if (d.day.year, d.day.month) == (start.year, start.month)]
    return RevenueFigures(
        latest=settled[-1],
        month={kind: sum(d.usd(kind) for d in month) for kind in Movement},
        cloud=cloud,
        llm_forecast_usd=llm_forecast_usd,
    )


def last_cloud_bill(observations: Iterable[Event], end: datetime) -> CloudBill | None:
    """The last ``cost://aws`` record before ``end``: month to date, a linear forecast."""
    last: CloudBill | None = None
    for event in observations:
        by_service = (event.payload.get("attributes") or {}).get("by_service_usd")
        if event.ts >= end or not isinstance(by_service, dict):
            continue
        total = sum(float(v) for v in by_service.values() if isinstance(v, int | float))
        month_start = event.ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(event.ts.year, event.ts.month)[1]
        elapsed = max((event.ts - month_start).total_seconds() / 86400.0, 1.0)
        last = CloudBill(event.ts, total, total * days / elapsed)
    return last
