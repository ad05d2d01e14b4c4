"""`jarvis budgets`: how much of each disruption budget is left, now.

Reads what the daemon reads at start: the ``action.started`` intents inside
each budget's window (`jarvis.loop.budgets.ChangeLog`), so the figures match
the guard's. A percentage budget's limit needs the fleet; a one-shot command
does not observe, so it takes the resources the store recorded a
``resource.changed`` event for in the last day (every daemon start records
each resource it sees) and says so in the output.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from jarvis.cli.common import (
    JsonOpt,
    console,
    escape,
    print_json_lines,
    printable,
    run,
    settings_from,
)

if TYPE_CHECKING:
    from jarvis.model import ResourceRef
    from jarvis.safety import Budgets, Remaining
    from jarvis.store import EventStore

FLEET_LOOKBACK = timedelta(days=1)
HEADERS = ("budget", "provider", "kind", "resources", "per", "window", "limit", "used", "left")


async def recorded_fleet(store: EventStore, now: datetime) -> list[ResourceRef]:
    """Resources with a ``resource.changed`` event in the last day: the fleet a
    percentage is of, as far as a process that does not observe can tell."""
    from jarvis.model import EventKind, ResourceRef

    found = await store.events_by_time(
        kinds=[EventKind.RESOURCE_CHANGED], since=now - FLEET_LOOKBACK
    )
    refs: dict[str, ResourceRef] = {}
    for event in found:
        if event.resource and event.resource not in refs:
            try:
                refs[event.resource] = ResourceRef.parse(event.resource)
            except ValueError:
                continue
    return list(refs.values())


def budgets(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print each disruption budget: its limit, changes used in its window, and what is left."""
    from jarvis.app import build_budgets, open_store
    from jarvis.loop.budgets import ChangeLog
    from jarvis.loop.clock import WallClock

    settings = settings_from(ctx, as_json=as_json)
    configured = build_budgets(settings)
    now = WallClock().now()

    async def main() -> tuple[list[Remaining], int]:
        store = await open_store(settings, read_only=True)
        try:
            log = ChangeLog(configured)
            await log.load(store, now)
            fleet = await recorded_fleet(store, now)
        finally:
            await store.aclose()
        return configured.remaining(log.current(now), fleet, now), len(fleet)

    if not configured.budgets:
        if as_json:
            return
        console.print("no disruption budgets configured")
        return
    rows, fleet_size = run(main, as_json=as_json)
    _show(configured, rows, fleet_size, as_json=as_json)


def _show(configured: Budgets, rows: list[Remaining], fleet_size: int, *, as_json: bool) -> None:
    by_name = {b.name: b for b in configured.budgets}
    out: list[dict[str, Any]] = []
    for row in rows:
        budget = by_name[row.budget]
        out.append(
            {
                "budget": row.budget,
                "provider": row.provider,
                "kind": row.kind,
                "resources": budget.resources,
                "per": "resource" if budget.per_resource else "fleet",
                "window_seconds": budget.window.total_seconds(),
                "in_force": row.limit is not None,
                "limit": row.limit,
                "used": row.used,
                "remaining": row.remaining,
            }
        )
    if as_json:
        print_json_lines(out)
        return
    cells: list[tuple[str, ...]] = [
        (
            r["budget"],
            r["provider"],
            r["kind"],
            printable(r["resources"]),
            r["per"],
            str(timedelta(seconds=r["window_seconds"])),
            "off" if r["limit"] is None else str(r["limit"]),
            str(r["used"]),
            "-" if r["remaining"] is None else str(r["remaining"]),
        )
        for r in out
    ]
    from rich.table import Table

    table = Table()
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(HEADERS)]
    for header, width in zip(HEADERS, widths, strict=True):
        table.add_column(header, no_wrap=True, min_width=width)
    for line in cells:
        # A glob is configured text with brackets (``web-[a-c]*``): shown, never read as markup.
        table.add_row(*(escape(cell) for cell in line))
    # Never narrower than the rows, whatever the terminal: an identifier cut
    # short names the wrong thing. Each column adds a border and two spaces.
    needed = sum(widths) + 3 * len(widths) + 1
    from rich.console import Console

    wide = Console(width=max(console.width, needed), soft_wrap=False)
    wide.print(table, crop=False)
    if any(b.max_percent is not None for b in configured.budgets):
        console.print(
            f"percentages are of the {fleet_size} resource(s) recorded in the last day",
            highlight=False,
        )
