"""What the simulation measures while it runs, for the report.

The harness (`jarvis.simulation.harness`) feeds these after every tick:
`Tally` counts the store's events (actions by kind and outcome, an unknown
outcome confirmed later once, as applied; blocks by reason, escalations);
`Incidents` times each service fault from injection to the first tick that
sees the service well again, and says who mended it;
`Capacity` counts the minutes in which some service had less capacity than
its demand; `Budget` notes spend against the budget at each month end when a
``cost://`` resource is observed (the simulated LLM platform's,
`jarvis.simulation.llm`), with the cost policy's budget alerts. All of them
keep bounded state (counters, one list of durations, one entry per month).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import Event, EventKind, Health, Metric, ResourceState
from jarvis.simulation.faults import FaultKind

_ACTION_OUTCOMES = {
    EventKind.ACTION_PROPOSED: "proposed",
    EventKind.ACTION_STARTED: "started",
    EventKind.ACTION_APPLIED: "applied",
    EventKind.ACTION_FAILED: "failed",
    EventKind.ACTION_UNKNOWN: "unknown",
    EventKind.ACTION_BLOCKED: "blocked",
}

UNKNOWN_REMEMBERED = 10_000
"""Unknown outcomes `Tally` remembers for a later confirmation, the oldest dropped past it
(one comes within the retry window, which never holds nearly so many)."""


@dataclass
class Tally:
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)
    blocked: Counter[str] = field(default_factory=Counter)
    escalations: list[dict[str, str]] = field(default_factory=list)
    events: int = 0
    _unknown: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    """The label each unknown outcome was counted under, by action id, until confirmed."""

    def feed(self, events: Iterable[Event]) -> list[str]:
        """Count events; return the resources escalated among them."""
        escalated: list[str] = []
        for event in events:
            self.events += 1
            label = _ACTION_OUTCOMES.get(event.kind)
            # A withheld outcome closes an intent the kill switch stopped; its block is counted.
            if label is not None and event.withheld is None:
                kind = event.action_kind or "?"
                if label == "unknown" and event.payload.get("outcome") == "timed_out":
                    label = "timed_out"
                elif event.gone:
                    label = "gone"  # deleted since observed: no failure
                self.actions[(kind, label)] += 1
                self._confirmed_later(event, kind, label)
                if label == "blocked":
                    self.blocked[str(event.payload.get("blocked", event.reason))] += 1
            elif event.kind is EventKind.ACTION_ESCALATED:
                resource = event.resource or "?"
                escalated.append(resource)
                self.escalations.append(
                    {
                        "at": event.ts.isoformat(),
                        "resource": resource,
                        "action": event.action_kind or "?",
                    }
                )
        return escalated

    def _confirmed_later(self, event: Event, kind: str, label: str) -> None:
        """Remember an unknown outcome; its confirmation (`jarvis.loop.unknowns`) takes that
        count back, so the action is one, applied, as the daily report counts it."""
        if event.action_id is None:
            return
        if event.kind is EventKind.ACTION_UNKNOWN:
            self._unknown[event.action_id] = label
            if len(self._unknown) > UNKNOWN_REMEMBERED:
                del self._unknown[next(iter(self._unknown))]
        elif event.payload.get("confirmed") is True and event.action_id in self._unknown:
            counted = (kind, self._unknown.pop(event.action_id))
            self.actions[counted] -= 1
            if not self.actions[counted]:
                del self.actions[counted]

    def as_dict(self) -> dict[str, object]:
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, outcome), count in sorted(self.actions.items()):
            by_kind.setdefault(kind, {})[outcome] = count
        return {
            "events": self.events,
            "actions": by_kind,
            "blocked_by_reason": dict(sorted(self.blocked.items())),
            "escalations": len(self.escalations),
            "escalated": self.escalations[:100],
        }


@dataclass
class _Incident:
    kind: FaultKind
    target: str
    at: datetime
    operator: bool = False


@dataclass
class Incidents:
    """Service faults from injection to the first tick that sees the service well."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    by_operator: Counter[str] = field(default_factory=Counter)
    unremediated: Counter[str] = field(default_factory=Counter)
    _open: dict[str, _Incident] = field(default_factory=dict)

    def opened(self, kind: FaultKind, target: str, at: datetime) -> None:
        # A second fault on a service still down folds into the first incident.
        self._open.setdefault(target, _Incident(kind, target, at))

    def cause(self, resource: str) -> str | None:
        """The fault open on ``resource`` (a ``provider://name``) now, if any."""
        incident = self._open.get(resource.partition("://")[2])
        return None if incident is None else incident.kind.value

    def operator_touched(self, targets: Iterable[str]) -> None:
        for target in targets:
            incident = self._open.get(target.partition("://")[2])
            if incident is not None:
                incident.operator = True

    def observe(self, states: Sequence[ResourceState], now: datetime) -> None:
        if not self._open:
            return
        by_name = {state.ref.name: state for state in states}
        for target, incident in list(self._open.items()):
            state = by_name.get(target)
            if state is None or not _well(state, incident.kind):
                continue
            del self._open[target]
            seconds = max(0.0, (now - incident.at).total_seconds())
            self.durations.setdefault(incident.kind.value, []).append(seconds)
            if incident.operator:
                self.by_operator[incident.kind.value] += 1

    def as_dict(self) -> dict[str, object]:
        for incident in self._open.values():
            self.unremediated[incident.kind.value] += 1
        self._open.clear()
        kinds = sorted(set(self.durations) | set(self.unremediated))
        per_kind = {
            kind: {
                **_summary(self.durations.get(kind, [])),
                "mended_after_operator": self.by_operator[kind],
                "unremediated": self.unremediated[kind],
            }
            for kind in kinds
        }
        every = [d for values in self.durations.values() for d in values]
        return {"all": _summary(every), "by_fault": per_kind}


