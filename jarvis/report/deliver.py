"""The daily report, delivered: yesterday's report once a day at a set local time.

The daemon runs `ReportSender.run` beside the scheduler, like the notifier,
never inside a tick. At ``[report] deliver_at`` in ``timezone`` (or at the
first check after it, when the daemon was down then, or after that UTC day
has ended, when ``timezone`` is east of UTC) it reads the UTC day
before the local date (`load_figures`, as `jarvis report` does) and sends it:
email gets the plain-text report and the HTML with its charts as inline
(``cid:``) images, since mail clients block ``data:`` URIs; Slack gets a short
summary of the key figures.

At most once per day, across restarts: before sending, it records a
`report.sent` event for the day (idempotency key ``report.sent:<day>``) and a
day that has one is never sent again. A day whose check kept failing until the
next was due (the database away, the daemon down) goes out with the next one,
up to a week back. A delivery that keeps failing is
retried a few times with backoff and then given up, logged: a missed report
costs less than a report sent twice to a whole team every restart. An email
refused for some recipients with a 4xx (greylisting) is retried the same way
for those recipients alone.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

import structlog

from jarvis.mail import Refusal
from jarvis.model import GONE_LABEL, Clock, Event, EventKind
from jarvis.policies.churn import ChurnRules
from jarvis.report.figures import GONE, DailyFigures
from jarvis.report.load import load_figures
from jarvis.report.markdown import markdown
from jarvis.slack import mrkdwn
from jarvis.store import EventStore
from jarvis.store.errors import StoreError, said

__all__ = [
    "CATCH_UP",
    "Mailer",
    "ReportSender",
    "SlackPoster",
    "report_email",
    "slack_summary",
    "unsent",
]

log = structlog.get_logger("jarvis.report")

_DATA_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


class Mailer(Protocol):
    """Sends a message to the configured recipients (`jarvis.notify.channels.Email`).

    Returns the recipients the server refused while it took the message for the others.
    """

    async def mail(
        self, message: EmailMessage, envelope: list[str] | None = None
    ) -> Sequence[Refusal]: ...


class SlackPoster(Protocol):
    """Posts a message to the incoming webhook (`jarvis.notify.channels.SlackWebhook`)."""

    async def post(self, body: dict[str, Any]) -> None: ...


def key_figures(f: DailyFigures) -> list[str]:
    """The handful of lines a channel shows when it cannot show the whole report."""
    applied = sum(row.get("applied", 0) for row in f.actions.values())
    failed = sum(row.get("failed", 0) for row in f.actions.values())
    gone = sum(row.get(GONE, 0) for row in f.actions.values())
    blocked = sum(row.get("blocked", 0) for row in f.actions.values())
    human = sum(1 for i in f.incidents if i.human)
    # Targets deleted since observed are no failures; said only on a day that had some.
    deleted = f", {gone} {GONE_LABEL}" if gone else ""
    lines = [
        f"Actions: {applied} applied, {failed} failed{deleted}, {blocked} blocked",
        f"Incidents: {len(f.incidents)} ({human} needed a human)"
        + _remediation(f.median_seconds, f.p95_seconds),
        f"Escalations open: {len(f.escalations_open)}",
        f"Quarantined: {len(f.quarantined)}",
    ]
    if f.spend is not None:
        s = f.spend.against_budget
        lines.append(
            f"Spend {s.month}: ${s.total_usd:,.2f} of ${f.spend.budget_usd:,.2f},"
            f" forecast ${s.forecast_usd:,.2f}"
            + (f" (cloud ${s.cloud_usd:,.2f})" if s.cloud_usd else "")
        )
    if f.revenue is not None:
        r = f.revenue
        cost = r.cost_usd
        lines.append(
            f"MRR ${r.latest.mrr_usd:,.2f} ({r.latest.paying} paying)"
            + ("" if cost is None else f" against a month's cost of ${cost:,.2f}")
        )
    if f.savings:
        resource, kind, usd = f.savings[0]
        lines.append(f"Biggest saving: {resource} {kind}, ${usd:,.2f}/h")
    return lines


def _remediation(median: float | None, p95: float | None) -> str:
    if median is None or p95 is None:
        return ""
    return f", time to remediate median {median:.0f} s, p95 {p95:.0f} s"


def slack_summary(f: DailyFigures) -> dict[str, Any]:
    """The key figures as Block Kit; resource names are outside text, escaped for mrkdwn."""
    title = f"Jarvis daily report, {f.start:%Y-%m-%d} (UTC)"
    lines = [mrkdwn(line) for line in key_figures(f)]
    return {
        "text": f"{title}: " + "; ".join(lines),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "The full report with charts went by email."}
                ],
            },
        ],
    }


def report_email(f: DailyFigures, html_text: str) -> EmailMessage:
    """Plain text (the Markdown) and the HTML, its PNG charts as related inline parts."""
    images: list[tuple[str, bytes]] = []

    def to_cid(match: re.Match[str]) -> str:
        cid = make_msgid(domain="jarvis.report")[1:-1]
        images.append((cid, base64.b64decode(match.group(1))))
        return f'src="cid:{cid}"'

    message = EmailMessage()
    message["Subject"] = f"Jarvis daily report, {f.start:%Y-%m-%d} (UTC)"
    message.set_content(markdown(f))
    message.add_alternative(_DATA_PNG.sub(to_cid, html_text), subtype="html")
    rich = message.get_body(preferencelist=("html",))
    if not isinstance(rich, EmailMessage):  # pragma: no cover - add_alternative made it
        raise TypeError("the report's HTML part is missing")
    for cid, png in images:
        rich.add_related(png, "image", "png", cid=f"<{cid}>")
    return message


def report_day(now: datetime, at: time, zone: tzinfo) -> date | None:
    """The UTC day whose report is due at ``now`` (yesterday, locally), or None before ``at``.

    None too while that UTC day has not ended: east of UTC, ``at`` can fall
    before it does (08:00 in Tokyo is 23:00 UTC), and the report would have
    missed the day's last hours.
    """
    local = now.astimezone(zone)
    if local.time() < at:
        return None
    day = local.date() - timedelta(days=1)
    if now < datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC):
        return None
    return day


CATCH_UP = 7
"""The most days one check sends: the due one and those missed just before it."""


def unsent(due: date, sent: set[date]) -> list[date]:
    """The days to send now, oldest first: ``due`` and the ones missed since the last sent."""
    if due in sent:
        return []
    earlier = [day for day in sent if day < due]
    if not earlier:
        return [due]
    first = max(max(earlier) + timedelta(days=1), due - timedelta(days=CATCH_UP - 1))
    return [first + timedelta(days=n) for n in range((due - first).days + 1)]


def next_check(now: datetime, at: time, zone: tzinfo) -> datetime:
    """The next ``at`` in ``zone`` after ``now``, as a UTC time."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


