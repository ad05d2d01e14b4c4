"""One-shot commands that run the loop's own decisions: `tick`, `plan` and `deploy`.

Each builds the whole app through the composition root (`jarvis.app`), so a
deploy goes through the same guard as every action the daemon proposes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from jarvis.app import build_app
from jarvis.cli.common import JsonOpt, console, fail, print_json_lines, run, settings_from
from jarvis.cli.oneshot import holding_lease
from jarvis.config import Settings
from jarvis.loop.reconciler import Decision, TickReport
from jarvis.model import Action, Deploy, History, ResourceRef, Snapshot
from jarvis.policies.base import Evaluation
from jarvis.store import EventStore

# -- tick and plan -------------------------------------------------------------


def tick(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate and record; apply nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run one reconcile tick now and print what it did."""
    settings = settings_from(ctx)
    report = run(lambda: _one_tick(settings, dry_run=dry_run or settings.dry_run))
    _print_report(report, as_json)


def plan(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show what Jarvis would do now: a dry-run tick printed as a table; it records nothing."""
    settings = settings_from(ctx)
    report = run(lambda: _one_tick(settings, dry_run=True, record=False))
    _print_report(report, as_json)


async def _one_tick(settings: Settings, *, dry_run: bool, record: bool = True) -> TickReport:
    # `plan` reads the ledger, history and kill switch but writes no event: a
    # fresh process sees every resource as changed and would record them all.
    store = await EventStore.connect(settings.database_url, read_only=True) if not record else None
    app = await build_app(settings, recover_orphans=False, store=store)
    try:
        async with holding_lease(settings, app, "tick", dry_run=dry_run or not record):
            return await app.reconciler.tick(dry_run=dry_run)
    finally:
        await app.aclose()


def _print_report(report: TickReport, as_json: bool) -> None:
    rows = [_decision_row(d) for d in report.decisions]
    if as_json:
        print_json_lines(rows)
        return
    snapshot = report.snapshot
    console.print(
        f"tick {report.tick_id}: {len(snapshot.resources)} resources, "
        f"{len(report.proposals)} proposals, {len(report.applied)} applied",
        highlight=False,
    )
    for actuator, error in snapshot.errors.items():
        console.print(f"[red]observe failed[/] {actuator}: {error}", highlight=False)
    for policy, note in report.notes:
        style = "bold yellow" if note.alert else "dim"
        console.print(f"[{style}]{policy}[/]: {note.message}", highlight=False)
    if not rows:
        console.print("nothing to do")
        return
    table = Table("resource", "action", "policy", "decision", "reason", "cost/h")
    for row in rows:
        table.add_row(
            row["resource"],
            row["action"] + (f" {row['params']}" if row["params"] else ""),
            row["policy"],
            row["decision"],
            row["reason"],
            "" if row["cost_delta_per_hour"] is None else f"{row['cost_delta_per_hour']:+.2f}",
        )
    console.print(table)


def _decision_row(decision: Decision) -> dict[str, Any]:
    action, outcome = decision.action, decision.outcome
    if decision.verdict.allowed and outcome is not None:
        verdict = "applied" if outcome.ok else outcome.status.value
        detail = outcome.detail
    else:
        reason = decision.verdict.reason
        verdict = f"blocked: {reason.value if reason else 'unknown'}"
        detail = decision.verdict.detail
    params = {k: v for k, v in action.params_json().items() if k != "cost_delta_per_hour"}
    return {
        "resource": str(action.target),
        "action": action.kind,
        "params": json.dumps(params, sort_keys=True) if params else "",
        "policy": action.policy,
        "decision": verdict,
        "reason": action.reason + (f" — {detail}" if detail else ""),
        "cost_delta_per_hour": action.cost_delta_per_hour,
    }


# -- deploy --------------------------------------------------------------------


def deploy(
    ctx: typer.Context,
    resource: Annotated[str, typer.Argument(help="Resource URI, e.g. ecs://CLUSTER/SERVICE.")],
    image: Annotated[str, typer.Option("--image", help="Container image to deploy.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Recorded with the action.")
    ] = "operator deploy",
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Deploy a new image through the same guard as every other action."""
    try:
        ref = ResourceRef.parse(resource)
    except ValueError as exc:
        fail(str(exc), 2)
    settings = settings_from(ctx)
    action = Action(ref, Deploy(image), policy="operator", reason=reason)

    async def main() -> TickReport:
        app = await build_app(settings, policies=[_OneShot(action)], recover_orphans=False)
        dry = dry_run or settings.dry_run
        try:
            async with holding_lease(settings, app, "deploy", dry_run=dry):
                return await app.reconciler.tick(dry_run=dry)
        finally:
            await app.aclose()

    report = run(main)
    _print_report(report, as_json=False)
    decision = next((d for d in report.decisions if d.action == action), None)
    if decision is None or decision.outcome is None or not decision.outcome.ok:
        raise typer.Exit(1)


class _OneShot:
    """A policy that proposes exactly one operator-supplied action."""

    name = "operator"

    def __init__(self, action: Action) -> None:
        self.action = action

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 - the Policy protocol
        return Evaluation(actions=(self.action,))
