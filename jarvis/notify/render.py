"""A `Notice` in each channel's documented shape: Slack Block Kit, PagerDuty Events v2, email.

Pure; called by the channels at send time. Every message says which
resources, what happened, what Jarvis tried, and the command that resets it;
a resolve says what ended its incident (`resolution`: a tick finished again, the
kill switch released, a resource healthy or reset...), unless it carries alerts
of its own (an event store outage's end: what was done while it lasted).
Limits the APIs document are respected here (Slack: a header's text at most
150 characters, a section's 3000, at most 50 blocks, a message's text truncated
past 40,000; PagerDuty: a summary at most 1024 characters), so a long outage
list is cut with a count, not refused. Outside text in Slack's mrkdwn has ``&``,
``<`` and ``>`` escaped, as Slack asks (`jarvis.slack.mrkdwn`, which the daily
report's summary uses too). A text is measured as sent, after escaping, and cut
in its outside part (`_cut`): a list loses items, never its "and K more"
(`_listing`), and a subject words of its cause or summary, never its count of
resources (`subject`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from jarvis.mail import message_id
from jarvis.notify.notice import Notice
from jarvis.slack import mrkdwn

__all__ = ["email_message", "pagerduty_event", "resolution", "slack_message", "subject"]

_SLACK_LISTED = 20
"""Alerts listed one section each; the rest are counted (Slack allows 50 blocks)."""
_ENDS_LISTED = 10
"""Ends a resolve lists; the rest are counted. Each is cut at `_END_CHARS` as sent (after
escaping), so the line (about 2,100 characters) fits a Slack section's 3000 with its count;
`_listing` holds it to the limit whatever the sizes."""
_END_CHARS = 200
_SLACK_HEADER = 150
_SLACK_SECTION = 3000
_SLACK_TEXT = 40_000
"""Slack truncates a message's top-level text past this, count and all."""
_PAGERDUTY_SUMMARY = 1024

Escape = Callable[[str], str]


def _same(text: str) -> str:
    return text


def subject(notice: Notice, limit: int | None = None, escape: Escape = _same) -> str:
    """One line for a header, a subject or a page summary: at most ``limit`` characters
    after ``escape``, cut in its outside part (the cause, the provider, an alert's summary)
    so that the count of resources affected always ends it."""
    count = len(notice.alerts)
    where = f" on {notice.provider}" if notice.provider else ""
    level = notice.severity.value.upper()
    if notice.action == "resolve":
        head, words, tail = "[RESOLVED] ", f"{notice.cause}{where}", ""
    elif count == 1:
        head, words, tail = f"[{level}] ", notice.alerts[0]["summary"], ""
    else:
        head, words, tail = f"[{level}] ", f"{notice.cause}{where}", f": {count} resources affected"
    # Reasons are outside text and may break lines, which no email header may
    # hold: the Subject would refuse the notice (ValueError) and stall the outbox.
    words = " ".join(words.split())
    room = None if limit is None else limit - len(head) - len(tail)
    return " ".join(f"{head}{_cut(words, room, escape)}{tail}".split())


def resolution(notice: Notice, limit: int | None = None, escape: Escape = _same) -> str | None:
    """The line a resolve adds to say what ended its incident, at most ``limit`` characters
    after ``escape``; None for a trigger, or a resolve whose alerts say it themselves (the
    event store's outage).

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
    ends = [_cut(words.rstrip("."), _END_CHARS, escape) for words in notice.ended[:_ENDS_LISTED]]
    return _listing("Resolved: ", ends, len(notice.ended), limit)


def _listing(head: str, items: list[str], total: int, limit: int | None) -> str:
    """``head``, then as many of ``items`` (as sent) as fit in ``limit`` with the ending,
    and "and K more" for the rest of the ``total``: the list is cut, never its count."""
    shown = len(items)
    while True:
        more = total - shown
        parts = [*items[:shown], *([f"and {more} more"] if more else [])]
        text = f"{head}{'; '.join(parts)}."
        if limit is None or len(text) <= limit or shown == 0:
            return text
        shown -= 1


def _cut(text: str, limit: int | None, escape: Escape = _same) -> str:
    """``text`` as sent (``escape``d), at most ``limit`` characters: cut by whole characters
    of ``text``, so an escape (``&amp;``) is never split, and marked with "…"."""
    sent = escape(text)
    if limit is None or len(sent) <= limit:
        return sent
    kept: list[str] = []
    size = 1  # the "…"
    for char in text:
        shown = escape(char)
        if size + len(shown) > limit:
            break
        kept.append(shown)
        size += len(shown)
    return "".join(kept) + "…"


def _alert_lines(alert: dict[str, Any]) -> list[str]:
    lines = [alert["summary"]]
    if alert["tried"]:
        lines.append(f"Jarvis tried: {alert['tried']}")
    if alert["reset"]:
        lines.append(f"To reset: {alert['reset']}")
    return lines


def _alert_section(alert: dict[str, Any]) -> str:
    """An alert's Slack section, at most `_SLACK_SECTION` characters as sent: its resource,
    what happened, what Jarvis tried and the command that resets it, each on its line.

    The command keeps up to half the section and the resource a quarter; what happened
    and what was tried, outside words of any length, share the rest (`_cut`, so no escape
    is split): a long reason no longer cuts off the command an operator pastes.
    """
    head = f"*{_cut(alert['resource'], _SLACK_SECTION // 4, mrkdwn)}*" if alert["resource"] else ""
    reset = ""
    if alert["reset"]:
        reset = f"To reset: `{_cut(alert['reset'], _SLACK_SECTION // 2, mrkdwn)}`"
    room = _SLACK_SECTION - len(head) - len(reset) - 3  # three line breaks at most
    label = "Jarvis tried: " if alert["tried"] else ""
    wanted = len(label) + len(mrkdwn(alert["tried"]))
    summary = _cut(alert["summary"], max(room - wanted, room // 2), mrkdwn)
    tried = label + _cut(alert["tried"], room - len(summary) - len(label), mrkdwn) if label else ""
    return "\n".join(part for part in (head, summary, tried, reset) if part)


def slack_message(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` (the notification fallback) and Block Kit ``blocks``."""
    header = subject(notice, _SLACK_HEADER)  # plain_text: shown as written
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    ended = resolution(notice, _SLACK_SECTION, mrkdwn)
    if ended is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ended}})
    for alert in notice.alerts[:_SLACK_LISTED]:
        text = {"type": "mrkdwn", "text": _alert_section(alert)}
        blocks.append({"type": "section", "text": text})
    if len(notice.alerts) > _SLACK_LISTED:
        more = len(notice.alerts) - _SLACK_LISTED
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"…and {more} more"}})
    footer = f"incident `{notice.incident}` · since {notice.since:%Y-%m-%d %H:%M} UTC"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": subject(notice, _SLACK_TEXT, mrkdwn), "blocks": blocks}


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
        "summary": subject(notice, _PAGERDUTY_SUMMARY),
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
    # Not cut: a long Subject is folded into encoded words, every line within RFC 5322's.
    title = subject(notice)
    message["Subject"] = title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # The outbox row's key: every attempt at this notice carries the same id.
    message["Message-ID"] = message_id(sender, "alert", notice.key)
    # Threads the notices of one incident together in mail clients.
    message["References"] = f"<{notice.incident}@jarvis>"
    text = [title, ""]
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
        f"<h2>{html.escape(title)}</h2>"
        + (f"<p>{html.escape(ended)}</p>" if ended is not None else "")
        + (f"<ul>{items}</ul>" if items else "")
        + f"<p><small>incident {html.escape(notice.incident)}</small></p>"
    )
    message.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    return message
