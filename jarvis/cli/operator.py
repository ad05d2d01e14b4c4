"""The operator's safety state: `killswitch engage|release|status`, `retries list|reset`.

They open only the store and the kill-switch backend, never the providers, so
they work beside a running daemon and while a cloud API is down.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer
from rich.table import Table

from jarvis.app import killswitch_backend, open_store
from jarvis.cli.common import JsonOpt, console, fail, print_json_lines, run, settings_from
from jarvis.config import Settings
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import Event, EventKind, ResourceRef

killswitch_app = typer.Typer(
    help="Engage, release or inspect the kill switch.", no_args_is_help=True
)
retries_app = typer.Typer(help="The retry ledger and quarantined resources.", no_args_is_help=True)


# -- kill switch ---------------------------------------------------------------


def operator_name() -> str:
    """Who runs this command, for the record: ``cli:USER``."""
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
            settings, lambda ks: ks.set(engaged=True, actor=actor or operator_name(), reason=reason)
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
            settings,
            lambda ks: ks.set(engaged=False, actor=actor or operator_name(), reason=reason),
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
                        reason=f"reset by {operator_name()}",
                        payload={"actor": operator_name(), "rows": count},
                    )
                ]
            )
            await store.flush()
            return count
        finally:
            await store.aclose()

    count = run(main)
    console.print(f"reset {count} retry record(s) for {resource}", highlight=False)
