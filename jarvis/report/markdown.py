"""The daily report as Markdown: the text an SRE reads in a terminal, Slack or an email.

Called by `jarvis report --format md` and by `html`, which puts the same
tables beside its charts.
"""

from __future__ import annotations

from datetime import timedelta

from jarvis.report.figures import DailyFigures
from jarvis.text import inert

__all__ = ["cell", "duration", "inert", "markdown", "sections"]

TOP_SAVINGS = 10
TOP_INCIDENTS = 15
TOP_AT_RISK = 50


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=round(seconds)))


def cell(text: str) -> str:
    """`inert` text for a pipe-table cell, its pipes escaped (``\\|``) so it stays one cell."""
    return inert(text).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def sections(f: DailyFigures) -> list[tuple[str, list[str]]]:
    """(title, Markdown lines) per section, in the order the report shows them."""
    out: list[tuple[str, list[str]]] = []
    outcomes = sorted({o for row in f.actions.values() for o in row})
    rows = [[k, *(str(row.get(o, 0)) for o in outcomes)] for k, row in f.actions.items()]
    blocked = ", ".join(f"{inert(r)} {n}" for r, n in f.blocked_reasons.items())
    out.append(
        (
            "Actions by kind and outcome",
            _table(["kind", *outcomes], rows)
            + ([f"Blocked, by reason: {blocked}", ""] if blocked else []),
        )
    )
    human = sum(1 for i in f.incidents if i.human)
    still_open = sum(1 for i in f.incidents if i.end is None)
    lines = [
        f"{len(f.incidents)} incidents (a resource unhealthy until healthy again): "
        f"{len(f.incidents) - human} mended by Jarvis alone, {human} needed a human, "
        f"{still_open} still open at the day's end. Time to remediate: median "
        f"{duration(f.median_seconds)}, p95 {duration(f.p95_seconds)}.",
        "",
    ]
    # The ones a human needed, still open, or longest first: forty thirty-second
    # restarts are one line of the summary, not forty rows.
    shown = sorted(
        f.incidents, key=lambda i: (not i.human, i.end is not None, -(i.seconds or 0.0))
    )[:TOP_INCIDENTS]
    rows = [
        [
            i.resource,
            f"{i.start:%H:%M:%S}",
            duration(i.seconds) if i.end else "open",
            "yes" if i.human else "no",
        ]
        for i in shown
    ]
    if len(f.incidents) > len(shown):
        lines += [f"The {len(shown)} that needed a human, are open or took longest:", ""]
    out.append(("Incidents", lines + _table(["resource", "from", "to remediate", "human"], rows)))
    rows = [
        [
            e.resource or "",
            e.action_kind or "",
            # One opened before the day says which day.
            f"{e.ts:%Y-%m-%d %H:%M}" if e.ts < f.start else f"{e.ts:%H:%M:%S}",
            e.reason or "",
        ]
        for e in f.escalations_open
    ]
    out.append(("Escalations open", _table(["resource", "kind", "at", "why"], rows)))
    out.append(("Spend against budget", _spend_lines(f)))
    out.append(("Revenue against cost", _revenue_lines(f)))
    rows = [
        [r, k, f"${usd:,.4f}/h", f"${usd * 24:,.2f}/day"] for r, k, usd in f.savings[:TOP_SAVINGS]
    ]
    out.append(
        (
            "Biggest savings (applied actions)",
            _table(["resource", "kind", "saving", "if it holds a day"], rows),
        )
    )
    rows = [
        [q.resource, q.action_kind, str(len(q.attempts)), q.last_error or "-"]
        for q in f.quarantined
    ]
    out.append(
        (
            "Quarantined now",
            _table(["resource", "kind", "attempts", "last error"], rows)
            + ["Reset one with `jarvis retries reset RESOURCE`.", ""] * bool(rows),
        )
    )
    if f.medium_risk is not None:
        out.append(("Customers at medium churn risk", _risk_lines(f.medium_risk)))
    return out


