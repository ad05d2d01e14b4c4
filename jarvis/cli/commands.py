"""One-shot commands on the record and the setup: `events`, `db upgrade|prune`, `config check`.

Each opens what it needs (often only the store), does one thing, and closes
it; `tick` and `plan` live in `jarvis.cli.ticks`, the overrides (`deploy`,
`restart`, ...) in `jarvis.cli.override`, the kill switch and the retry ledger
in `jarvis.cli.operator`, `jarvis run` in `jarvis.cli.daemon`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from jarvis.cli.common import (
    EXIT_CONFIG,
    JsonOpt,
    command_group,
    console,
    err_console,
    event_json,
    fail,
    print_json_lines,
    printable,
    run,
    settings_from,
    shown,
)

if TYPE_CHECKING:
    from jarvis.config import Settings
    from jarvis.model import Event

db_app = command_group("Database schema.")
config_app = command_group("Configuration.")


# -- events --------------------------------------------------------------------


def events(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many.")
    ] = 50,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", metavar="<kind>", help="Event kind (repeatable)."),
    ] = None,
    resource: Annotated[str | None, typer.Option("--resource", "-r", help="Resource URI.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print recent events, oldest first."""
    from jarvis.model import EventKind, ResourceRef

    settings = settings_from(ctx, as_json=as_json)
    known = {k.value for k in EventKind}
    for k in kind or []:
        if k not in known:
            unknown = f"unknown event kind {k!r}; one of: {', '.join(sorted(known))}"
            fail(unknown, EXIT_CONFIG, as_json=as_json)
    if resource is not None:
        # A malformed filter matches nothing: a typo must not read as a quiet resource.
        try:
            ResourceRef.parse(resource)
        except ValueError as exc:
            fail(str(exc), EXIT_CONFIG, as_json=as_json)

    import anyio

    from jarvis.app import open_store
    from jarvis.store.follow import follow as follow_events

    async def main() -> None:
        store = await open_store(settings, read_only=True)
        try:
            batch = await store.events(limit=limit, kinds=kind, resource=resource)
            _print_events(batch, as_json)
            if follow:
                last = batch[-1].id if batch else None
                async for newer in follow_events(
                    store, last, anyio.sleep, kinds=kind, resource=resource
                ):
                    _print_events(newer, as_json)
        finally:
            await store.aclose()

    try:
        run(main, as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _print_events(batch: list[Event], as_json: bool) -> None:
    if as_json:
        print_json_lines(event_json(e) for e in batch)
        return
    for e in batch:
        console.print(printable(event_line(e)), highlight=False, markup=False, soft_wrap=True)


def event_line(e: Event) -> str:
    """One event as a line: when, what, where, and the fact an operator reads it for.

    An outcome line shows the outcome (``failed: crash loop``), not the
    proposal's reason, which the ``action.proposed`` line already showed; one
    closing an intent the kill switch withheld says so (``blocked
    (killswitch): …``, `Event.withheld`), as it was never sent; one whose
    target was deleted since it was observed says ``gone (deleted since
    observed): …`` (`Event.gone`), as nothing failed; a ``resource.changed``
    line shows the new health and what it was.
    """
    from jarvis.model import GONE_LABEL, EventKind

    where = f" {e.resource}" if e.resource else ""
    what = f" {e.action_kind}" if e.action_kind else ""
    payload = e.payload
    unknown = e.kind is EventKind.ACTION_UNKNOWN
    if unknown or e.kind in (EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED):
        recorded = payload.get("outcome") or e.kind.value.removeprefix("action.")
        outcome = "unknown" if unknown else str(recorded)
        if (code := e.withheld) is not None:
            outcome = f"blocked ({code})"
        elif e.gone:
            outcome = GONE_LABEL
        # Recovery's unknown carries no detail; its reason says why.
        detail = payload.get("detail") or (e.reason if unknown else None)
        why = f" — {outcome}" + (f": {detail}" if detail else "")
    elif e.kind is EventKind.RESOURCE_CHANGED:
        health = payload.get("health")
        previous = payload.get("previous")
        was = previous.get("health") if isinstance(previous, dict) else None
        why = f" — {health}" if health else ""
        why += f" (was {was})" if was and was != health else ""
        why += f": {e.reason}" if e.reason else ""
    else:
        why = f" — {e.reason}" if e.reason else ""
    return f"{e.ts:%Y-%m-%d %H:%M:%S} {e.kind.value}{where}{what}{why}"


# -- db and config -------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the event database schema to the latest revision."""
    settings = settings_from(ctx)
    from jarvis.store import upgrade

    revision = run(lambda: upgrade(settings.database_url))
    console.print(f"database at revision {revision}", highlight=False)


@db_app.command("prune")
def db_prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete events past the retention limits now (the daemon does it every retention.interval).

    Never an open intent, the outcome of one kept, the newest event of a kind,
    a quarantined resource's escalation, or anything inside the history horizon or the
    longest disruption-budget window.
    """
    from jarvis.app import absent_database, build_budgets, build_policies, no_database, open_store
    from jarvis.loop.clock import WallClock
    from jarvis.loop.retention import Pruner

    settings = settings_from(ctx, as_json=as_json)
    absent = absent_database(settings)
    if absent is not None:
        # Opening it would create an empty database (its directory too) and prune
        # nothing from it: a typo in database_url read as a tidy record.
        fail(no_database(absent), EXIT_CONFIG, as_json=as_json)

    async def main() -> dict[str, int]:
        store = await open_store(settings)
        try:
            pruner = Pruner.for_policies(
                store,
                settings.retention,
                WallClock(),
                build_policies(settings),
                budgets=build_budgets(settings),
            )
            return await pruner.prune(dry_run=dry_run)
        finally:
            await store.aclose()

    deleted = run(main, as_json=as_json)
    if as_json:
        print_json_lines([{"dry_run": dry_run, "deleted": deleted}])
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {sum(deleted.values())} event(s)", highlight=False)
    for kind, count in sorted(deleted.items()):
        console.print(f"  {kind}: {count}", highlight=False)


@config_app.command("check")
def config_check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Validate the configuration and print the effective settings (secrets hidden), with a
    warning for each pair of timeouts that cannot work together and each resource glob
    whose * crosses a "/"."""
    # The warnings: `jarvis.config.timing` and `jarvis.providers.glob_warnings`.
    settings = settings_from(ctx, as_json=as_json)
    from jarvis.app import build_guard, notify_channels
    from jarvis.config import ConfigError
    from jarvis.providers import enabled as enabled_providers

    build_guard(settings)
    try:
        channels = notify_channels(settings)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG, as_json=as_json)
    run(lambda: _builds(settings), as_json=as_json)
    from jarvis.config.timing import timing_warnings
    from jarvis.providers import glob_warnings

    # `jarvis run` logs the same lines at start.
    warnings = [*timing_warnings(settings), *glob_warnings(settings)]
    for warning in warnings:
        # Shown, not read as markup: a glob's ``[0-9]`` was taken for a style and vanished.
        err_console.print(f"[yellow]warning:[/] {shown(warning)}", highlight=False, soft_wrap=True)
    data = json.loads(settings.model_dump_json())
    data["warnings"] = warnings
    data["notify_channels"] = sorted(channels)
    data["providers"] = [provider.name for provider in enabled_providers(settings)]
    for key in ("database_url", "redis_url"):
        if data.get(key):
            data[key] = masked_url(data[key])
    from jarvis.config.endpoints import display_url

    for entry, endpoint in zip(data["probes"]["endpoints"], settings.probes.endpoints, strict=True):
        # Where it points, with its password and query values masked: the
        # whole URL is a secret, but an operator needs to see which one it is.
        entry["url"] = display_url(endpoint.url.get_secret_value())
    data["http_port"] = settings.http_port
    if as_json:
        print_json_lines([data])
        return
    console.print_json(json.dumps(data))
    console.print("[green]configuration OK[/]")


async def _builds(settings: Settings) -> None:
    """Build, and close, what `jarvis run` builds from the settings before it starts: the
    policies, the lease, sensors and actuators, metric sources.

    A configuration `config check` passes must not be one `run` refuses (a secret
    missing from the environment, a Kubernetes client with no kubeconfig); the
    message is the one `run` prints. Nothing is connected to: clients are
    configured, not called.
    """
    from jarvis.app import build_policies
    from jarvis.loop.clock import WallClock
    from jarvis.loop.leases import check_lease, lease_lock
    from jarvis.providers import build_metric_sources, build_sensors

    build_policies(settings)
    check_lease(settings)
    if settings.lease.backend == "kubernetes":
        lease_lock(settings, "jarvis-config-check").close()
    for sensor in build_sensors(settings, WallClock()):
        await sensor.aclose()
    for source in build_metric_sources(settings):
        await source.aclose()


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=user + host))
