"""One-shot commands that run the loop's own decisions: `tick` and `plan`.

Each builds the whole app through the composition root (`jarvis.app`). The
report printer here serves the operator's overrides too (`jarvis.cli.override`:
`deploy`, `restart`, `rollback`, `scale`, `start`, `stop`), which are one-shot
ticks as well.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jarvis.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    console,
    err_console,
    nothing_recorded,
    print_json_lines,
    print_table,
    run,
    settings_from,
    shown,
)

if TYPE_CHECKING:
    from jarvis.app import App
    from jarvis.config import Settings
    from jarvis.loop.reconciler import Decision, TickReport
    from jarvis.store import EventStore, KillSwitchBackend

# -- tick and plan -------------------------------------------------------------


def tick(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate and record; apply nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run one reconcile tick now and print what it did."""
    settings = settings_from(ctx, as_json=as_json)
    report = run(lambda: _one_tick(settings, dry_run=dry_run or settings.dry_run), as_json=as_json)
    print_report(report, as_json)
    if say_unanswered(report, settings):
        raise typer.Exit(EXIT_FAILED)


def plan(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show what Jarvis would do now: a dry-run tick printed as a table; it records nothing."""
    settings = settings_from(ctx, as_json=as_json)
    report = run(lambda: _one_tick(settings, dry_run=True, record=False), as_json=as_json)
    print_report(report, as_json)
    if say_unanswered(report, settings):
        raise typer.Exit(EXIT_FAILED)


async def _one_tick(settings: Settings, *, dry_run: bool, record: bool = True) -> TickReport:
    # `plan` reads the ledger, history and kill switch but writes no event: a
    # fresh process sees every resource as changed and would record them all.
    from jarvis.app import build_app
    from jarvis.cli.oneshot import one_tick

    async def build() -> App:
        if record:
            return await build_app(settings, recover_orphans=False)
        store, switch = await _read_only(settings)
        return await build_app(settings, recover_orphans=False, store=store, switch=switch)

    # `plan` is a dry run (nothing applied, no lock or lease taken) that records nothing.
    return await one_tick(settings, "tick", build, dry_run=dry_run or not record, records=record)


async def _read_only(settings: Settings) -> tuple[EventStore, KillSwitchBackend | None]:
    """The store `plan` reads, and its kill switch when that lives in the database.

    On a database at the current schema, both read straight through its
    driver (`jarvis.store.readonly`: no SQLAlchemy import); otherwise through
    the SQL backend, read-only, which migrates or names the problem as every
    command does.
    """
    from jarvis.store import EventStore
    from jarvis.store.readonly import KillSwitchReader, open_reader

    # A fresh checkout: plan as the first tick of `jarvis run` would, with no
    # history, a released switch and an empty ledger, and create nothing.
    empty = nothing_recorded(settings, "Planned with no history")
    if empty is not None:
        from jarvis.store.memory import MemoryKillSwitch

        return empty, None if settings.redis_url else MemoryKillSwitch()
    reader = await open_reader(settings.database_url)
    if reader is None:
        return await EventStore.connect(settings.database_url, read_only=True), None
    switch = None if settings.redis_url else KillSwitchReader(reader)
    return EventStore(reader, read_only=True), switch


def print_report(report: TickReport, as_json: bool, *, error: str | None = None) -> None:
    """The tick as a table, or with ``--json`` as one JSON object (``report_json``, with the
    ``error`` the command then exits with, said on stderr by `fail`); under the table, one
    line for each unknown outcome saying how it will be resolved."""
    rows = [_decision_row(d) for d in report.decisions]
    if as_json:
        print_json_lines([report_json(report, rows, error)])
        return
    _print_table(report, rows)
    for unknown in unknown_outcomes(report):
        console.print(
            f"[bold yellow]outcome unknown[/]: {shown(unknown['action'])} of "
            f"{shown(unknown['resource'])}: {shown(unknown['resolution'])}",
            highlight=False,
            soft_wrap=True,
        )


def say_unanswered(report: TickReport, settings: Settings) -> bool:
    """Print on stderr one line for each provider that did not answer in time, and say
    whether there was one: `jarvis tick` and `plan` then exit 1 (it may answer later), as
    an override whose outcome is unknown does.

    A provider that took the connection and never answered is cut by the loop's
    timeouts: its observe at ``loop.observe_timeout`` (`jarvis.loop.observe.cut_off`),
    its apply at ``loop.apply_timeout`` (`jarvis.loop.dispatch.cut_off`), recorded
    unknown. The call is left to its thread (`jarvis.actuators.base.abandonable`), so
    the command ends on time. A provider that answered, with an error or with an update
    still rolling out, is the table's line alone, and exits as before.
    """
    from jarvis.loop import dispatch, observe

    loop = settings.loop
    lines = [
        f"{name} did not answer within loop.observe_timeout ({loop.observe_timeout:g} s): "
        "this tick went on without what it reads there"
        for name in observe.cut_off(report.snapshot.errors, loop.observe_timeout)
    ]
    cut = dispatch.cut_off(loop.apply_timeout)
    for decision in report.decisions:
        outcome, action = decision.outcome, decision.action
        if outcome is not None and outcome.detail == cut:  # recorded timed out, unknown
            lines.append(
                f"{action.target.provider} did not answer {action.kind} of {action.target} "
                f"within loop.apply_timeout ({loop.apply_timeout:g} s): its outcome is unknown"
            )
    for line in lines:
        err_console.print(f"[bold red]no answer:[/] {shown(line)}", highlight=False, soft_wrap=True)
    return bool(lines)


def unknown_outcomes(report: TickReport) -> list[dict[str, str]]:
    """Each action of the tick whose outcome is unknown, and how it will be resolved.

    The next tick that acts on the database asks the provider, if it can be
    asked: a one-shot (`jarvis tick`, an override) reads the unknowns back once it
    holds the lease or node lock, the daemon when it starts or takes the lead
    (`jarvis.loop.unknowns`). This process does not ask again before it exits: an
    answer that did not come within the apply timeout rarely comes moments later,
    and the daemon too asks only from its next tick.
    """
    from jarvis.loop.events import action_id_for
    from jarvis.model import OutcomeStatus

    found = []
    for decision in report.decisions:
        outcome = decision.outcome
        if outcome is None or outcome.status is not OutcomeStatus.TIMED_OUT:
            continue
        action_id = action_id_for(report.tick_id, decision.action)
        if action_id in report.asked_later:
            resolution = (
                "it may have been made, and counts as a failed attempt until proven. The "
                "next tick that acts on this database (`jarvis tick` or an override, not "
                "--dry-run or plan; `jarvis run` at its start or when it next leads) asks the "
                "provider whether it was, while the attempt is in the retry window "
                "(retry.window_seconds), and records action.applied for it if so"
            )
        else:
            resolution = (
                "it may have been made, and counts as a failed attempt; its provider cannot "
                "be asked whether it was, so it stays unknown: look at the resource itself"
            )
        found.append(
            {
                "action_id": action_id,
                "resource": str(decision.action.target),
                "action": decision.action.kind,
                "resolution": resolution,
            }
        )
    return found


def _print_table(report: TickReport, rows: list[dict[str, Any]]) -> None:
    snapshot = report.snapshot
    console.print(
        f"tick {report.tick_id}: {len(snapshot.resources)} resources, "
        f"{len(report.proposals)} proposals, {len(report.applied)} applied",
        highlight=False,
    )
    # Provider errors, notes and reasons carry outside text: shown, never read as markup.
    # Each is one line however long, so a pipe (80 columns to rich) never splits a URI.
    for actuator, error in snapshot.errors.items():
        console.print(
            f"[red]observe failed[/] {shown(actuator)}: {shown(error)}",
            highlight=False,
            soft_wrap=True,
        )
    for policy, note in report.notes:
        style = "bold yellow" if note.alert else "dim"
        console.print(
            f"[{style}]{shown(policy)}[/]: {shown(note.message)}", highlight=False, soft_wrap=True
        )
    if not rows:
        console.print("nothing to do")
        return
    from rich.table import Table

    table = Table("resource", "action", "policy", "decision", "reason", "cost/h")
    for row in rows:
        table.add_row(
            shown(row["resource"]),
            shown(row["action"] + (f" {row['params']}" if row["params"] else "")),
            shown(row["policy"]),
            shown(row["decision"]),
            shown(row["reason"]),
            "" if row["cost_delta_per_hour"] is None else f"{row['cost_delta_per_hour']:+.2f}",
        )
    print_table(table)


def report_json(
    report: TickReport, rows: list[dict[str, Any]], error: str | None = None
) -> dict[str, Any]:
    """One object per tick, so a tick with nothing to do still prints something to parse.

    ``decisions`` holds one row per planned action (empty when there was
    nothing to do); the counts and observe errors say why it was empty.
    ``error`` is the line the command exits with (an override of a resource
    nobody has), None when it has none; a command that ends before its tick
    reports (cut at ``loop.tick_timeout``, refused) prints ``{"error": LINE}``
    alone (`jarvis.cli.common.fail`).
    """
    return {
        "error": error,
        "tick_id": report.tick_id,
        "resources": len(report.snapshot.resources),
        "proposals": len(report.proposals),
        "applied": len(report.applied),
        "observe_errors": dict(report.snapshot.errors),
        "notes": [
            {"policy": policy, "message": note.message, "alert": note.alert}
            for policy, note in report.notes
        ],
        "decisions": rows,
        "unknown_outcomes": unknown_outcomes(report),
    }


def _decision_row(decision: Decision) -> dict[str, Any]:
    from jarvis.model import GONE_LABEL

    action, outcome = decision.action, decision.outcome
    if decision.verdict.allowed and outcome is not None:
        # A target deleted since observe is no failure (`Outcome.gone`).
        verdict = GONE_LABEL if outcome.gone else "applied" if outcome.ok else outcome.status.value
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
