"""A `Notice` in each channel's documented shape: Slack Block Kit, PagerDuty Events v2, email.

Pure; called by the channels at send time. Every message says which
resources, what happened, what Jarvis tried, and the command that resets it;
a resolve says what ended its incident (`resolution`: a tick finished again, the
kill switch released, a resource healthy or reset...), unless it carries alerts
of its own (an event store outage's end: what was done while it lasted).
Limits the APIs document are respected here (Slack: a header's text at most
150 characters, a section's 3000, at most 50 blocks; PagerDuty: a summary at
most 1024 characters), so a long outage list is cut with a count, not refused.
Outside text in Slack's mrkdwn has ``&``, ``<`` and ``>`` escaped, as Slack asks
(`jarvis.slack.mrkdwn`, which the daily report's summary uses too).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any

from jarvis.mail import message_id
from jarvis.notify.notice import Notice
from jarvis.slack import mrkdwn

__all__ = ["email_message", "pagerduty_event", "resolution", "slack_message", "subject"]

_SLACK_LISTED = 20
"""Alerts listed one section each; the rest are counted (Slack allows 50 blocks)."""
_ENDS_LISTED = 10
"""Ends a resolve lists; the rest are counted. Each is cut at `_END_CHARS`, so the line
(about 2,100 characters) fits a Slack section's 3000 with its count."""
_END_CHARS = 200


def subject(notice: Notice) -> str:
    """One line for a header, a subject or a page summary."""
    count = len(notice.alerts)
    where = f" on {notice.provider}" if notice.provider else ""
    level = notice.severity.value.upper()
    if notice.action == "resolve":
        line = f"[RESOLVED] {notice.cause}{where}"
    elif count == 1:
        line = f"[{level}] {notice.alerts[0]['summary']}"
    else:
        line = f"[{level}] {notice.cause}{where}: {count} resources affected"
    # Reasons are outside text and may break lines, which no email header may
    # hold: the Subject would refuse the notice (ValueError) and stall the outbox.
    return " ".join(line.split())


def resolution(notice: Notice) -> str | None:
    """The line a resolve adds to say what ended its incident; None for a trigger, or a
    resolve whose alerts say it themselves (the event store's outage).

    The words are the resolving alerts' (`jarvis.notify.alerts`, the stall watchdog): each
    kind says its own end, rather than one sentence about resources for every kind, and
    an incident of several resources says each one's, in the order they ended (the first
    `_ENDS_LISTED`, then how many more). A resolve written before they were kept says
    only what is sure.
    """
    if notice.action != "resolve" or notice.alerts:
        return None
    if not notice.ended:
        return "Every alert of this incident has resolved."
    listed = [_cut(words.rstrip("."), _END_CHARS) for words in notice.ended[:_ENDS_LISTED]]
    more = len(notice.ended) - len(listed)
    return f"Resolved: {'; '.join(listed)}{f'; and {more} more' if more else ''}."


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _alert_lines(alert: dict[str, Any]) -> list[str]:
    lines = [alert["summary"]]
    if alert["tried"]:
        lines.append(f"Jarvis tried: {alert['tried']}")
    if alert["reset"]:
        lines.append(f"To reset: {alert['reset']}")
    return lines


def slack_message(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` (the notification fallback) and Block Kit ``blocks``."""
    title = subject(notice)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, 150)}}
    ]
    ended = resolution(notice)
    if ended is not None:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn(ended), 3000)}}
        )
    for alert in notice.alerts[:_SLACK_LISTED]:
        resource = f"*{mrkdwn(alert['resource'])}*\n" if alert["resource"] else ""
        lines = [mrkdwn(line) for line in _alert_lines(alert)]
        if alert["reset"]:
            lines[-1] = f"To reset: `{mrkdwn(alert['reset'])}`"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(resource + "\n".join(lines), 3000)},
            }
        )
    if len(notice.alerts) > _SLACK_LISTED:
        more = len(notice.alerts) - _SLACK_LISTED
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"…and {more} more"}})
    footer = f"incident `{notice.incident}` · since {notice.since:%Y-%m-%d %H:%M} UTC"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": mrkdwn(title), "blocks": blocks}


def pagerduty_event(notice: Notice, routing_key: str, source: str) -> dict[str, Any]:
    """An Events API v2 body; the dedup key is the incident's, never the tick's."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": notice.action,
        "dedup_key": notice.incident,
    }
    if notice.action == "resolve":
        return body
    body["payload"] = {
        "summary": _cut(subject(notice), 1024),
        "source": source,
        "severity": notice.severity.value,
        "timestamp": notice.since.isoformat(),
        "component": notice.provider or "jarvis",
        "group": notice.provider or "jarvis",
        "class": notice.cause,
        "custom_details": {
            "resources": [a["resource"] for a in notice.alerts if a["resource"]],
            "tried": sorted({a["tried"] for a in notice.alerts if a["tried"]}),
            "reset": [a["reset"] for a in notice.alerts if a["reset"]],
        },
    }
    body["client"] = "Jarvis"
    return body


def email_message(notice: Notice, sender: str, recipients: list[str]) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML second."""
    message = EmailMessage()
    message["Subject"] = subject(notice)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # The outbox row's key: every attempt at this notice carries the same id.
    message["Message-ID"] = message_id(sender, "alert", notice.key)
    # Threads the notices of one incident together in mail clients.
    message["References"] = f"<{notice.incident}@jarvis>"
    text = [subject(notice), ""]
    ended = resolution(notice)
    if ended is not None:
        text.append(ended)
    for alert in notice.alerts:
        if alert["resource"]:
            text.append(alert["resource"])
        text.extend(f"  {line}" for line in _alert_lines(alert))
        text.append("")
    text.append(f"incident {notice.incident}, since {notice.since:%Y-%m-%d %H:%M} UTC")
    message.set_content("\n".join(text))
    items = "".join(
        "<li>"
        + (f"<b>{html.escape(a['resource'])}</b><br>" if a["resource"] else "")
        + "<br>".join(html.escape(line) for line in _alert_lines(a))
        + "</li>"
        for a in notice.alerts
    )
    body = (
        f"<h2>{html.escape(subject(notice))}</h2>"
        + (f"<p>{html.escape(ended)}</p>" if ended is not None else "")
        + (f"<ul>{items}</ul>" if items else "")
        + f"<p><small>incident {html.escape(notice.incident)}</small></p>"
    )
    message.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    return message
