"""`jarvis report`: the daily report of one UTC day, in Markdown or HTML.

Reads only what the day needs: its events by time, the ``cost://llm``
observations of its month up to its end, and the quarantined rows of the retry
ledger; opens the store read-only, so it is safe beside a running daemon. The
figures come from `jarvis.report.figures`; this module only reads and writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from jarvis.cli.common import EXIT_CONFIG, fail, run, settings_from
from jarvis.model import EventKind, month_bounds

REPORTED_KINDS = [
    EventKind.ACTION_APPLIED,
    EventKind.ACTION_FAILED,
    EventKind.ACTION_UNKNOWN,
    EventKind.ACTION_BLOCKED,
    EventKind.ACTION_ESCALATED,
    EventKind.RESOURCE_CHANGED,
    EventKind.RETRIES_RESET,
]
"""The kinds the figures read: ticks and proposals, most of a day's rows, are left in the store."""

DateOpt = Annotated[
    str | None,
    typer.Option(
        "--date", help="The UTC day, YYYY-MM-DD (default: yesterday).", show_default=False
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="md or html.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write here instead of standard output.", show_default=False),
]


def parse_day(value: str | None, now: datetime) -> datetime:
    """The start of the UTC day ``value`` names, or of yesterday."""
    if value is None:
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=1)
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        fail(f"--date {value!r}: expected YYYY-MM-DD", EXIT_CONFIG)


def report(
    ctx: typer.Context, date: DateOpt = None, fmt: FormatOpt = "md", out: OutOpt = None
) -> None:
    """Print the daily report: actions, incidents, escalations, spend, savings, quarantine."""
    from jarvis.loop.clock import WallClock
    from jarvis.report import build_figures
    from jarvis.report.markdown import markdown
    from jarvis.store import EventStore, Redactor
    from jarvis.store.nodelock import sqlite_path

    if fmt not in ("md", "html"):
        fail(f"--format {fmt!r}: expected md or html", EXIT_CONFIG)
    settings = settings_from(ctx)
    start = parse_day(date, WallClock().now())
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        # Opening it would create an empty database and report a quiet day.
        fail(f"no event database at {path}: nothing to report", EXIT_CONFIG)
    end = start + timedelta(days=1) - timedelta(microseconds=1)

    async def main() -> str:
        store = await EventStore.connect(
            settings.database_url, read_only=True, redactor=Redactor(settings.secrets)
        )
        try:
            day = await store.events_by_time(kinds=REPORTED_KINDS, since=start, until=end)
            llm = await store.events_by_time(
                kinds=[EventKind.RESOURCE_CHANGED],
                resource="cost://llm",
                since=month_bounds(end)[0],
                until=end,
            )
            ledger = await store.load_retries()
        finally:
            await store.aclose()
        figures = build_figures(
            day,
            start=start,
            llm_observations=llm,
            quarantined=ledger.values(),
            budget_usd=settings.cost.monthly_budget_usd,
        )
        if fmt == "html":
            from jarvis.report.html import html

            return html(figures)
        return markdown(figures)

    text = run(main)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"--out {out}: {exc.strerror or exc}", EXIT_CONFIG)