def _risk_lines(ids: list[str]) -> list[str]:
    """Customer ids only: the report, like the event log, carries no personal data."""
    if not ids:
        return ["None.", ""]
    shown = ", ".join(f"`{inert(i)}`" for i in ids[:TOP_AT_RISK])
    more = f" and {len(ids) - TOP_AT_RISK} more" if len(ids) > TOP_AT_RISK else ""
    return [
        f"{len(ids)} customers quiet for two weeks or more, or whose use is falling fast: "
        f"{shown}{more}.",
        "",
    ]


def _spend_lines(f: DailyFigures) -> list[str]:
    s = f.spend
    if s is None:
        return ["No LLM spend observed this month up to the day's end.", ""]
    # The budget is judged on what the cost policy counts: LLM, and the cloud bill if included.
    b = s.against_budget
    share = f" ({b.total_usd / s.budget_usd:.0%} of ${s.budget_usd:,.2f})" if s.budget_usd else ""
    verdict = "over" if s.budget_usd and b.forecast_usd > s.budget_usd else "within"
    spent = (
        f"${b.llm_usd:,.2f} LLM + ${b.cloud_usd:,.2f} cloud = ${b.total_usd:,.2f}"
        if b.cloud_usd
        else f"${b.total_usd:,.2f}"
    )
    lines = [
        f"Month {s.month}, as observed at {s.observed_at:%Y-%m-%d %H:%M} UTC: "
        f"{spent} spent{share}; month-end forecast ${b.forecast_usd:,.2f} "
        f"(linear), {verdict} budget.",
        "",
    ]
    total = s.total_usd or 1.0
    lines += _table(
        ["model", "spent", "share"],
        [[m, f"${u:,.2f}", f"{u / total:.0%}"] for m, u in s.by_model.items()],
    )
    lines += _table(
        ["provider", "spent", "share"],
        [[p, f"${u:,.2f}", f"{u / total:.0%}"] for p, u in s.by_provider.items()],
    )
    return lines


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _revenue_lines(f: DailyFigures) -> list[str]:
    r = f.revenue
    if r is None:
        return ["No revenue settled up to the day's end (`[customers.plans]` sets the prices).", ""]
    day = r.latest
    settled = "" if day.day == f.start.date() else f" (last settled {day.day:%Y-%m-%d})"
    lines = [
        f"MRR {_usd(day.mrr_usd)}{settled}: {day.paying} paying of {day.customer_count} "
        "customers" + (f", {day.unpriced} on a plan without a price" if day.unpriced else "") + ".",
        "",
    ]
    on_day = day if day.day == f.start.date() else None
    lines += _table(
        ["movement", "this day", "month to date"],
        [
            [kind.value, _usd(on_day.usd(kind) if on_day else 0.0), _usd(r.month[kind])]
            for kind in r.month
        ],
    )
    cloud = r.cloud
    cost = r.cost_usd
    parts = [f"LLM {_usd(r.llm_forecast_usd)}"]
    if cloud is not None:
        parts.append(f"cloud {_usd(cloud.forecast_usd)} (recorded {cloud.observed_at:%d %b %H:%M})")
    if cost is None:
        lines += ["No LLM or cloud cost recorded this month: no cost to set against revenue.", ""]
        return lines
    margin = day.mrr_usd - cost
    share = f" ({margin / day.mrr_usd:.0%} of MRR)" if day.mrr_usd else ""
    lines += [
        f"Month-end cost forecast {_usd(cost)}: " + ", ".join(parts) + ".",
        f"MRR less cost: {_usd(margin)}{share}.",
        f"Cost per customer {_usd(r.per_customer(paying=False))} a month; "
        f"per paying customer {_usd(r.per_customer(paying=True))}.",
        "",
    ]
    return lines


def markdown(f: DailyFigures) -> str:
    """The whole report as one Markdown document."""
    lines = [f"# Jarvis daily report, {f.start:%Y-%m-%d} (UTC)", ""]
    for title, body in sections(f):
        lines += [f"## {title}", "", *body]
    return "\n".join(lines).rstrip() + "\n"
