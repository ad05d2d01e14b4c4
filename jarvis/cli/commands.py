"""One-shot commands: tick, plan, events, killswitch, retries, db, config, deploy.

Each opens what it needs (often only the store and the kill-switch backend),
does one thing, and closes it; `jarvis run` lives in `jarvis.cli.daemon`.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import typer
from rich.console import Console
from rich.table import Table

from jarvis.app import build_app, build_guard, killswitch_backend, open_store
from jarvis.cli.common import event_json, fail, print_json_lines, run, settings_from
from jarvis.config import Settings
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.loop.reconciler import Decision, TickReport
from jarvis.model import Action, Deploy, Event, EventKind, History, ResourceRef, Snapshot
from jarvis.policies.base import Evaluation
from jarvis.providers import enabled as enabled_providers
from jarvis.store import upgrade

console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]

killswitch_app = typer.Typer(
    help="Engage, release or inspect the kill switch.", no_args_is_help=True
)
retries_app = typer.Typer(help="The retry ledger and quarantined resources.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)


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
    """Show what Jarvis would do now: a dry-run tick printed as a table."""
    settings = settings_from(ctx)
    report = run(lambda: _one_tick(settings, dry_run=True))
    _print_report(report, as_json)


async def _one_tick(settings: Settings, *, dry_run: bool) -> TickReport:
    app = await build_app(settings)
    try:
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


# -- events --------------------------------------------------------------------


def events(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many.")] = 50,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Event kind (repeatable).")
    ] = None,
    resource: Annotated[str | None, typer.Option("--resource", "-r", help="Resource URI.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print recent events, oldest first."""
    settings = settings_from(ctx)
    known = {k.value for k in EventKind}
    for k in kind or []:
        if k not in known:
            fail(f"unknown event kind {k!r}; one of: {', '.join(sorted(known))}", 2)

    async def main() -> None:
        store = await open_store(settings)
        try:
            batch = await store.events(limit=limit, kinds=kind, resource=resource)
            _print_events(batch, as_json)
            last = batch[-1].id if batch else None
            while follow:
                await anyio.sleep(1.0)
                if last is None:
                    newer = await store.events(limit=500, kinds=kind, resource=resource)
                else:
                    newer = await store.events(
                        limit=500, kinds=kind, resource=resource, after_id=last
                    )
                if newer:
                    _print_events(newer, as_json)
                    last = newer[-1].id
        finally:
            await store.aclose()

    try:
        run(main)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _print_events(batch: list[Event], as_json: bool) -> None:
    if as_json:
        print_json_lines(event_json(e) for e in batch)
        return
    for e in batch:
        where = f" {e.resource}" if e.resource else ""
        what = f" {e.action_kind}" if e.action_kind else ""
        why = f" — {e.reason}" if e.reason else ""
        console.print(
            f"{e.ts:%Y-%m-%d %H:%M:%S} {e.kind.value}{where}{what}{why}",
            highlight=False,
            markup=False,
        )


# -- kill switch ---------------------------------------------------------------


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


async def _with_killswitch(settings: Settings, body: Any) -> Any:
    store = await open_store(settings)
    backend = killswitch_backend(settings, store)
    try:
        return await body(KillSwitch(backend, store, WallClock()))
    finally:
        await backend.aclose()
        await store.aclose()


@killswitch_app.command("engage")
def killswitch_engage(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the flip.")],
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: your user).")] = None,
) -> None:
    """Stop all actions now. Takes effect before the daemon's next apply."""
    if not reason.strip():
        fail("--reason must not be empty", 2)
    settings = settings_from(ctx)
    state = run(
        lambda: _with_killswitch(
            settings, lambda ks: ks.set(engaged=True, actor=actor or _operator(), reason=reason)
        )
    )
    console.print(
        f"kill switch [bold red]ENGAGED[/] by {state.actor}: {state.reason}", highlight=False
    )


@killswitch_app.command("release")
def killswitch_release(
    ctx: typer.Context,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded with the flip.")
    ] = "released",
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: your user).")] = None,
) -> None:
    """Let Jarvis act again."""
    settings = settings_from(ctx)
    state = run(
        lambda: _with_killswitch(
            settings, lambda ks: ks.set(engaged=False, actor=actor or _operator(), reason=reason)
        )
    )
    console.print(f"kill switch [bold green]released[/] by {state.actor}", highlight=False)