@dataclass
class ReportSender:
    """Sends yesterday's report once a day; `check` is one decision, `run` repeats it."""

    store: EventStore
    clock: Clock
    at: time
    zone: tzinfo
    budget_usd: float
    include_cloud: bool = True
    """``cost.include_cloud_spend``: the budget counts the cloud bill as the cost policy does."""
    churn: ChurnRules | None = None
    """The churn policy's rules, for the medium-risk list; None without customers."""
    mailer: Mailer | None = None
    slack: SlackPoster | None = None
    attempts: int = 5
    backoff: float = 60.0
    leads: Callable[[], bool] = lambda: True
    """Whether this replica sends: with several, only the leader (with shards, the holder
    of shard 0: every shard holder leads, and each would send)."""

    async def run(self) -> None:
        """Check now, then at every next ``at`` (hourly at most apart, for clock jumps)."""
        while True:
            try:
                await self.check()
            except StoreError as exc:  # an outage: one line, as the store says it
                log.warning("daily report: check failed; trying again later", error=said(exc))
            except Exception:  # a report bug must never stop the daemon either
                log.exception("daily report: check failed; trying again later")
            now = self.clock.now()
            wait = (next_check(now, self.at, self.zone) - now).total_seconds()
            await self.clock.sleep(min(max(wait, 1.0), 3600.0))

    async def check(self) -> date | None:
        """Send the due day's report, and any missed since the last one sent; return the last.

        A day is missed when its check failed until the next day was due (the
        database away, the daemon down): it goes out before the due one, up to
        `CATCH_UP` days back. With no report sent before, only the due day goes.
        """
        due = report_day(self.clock.now(), self.at, self.zone)
        if due is None or not self.leads():
            return None
        days = unsent(due, await self._sent_days())
        for day in days:
            await self._send(day)
        return days[-1] if days else None

    async def _send(self, day: date) -> None:
        from jarvis.report.html import html  # noqa: PLC0415 - matplotlib: once a day

        start = datetime.combine(day, time(), tzinfo=UTC)
        figures = await load_figures(
            self.store, start, self.budget_usd, self.churn, include_cloud=self.include_cloud
        )
        outlets = self._outlets(figures, html(figures))
        self.store.append([self._marker(day, [name for name, _ in outlets])])
        await self.store.flush()
        for name, send in outlets:
            await self._deliver(name, send, day)

    def _outlets(self, figures: DailyFigures, html_text: str) -> list[tuple[str, Any]]:
        outlets: list[tuple[str, Any]] = []
        if self.mailer is not None:
            mailer, message = self.mailer, report_email(figures, html_text)
            outlets.append(("email", lambda envelope: mailer.mail(message, envelope)))
        if self.slack is not None:
            slack, body = self.slack, slack_summary(figures)
            outlets.append(("slack", lambda _envelope: slack.post(body)))
        return outlets

    async def _sent_days(self) -> set[date]:
        recent: Sequence[Event] = await self.store.events(kinds=[EventKind.REPORT_SENT], limit=50)
        days = set()
        for event in recent:
            try:
                days.add(date.fromisoformat(str(event.payload.get("day"))))
            except ValueError:
                continue
        return days

    def _marker(self, day: date, channels: list[str]) -> Event:
        return Event(
            kind=EventKind.REPORT_SENT,
            ts=self.clock.now(),
            idempotency_key=f"report.sent:{day.isoformat()}",
            reason=f"daily report of {day.isoformat()}",
            payload={"day": day.isoformat(), "channels": list(channels)},
        )

    async def _deliver(self, name: str, send: Any, day: date) -> None:
        # Email: the recipients a retry is for (refused with a 4xx); None: everyone.
        envelope: list[str] | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                refused = await send(envelope)
                if not refused:
                    to = {} if envelope is None else {"to": envelope}
                    log.info("daily report sent", channel=name, day=day.isoformat(), **to)
                    return
                # Sent to the others: sending again would give them a second report.
                # Those refused with a 4xx (greylisting) get it on the next attempt.
                later = [r.recipient for r in refused if r.temporary]
                last = attempt == self.attempts
                log.warning(
                    "daily report not sent to every recipient",
                    channel=name,
                    day=day.isoformat(),
                    refused=[str(r) for r in refused],
                    retrying=[] if last else later,
                )
                if not later or last:
                    return
                envelope = later
            except Exception as exc:  # noqa: BLE001 - any channel's error; each names no secret
                temporary = getattr(exc, "temporary", True)
                log.warning("daily report not sent", channel=name, error=said(exc), attempt=attempt)
                if not temporary or attempt == self.attempts:
                    return
            await self.clock.sleep(self.backoff * 2 ** (attempt - 1))
