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

from jarvis.model import ErrorKind, Event, EventKind, RetryState, RevenueDay, month_bounds
from jarvis.policies.budget import CloudBill, Spend
from jarvis.report.revenue import RevenueFigures, last_cloud_bill, revenue_figures

__all__ = [
    "GONE",
    "DailyFigures",
    "DayFold",
    "Incident",
    "SpendFigures",
    "build_figures",
    "finish_figures",
    "percentile",
]

OUTCOMES = {
    EventKind.ACTION_APPLIED: "applied",
    EventKind.ACTION_FAILED: "failed",
    EventKind.ACTION_UNKNOWN: "unknown",
    EventKind.ACTION_BLOCKED: "blocked",
    EventKind.ACTION_ESCALATED: "escalated",
}
GONE = ErrorKind.GONE.value
"""The outcome an `action.failed` whose target was gone (`Event.gone`) is counted under."""
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
    (`open_escalations` of what came before it). The events are read once, as
    they come (`DayFold`): they may be a stream too long to hold.
    """
    fold = DayFold(start, carried=carried, escalations_before=escalations_before)
    for event in day_events:
        fold.add(event)
    return finish_figures(
        fold.figures(),
        llm_observations=llm_observations,
        quarantined=quarantined,
        budget_usd=budget_usd,
        revenue_days=revenue_days,
        cloud_observations=cloud_observations,
        medium_risk=medium_risk,
        include_cloud=include_cloud,
    )


def finish_figures(
    figures: DailyFigures,
    *,
    llm_observations: Iterable[Event] = (),
    quarantined: Iterable[RetryState] = (),
    budget_usd: float = 0.0,
    revenue_days: Sequence[RevenueDay] = (),
    cloud_observations: Iterable[Event] = (),
    medium_risk: Sequence[str] | None = None,
    include_cloud: bool = True,
) -> DailyFigures:
    """Add to the figures of the day's events (`DayFold`) what other records say: the
    month's spend and revenue, the quarantined ledger rows, the customers at risk."""
    start = figures.start
    figures.quarantined = [q for q in quarantined if q.quarantined]
    figures.medium_risk = None if medium_risk is None else list(medium_risk)
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