@killswitch_app.command("status")
def killswitch_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print whether the kill switch is engaged, by whom and why."""
    settings = settings_from(ctx)
    state = run(lambda: _with_killswitch(settings, lambda ks: ks.read()))
    if as_json:
        print_json_lines(
            [
                {
                    "engaged": state.engaged,
                    "actor": state.actor,
                    "reason": state.reason,
                    "changed_at": state.changed_at,
                }
            ]
        )
        return
    if state.engaged:
        console.print(
            f"[bold red]ENGAGED[/] by {state.actor} at {state.changed_at}: {state.reason}",
            highlight=False,
        )
    else:
        console.print(
            "[green]released[/]"
            + (f" by {state.actor} at {state.changed_at}" if state.actor else ""),
            highlight=False,
        )


# -- retries -------------------------------------------------------------------


@retries_app.command("list")
def retries_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the retry ledger: attempts, failures and quarantine per resource."""
    settings = settings_from(ctx)

    async def main() -> list[dict[str, Any]]:
        store = await open_store(settings)
        try:
            ledger = await store.load_retries()
        finally:
            await store.aclose()
        return [
            {
                "resource": s.resource,
                "action_kind": s.action_kind,
                "attempts": list(s.attempts),
                "consecutive_failures": s.consecutive_failures,
                "retry_after": s.retry_after,
                "quarantined": s.quarantined,
                "last_error": s.last_error,
            }
            for _, s in sorted(ledger.items())
        ]

    rows = run(main)
    if as_json:
        print_json_lines(rows)
        return
    if not rows:
        console.print("no retries recorded")
        return
    table = Table("resource", "action", "attempts", "failures", "quarantined", "last error")
    for r in rows:
        table.add_row(
            r["resource"],
            r["action_kind"],
            str(len(r["attempts"])),
            str(r["consecutive_failures"]),
            "[bold red]yes[/]" if r["quarantined"] else "no",
            r["last_error"],
        )
    console.print(table)


@retries_app.command("reset")
def retries_reset(
    ctx: typer.Context,
    resource: Annotated[str, typer.Argument(help="Resource URI, e.g. sim://ai-dawg-ai-brain.")],
) -> None:
    """Clear a resource's retry ledger and lift its quarantine."""
    try:
        ResourceRef.parse(resource)
    except ValueError as exc:
        fail(str(exc), 2)
    settings = settings_from(ctx)
    clock = WallClock()

    async def main() -> int:
        store = await open_store(settings)
        try:
            count = await store.reset_retries(resource)
            now = clock.now()
            store.append(
                [
                    Event(
                        kind=EventKind.RETRIES_RESET,
                        ts=now,
                        idempotency_key=f"retries.reset:{resource}:{now.isoformat()}",
                        resource=resource,
                        reason=f"reset by {_operator()}",
                        payload={"actor": _operator(), "rows": count},
                    )
                ]
            )
            await store.flush()
            return count
        finally:
            await store.aclose()

    count = run(main)
    console.print(f"reset {count} retry record(s) for {resource}", highlight=False)


# -- db and config -------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the event database schema to the latest revision."""
    settings = settings_from(ctx)
    revision = run(lambda: upgrade(settings.database_url))
    console.print(f"database at revision {revision}", highlight=False)


@config_app.command("check")
def config_check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Validate the configuration and print the effective settings (secrets hidden)."""
    settings = settings_from(ctx)
    build_guard(settings)
    data = json.loads(settings.model_dump_json())
    data["providers"] = [provider.name for provider in enabled_providers(settings)]
    for key in ("database_url", "redis_url"):
        if data.get(key):
            data[key] = masked_url(data[key])
    data["http_port"] = settings.http_port
    if as_json:
        print_json_lines([data])
        return
    console.print_json(json.dumps(data))
    console.print("[green]configuration OK[/]")


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
        app = await build_app(settings, policies=[_OneShot(action)])
        try:
            return await app.reconciler.tick(dry_run=dry_run or settings.dry_run)
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


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=user + host))
