"""`jarvis report`: the daily report of one UTC day, in Markdown or HTML.

Reads only what the day needs: its events by time, the ``cost://llm``
observations of its month up to its end, and the quarantined rows of the retry
ledger; opens the store read-only, so it is safe beside a running daemon. The
read and the figures are `jarvis.report.load`'s, shared with the daemon's daily
delivery (`jarvis.report.deliver`); this module only opens the store and writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from jarvis.cli.common import EXIT_CONFIG, fail, run, settings_from

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_day(value: str | None, now: datetime) -> datetime:
    """The start of the UTC day ``value`` names (1970-01-01 to today), or of yesterday.

    Outside that range nothing can have been recorded, and the report's
    windows around a day in year 1 or 9999 overflowed `datetime` (a traceback).
    """
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if value is None:
        return today - timedelta(days=1)
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        fail(f"--date {value!r}: expected YYYY-MM-DD", EXIT_CONFIG)
    if not EPOCH <= day <= today:
        fail(f"--date {value!r}: expected a day from 1970-01-01 to today", EXIT_CONFIG)
    return day


def report(
    ctx: typer.Context, date: DateOpt = None, fmt: FormatOpt = "md", out: OutOpt = None
) -> None:
    """Print the daily report: actions, incidents, escalations, spend, savings, quarantine."""
    from jarvis.app import absent_database, no_database, report_churn_rules
    from jarvis.loop.clock import WallClock
    from jarvis.report.load import load_figures
    from jarvis.report.markdown import markdown
    from jarvis.store import EventStore, Redactor

    if fmt not in ("md", "html"):
        fail(f"--format {fmt!r}: expected md or html", EXIT_CONFIG)
    settings = settings_from(ctx)
    start = parse_day(date, WallClock().now())
    absent = absent_database(settings)
    if absent is not None:
        # Opening it would create an empty database and report a quiet day.
        fail(no_database(absent), EXIT_CONFIG)

    async def main() -> str:
        store = await EventStore.connect(
            settings.database_url, read_only=True, redactor=Redactor(settings.secrets)
        )
        try:
            churn = report_churn_rules(settings)
            figures = await load_figures(
                store,
                start,
                settings.cost.monthly_budget_usd,
                churn,
                include_cloud=settings.cost.include_cloud_spend,
            )
        finally:
            await store.aclose()
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