def _well(state: ResourceState, kind: FaultKind) -> bool:
    if kind is FaultKind.SPIKE:
        return state.metrics.get(Metric.CPU_UTILIZATION, 0.0) < 100.0
    return state.health is Health.HEALTHY


def _summary(durations: list[float]) -> dict[str, float | int | None]:
    if not durations:
        return {"count": 0, "median_seconds": None, "p95_seconds": None}
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "count": len(ordered),
        "median_seconds": round(statistics.median(ordered), 1),
        "p95_seconds": round(p95, 1),
    }


@dataclass
class Capacity:
    """Minutes in which demand exceeded what was running."""

    minutes_any_short: float = 0.0
    service_minutes_short: float = 0.0

    def observe(self, states: Sequence[ResourceState], minutes: float) -> None:
        """Count the services short of capacity: demand, and nothing running or CPU at 100 %.

        One plain loop: it runs for every service every tick, and a generator
        calling a function per state cost 2 % of a simulated tick.
        """
        rpm, cpu = Metric.REQUESTS_PER_MINUTE, Metric.CPU_UTILIZATION
        short = 0
        for state in states:
            metrics = state.metrics
            if metrics.get(rpm, 0.0) <= 0:
                continue
            replicas = state.replicas
            if replicas is None or replicas.running == 0 or metrics.get(cpu, 0.0) >= 100.0:
                short += 1
        if short:
            self.minutes_any_short += minutes
            self.service_minutes_short += short * minutes

    def as_dict(self) -> dict[str, float]:
        return {
            "minutes_with_capacity_below_demand": round(self.minutes_any_short, 1),
            "service_minutes_below_demand": round(self.service_minutes_short, 1),
        }


@dataclass
class Budget:
    """Spend against the budget at each month end, from observed ``cost://`` resources.

    A month is closed by the first tick of the next one, with the spend the
    last tick of the month observed; the month the run ends in is closed by
    `as_dict`, marked incomplete. ``unmanaged`` (the simulated platform's
    month-to-date spend had the configured weights never moved) is noted
    beside it, and the cost policy's budget alerts are listed per month.
    """

    monthly_budget_usd: float
    unmanaged: Callable[[], float] | None = None
    month_ends: list[dict[str, object]] = field(default_factory=list)
    _month: str | None = None
    _month_of: tuple[int, int] | None = None
    """(year, month) that ``_month`` names: the name is formatted only when it changes."""
    _spend: float | None = None
    _unmanaged: float | None = None
    _seen: datetime | None = None
    _alerts: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def observe(self, resources: Mapping[str, ResourceState], now: datetime) -> None:
        if (now.year, now.month) != self._month_of:
            if self._month is not None:
                self._close(complete=True)
            self._month_of = (now.year, now.month)
            self._month = f"{now:%Y-%m}"
        spend = [
            state.metrics[Metric.MONTH_TO_DATE_USD]
            for state in resources.values()
            if state.ref.provider == "cost" and Metric.MONTH_TO_DATE_USD in state.metrics
        ]
        if spend:
            self._spend = sum(spend)
            self._seen = now
            if self.unmanaged is not None:
                self._unmanaged = self.unmanaged()

    def feed(self, events: Iterable[Event]) -> None:
        """Note the cost policy's budget alerts (alert, shift, cheapest) by month."""
        for event in events:
            payload = event.payload
            if event.kind is not EventKind.ALERT or "stage" not in payload:
                continue
            self._alerts.setdefault(str(payload.get("month")), []).append(
                {
                    "stage": payload["stage"],
                    "at": event.ts.isoformat(),
                    "spend_usd": payload.get("spend_usd"),
                }
            )

    def _close(self, *, complete: bool) -> None:
        month = self._month or "?"
        if self._spend is not None:
            entry: dict[str, object] = {
                "month": month,
                "complete": complete,
                "as_of": None if self._seen is None else self._seen.isoformat(),
                "spent_usd": round(self._spend, 2),
                "budget_usd": self.monthly_budget_usd,
                "used": round(self._spend / self.monthly_budget_usd, 4),
                "within_budget": self._spend <= self.monthly_budget_usd,
            }
            if self._unmanaged is not None:
                entry["unmanaged_usd"] = round(self._unmanaged, 2)
            entry["alerts"] = self._alerts.pop(month, [])
            self.month_ends.append(entry)
        self._spend = self._unmanaged = self._seen = None

    def as_dict(self) -> dict[str, object]:
        self._close(complete=False)
        note = (
            None
            if self.month_ends
            else "no cost:// resource was observed: the cost policy is not enabled in this run"
        )
        return {
            "monthly_budget_usd": self.monthly_budget_usd,
            "months": self.month_ends,
            "note": note,
        }
