"""The simulation's report: one JSON document and a readable terminal summary.

Built by the harness at the end of a run (or at the first violation) and
printed by `jarvis simulate`; `--report FILE` writes `as_dict()` as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jarvis.simulation.invariant_records import CUSTOMER_INVARIANTS, INVARIANTS, Violation


@dataclass
class SimulationReport:
    seed: int
    days: float
    services: int
    faults: list[str]
    policies: list[str]
    run_id: str
    database: str
    ticks: int = 0
    simulated_seconds: float = 0.0
    wall_seconds: float = 0.0
    faults_injected: dict[str, int] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)
    remediation: dict[str, Any] = field(default_factory=dict)
    handoff: dict[str, Any] = field(default_factory=dict)
    """What Jarvis mended by itself, what needed the operator, and why (`handoff`)."""
    capacity: dict[str, float] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    operator: dict[str, int] = field(default_factory=dict)
    store: dict[str, int] = field(default_factory=dict)
    """Events written, and events that waited in the spool while the database was away."""
    scheduler: dict[str, int] = field(default_factory=dict)
    """The scheduler's count of ticks that overran their interval, and that timed out."""
    processes: dict[str, Any] = field(default_factory=dict)
    """The process faults' doings: restarts (and failed starts), Redis restarts, one-shots."""
    notifications: dict[str, Any] = field(default_factory=dict)
    """Pages (distinct PagerDuty incidents) the notifier raised, by cause, against escalations."""
    replicas: dict[str, int] | None = None
    customers: dict[str, Any] | None = None
    """With simulated customers: sign-ups, changes, emails by template, discounts,
    revocations, churn risk and MRR at the end."""
    """Elections, epochs and refused writes, when the run had several replicas."""
    checks: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "days": self.days,
            "services": self.services,
            "faults": self.faults,
            "policies": self.policies,
            "run_id": self.run_id,
            "database": self.database,
            "ticks": self.ticks,
            "simulated_seconds": round(self.simulated_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "faults_injected": self.faults_injected,
            "actions": self.actions,
            "remediation": self.remediation,
            "handoff": self.handoff,
            "capacity": self.capacity,
            "budget": self.budget,
            "processes": self.processes,
            "operator": self.operator,
            "store": self.store,
            "scheduler": self.scheduler,
            "notifications": self.notifications,
            **({} if self.replicas is None else {"replicas": self.replicas}),
            **({} if self.customers is None else {"customers": self.customers}),
            "invariants": {
                name: {
                    # "capacity_bounds.weights" and the like add to their invariant.
                    "checks": sum(
                        count for key, count in self.checks.items() if key.partition(".")[0] == name
                    ),
                    "violations": sum(1 for v in self.violations if v.invariant == name),
                }
                for name in INVARIANTS + (() if self.customers is None else CUSTOMER_INVARIANTS)
            },
            "violations": [v.as_dict() for v in self.violations],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n", "utf-8")

    def render(self, console: Console, show: Callable[[Table], None] | None = None) -> None:
        """The readable summary: the run, actions, remediation, invariants.

        ``show`` prints a table (default: ``console.print``); the CLI passes one
        that never cuts a header or a name short to fit 80 columns.
        """
        show = show or console.print
        verdict = "[bold green]all invariants held[/]" if self.ok else "[bold red]VIOLATION[/]"
        console.print(
            f"simulated {self.days:g} days, {self.services} services, seed {self.seed}: "
            f"{self.ticks} ticks in {self.wall_seconds:.1f}s wall"
        )
        console.print(verdict)
        faults = ", ".join(self.faults) or "none"
        console.print(f"policies: {', '.join(self.policies) or '-'}; faults: {faults}")
        show(_actions_table(self.actions))
        show(_remediation_table(self.remediation))
        show(_handoff_table(self.handoff))
        capacity = self.capacity
        console.print(
            f"capacity below demand: {capacity.get('minutes_with_capacity_below_demand', 0):g} min "
            f"({capacity.get('service_minutes_below_demand', 0):g} service-minutes); "
            f"escalations: {self.actions.get('escalations', 0)}; "
            f"operator flips: {self.operator.get('killswitch_flips', 0)}, "
            f"repairs: {self.operator.get('repairs', 0)}; "
            f"events written: {self.store.get('events_written', 0)}, "
            f"spooled during outages: {self.store.get('events_spooled', 0)}; "
            f"ticks overrun: {self.scheduler.get('overruns', 0)}, "
            f"timed out: {self.scheduler.get('timed_out', 0)}"
        )
        if any(self.processes.values()):
            console.print(_processes_line(self.processes), highlight=False)
        pages = self.notifications
        if pages:
            causes = ", ".join(f"{c} {n}" for c, n in pages.get("by_cause", {}).items()) or "-"
            console.print(
                f"pages: {pages.get('pages', 0)} incidents ({causes}) for "
                f"{pages.get('escalations', 0)} escalations; "
                f"{pages.get('page_notices', 0)} notices, {pages.get('resolves', 0)} resolves",
                highlight=False,
            )
        if self.replicas is not None:
            r = self.replicas
            console.print(
                f"replicas: {r['replicas']}, elections: {r['elections']} (epoch {r['epoch']}); "
                f"woken leaders' ticks: {r['stale_ticks']}, fenced writes refused: "
                f"{r['refused_writes']}",
                highlight=False,
            )
        if self.customers is not None:
            c = self.customers
            emails = ", ".join(f"{t} {n}" for t, n in c["emails_by_template"].items()) or "none"
            risk = c["at_risk"]
            console.print(
                f"customers: {c['customers']} ({c['sign_ups']} signed up), {c['paying']} paying "
                f"at the end, MRR ${c['mrr_usd']:,.2f}; emails: {emails}; Stripe calls: "
                f"{c['stripe_calls']}; discounts: {c['discounts']}; access revoked: "
                f"{c['revocations']}; churn risk at the end: {risk['high']} high, "
                f"{risk['medium']} medium",
                highlight=False,
            )
        budget = self.budget
        for month in budget.get("months", []):
            console.print(_budget_line(month), highlight=False)
        if not budget.get("months") and budget.get("note"):
            console.print(f"LLM budget: {budget['note']}")
        show(_invariants_table(self.as_dict()["invariants"]))
        for violation in self.violations[:5]:
            console.print(
                f"[red]{violation.invariant}[/]: {violation.message} "
                f"(tick {violation.tick_id or '?'}); rerun with --seed {self.seed}",
                highlight=False,
            )


def _actions_table(actions: Mapping[str, Any]) -> Table:
    table = Table(title="actions by kind and outcome")
    outcomes = [
        "proposed",
        "started",
        "applied",
        "failed",
        "gone",
        "timed_out",
        "unknown",
        "blocked",
    ]
    table.add_column("kind")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for kind, counts in actions.get("actions", {}).items():
        table.add_row(kind, *(str(counts.get(outcome, 0)) for outcome in outcomes))
    return table


def _remediation_table(remediation: Mapping[str, Any]) -> Table:
    table = Table(title="time from fault to remediation")
    for column in ("fault", "mended", "median s", "p95 s", "after operator", "never"):
        table.add_column(column, justify="right" if column != "fault" else "left")
    for kind, row in remediation.get("by_fault", {}).items():
        table.add_row(
            kind,
            str(row["count"]),
            _num(row["median_seconds"]),
            _num(row["p95_seconds"]),
            str(row["mended_after_operator"]),
            str(row["unremediated"]),
        )
    return table


def _handoff_table(handoff: Mapping[str, Any]) -> Table:
    """Faults mended by Jarvis alone against those that needed a human, then why humans were."""
    table = Table(title="who mended it: Jarvis alone, or a human (and why)")
    table.add_column("fault or cause")
    table.add_column("Jarvis alone", justify="right")
    table.add_column("after operator", justify="right")
    table.add_column("escalations", justify="right")
    table.add_column("why a human")
    by_jarvis = handoff.get("mended_by_jarvis", {})
    by_human = handoff.get("mended_after_operator", {})
    causes = handoff.get("escalations_by_cause", {})
    for kind in sorted(set(by_jarvis) | set(causes)):
        cause = causes.get(kind, {})
        table.add_row(
            kind,
            str(by_jarvis.get(kind, "-")),
            str(by_human.get(kind, "-")),
            str(cause.get("count", 0)),
            str(cause.get("why", "")),
        )
    alerts = handoff.get("breaker_alerts", {})
    if alerts:
        table.caption = "breaker alerts: " + ", ".join(f"{k} {v}" for k, v in alerts.items())
    return table


def _invariants_table(invariants: Mapping[str, Mapping[str, int]]) -> Table:
    table = Table(title="invariants")
    table.add_column("invariant")
    table.add_column("checks", justify="right")
    table.add_column("violations", justify="right")
    for name, row in invariants.items():
        style = "red" if row["violations"] else "green"
        table.add_row(name, str(row["checks"]), f"[{style}]{row['violations']}[/]")
    return table


def _budget_line(month: Mapping[str, Any]) -> str:
    """One month: spend against budget, what it would have been unmanaged, the alerts."""
    when = (
        "month end"
        if month.get("complete")
        else f"to {str(month.get('as_of') or '?')[:16].replace('T', ' ')}, month not over"
    )
    verdict = "[green]within budget[/]" if month.get("within_budget") else "[red]over budget[/]"
    line = (
        f"LLM budget {month['month']} ({when}): spent ${month['spent_usd']:,.2f} "
        f"of ${month['budget_usd']:,.2f} ({month.get('used', 0):.0%}), {verdict}"
    )
    unmanaged = month.get("unmanaged_usd")
    if unmanaged is not None:
        share = unmanaged / month["budget_usd"] if month.get("budget_usd") else 0.0
        line += f"; left at the configured weights: ${unmanaged:,.2f} ({share:.0%})"
    alerts = month.get("alerts") or []
    if alerts:
        line += "\n  " + ", ".join(
            f"{alert['stage']} at {str(alert['at'])[5:16].replace('T', ' ')} "
            f"(${alert.get('spend_usd') or 0:,.2f})"
            for alert in alerts
        )
    return line


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _processes_line(processes: dict[str, Any]) -> str:
    shots = ", ".join(f"{n} {c}" for c, n in processes.get("one_shots", {}).items()) or "none"
    return (
        f"process faults: {processes.get('restarts', 0)} restarts after a kill in a database "
        f"outage ({processes.get('failed_starts', 0)} starts refused while it was away); "
        f"Redis restarted empty {processes.get('redis_restarts', 0)} times; "
        f"one-shots beside the daemon: {shots} "
        f"({processes.get('one_shots_refused', 0)} refused)"
    )