class DayFold:
    """The figures the day's events make, folded in one event at a time, oldest first.

    What it keeps grows with the resources, the actions applied and the hourly
    samples, not with the events: `jarvis.report.load` streams the day through
    it an hour at a time.
    """

    def __init__(
        self,
        start: datetime,
        *,
        carried: Mapping[str, tuple[datetime, bool]] | None = None,
        escalations_before: Iterable[Event] = (),
    ) -> None:
        self.start = start
        self._table: dict[str, Counter[str]] = defaultdict(Counter)
        self._reasons: Counter[str] = Counter()
        self._savings: list[tuple[str, str, float]] = []
        self._per_hour = [0] * 24
        self._unknown: set[str] = set()
        """The day's actions counted unknown, until an ``action.applied`` confirms one."""
        carried = carried or {}
        # An incident is a resource unhealthy until healthy again; one open at
        # the day's start (``carried``) ends in it, one open at its end has no end.
        self._open_at = {resource: since for resource, (since, _) in carried.items()}
        self._human = {resource for resource, (_, stepped_in) in carried.items() if stepped_in}
        self._incidents: list[Incident] = []
        self._escalations = _OpenEscalations(escalations_before)
        self._replicas: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        self._traffic: dict[str, list[tuple[datetime, float]]] = defaultdict(list)

    def add(self, event: Event) -> None:
        """Fold in the next event of the day."""
        self._action(event)
        self._incident(event)
        self._escalations.add(event)
        if event.kind is EventKind.RESOURCE_CHANGED:
            replicas = event.payload.get("replicas")
            if event.resource and isinstance(replicas, dict) and "desired" in replicas:
                self._replicas[event.resource].append((event.ts, int(replicas["desired"])))
        elif event.kind is EventKind.METRICS_SAMPLED:
            rpm = event.payload.get("requests_per_minute")
            if isinstance(rpm, dict):
                for resource, value in rpm.items():
                    if isinstance(value, int | float):
                        self._traffic[resource].append((event.ts, float(value)))

    def figures(self) -> DailyFigures:
        """The day's figures from what was folded in (spend, revenue and the ledger apart)."""
        figures = DailyFigures(start=self.start)
        figures.actions = {k: dict(sorted(c.items())) for k, c in sorted(self._table.items())}
        figures.blocked_reasons = dict(self._reasons.most_common())
        figures.savings = sorted(self._savings, key=lambda s: -s[2])
        figures.actions_per_hour = list(self._per_hour)
        still_open = [
            Incident(resource, since, None, resource in self._human)
            for resource, since in self._open_at.items()
        ]
        figures.incidents = sorted(
            [*self._incidents, *still_open], key=lambda i: (i.start, i.resource)
        )
        figures.escalations_open = self._escalations.open()
        figures.replicas = dict(sorted(self._replicas.items()))
        figures.traffic = dict(sorted(self._traffic.items()))
        return figures

    def _action(self, event: Event) -> None:
        outcome = OUTCOMES.get(event.kind)
        # A withheld outcome only closes the intent of an action its `action.blocked` counts.
        if outcome is None or not event.action_kind or event.withheld is not None:
            return
        if event.gone:
            outcome = GONE  # deleted since observed: no failure
        counts = self._table[event.action_kind]
        counts[outcome] += 1
        if event.kind is EventKind.ACTION_UNKNOWN and event.action_id:
            self._unknown.add(event.action_id)
        elif event.payload.get("confirmed") is True and event.action_id in self._unknown:
            # Confirmed later (`jarvis.loop.unknowns`): one action, applied, not also unknown.
            self._unknown.discard(event.action_id)
            counts["unknown"] -= 1
            if not counts["unknown"]:
                del counts["unknown"]
        if event.kind is EventKind.ACTION_BLOCKED:
            self._reasons[str(event.reason or event.payload.get("blocked") or "unknown")] += 1
        if event.kind is EventKind.ACTION_APPLIED:
            hour = int((event.ts - self.start).total_seconds() // 3600)
            self._per_hour[min(max(hour, 0), 23)] += 1
            delta = (event.payload.get("params") or {}).get("cost_delta_per_hour")
            if isinstance(delta, int | float) and delta < 0:
                self._savings.append((event.resource or "", event.action_kind, -float(delta)))

    def _incident(self, event: Event) -> None:
        resource = event.resource or ""
        if event.kind in (EventKind.ACTION_ESCALATED, EventKind.RETRIES_RESET):
            if resource in self._open_at:
                self._human.add(resource)
            return
        if event.kind is not EventKind.RESOURCE_CHANGED or not resource:
            return
        health = event.payload.get("health")
        if health == "healthy" and resource in self._open_at:
            since = self._open_at.pop(resource)
            self._incidents.append(Incident(resource, since, event.ts, resource in self._human))
            self._human.discard(resource)
        elif health not in (None, "healthy") and resource not in self._open_at:
            self._open_at[resource] = event.ts


class FirstRecoveries:
    """Resources whose first change of the day is a recovery: their incident began before it.

    Folded one event at a time, oldest first (`add`); `found` in the order met.
    A first change with no ``previous`` recorded (an event of an older shape)
    counts too; `unhealthy_since` then tells from what came before.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.found: list[str] = []

    def add(self, event: Event) -> None:
        resource = event.resource
        if event.kind is not EventKind.RESOURCE_CHANGED or not resource or resource in self._seen:
            return
        self._seen.add(resource)
        previous = event.payload.get("previous", {})
        if event.payload.get("health") != "healthy" or previous is None:
            return  # an incident starts in the day, or the resource was new
        if not isinstance(previous, dict) or previous.get("health") != "healthy":
            self.found.append(resource)


def recovered_first(events: Iterable[Event]) -> list[str]:
    """`FirstRecoveries` of ``events``."""
    fold = FirstRecoveries()
    for event in events:
        fold.add(event)
    return fold.found


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


class _OpenEscalations:
    """Escalations no reset or recovery of their resource has answered yet (`open_escalations`)."""

    def __init__(self, before: Iterable[Event] = ()) -> None:
        self._open: dict[tuple[str, str | None], Event] = {
            (e.resource or "", e.action_kind): e for e in before
        }

    def add(self, event: Event) -> None:
        resource = event.resource or ""
        if event.kind is EventKind.ACTION_ESCALATED:
            self._open[resource, event.action_kind] = event
        elif event.kind is EventKind.RETRIES_RESET or (
            event.kind is EventKind.RESOURCE_CHANGED and event.payload.get("health") == "healthy"
        ):
            for key in [k for k in self._open if k[0] == resource]:
                del self._open[key]

    def open(self) -> list[Event]:
        return sorted(self._open.values(), key=lambda e: e.ts)


def open_escalations(events: Iterable[Event], before: Iterable[Event] = ()) -> list[Event]:
    """The escalations open ``before`` (still open when ``events`` begin) or among
    ``events`` (oldest first) that no reset or recovery in ``events`` answered, oldest first.

    A reset or a recovery of a resource answers every escalation of it.
    """
    fold = _OpenEscalations(before)
    for event in events:
        fold.add(event)
    return fold.open()


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
