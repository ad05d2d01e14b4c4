"""One day's events reduced to the report's figures: pure, no I/O, no clock.

The CLI reads the day's events by time and the month's ``cost://llm``
observations, and passes them here with the quarantined ledger rows, the
month's settled revenue days and ``cost://aws`` observations (the revenue
figures are `jarvis.report.revenue`'s), the incidents and the escalations
still open when the day began. Every
figure is a count or a difference of event timestamps, so a test can compute
the same figures from the same events another way and compare.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jarvis.model import Event, EventKind, RetryState, RevenueDay, month_bounds
from jarvis.policies.budget import CloudBill, Spend
from jarvis.report.revenue import RevenueFigures, last_cloud_bill, revenue_figures

__all__ = ["DailyFigures", "Incident", "SpendFigures", "build_figures", "percentile"]

OUTCOMES = {
    EventKind.ACTION_APPLIED: "applied",
    EventKind.ACTION_FAILED: "failed",
    EventKind.ACTION_UNKNOWN: "unknown",
    EventKind.ACTION_BLOCKED: "blocked",
    EventKind.ACTION_ESCALATED: "escalated",
}
#: Model name prefixes to the provider that bills them; the record names models only.
PROVIDERS = (
    ("claude", "anthropic"),
    ("gpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("gemini", "google"),
    ("mistral", "mistral"),
    ("llama", "meta"),
)


@dataclass(frozen=True, slots=True)
class Incident:
    """A resource unhealthy from ``start`` until ``end`` (None: still at the day's end)."""

    resource: str
    start: datetime
    end: datetime | None
    human: bool
    """An escalation or an operator's reset fell inside it: Jarvis alone did not mend it."""

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class SpendFigures:
    """The month's LLM spend as last observed on or before the day's end, and what counts
    against the budget."""

    observed_at: datetime
    month: str
    by_model: dict[str, float]
    budget_usd: float
    forecast_usd: float
    series: list[tuple[datetime, float]]
    """(observed at, month to date) for every observation this month up to the day's end."""
    against_budget: Spend
    """The spend the budget is judged on, as the cost policy counts it
    (`Spend.against_budget`): this LLM spend, plus the cloud bill when the
    budget includes it and it was recorded this month."""

    @property
    def total_usd(self) -> float:
        """The LLM spend alone."""
        return sum(self.by_model.values())

    @property
    def by_provider(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for model, usd in self.by_model.items():
            out[model_provider(model)] += usd
        return dict(sorted(out.items()))


@dataclass(slots=True)
class DailyFigures:
    """Everything the daily report says, for the day ``[start, start + 1 day)``."""

    start: datetime
    actions: dict[str, dict[str, int]] = field(default_factory=dict)
    blocked_reasons: dict[str, int] = field(default_factory=dict)
    actions_per_hour: list[int] = field(default_factory=lambda: [0] * 24)
    incidents: list[Incident] = field(default_factory=list)
    escalations_open: list[Event] = field(default_factory=list)
    savings: list[tuple[str, str, float]] = field(default_factory=list)
    """(resource, action kind, dollars saved per hour) of applied actions, biggest first."""
    quarantined: list[RetryState] = field(default_factory=list)
    replicas: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    traffic: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    """Requests per minute per service at each hourly `metrics.sampled`."""
    spend: SpendFigures | None = None
    revenue: RevenueFigures | None = None
    """MRR and its movements beside the month's cost; None when no day is settled yet."""
    medium_risk: list[str] | None = None
    """Customers at medium churn risk, by id; None when customers are not managed."""

    @property
    def remediation_seconds(self) -> list[float]:
        return sorted(s for i in self.incidents if (s := i.seconds) is not None)

    @property
    def median_seconds(self) -> float | None:
        return percentile(self.remediation_seconds, 50)

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.remediation_seconds, 95)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile of sorted ``values``; None when empty."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[rank - 1]


def model_provider(model: str) -> str:
    name = model.lower()
    return next((p for prefix, p in PROVIDERS if name.startswith(prefix)), "other")


def build_figures(
    day_events: Iterable[Event],
    *,
    start: datetime,
    llm_observations: Iterable[Event] = (),
    quarantined: Iterable[RetryState] = (),
    budget_usd: float = 0.0,
    revenue_days: Sequence[RevenueDay] = (),
    cloud_observations: Iterable[Event] = (),
    medium_risk: Sequence[str] | None = None,
    carried: Mapping[str, tuple[datetime, bool]] | None = None,
    include_cloud: bool = True,
    escalations_before: Iterable[Event] = (),
) -> DailyFigures:
    """The figures of the day beginning at ``start`` from its events, oldest first.

    ``carried``: the incidents open when the day began that it mended
    (`recovered_first`, `unhealthy_since`), by resource: since when, and
    whether a human stepped in before midnight. ``include_cloud``: whether
    the budget counts the cloud bill (``cost.include_cloud_spend``).
    ``escalations_before``: the escalations still open when the day began
    (`open_escalations` of what came before it).
    """
    events = list(day_events)
    figures = DailyFigures(start=start, quarantined=[q for q in quarantined if q.quarantined])
    figures.medium_risk = None if medium_risk is None else list(medium_risk)
    _actions(figures, events)
    _incidents(figures, events, carried or {})
    figures.escalations_open = open_escalations(events, escalations_before)
    figures.replicas = _replicas(events)
    figures.traffic = _traffic(events)
    end = start + timedelta(days=1)
    cloud = last_cloud_bill(cloud_observations, end)
    figures.spend = _spend(
        list(llm_observations), end, budget_usd, cloud, include_cloud=include_cloud
    )
    figures.revenue = revenue_figures(
        revenue_days,
        start=start,
        cloud=cloud,
        llm_forecast_usd=None if figures.spend is None else figures.spend.forecast_usd,
    )
    return figures


def _actions(figures: DailyFigures, events: list[Event]) -> None:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    savings: list[tuple[str, str, float]] = []
    for event in events:
        outcome = OUTCOMES.get(event.kind)
        if outcome is None or not event.action_kind:
            continue
        table[event.action_kind][outcome] += 1
        if event.kind is EventKind.ACTION_BLOCKED:
            reasons[str(event.reason or event.payload.get("blocked") or "unknown")] += 1
        if event.kind is EventKind.ACTION_APPLIED:
            hour = int((event.ts - figures.start).total_seconds() // 3600)
            figures.actions_per_hour[min(max(hour, 0), 23)] += 1
            delta = (event.payload.get("params") or {}).get("cost_delta_per_hour")
            if isinstance(delta, int | float) and delta < 0:
                savings.append((event.resource or "", event.action_kind, -float(delta)))
    figures.actions = {kind: dict(sorted(c.items())) for kind, c in sorted(table.items())}
    figures.blocked_reasons = dict(reasons.most_common())
    figures.savings = sorted(savings, key=lambda s: -s[2])


def _incidents(
    figures: DailyFigures, events: list[Event], carried: Mapping[str, tuple[datetime, bool]]
) -> None:
    """An incident is a resource unhealthy until healthy again; one still open at the day's
    end has no end. One open at the day's start (``carried``) ends in it."""
    open_at = {resource: since for resource, (since, _) in carried.items()}
    human = {resource for resource, (_, stepped_in) in carried.items() if stepped_in}
    for event in events:
        resource = event.resource or ""
        if event.kind in (EventKind.ACTION_ESCALATED, EventKind.RETRIES_RESET):
            if resource in open_at:
                human.add(resource)
            continue
        if event.kind is not EventKind.RESOURCE_CHANGED or not resource:
            continue
        health = event.payload.get("health")
        if health == "healthy" and resource in open_at:
            figures.incidents.append(
                Incident(resource, open_at.pop(resource), event.ts, resource in human)
            )
            human.discard(resource)
        elif health not in (None, "healthy") and resource not in open_at:
            open_at[resource] = event.ts
    for resource, since in open_at.items():
        figures.incidents.append(Incident(resource, since, None, resource in human))
    figures.incidents.sort(key=lambda i: (i.start, i.resource))


def recovered_first(events: Iterable[Event]) -> list[str]:
    """Resources whose first change of the day is a recovery: their incident began before it.

    A first change with no ``previous`` recorded (an event of an older shape)
    counts too; `unhealthy_since` then tells from what came before.
    """
    seen: set[str] = set()
    found: list[str] = []
    for event in events:
        resource = event.resource
        if event.kind is not EventKind.RESOURCE_CHANGED or not resource or resource in seen:
            continue
        seen.add(resource)
        previous = event.payload.get("previous", {})
        if event.payload.get("health") != "healthy" or previous is None:
            continue  # an incident starts in the day, or the resource was new
        if not isinstance(previous, dict) or previous.get("health") != "healthy":
            found.append(resource)
    return found


def unhealthy_since(before: Iterable[Event]) -> tuple[datetime, bool] | None:
    """From a resource's events before the day (oldest first), when its last incident began
    and whether an escalation or a reset fell inside it; None if it ended healthy."""
    since: datetime | None = None
    human = False
    for event in before:
        if event.kind is EventKind.RESOURCE_CHANGED:
            health = event.payload.get("health")
            if health == "healthy":
                since, human = None, False
            elif health is not None and since is None:
                since = event.ts
        elif since is not None and event.kind in (
            EventKind.ACTION_ESCALATED,
            EventKind.RETRIES_RESET,
        ):
            human = True
    return None if since is None else (since, human)


def open_escalations(events: Iterable[Event], before: Iterable[Event] = ()) -> list[Event]:
    """The escalations open ``before`` (still open when ``events`` begin) or among
    ``events`` (oldest first) that no reset or recovery in ``events`` answered, oldest first.

    A reset or a recovery of a resource answers every escalation of it.
    """
    open_: dict[str, Event] = {f"{e.resource or ''}\0{e.action_kind}": e for e in before}
    for event in events:
        resource = event.resource or ""
        if event.kind is EventKind.ACTION_ESCALATED:
            open_[f"{resource}\0{event.action_kind}"] = event
        elif event.kind is EventKind.RETRIES_RESET or (
            event.kind is EventKind.RESOURCE_CHANGED and event.payload.get("health") == "healthy"
        ):
            for key in [k for k in open_ if k.partition("\0")[0] == resource]:
                del open_[key]
    return sorted(open_.values(), key=lambda e: e.ts)


def _replicas(events: list[Event]) -> dict[str, list[tuple[datetime, int]]]:
    out: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for event in events:
        replicas = (
            event.payload.get("replicas") if event.kind is EventKind.RESOURCE_CHANGED else None
        )
        if event.resource and isinstance(replicas, dict) and "desired" in replicas:
            out[event.resource].append((event.ts, int(replicas["desired"])))
    return dict(sorted(out.items()))


def _traffic(events: list[Event]) -> dict[str, list[tuple[datetime, float]]]:
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for event in events:
        rpm = (
            event.payload.get("requests_per_minute")
            if event.kind is EventKind.METRICS_SAMPLED
            else None
        )
        if isinstance(rpm, dict):
            for resource, value in rpm.items():
                if isinstance(value, int | float):
                    out[resource].append((event.ts, float(value)))
    return dict(sorted(out.items()))


def _spend(
    observations: list[Event],
    end: datetime,
    budget_usd: float,
    cloud: CloudBill | None,
    *,
    include_cloud: bool,
) -> SpendFigures | None:
    series: list[tuple[datetime, float]] = []
    last: tuple[Event, dict[str, float]] | None = None
    for event in observations:
        by_model = (event.payload.get("attributes") or {}).get("by_model")
        if event.ts >= end or not isinstance(by_model, dict):
            continue
        costs = {m: float(v.get("cost_usd", 0.0)) for m, v in by_model.items()}
        series.append((event.ts, sum(costs.values())))
        last = (event, costs)
    if last is None:
        return None
    event, costs = last
    start, month_end = month_bounds(event.ts)
    elapsed = max(3600.0, (event.ts - start).total_seconds())
    forecast = sum(costs.values()) * (month_end - start).total_seconds() / elapsed
    month = str((event.payload.get("attributes") or {}).get("month") or f"{start:%Y-%m}")
    return SpendFigures(
        observed_at=event.ts,
        month=month,
        by_model=dict(sorted(costs.items(), key=lambda kv: -kv[1])),
        budget_usd=budget_usd,
        forecast_usd=forecast,
        series=series,
        against_budget=Spend.against_budget(
            month, sum(costs.values()), forecast, cloud, include_cloud=include_cloud
        ),
    )
